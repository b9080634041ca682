"""ActiveCampaignHook: connection settings, exact request shapes, and the API methods."""

# ruff: noqa: F811  (pytest fixtures imported from hook_fixtures are re-bound as arguments)

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests

from airflow_provider_activecampaign import __version__, get_provider_info
from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignConfigurationError,
    ActiveCampaignInsecureURLError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)
from airflow_provider_activecampaign.hooks.activecampaign import (
    ActiveCampaignHook,
    derive_stringid,
    derive_web_url,
    endpoint_key,
    normalize_api_url,
)
from airflow_provider_activecampaign.importer import encode_body
from tests.unit.hook_fixtures import (  # noqa: F401  (pytest fixtures)
    API_KEY,
    API_URL,
    BASE,
    FakeTime,
    ac_conn,
    fake_time,
    hook,
    make_hook,
)

# ---------------------------------------------------------------------------------------------------
# Class attributes and the connection form
# ---------------------------------------------------------------------------------------------------


def test_hook_identity_matches_provider_info() -> None:
    assert ActiveCampaignHook.conn_name_attr == "activecampaign_conn_id"
    assert ActiveCampaignHook.default_conn_name == "activecampaign_default"
    assert ActiveCampaignHook.conn_type == "activecampaign"
    assert ActiveCampaignHook.hook_name == "ActiveCampaign"
    (conn_type,) = get_provider_info()["connection-types"]
    assert conn_type["connection-type"] == ActiveCampaignHook.conn_type
    assert conn_type["hook-name"] == ActiveCampaignHook.hook_name
    module, _, name = conn_type["hook-class-name"].rpartition(".")
    assert (module, name) == (ActiveCampaignHook.__module__, ActiveCampaignHook.__name__)


def test_ui_field_behaviour_matches_declarative_form() -> None:
    behaviour = ActiveCampaignHook.get_ui_field_behaviour()
    declared = get_provider_info()["connection-types"][0]["ui-field-behaviour"]
    assert behaviour["hidden_fields"] == declared["hidden-fields"] == ["schema", "port", "login", "extra"]
    assert behaviour["relabeling"] == declared["relabeling"] == {"host": "API URL", "password": "API key"}
    assert behaviour["placeholders"] == declared["placeholders"]
    assert behaviour["placeholders"]["host"].startswith("https://")


def test_legacy_form_widgets_match_connection_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow < 3.2 builds the form from get_connection_form_widgets() (FAB/wtforms, imported lazily)."""
    import sys
    import types

    from airflow_provider_activecampaign import CONNECTION_OPTIONS

    class StringField:
        def __init__(self, label: str, **kwargs: Any) -> None:
            self.label, self.kwargs = label, kwargs

    stubs = {"flask_appbuilder": types.ModuleType("flask_appbuilder"),
             "flask_appbuilder.fieldwidgets": types.ModuleType("flask_appbuilder.fieldwidgets"),
             "flask_babel": types.ModuleType("flask_babel"), "wtforms": types.ModuleType("wtforms")}
    stubs["flask_appbuilder.fieldwidgets"].BS3TextFieldWidget = lambda: "widget"  # type: ignore[attr-defined]
    stubs["flask_babel"].lazy_gettext = lambda text: text  # type: ignore[attr-defined]
    stubs["wtforms"].StringField = StringField  # type: ignore[attr-defined]
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    widgets = ActiveCampaignHook.get_connection_form_widgets()
    assert set(widgets) == set(CONNECTION_OPTIONS)
    assert widgets["timeout"].label == CONNECTION_OPTIONS["timeout"]["label"]


def test_hook_construction_reads_no_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operators build hooks at parse time: the connection is only read when first needed."""
    monkeypatch.delenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", raising=False)
    ActiveCampaignHook()  # no error although the connection doesn't exist
    with pytest.raises(ValueError):
        ActiveCampaignHook(max_attempts=0)


# ---------------------------------------------------------------------------------------------------
# API URL normalization and the plain-http guard
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [
    "https://acct.api-us1.com",
    "https://acct.api-us1.com/",
    "https://acct.api-us1.com/api/3",
    "https://acct.api-us1.com/api/3/",
    "  https://acct.api-us1.com/api/3/  ",
    "HTTPS://ACCT.API-US1.COM/api/3",
    "acct.api-us1.com",
    "acct.api-us1.com/api/3/",
    "https://acct.api-us1.com:443/api/3",
])
def test_api_url_variants_normalize(host: str) -> None:
    assert normalize_api_url(host) == "https://acct.api-us1.com"


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("http://127.0.0.1:8123/api/3/", None, "http://127.0.0.1:8123"),
    ("http://127.9.9.9:8123", None, "http://127.9.9.9:8123"),
    ("http://localhost:9000/", None, "http://localhost:9000"),
    ("http://[::1]:8080/api/3", None, "http://[::1]:8080"),
    ("http://127.0.0.1", 8123, "http://127.0.0.1:8123"),
    ("https://proxy.example.com/activecampaign/api/3", None, "https://proxy.example.com/activecampaign"),
])
def test_api_url_ports_loopback_and_prefixes(host: str, port: int | None, expected: str) -> None:
    assert normalize_api_url(host, port) == expected


@pytest.mark.parametrize("host", [
    "http://acct.api-us1.com",
    "http://acct.api-us1.com/api/3",
    "http://10.0.0.5:8080",
    "http://128.0.0.1",
    "http://localhost.evil.com",
])
def test_plain_http_to_a_remote_host_is_refused(host: str) -> None:
    with pytest.raises(ActiveCampaignInsecureURLError, match="unencrypted"):
        normalize_api_url(host)


@pytest.mark.parametrize("host", ["", "   ", None, "ftp://acct.api-us1.com", "https://"])
def test_unusable_api_urls(host: str | None) -> None:
    with pytest.raises(ActiveCampaignConfigurationError):
        normalize_api_url(host)


def test_plain_http_refused_before_any_request(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                               requests_mock: Any) -> None:
    ac_conn(host="http://acct.api-us1.com")
    requests_mock.get(re.compile(".*"), json={})
    hook = make_hook()
    with pytest.raises(ActiveCampaignInsecureURLError) as info:
        hook.request("GET", "lists")
    assert "unencrypted" in str(info.value) and "acct.api-us1.com" in str(info.value)
    with pytest.raises(ActiveCampaignInsecureURLError):
        hook.get_conn()
    assert requests_mock.call_count == 0
    assert sum(hook.request_counts.values()) == 0


def test_loopback_http_is_allowed(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                  requests_mock: Any) -> None:
    ac_conn(host="http://127.0.0.1:8123/api/3")
    requests_mock.get("http://127.0.0.1:8123/api/3/lists", json={"lists": []})
    assert make_hook().request("GET", "lists") == {"lists": []}


def test_missing_api_key_is_a_configuration_error(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                                 requests_mock: Any) -> None:
    ac_conn(password=None)
    with pytest.raises(ActiveCampaignConfigurationError, match="API key"):
        make_hook().request("GET", "lists")
    assert requests_mock.call_count == 0


def test_web_url_derived_or_configured(ac_conn: Callable[..., None], make_hook: Callable[..., Any]) -> None:
    assert derive_web_url("https://acct.api-us1.com") == "https://acct.activehosted.com"
    assert derive_web_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    assert make_hook().web_url == "https://acct.activehosted.com"
    ac_conn(web_url="https://acct.example.com/")
    assert make_hook().web_url == "https://acct.example.com"


# ---------------------------------------------------------------------------------------------------
# Options from extra
# ---------------------------------------------------------------------------------------------------


def test_option_defaults(hook: ActiveCampaignHook) -> None:
    s = hook.settings
    assert (s.requests_per_second, s.bulk_imports_per_minute, s.single_imports_per_minute, s.timeout) == (
        5.0, 100.0, 20.0, 60.0)
    assert API_KEY not in repr(s)


def test_string_options_are_coerced(ac_conn: Callable[..., None], make_hook: Callable[..., Any]) -> None:
    ac_conn(requests_per_second="2.5", bulk_imports_per_minute="50", single_imports_per_minute=" 10 ",
            timeout="7", web_url="")
    s = make_hook().settings
    assert (s.requests_per_second, s.bulk_imports_per_minute, s.single_imports_per_minute, s.timeout) == (
        2.5, 50.0, 10.0, 7.0)


def test_empty_or_null_options_mean_default(ac_conn: Callable[..., None], make_hook: Callable[...,
                                            Any]) -> None:
    ac_conn(requests_per_second="", timeout=None)
    s = make_hook().settings
    assert (s.requests_per_second, s.timeout) == (5.0, 60.0)


@pytest.mark.parametrize(("name", "value"), [("timeout", "soon"), ("requests_per_second", 0),
                                             ("requests_per_second", "-1"), ("bulk_imports_per_minute", True),
                                             ("timeout", "nan")])
def test_bad_options_are_named(ac_conn: Callable[..., None], make_hook: Callable[..., Any], name: str,
                               value: Any) -> None:
    ac_conn(**{name: value})
    with pytest.raises(ActiveCampaignConfigurationError, match=name):
        _ = make_hook().settings


# ---------------------------------------------------------------------------------------------------
# Request shapes
# ---------------------------------------------------------------------------------------------------


def test_session_is_cached_and_carries_the_headers(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    assert hook.get_conn() is hook.get_conn()
    requests_mock.get(f"{BASE}/lists", json={"lists": []})
    hook.request("GET", "lists")
    headers = requests_mock.last_request.headers
    assert headers["Api-Token"] == API_KEY
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert re.fullmatch(rf"airflow-provider-activecampaign/{re.escape(__version__)} \(\+requests/[\w.]+\)",
                        headers["User-Agent"])
    assert requests_mock.last_request.timeout == (10.0, 60.0)


def test_read_timeout_comes_from_the_connection(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                                requests_mock: Any) -> None:
    ac_conn(timeout="7")
    requests_mock.get(f"{BASE}/lists", json={})
    make_hook().request("GET", "lists")
    assert requests_mock.last_request.timeout == (10.0, 7.0)


def test_body_is_compact_json_bytes(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/tags", json={"tag": {"id": "1"}}, status_code=201)
    payload = {"tag": {"tag": "Zoë", "tagType": "contact"}}
    hook.request("POST", "tags", json=payload)
    assert requests_mock.last_request.body == encode_body(payload)
    assert b" " not in requests_mock.last_request.body


@pytest.mark.parametrize("endpoint", ["lists", "/lists", "api/3/lists", "/api/3/lists/"])
def test_endpoint_forms(hook: ActiveCampaignHook, requests_mock: Any, endpoint: str) -> None:
    requests_mock.get(f"{BASE}/lists", json={"ok": 1})
    assert hook.request("GET", endpoint) == {"ok": 1}


def test_params_are_sent_and_none_values_dropped(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts", json={"contacts": []})
    hook.request("GET", "contacts", params={"listid": 7, "status": None, "filters[name]": "A B"})
    assert requests_mock.last_request.qs == {"listid": ["7"], "filters[name]": ["a b"]}
    assert "status" not in requests_mock.last_request.url


def test_empty_success_body_is_an_empty_dict(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.delete(f"{BASE}/lists/3", status_code=200, content=b"")
    assert hook.request("DELETE", "lists/3") == {}


def test_success_that_is_not_json_is_unexpected(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists", text="<html><title>Login</title></html>",
                      headers={"Content-Type": "text/html"})
    with pytest.raises(ActiveCampaignUnexpectedAnswerError,
                       match="HTML page, not an ActiveCampaign API answer"):
        hook.request("GET", "lists")


def test_request_counts_collapse_ids(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts/12/contactLists", json={"contactLists": []})
    requests_mock.get(f"{BASE}/contacts/13/contactLists", json={"contactLists": []})
    requests_mock.post(f"{BASE}/import/bulk_import", json={"batchId": "b"})
    hook.get_contact_lists(12)
    hook.get_contact_lists("13")
    hook.bulk_import([{"email": "a@example.com"}, {"email": "b@example.com"}])
    assert hook.request_counts == {"GET contacts/{id}/contactLists": 2, "POST import/bulk_import": 1}
    assert endpoint_key("get", "/lists/7?x=1") == "GET lists/{id}"


# ---------------------------------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------------------------------


def _paged(items: list[dict], key: str, total: bool = True) -> Callable[..., dict]:
    def respond(request: Any, context: Any) -> dict:
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        body: dict[str, Any] = {key: items[offset:offset + limit]}
        if total:
            body["meta"] = {"total": str(len(items))}
        return body
    return respond


def test_iter_collection_pages_by_offset(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    items = [{"id": str(i)} for i in range(1, 251)]
    requests_mock.get(f"{BASE}/lists", json=_paged(items, "lists"))
    assert list(hook.iter_collection("lists", "lists", {"filters[name]": "x"})) == items
    offsets = [(r.qs["offset"], r.qs["limit"], r.qs["filters[name]"]) for r in requests_mock.request_history]
    assert offsets == [(["0"], ["100"], ["x"]), (["100"], ["100"], ["x"]), (["200"], ["100"], ["x"])]


def test_iter_collection_stops_at_meta_total(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    items = [{"id": str(i)} for i in range(200)]
    requests_mock.get(f"{BASE}/lists", json=_paged(items, "lists"))
    assert len(list(hook.iter_collection("lists", "lists"))) == 200
    assert requests_mock.call_count == 2  # no third request for an empty page


def test_iter_collection_without_meta_stops_on_short_page(hook: ActiveCampaignHook,
                                                          requests_mock: Any) -> None:
    items = [{"id": str(i)} for i in range(200)]
    requests_mock.get(f"{BASE}/tags", json=_paged(items, "tags", total=False))
    assert len(list(hook.iter_collection("tags", "tags"))) == 200
    assert requests_mock.call_count == 3


def test_iter_collection_guards_against_ignored_offset(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    page = {"lists": [{"id": str(i)} for i in range(100)], "meta": {"total": "1000"}}
    requests_mock.get(f"{BASE}/lists", json=page)
    with pytest.raises(ActiveCampaignUnexpectedAnswerError, match="same page"):
        list(hook.iter_collection("lists", "lists"))
    assert requests_mock.call_count == 2


def _contacts_by_id(contacts: list[dict]) -> Callable[..., dict]:
    def respond(request: Any, context: Any) -> dict:
        after = int(request.qs.get("id_greater", ["0"])[0])
        limit = int(request.qs["limit"][0])
        matching = [c for c in contacts if int(c["id"]) > after]
        return {"contacts": matching[:limit], "meta": {"total": str(len(matching))}}
    return respond


def test_iter_contacts_pages_by_id(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    contacts = [{"id": str(i * 3), "email": f"u{i}@example.com"} for i in range(1, 206)]
    requests_mock.get(f"{BASE}/contacts", json=_contacts_by_id(contacts))
    assert list(hook.iter_contacts({"listid": 4})) == contacts
    history = requests_mock.request_history
    assert [r.qs.get("id_greater") for r in history] == [None, ["300"], ["600"]]
    assert all(r.qs["orders[id]"] == ["asc"] and r.qs["listid"] == ["4"] for r in history)
    assert all("offset" not in r.qs for r in history)


def test_iter_contacts_stops_when_total_fits_the_page(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    contacts = [{"id": str(i)} for i in range(1, 101)]
    requests_mock.get(f"{BASE}/contacts", json=_contacts_by_id(contacts))
    assert len(list(hook.iter_contacts())) == 100
    assert requests_mock.call_count == 1


def test_iter_contacts_guards_against_a_cursor_that_does_not_advance(hook: ActiveCampaignHook,
                                                                     requests_mock: Any) -> None:
    page = {"contacts": [{"id": str(i)} for i in range(1, 101)], "meta": {"total": "5000"}}
    requests_mock.get(f"{BASE}/contacts", json=page)  # ignores id_greater
    seen = []
    with pytest.raises(ActiveCampaignUnexpectedAnswerError, match="did not advance"):
        for c in hook.iter_contacts():
            seen.append(c)
    assert len(seen) == 100  # the repeated page was not yielded again


def test_iter_list_contacts_filters(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts", json={"contacts": [{"id": "1"}], "meta": {"total": "1"}})
    assert list(hook.iter_list_contacts("7")) == [{"id": "1"}]
    assert requests_mock.last_request.qs["listid"] == ["7"]
    assert requests_mock.last_request.qs["status"] == ["1"]
    list(hook.iter_list_contacts(7, 2))
    assert requests_mock.last_request.qs["status"] == ["2"]


# ---------------------------------------------------------------------------------------------------
# Lists, groups
# ---------------------------------------------------------------------------------------------------


def test_find_list_by_name_is_exact_and_paginates(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    lists = [{"id": str(i), "name": f"Newsletter copy {i}"} for i in range(150)]
    lists += [{"id": "900", "name": "newsletter"}, {"id": "901", "name": "Newsletter"}]
    requests_mock.get(f"{BASE}/lists", json=_paged(lists, "lists"))
    assert hook.find_list_by_name("Newsletter") == {"id": "901", "name": "Newsletter"}
    assert requests_mock.last_request.qs["filters[name]"] == ["newsletter"]
    assert hook.find_list_by_name("Newsletter copy") is None


def test_create_list_body_and_derived_stringid(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/lists", json={"list": {"id": "6", "name": "Q3 VIPs: Zoë's list"}})
    created = hook.create_list("Q3 VIPs: Zoë's list", sender_url="https://shop.example.com",
                               sender_reminder="You bought from us.", channel="email")
    assert created["id"] == "6"
    sent = requests_mock.last_request.json()["list"]
    assert sent["name"] == "Q3 VIPs: Zoë's list"
    assert sent["sender_url"] == "https://shop.example.com"
    assert sent["sender_reminder"] == "You bought from us."
    assert sent["channel"] == "email"
    assert re.fullmatch(r"q3-vips-zoe-s-list-[0-9a-f]{8}", sent["stringid"])
    assert sent["stringid"] == derive_stringid("Q3 VIPs: Zoë's list")  # deterministic
    assert derive_stringid("Q3 VIPs") != derive_stringid("q3 vips")  # same slug, different names


def test_create_list_with_explicit_stringid(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/lists", json={"list": {"id": "6"}})
    hook.create_list("A", sender_url="u", sender_reminder="r", stringid="my-a")
    assert requests_mock.last_request.json()["list"]["stringid"] == "my-a"


def test_create_list_refused_but_existing_is_returned(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/lists", status_code=422,
                       json={"errors": [{"title": "Duplicate", "code": "duplicate"}]})
    requests_mock.get(f"{BASE}/lists", json={"lists": [{"id": "8", "name": "VIPs"}], "meta": {"total": "1"}})
    assert hook.create_list("VIPs", sender_url="u", sender_reminder="r") == {"id": "8", "name": "VIPs"}


def test_create_list_refused_and_absent_raises(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/lists", status_code=422,
                       json={"errors": [{"title": "List limit reached", "code": "limit"}]})
    requests_mock.get(f"{BASE}/lists", json={"lists": [], "meta": {"total": "0"}})
    with pytest.raises(ActiveCampaignValidationError, match="List limit reached"):
        hook.create_list("VIPs", sender_url="u", sender_reminder="r")


def test_find_user_group_exact_title(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/groups", json={"groups": [{"id": "1", "title": "Admin"},
                                                          {"id": "3", "title": "Marketing team"},
                                                          {"id": "4", "title": "Marketing"}],
                                              "meta": {"total": "3"}})
    assert hook.find_user_group("Marketing") == {"id": "4", "title": "Marketing"}
    assert hook.find_user_group("marketing") is None


def test_add_list_to_group(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/listGroups", status_code=201,
                       json={"listGroup": {"listid": "6", "groupid": "3", "id": "11"}})
    assert hook.add_list_to_group("6", "3")["id"] == "11"
    assert requests_mock.last_request.json() == {"listGroup": {"listid": 6, "groupid": 3}}


# ---------------------------------------------------------------------------------------------------
# Contacts
# ---------------------------------------------------------------------------------------------------


def test_find_contact_by_email_verifies_the_match(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts", json={"contacts": [{"id": "5", "email": "Jane.Doe@Example.com"}]})
    assert hook.find_contact_by_email("jane.doe@example.COM")["id"] == "5"
    assert requests_mock.last_request.qs["email"] == ["jane.doe@example.com"]


def test_find_contact_by_email_ignored_filter_is_no_match(hook: ActiveCampaignHook,
                                                          requests_mock: Any) -> None:
    # The API ignores filters it doesn't apply and returns the first contacts of the account.
    requests_mock.get(f"{BASE}/contacts", json={"contacts": [{"id": "1", "email": "first@example.com"}]})
    assert hook.find_contact_by_email("nobody@example.com") is None


def test_sync_contact(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/contact/sync", status_code=201,
                       json={"fieldValues": [], "contact": {"id": "10", "email": "j@example.com"}})
    contact = {"email": "j@example.com", "firstName": "J", "fieldValues": [{"field": "1", "value": "v"}]}
    assert hook.sync_contact(contact) == {"id": "10", "email": "j@example.com"}
    assert requests_mock.last_request.json() == {"contact": contact}


def test_set_list_status(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/contactLists", json={"contacts": [], "contactList": {"id": "2", "status": 1}})
    assert hook.set_list_status("1", "2", 1) == {"id": "2", "status": 1}
    assert requests_mock.last_request.json() == {"contactList": {"list": 2, "contact": 1, "status": 1}}
    hook.set_list_status(1, 2, "1", sourceid=4)
    assert requests_mock.last_request.json() == {"contactList": {"list": 2, "contact": 1, "status": 1,
                                                                 "sourceid": 4}}


def test_get_contact_lists(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    memberships = [{"contact": "19", "list": "1", "status": "3"}]
    requests_mock.get(f"{BASE}/contacts/19/contactLists", json={"contactLists": memberships})
    assert hook.get_contact_lists("19") == memberships


def test_get_current_user(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/users/me", json={"user": {"id": "1", "username": "jdoe"}})
    assert hook.get_current_user() == {"id": "1", "username": "jdoe"}


# ---------------------------------------------------------------------------------------------------
# Fields and tags
# ---------------------------------------------------------------------------------------------------


def test_get_custom_fields_by_upper_perstag_paginated(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    fields = [{"id": str(i), "perstag": f"f_{i}", "title": f"F {i}"} for i in range(130)]
    requests_mock.get(f"{BASE}/fields", json=_paged(fields, "fields"))
    result = hook.get_custom_fields()
    assert len(result) == 130 and result["F_129"]["id"] == "129"
    assert requests_mock.call_count == 2


@pytest.mark.parametrize("answer", [
    {"field": {"id": "8", "title": "Customer Group", "perstag": "CUSTOMER_GROUP"}},
    {"fieldOptions": [], "fieldRels": [], "fields": [
        {"id": "2", "title": "Another", "perstag": "ANOTHER"},
        {"id": "8", "title": "Customer Group", "perstag": "CUSTOMER_GROUP"}], "meta": {"total": "2"}},
])
def test_create_custom_field_accepts_both_shapes_and_relates_it(hook: ActiveCampaignHook, requests_mock: Any,
                                                               answer: dict) -> None:
    requests_mock.post(f"{BASE}/fields", status_code=201, json=answer)
    requests_mock.post(f"{BASE}/fieldRels", status_code=201, json={"fieldRel": {"field": 8, "relid": 0}})
    created = hook.create_custom_field("Customer Group", perstag="CUSTOMER_GROUP")
    assert created["id"] == "8"
    first, second = requests_mock.request_history
    assert first.json() == {"field": {"type": "text", "title": "Customer Group", "perstag": "CUSTOMER_GROUP",
                                      "visible": 1}}
    assert second.json() == {"fieldRel": {"field": 8, "relid": 0}}


def test_find_tag_case_insensitive_exact(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/tags", json={"tags": [{"id": "1", "tag": "VIP customers"},
                                                      {"id": "2", "tag": "vip"}], "meta": {"total": "2"}})
    assert hook.find_tag("VIP") == {"id": "2", "tag": "vip"}
    assert requests_mock.last_request.qs["search"] == ["vip"]
    assert hook.find_tag("VI") is None


def test_create_tag(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/tags", status_code=201, json={"tag": {"id": "16", "tag": "My Tag"}})
    assert hook.create_tag("My Tag")["id"] == "16"
    assert requests_mock.last_request.json() == {"tag": {"tag": "My Tag", "tagType": "contact",
                                                         "description": ""}}


def test_create_tag_that_exists_returns_it(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/tags", status_code=422,
                       json={"errors": [{"title": "Tag already exists", "code": "duplicate"}]})
    requests_mock.get(f"{BASE}/tags", json={"tags": [{"id": "3", "tag": "my tag"}], "meta": {"total": "1"}})
    assert hook.create_tag("My Tag") == {"id": "3", "tag": "my tag"}


# ---------------------------------------------------------------------------------------------------
# Bulk import
# ---------------------------------------------------------------------------------------------------


def test_bulk_import_is_one_exact_request(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    answer = {"success": 1, "queued_contacts": 2, "batchId": "0641fbdd", "message": "Contact import queued"}
    requests_mock.post(f"{BASE}/import/bulk_import", json=answer)
    contacts = [{"email": "a@example.com", "subscribe": [{"listid": 1}]}, {"email": "b@example.com"}]
    callback = {"url": "https://example.com/cb", "requestType": "POST"}
    assert hook.bulk_import(contacts, callback=callback) == answer
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.body == encode_body({"contacts": contacts, "callback": callback})


def test_bulk_import_refuses_too_many_or_too_big_locally(hook: ActiveCampaignHook,
                                                         requests_mock: Any) -> None:
    with pytest.raises(ValueError, match="250"):
        hook.bulk_import([{"email": f"u{i}@example.com"} for i in range(251)])
    big = [{"email": f"u{i}@example.com", "first_name": "x" * 2_000} for i in range(200)]
    with pytest.raises(ValueError, match="399999"):
        hook.bulk_import(big)
    with pytest.raises(ValueError):
        hook.bulk_import([])
    assert requests_mock.call_count == 0


def test_bulk_import_at_exactly_the_byte_limit_is_sent(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/import/bulk_import", json={"batchId": "b"})
    contacts = [{"email": f"u{i}@example.com", "first_name": "x" * 1_900} for i in range(200)]
    padding = 399_999 - len(encode_body({"contacts": contacts}))
    contacts[0]["first_name"] += "y" * padding
    assert len(encode_body({"contacts": contacts})) == 399_999
    hook.bulk_import(contacts)
    assert len(requests_mock.last_request.body) == 399_999
    contacts[0]["first_name"] += "z"
    with pytest.raises(ValueError):
        hook.bulk_import(contacts)


def test_bulk_import_without_batch_id_is_an_error(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/import/bulk_import", json={"success": 0, "message": "Something odd"})
    with pytest.raises(ActiveCampaignUnexpectedAnswerError, match="without a batchId"):
        hook.bulk_import([{"email": "a@example.com"}, {"email": "b@example.com"}])


def test_bulk_import_all_splits(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    counter = iter(range(100))
    requests_mock.post(f"{BASE}/import/bulk_import", json=lambda r, c: {"batchId": f"b{next(counter)}"})
    results = hook.bulk_import_all({"email": f"u{i}@example.com"} for i in range(600))
    assert [r["batchId"] for r in results] == ["b0", "b1", "b2"]
    assert [len(r.json()["contacts"]) for r in requests_mock.request_history] == [250, 250, 100]


def test_get_import_status(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    status = {"status": "completed", "success": ["123"], "failure": ["bad@example.com"]}
    requests_mock.get(f"{BASE}/import/info", json=status)
    assert hook.get_import_status("0641fbdd") == status
    assert requests_mock.last_request.qs == {"batchid": ["0641fbdd"]}


def test_session_errors_are_not_requests_exceptions(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    """Callers only ever see the provider's hierarchy, never a bare requests exception."""
    requests_mock.get(f"{BASE}/lists", exc=requests.exceptions.ConnectionError("boom"))
    with pytest.raises(Exception) as info:
        hook.request("GET", "lists")
    assert not isinstance(info.value, requests.exceptions.RequestException)


def test_fake_time_fixture_is_used(hook: ActiveCampaignHook, fake_time: FakeTime) -> None:
    assert hook.sleep == fake_time.sleep and hook.clock == fake_time.clock
