"""Every error shape ActiveCampaign uses, the retry policy, and what never leaks (key, emails)."""

# ruff: noqa: F811  (pytest fixtures imported from hook_fixtures are re-bound as arguments)

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignAccountBlockedError,
    ActiveCampaignAuthError,
    ActiveCampaignBulkImportRejectedError,
    ActiveCampaignConnectionError,
    ActiveCampaignError,
    ActiveCampaignNotFoundError,
    ActiveCampaignRateLimitError,
    ActiveCampaignServerError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook, mask_emails
from tests.unit.hook_fixtures import (  # noqa: F401  (pytest fixtures)
    API_KEY,
    BASE,
    FakeTime,
    ac_conn,
    all_logs,
    fake_time,
    hook,
    make_hook,
)

BULK = f"{BASE}/import/bulk_import"
TWO = [{"email": "a@example.com"}, {"email": "b@example.com"}]
HTML_504 = ("<!DOCTYPE html><html><head><title>acct.api-us1.com | 504: Gateway time-out</title></head>"
            "<body>Cloudflare</body></html>")
BULK_RATE_LIMITED = {
    "success": 0, "message": "Rate limit exceeded.",
    "failureReasons": ["Up to 100 imports may be requested per minute.Please batch contacts into larger "
                       "requests, or retry this request in a minute."],
}


# ---------------------------------------------------------------------------------------------------
# Error shapes -> exceptions and messages
# ---------------------------------------------------------------------------------------------------

SHAPES = [
    pytest.param(
        "POST", "contact/sync", 422, {"json": {"errors": [{
            "title": "Contact Email Address is not valid.", "detail": "", "code": "email_invalid",
            "error": "must_be_valid_email_address", "source": {"pointer": "/data/attributes/email"}}]}},
        ActiveCampaignValidationError, ["Contact Email Address is not valid.", "email_invalid",
                                        "/data/attributes/email"], id="422-errors-title-code-source"),
    pytest.param(
        "POST", "lists", 403,
        {"json": {"errors": [{"status": 403, "title": "Forbidden",
                              "detail": "You do not have permission to create lists."}]}},
        ActiveCampaignAuthError, ["API key rejected", "You do not have permission to create lists."],
        id="403-errors-status-title-detail"),
    pytest.param(
        "GET", "lists/7", 404, {"json": {"message": "No Result found for _List with id 7"}},
        ActiveCampaignNotFoundError, ["No Result found for _List with id 7"], id="404-bare-message"),
    pytest.param(
        "DELETE", "lists/3", 403, {"json": {"message": "No Result found for _List with id 3"}},
        ActiveCampaignNotFoundError, ["No Result found for _List with id 3"], id="403-no-result-found"),
    pytest.param(
        "GET", "lists", 403, {"content": b""}, ActiveCampaignAuthError,
        ["API key rejected", "empty body, no Content-Type"], id="403-empty-no-content-type"),
    pytest.param(
        "GET", "lists", 403, {"json": {"message": "Forbidden"}}, ActiveCampaignAuthError,
        ["API key rejected", "Forbidden"], id="403-message-forbidden"),
    pytest.param(
        "GET", "lists", 401, {"content": b""}, ActiveCampaignAuthError, ["API key rejected"], id="401"),
    pytest.param(
        "GET", "lists", 402, {"text": "The request could not be processed due to account payment issues"},
        ActiveCampaignAccountBlockedError, ["account blocked", "payment issues"], id="402-text"),
    pytest.param(
        "POST", "lists", 400, {"json": {}}, ActiveCampaignValidationError, ["empty JSON object"],
        id="400-empty-object"),
    pytest.param(
        "POST", "lists", 403,
        {"text": '{"errors":[{"status":403,"title":"Forbidden","detail":"No permission."}]}',
         "headers": {"Content-Type": "text/plain"}},
        ActiveCampaignAuthError, ["No permission."], id="403-json-as-text-plain"),
    pytest.param(
        "GET", "lists", 500, {"text": HTML_504, "headers": {"Content-Type": "text/html"}},
        ActiveCampaignServerError, ["HTML page, not an ActiveCampaign API answer", "504: Gateway time-out"],
        id="500-html"),
    pytest.param(
        "GET", "lists", 404, {"text": "<html><body>Not Found</body></html>"},
        ActiveCampaignNotFoundError, ["HTML page, not an ActiveCampaign API answer"], id="404-html-no-type"),
    pytest.param(
        "GET", "lists", 418, {"text": "I'm a teapot"}, ActiveCampaignValidationError,
        ["non-JSON answer", "teapot"], id="other-4xx-text"),
    pytest.param(
        "GET", "lists", 302, {"content": b"", "headers": {"Location": "https://www.activecampaign.com/login"}},
        ActiveCampaignUnexpectedAnswerError, ["redirected to https://www.activecampaign.com/login"],
        id="302-not-followed"),
    pytest.param(
        "POST", "contactTags", 422,
        {"json": {"errors": [{"status": 422, "title": "Missing attribute",
                              "source": {"pointer": "/data/attributes/contact"}}]}},
        ActiveCampaignValidationError, ["Missing attribute", "/data/attributes/contact"], id="422-no-detail"),
]


@pytest.mark.parametrize(("method", "endpoint", "status", "response", "error", "words"), SHAPES)
def test_error_shapes(make_hook: Callable[..., ActiveCampaignHook], requests_mock: Any, method: str,
                      endpoint: str, status: int, response: dict, error: type, words: list[str]) -> None:
    hook = make_hook(max_attempts=1)
    requests_mock.register_uri(method, f"{BASE}/{endpoint}", status_code=status, **response)
    with pytest.raises(error) as info:
        hook.request(method, endpoint, json={} if method == "POST" else None)
    exc = info.value
    message = str(exc)
    assert type(exc) is error
    assert f"{method} /api/3/{endpoint}" in message and f"HTTP {status}" in message
    for word in words:
        assert word in message
    assert (exc.method, exc.path, exc.status) == (method, endpoint, status)
    assert requests_mock.call_count == 1


def test_validation_error_carries_code_and_detail(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/fields", status_code=422, json={"errors": [
        {"title": "There is already a field with this title",
         "detail": "There is already a field named 'Test Title' -- choose another name",
         "code": "duplicate"}]})
    with pytest.raises(ActiveCampaignValidationError) as info:
        hook.request("POST", "fields", json={"field": {}})
    exc = info.value
    assert exc.code == "duplicate"
    assert exc.detail == "There is already a field named 'Test Title' -- choose another name"
    assert exc.errors[0]["code"] == "duplicate"
    assert exc.api_message == exc.detail


def test_bulk_import_rejected_with_object_failure_reasons(hook: ActiveCampaignHook,
                                                          requests_mock: Any) -> None:
    body = {"success": 0, "message": "JSON payload did not pass validation. Please fix failure Reasons and "
                                     "retry. The import was not queued for processing.",
            "failureReasons": [{"contact": 1, "failureReason": "Field‘ email’ incorrect format"}]}
    requests_mock.post(BULK, status_code=400, json=body)
    with pytest.raises(ActiveCampaignBulkImportRejectedError) as info:
        hook.bulk_import(TWO)
    exc = info.value
    assert exc.failure_reasons == body["failureReasons"]
    assert "did not pass validation" in str(exc) and "contact 1: Field‘ email’ incorrect format" in str(exc)
    assert exc.status == 400 and exc.api_message.startswith("JSON payload did not pass validation")
    assert requests_mock.call_count == 1  # a refusal is not retried


def test_bulk_import_other_400_is_validation(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(BULK, status_code=400,
                       json={"success": 0, "message": "'contacts' is a required field."})
    with pytest.raises(ActiveCampaignValidationError) as info:
        hook.bulk_import(TWO)
    assert not isinstance(info.value, ActiveCampaignBulkImportRejectedError)
    assert requests_mock.call_count == 1


def test_import_info_400(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/import/info", status_code=400,
                      json={"success": 0, "message": "'batchId' is a required field."})
    with pytest.raises(ActiveCampaignValidationError, match="'batchId' is a required field."):
        hook.get_import_status("")


# ---------------------------------------------------------------------------------------------------
# Retries
# ---------------------------------------------------------------------------------------------------


def test_retry_after_30_really_waits_30_seconds(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", [
        {"status_code": 429, "headers": {"Retry-After": "30", "RateLimit-Limit": "5"}, "json": {}},
        {"status_code": 200, "json": {"lists": []}},
    ])
    assert hook.request("GET", "lists") == {"lists": []}
    assert 30 in fake_time.sleeps  # seconds, not milliseconds
    assert requests_mock.call_count == 2


def test_retry_after_is_capped(hook: ActiveCampaignHook, fake_time: FakeTime, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", [{"status_code": 429, "headers": {"Retry-After": "3600"}},
                                        {"status_code": 200, "json": {}}])
    hook.request("GET", "lists")
    assert 60.0 in fake_time.sleeps and max(fake_time.sleeps) == 60.0


def test_retry_after_http_date(hook: ActiveCampaignHook, fake_time: FakeTime, requests_mock: Any) -> None:
    when = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=20), usegmt=True)
    requests_mock.get(f"{BASE}/lists", [{"status_code": 503, "headers": {"Retry-After": when}},
                                        {"status_code": 200, "json": {}}])
    hook.request("GET", "lists")
    assert any(15 <= s <= 21 for s in fake_time.sleeps)


@pytest.mark.parametrize("value", ["nan", "soon", ""])
def test_unreadable_retry_after_falls_back_to_backoff(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                      requests_mock: Any, value: str) -> None:
    requests_mock.get(f"{BASE}/lists", [{"status_code": 429, "headers": {"Retry-After": value}},
                                        {"status_code": 200, "json": {}}])
    hook.request("GET", "lists")
    assert [s for s in fake_time.sleeps if s >= 0.9] == [1.0]


def test_503_without_retry_after_backs_off(hook: ActiveCampaignHook, fake_time: FakeTime,
                                           requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", [{"status_code": 503, "text": "Service Unavailable"},
                                        {"status_code": 503}, {"status_code": 200, "json": {}}])
    hook.request("GET", "lists")
    assert [s for s in fake_time.sleeps if s >= 0.9] == [1.0, 2.0]  # jitter pinned at its maximum


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_retried_with_capped_exponential_backoff(make_hook: Callable[..., ActiveCampaignHook],
                                                               fake_time: FakeTime, requests_mock: Any,
                                                               status: int) -> None:
    hook = make_hook(max_attempts=9)
    requests_mock.get(f"{BASE}/lists", [{"status_code": status, "text": HTML_504}] * 8
                      + [{"status_code": 200, "json": {"ok": True}}])
    assert hook.request("GET", "lists") == {"ok": True}
    assert [s for s in fake_time.sleeps if s >= 0.9] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_backoff_has_full_jitter(hook: ActiveCampaignHook) -> None:
    import random

    hook._rng = random.Random(7)
    waits = [hook._backoff(attempt) for attempt in range(1, 200)]
    assert all(0 <= w <= 30 for w in waits)
    assert min(waits[10:]) < 15 < max(waits[10:])  # spread over [0, cap], not pinned at the cap


def test_server_errors_exhausted(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", status_code=502, text=HTML_504, headers={"Content-Type": "text/html"})
    with pytest.raises(ActiveCampaignServerError, match=r"HTTP 502.*after 6 attempts.*HTML page"):
        hook.request("GET", "lists")
    assert requests_mock.call_count == 6


def test_429_exhausted_is_rate_limit_error(make_hook: Callable[..., ActiveCampaignHook],
                                           requests_mock: Any) -> None:
    hook = make_hook(max_attempts=3)
    requests_mock.get(f"{BASE}/lists", status_code=429, headers={"Retry-After": "1"})
    with pytest.raises(ActiveCampaignRateLimitError, match="still rate limited after 3 attempts"):
        hook.request("GET", "lists")
    assert requests_mock.call_count == 3


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectionError(
        "('Connection aborted.', ConnectionResetError(104, 'reset by peer'))"),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ConnectTimeout("connect timed out"),
])
def test_network_failures_are_retried(hook: ActiveCampaignHook, fake_time: FakeTime, requests_mock: Any,
                                      exc: Exception) -> None:
    requests_mock.get(f"{BASE}/lists", [{"exc": exc}, {"exc": exc}, {"status_code": 200, "json": {"ok": 1}}])
    assert hook.request("GET", "lists") == {"ok": 1}
    assert requests_mock.call_count == 3
    assert [s for s in fake_time.sleeps if s >= 0.9] == [1.0, 2.0]


@pytest.mark.parametrize(("exc", "reason"), [
    (requests.exceptions.ConnectionError("Failed to resolve 'acct.api-us1.com' ([Errno -2] Name or service "
                                         "not known)"), "DNS lookup failed"),
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"), "connection refused"),
    (requests.exceptions.ConnectionError("Connection reset by peer"), "connection reset"),
    (requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)"), "timed out"),
])
def test_network_failures_exhausted_name_the_host(hook: ActiveCampaignHook, requests_mock: Any,
                                                  exc: Exception, reason: str) -> None:
    requests_mock.get(f"{BASE}/lists", exc=exc)
    with pytest.raises(ActiveCampaignConnectionError) as info:
        hook.request("GET", "lists")
    assert "cannot reach host acct.api-us1.com after 6 attempts" in str(info.value)
    assert reason in str(info.value)
    assert requests_mock.call_count == 6


def test_ssl_errors_are_not_retried(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", exc=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(ActiveCampaignConnectionError, match="TLS"):
        hook.request("GET", "lists")
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 409, 422])
def test_client_errors_are_never_retried(hook: ActiveCampaignHook, fake_time: FakeTime, requests_mock: Any,
                                         status: int) -> None:
    requests_mock.post(f"{BASE}/lists", status_code=status, json={"message": "no"},
                       headers={"Retry-After": "5"})
    with pytest.raises(ActiveCampaignError):
        hook.request("POST", "lists", json={"list": {}})
    assert requests_mock.call_count == 1
    assert not [s for s in fake_time.sleeps if s >= 0.9]


def test_bulk_rate_limit_400_waits_and_retries(hook: ActiveCampaignHook, fake_time: FakeTime,
                                               requests_mock: Any) -> None:
    requests_mock.post(BULK, [{"status_code": 400, "json": BULK_RATE_LIMITED},
                              {"status_code": 200, "json": {"batchId": "b1", "queued_contacts": 2}}])
    assert hook.bulk_import(TWO)["batchId"] == "b1"
    assert requests_mock.call_count == 2
    assert 60.0 in fake_time.sleeps


def test_bulk_rate_limit_detected_from_string_failure_reasons(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                              requests_mock: Any) -> None:
    body = {"success": 0, "message": "Too many", "failureReasons": ["Rate limit: up to 20 per minute"]}
    requests_mock.post(BULK, [{"status_code": 400, "json": body},
                              {"status_code": 200, "json": {"batchId": "b1"}}])
    assert hook.bulk_import([{"email": "a@example.com"}])["batchId"] == "b1"
    assert 60.0 in fake_time.sleeps


def test_bulk_rate_limit_exhausted(make_hook: Callable[..., ActiveCampaignHook], requests_mock: Any) -> None:
    hook = make_hook(max_attempts=2)
    requests_mock.post(BULK, status_code=400, json=BULK_RATE_LIMITED)
    with pytest.raises(ActiveCampaignRateLimitError, match="Rate limit exceeded."):
        hook.bulk_import(TWO)
    assert requests_mock.call_count == 2


def test_rate_limit_400_on_other_endpoints_is_not_retried(hook: ActiveCampaignHook,
                                                          requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/lists", status_code=400, json=BULK_RATE_LIMITED)
    with pytest.raises(ActiveCampaignValidationError):
        hook.request("POST", "lists", json={})
    assert requests_mock.call_count == 1


def test_attempts_are_bounded(make_hook: Callable[..., ActiveCampaignHook], requests_mock: Any) -> None:
    for attempts in (1, 2, 6):
        requests_mock.reset_mock()
        requests_mock.get(f"{BASE}/lists", status_code=503)
        with pytest.raises(ActiveCampaignServerError):
            make_hook(max_attempts=attempts).request("GET", "lists")
        assert requests_mock.call_count == attempts


def test_each_retry_is_logged_at_warning(hook: ActiveCampaignHook, requests_mock: Any,
                                         all_logs: Callable[[], str]) -> None:
    requests_mock.get(f"{BASE}/lists", [{"status_code": 429, "headers": {"Retry-After": "30"}},
                                        {"status_code": 200, "json": {}}])
    hook.request("GET", "lists", params={"filters[name]": "VIPs"})
    logs = all_logs()
    line = next(line for line in logs.splitlines() if "retrying" in line)
    assert "warning" in line.lower()
    assert "GET lists?filters[name]=VIPs" in line and "HTTP 429" in line and "30.0 s" in line


# ---------------------------------------------------------------------------------------------------
# Nothing secret leaks
# ---------------------------------------------------------------------------------------------------


def test_api_key_never_in_messages_or_logs(make_hook: Callable[..., ActiveCampaignHook], requests_mock: Any,
                                           all_logs: Callable[[], str]) -> None:
    hook = make_hook(max_attempts=2)
    echo = {"message": f"Invalid token {API_KEY}"}  # even an API that echoes the key back
    requests_mock.get(f"{BASE}/a", status_code=403, json=echo)
    requests_mock.get(f"{BASE}/b", status_code=503, json=echo)
    requests_mock.get(f"{BASE}/c", status_code=422, json={"errors": [{"title": API_KEY, "detail": API_KEY}]})
    requests_mock.get(f"{BASE}/d", exc=requests.exceptions.ConnectionError(f"boom {API_KEY}"))
    requests_mock.get(f"{BASE}/e", status_code=200, text=f"<html>{API_KEY}</html>")
    requests_mock.get(f"{BASE}/users/me", status_code=403, json=echo)
    messages = []
    for endpoint in "abcde":
        with pytest.raises(ActiveCampaignError) as info:
            hook.request("GET", endpoint)
        exc = info.value
        messages += [str(exc), repr(exc), str(exc.api_message), str(getattr(exc, "detail", ""))]
    ok, message = hook.test_connection()
    messages.append(message)
    assert not ok
    assert all(API_KEY not in m for m in messages), messages
    assert API_KEY not in all_logs()


def test_emails_masked_in_messages_and_logs(hook: ActiveCampaignHook, requests_mock: Any,
                                            all_logs: Callable[[], str]) -> None:
    requests_mock.get(f"{BASE}/contacts", [{"status_code": 503}, {"status_code": 403, "json": {
        "message": "Contact jane.doe@example.com is hidden"}}])
    with pytest.raises(ActiveCampaignAuthError) as info:
        hook.find_contact_by_email("jane.doe@example.com")
    message = str(info.value)
    assert "jane.doe@example.com" not in message and "j***@e***.com" in message
    assert "contacts?email=j***@e***.com" in message
    logs = all_logs()
    assert "jane.doe@example.com" not in logs and "jane.doe%40example.com" not in logs
    assert "j***@e***.com" in logs


def test_mask_emails_handles_url_encoded_addresses() -> None:
    assert mask_emails("url /api/3/contacts?email=jane%40example.com x") == (
        "url /api/3/contacts?email=j***%40e***.com x")
    assert mask_emails("a b@c.io and X.Y+z@d.co.uk") == "a b***@c***.io and X***@d***.uk"
    assert re.search("@", mask_emails("no email @ here")) is not None


NON_ASCII = "jöhn.dœ+vip@exämple.com"


def test_non_ascii_and_encoded_emails_never_reach_messages_attributes_or_logs(
        hook: ActiveCampaignHook, requests_mock: Any, all_logs: Callable[[], str]) -> None:
    from urllib.parse import quote

    requests_mock.get(f"{BASE}/contacts", [
        {"status_code": 503, "headers": {"Retry-After": "1"}},
        {"exc": requests.exceptions.ConnectionError(
            f"HTTPSConnectionPool: Max retries exceeded with url: /api/3/contacts?email={quote(NON_ASCII)}")},
        {"status_code": 422, "json": {"errors": [{"title": f"Invalid email {NON_ASCII}",
                                                  "detail": f"'{NON_ASCII}' is not valid", "code": "invalid"}]}},
    ])
    with pytest.raises(ActiveCampaignValidationError) as info:
        hook.find_contact_by_email(NON_ASCII)
    exc = info.value
    shown = " ".join([str(exc), repr(exc), exc.path or "", exc.api_message or "", exc.detail or "", all_logs()])
    for form in (NON_ASCII, quote(NON_ASCII), quote(NON_ASCII, safe=""), "öhn.dœ", quote("öhn.dœ")):
        assert form not in shown, form
    assert "contacts?email=j***@e***.com" in str(exc)
    assert "'j***@e***.com' is not valid" in exc.detail


def test_a_connection_error_names_no_email(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    hook.max_attempts = 1
    requests_mock.get(f"{BASE}/contacts", exc=requests.exceptions.ConnectionError(
        "Max retries exceeded with url: /api/3/contacts?email=jane%40example.com (Connection refused)"))
    with pytest.raises(ActiveCampaignConnectionError) as info:
        hook.find_contact_by_email("jane@example.com")
    assert "jane" not in str(info.value) and "connection refused" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # the raw text is not chained


def test_the_hook_masks_urllib3_request_lines(hook: ActiveCampaignHook, requests_mock: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import logging

    requests_mock.get(f"{BASE}/contacts", json={"contacts": []})
    hook.find_contact_by_email("jane@example.com")  # the session is made: the filter is installed
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        urllib3_log.debug('%s://%s:%s "%s %s %s" %s', "https", "acct.api-us1.com", 443, "GET",
                          "/api/3/contacts?email=jane%40example.com", "HTTP/1.1", 200)
    assert "jane%40example.com" not in caplog.text and "email=j***%40e***.com" in caplog.text
