"""Connections as Airflow stores them (env URI / JSON, URI round trips) and test_connection()."""

# ruff: noqa: F811  (pytest fixtures imported from hook_fixtures are re-bound as arguments)

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from tests.unit.hook_fixtures import (  # noqa: F401  (pytest fixtures)
    API_KEY,
    BASE,
    CONN_ENV,
    FakeTime,
    ac_conn,
    all_logs,
    fake_time,
    hook,
    make_hook,
)

ME = {"user": {"username": "jdoe", "firstName": "John", "lastName": "Doe", "email": "johndoe@example.com",
               "id": "1"}}
KEY_WITH_SPECIALS = "k/ey+1@:x%-" + API_KEY  # characters a URI must escape


def hook_for(fake_time: FakeTime) -> ActiveCampaignHook:
    return ActiveCampaignHook(sleep=fake_time.sleep, clock=fake_time.clock)


# ---------------------------------------------------------------------------------------------------
# AIRFLOW_CONN_* in URI and JSON form
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "api_url"), [
    (f"activecampaign://:{API_KEY}@https%3A%2F%2Facct.api-us1.com", "https://acct.api-us1.com"),
    (f"activecampaign://:{API_KEY}@https%3A%2F%2Facct.api-us1.com%2Fapi%2F3%2F", "https://acct.api-us1.com"),
    (f"activecampaign://https://:{API_KEY}@acct.api-us1.com", "https://acct.api-us1.com"),  # get_uri()'s form
    (f"activecampaign://:{API_KEY}@acct.api-us1.com", "https://acct.api-us1.com"),  # no scheme: https
    (f"activecampaign://:{API_KEY}@http%3A%2F%2F127.0.0.1%3A8123", "http://127.0.0.1:8123"),
    (f"activecampaign://:{API_KEY}@127.0.0.1:8123", "https://127.0.0.1:8123"),  # port field honoured
])
def test_env_connection_in_uri_form(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime, uri: str,
                                    api_url: str) -> None:
    monkeypatch.setenv(CONN_ENV, uri)
    hook = hook_for(fake_time)
    assert hook.api_url == api_url
    assert hook.get_conn().headers["Api-Token"] == API_KEY


def test_uri_query_options_arrive_as_strings_and_are_coerced(monkeypatch: pytest.MonkeyPatch,
                                                             fake_time: FakeTime, requests_mock: Any) -> None:
    monkeypatch.setenv(CONN_ENV, f"activecampaign://:{API_KEY}@https%3A%2F%2Facct.api-us1.com/?timeout=7"
                                 "&requests_per_second=2.5&bulk_imports_per_minute=50"
                                 "&web_url=https%3A%2F%2Facct.activehosted.com")
    hook = hook_for(fake_time)
    s = hook.settings
    assert (s.timeout, s.requests_per_second, s.bulk_imports_per_minute) == (7.0, 2.5, 50.0)
    assert s.web_url == "https://acct.activehosted.com"
    requests_mock.get(f"{BASE}/lists", json={})
    hook.request("GET", "lists")
    assert requests_mock.last_request.timeout == (10.0, 7.0)


def test_env_connection_in_json_form(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime,
                                     requests_mock: Any) -> None:
    monkeypatch.setenv(CONN_ENV, json.dumps({
        "conn_type": "activecampaign", "host": "https://acct.api-us1.com/api/3/",
        "password": KEY_WITH_SPECIALS,
        "extra": {"timeout": 12, "requests_per_second": 4}}))
    hook = hook_for(fake_time)
    assert hook.api_url == "https://acct.api-us1.com"
    assert (hook.settings.timeout, hook.settings.requests_per_second) == (12.0, 4.0)
    requests_mock.get(f"{BASE}/users/me", json=ME)
    assert hook.get_current_user()["username"] == "jdoe"
    assert requests_mock.last_request.headers["Api-Token"] == KEY_WITH_SPECIALS


def test_named_connection(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AC_SANDBOX", json.dumps(
        {"conn_type": "activecampaign", "host": "sandbox.api-us1.com", "password": "k"}))
    hook = ActiveCampaignHook("ac_sandbox", sleep=fake_time.sleep, clock=fake_time.clock)
    assert hook.api_url == "https://sandbox.api-us1.com"


def _connection_classes() -> list[Any]:
    from airflow.models.connection import Connection as CoreConnection
    from airflow.sdk import Connection as SdkConnection

    return [SdkConnection, CoreConnection]


@pytest.mark.parametrize("connection_class", _connection_classes(), ids=["sdk", "core"])
@pytest.mark.parametrize("host", ["https://acct.api-us1.com", "https://acct.api-us1.com/api/3/",
                                  "http://127.0.0.1:8123", "acct.api-us1.com"])
def test_get_uri_round_trip(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime, connection_class: Any,
                            host: str) -> None:
    """The UI/REST API hands connections around as URIs (e.g. the test-connection endpoint exports the
    connection as AIRFLOW_CONN_<random>=<get_uri()>): the API URL, key and options must survive."""
    original = connection_class(conn_id="activecampaign_default", conn_type="activecampaign", host=host,
                                password=KEY_WITH_SPECIALS,
                                extra=json.dumps({"timeout": 9, "web_url": "https://x.example.com"}))
    uri = original.get_uri()
    monkeypatch.setenv(CONN_ENV, uri)
    hook = hook_for(fake_time)
    direct = json.dumps({"conn_type": "activecampaign", "host": host, "password": KEY_WITH_SPECIALS})
    monkeypatch.setenv("AIRFLOW_CONN_DIRECT", direct)
    expected = ActiveCampaignHook("direct", sleep=fake_time.sleep, clock=fake_time.clock).api_url
    assert hook.api_url == expected
    assert hook.settings.api_key == KEY_WITH_SPECIALS
    assert hook.settings.timeout == 9.0 and hook.web_url == "https://x.example.com"


def test_as_json_round_trip(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> None:
    from airflow.sdk import Connection

    conn = Connection(conn_id="activecampaign_default", conn_type="activecampaign",
                      host="https://acct.api-us1.com/api/3", password=KEY_WITH_SPECIALS,
                      extra=json.dumps({"requests_per_second": 3}))
    monkeypatch.setenv(CONN_ENV, conn.as_json())
    hook = hook_for(fake_time)
    assert (hook.api_url, hook.settings.api_key, hook.settings.requests_per_second) == (
        "https://acct.api-us1.com", KEY_WITH_SPECIALS, 3.0)


def test_connection_get_hook_builds_this_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Connection

    monkeypatch.setenv(CONN_ENV, f"activecampaign://:{API_KEY}@https%3A%2F%2Facct.api-us1.com")
    hook = Connection.get("activecampaign_default").get_hook()
    assert isinstance(hook, ActiveCampaignHook)
    assert hook.activecampaign_conn_id == "activecampaign_default"


# ---------------------------------------------------------------------------------------------------
# test_connection()
# ---------------------------------------------------------------------------------------------------


def test_test_connection_success(hook: ActiveCampaignHook, requests_mock: Any,
                                 all_logs: Callable[[], str]) -> None:
    requests_mock.get(f"{BASE}/users/me", json=ME)
    ok, message = hook.test_connection()
    assert ok
    assert "https://acct.api-us1.com" in message and "jdoe" in message
    assert "johndoe@example.com" not in message and "j***@e***.com" in message
    assert hook.request_counts == {"GET users/me": 1}
    assert requests_mock.last_request.timeout == (5.0, 10.0)  # short
    assert "johndoe@example.com" not in all_logs()


@pytest.mark.parametrize(("status", "response", "expected"), [
    (403, {"content": b""}, "API key rejected"),
    (401, {"json": {"message": "Unauthorized"}}, "API key rejected"),
    (402, {"text": "payment issues"}, "account blocked"),
    (404, {"json": {"message": "Not Found"}}, "does not answer like an ActiveCampaign API"),
    (404, {"text": "<html><title>404</title></html>", "headers": {"Content-Type": "text/html"}},
     "does not answer like an ActiveCampaign API"),
    (200, {"text": "<html><title>Log in</title></html>", "headers": {"Content-Type": "text/html"}},
     "does not answer like an ActiveCampaign API"),
    (200, {"text": "hello"}, "does not answer like an ActiveCampaign API"),
    (200, {"json": {"ok": True}}, "does not answer like an ActiveCampaign API"),
    (301, {"headers": {"Location": "https://www.activecampaign.com/"}},
     "does not answer like an ActiveCampaign API"),
    (429, {"headers": {"Retry-After": "30"}}, "rate limited"),
    (503, {"text": "unavailable"}, "server error"),
    (500, {"text": "<html></html>"}, "server error"),
])
def test_test_connection_failures_are_named_and_not_retried(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                            requests_mock: Any, status: int, response: dict,
                                                            expected: str) -> None:
    requests_mock.get(f"{BASE}/users/me", status_code=status, **response)
    ok, message = hook.test_connection()
    assert not ok
    assert expected in message
    assert requests_mock.call_count == 1
    assert not [s for s in fake_time.sleeps if s >= 0.9]
    assert API_KEY not in message


@pytest.mark.parametrize(("exc", "expected"), [
    (requests.exceptions.ConnectionError("[Errno 111] Connection refused"),
     "cannot reach host acct.api-us1.com: connection refused"),
    (requests.exceptions.ConnectionError("Failed to resolve 'acct.api-us1.com' (Name or service not known)"),
     "cannot reach host acct.api-us1.com: DNS lookup failed"),
    (requests.exceptions.ConnectTimeout("timed out"), "timed out"),
    (requests.exceptions.ReadTimeout("timed out"), "timed out"),
])
def test_test_connection_network_failures(hook: ActiveCampaignHook, requests_mock: Any, exc: Exception,
                                          expected: str) -> None:
    requests_mock.get(f"{BASE}/users/me", exc=exc)
    ok, message = hook.test_connection()
    assert not ok and expected in message
    assert requests_mock.call_count == 1


def test_test_connection_refuses_plain_http(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                            requests_mock: Any) -> None:
    ac_conn(host="http://acct.api-us1.com")
    ok, message = make_hook().test_connection()
    assert not ok and "plain http refused" in message and "unencrypted" in message
    assert requests_mock.call_count == 0


def test_test_connection_never_raises(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_MISSING", raising=False)
    hook = ActiveCampaignHook("missing", sleep=fake_time.sleep, clock=fake_time.clock)
    ok, message = hook.test_connection()
    assert not ok and "missing" in message


def test_test_connection_without_host_or_key(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                             requests_mock: Any) -> None:
    ac_conn(host="")
    ok, message = make_hook().test_connection()
    assert not ok and "no API URL" in message
    ac_conn(password="")
    ok, message = make_hook().test_connection()
    assert not ok and "no API key" in message
    assert requests_mock.call_count == 0


def test_test_connection_loopback_emulator(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                           requests_mock: Any) -> None:
    ac_conn(host="http://127.0.0.1:8123")
    requests_mock.get("http://127.0.0.1:8123/api/3/users/me", json=ME)
    ok, message = make_hook().test_connection()
    assert ok and "http://127.0.0.1:8123" in message


def test_test_connection_for_a_task_retries_a_burst_of_429s(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                            requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/users/me", [
        {"status_code": 429, "headers": {"Retry-After": "2"}, "json": {"message": "Too Many Requests"}},
        {"status_code": 429, "headers": {"Retry-After": "3"}, "json": {"message": "Too Many Requests"}},
        {"status_code": 200, "json": ME},
    ])
    ok, message = hook.test_connection(retry_transient=True)
    assert ok and "jdoe" in message
    assert requests_mock.call_count == 3
    assert [s for s in fake_time.sleeps if s >= 1] == [2.0, 3.0]  # waited as Retry-After asked
    assert requests_mock.last_request.timeout == (10.0, 60.0)  # the usual timeouts of any call


@pytest.mark.parametrize("failures", [
    [{"status_code": 503, "headers": {"Retry-After": "1"}, "text": "unavailable"}],
    [{"status_code": 502, "text": "<html><title>502 Bad Gateway</title></html>"}],
    [{"exc": requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected")}],
    [{"exc": requests.exceptions.ReadTimeout("timed out")}],
])
def test_test_connection_for_a_task_retries_what_passes(hook: ActiveCampaignHook, requests_mock: Any,
                                                        failures: list[dict]) -> None:
    requests_mock.get(f"{BASE}/users/me", [*failures, {"status_code": 200, "json": ME}])
    assert hook.test_connection(retry_transient=True)[0]
    assert requests_mock.call_count == 2


def test_test_connection_for_a_task_is_bounded_and_does_not_retry_a_wrong_key(
        hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/users/me", status_code=429, headers={"Retry-After": "1"})
    ok, message = hook.test_connection(retry_transient=True)
    assert not ok and "rate limited" in message and "retries" in message
    assert requests_mock.call_count == hook.max_attempts
    requests_mock.get(f"{BASE}/users/me", status_code=401, json={"message": "Unauthorized"})
    before = requests_mock.call_count
    ok, message = hook.test_connection(retry_transient=True)
    assert not ok and "API key rejected" in message
    assert requests_mock.call_count == before + 1


def test_the_test_button_still_makes_one_quick_call(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/users/me", [{"status_code": 429, "headers": {"Retry-After": "2"}},
                                           {"status_code": 200, "json": ME}])
    ok, message = hook.test_connection()
    assert not ok and "rate limited" in message
    assert requests_mock.call_count == 1
