"""The ActiveCampaign emulator over real loopback HTTP, driven with ``requests``.

Each behaviour here is one the provider depends on (see docs/ARCHITECTURE.md and
/work/shared/research/activecampaign-api.md): auth and error shapes, limits, the bulk importer's
whole-batch rejection and asynchronous processing, unsubscribe semantics, pagination, and faults.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import requests

from airflow_provider_activecampaign.emulator import (
    BY_CONTACT,
    BY_CONTACT_LISTS,
    Account,
    EmulatorConfig,
    EmulatorServer,
    by_import,
    email_format_problem,
)
from airflow_provider_activecampaign.emulator.__main__ import main as cli_main
from tests.emulator.client import API_KEY, Api, make_list, wait_completed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def people(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"email": f"person{i}@example.com", "first_name": f"P{i}", **extra} for i in range(start, start + n)
    ]


# --------------------------------------------------------------------------------------------------
# auth, routing, basics
# --------------------------------------------------------------------------------------------------


def test_users_me_returns_the_seeded_user_with_string_id(api: Api) -> None:
    resp = api.get("users/me")
    assert resp.status_code == 200
    user = resp.json()["user"]
    assert user["id"] == "1"
    assert {"username", "firstName", "lastName", "email"} <= set(user)


@pytest.mark.parametrize("headers", [{}, {"Api-Token": "wrong"}, {"api-token": API_KEY + "x"}])
def test_bad_or_missing_key_gets_403_with_empty_body_and_no_content_type(
    emulator: EmulatorServer, headers: dict[str, str]
) -> None:
    resp = requests.get(emulator.api_url + "/users/me", headers=headers, timeout=5)
    assert resp.status_code == 403
    assert resp.content == b""
    assert "content-type" not in resp.headers


def test_header_name_is_case_insensitive(emulator: EmulatorServer) -> None:
    resp = requests.get(emulator.api_url + "/users/me", headers={"API-TOKEN": API_KEY}, timeout=5)
    assert resp.status_code == 200


def test_paths_outside_the_api_are_an_html_404(api: Api, emulator: EmulatorServer) -> None:
    for path in ("/", "/api/2/lists", "/admin/api.php"):
        resp = api.session.get(emulator.url + path, timeout=5)
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/html")
        assert resp.text.lstrip().startswith("<!DOCTYPE html>")
    # Inside /api/3 an unknown resource is a JSON 404 (after auth).
    resp = api.get("nothing/here")
    assert resp.status_code == 404 and "message" in resp.json()


def test_malformed_json_body_is_a_bare_400(api: Api) -> None:
    resp = api.post("lists", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {}


# --------------------------------------------------------------------------------------------------
# general rate limit
# --------------------------------------------------------------------------------------------------


def test_sliding_window_answers_429_with_retry_after_and_ratelimit_headers(
    api: Api, emulator: EmulatorServer
) -> None:
    emulator.account.configure(requests_per_second=3, rate_window=0.4, retry_after=2)
    statuses = [api.get("users/me") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 200]
    assert statuses[0].headers["RateLimit-Limit"] == "3"
    assert [r.headers["RateLimit-Remaining"] for r in statuses] == ["2", "1", "0"]
    throttled = api.get("users/me")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.headers["RateLimit-Limit"] == "3"
    assert throttled.headers["RateLimit-Remaining"] == "0"
    assert throttled.json()["message"]


def test_refused_requests_do_not_count_toward_the_window(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=2, rate_window=0.5)
    assert [api.get("users/me").status_code for _ in range(2)] == [200, 200]
    first_ok = emulator.account.requests(status=200)[0].time
    # Hammer while throttled: none of these 429s may extend the wait.
    hammered = [api.get("users/me").status_code for _ in range(5)]
    assert set(hammered) == {429}
    time.sleep(max(0.0, first_ok + 0.52 - time.monotonic()))
    assert api.get("users/me").status_code == 200


def test_no_sliding_window_ever_holds_more_than_the_limit(emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=5, rate_window=0.25)
    url, headers = emulator.api_url + "/users/me", {"Api-Token": API_KEY}

    def hammer() -> None:
        with requests.Session() as session:
            for _ in range(15):
                session.get(url, headers=headers, timeout=5)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = emulator.account.requests(status=200)
    assert len(emulator.account.requests(status=429)) > 0
    assert 5 <= len(served) < 60
    assert emulator.account.peak_rate(0.25, served) <= 5


def test_bulk_imports_count_toward_the_general_limit(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=2, rate_window=5)
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert api.get("users/me").status_code == 429


# --------------------------------------------------------------------------------------------------
# bulk import: limits and validation
# --------------------------------------------------------------------------------------------------


def test_bulk_importer_quota_is_a_400_rate_limit_exceeded(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(bulk_imports_per_minute=2, single_imports_per_minute=1)
    for _ in range(2):
        assert api.post("import/bulk_import", json={"contacts": people(3)}).status_code == 200
    refused = api.post("import/bulk_import", json={"contacts": people(3)})
    assert refused.status_code == 400
    body = refused.json()
    assert body["success"] == 0 and body["message"] == "Rate limit exceeded."
    assert body["failureReasons"][0].startswith("Up to 2 imports may be requested per minute.")
    assert len(emulator.account.imports) == 2
    # Single-contact requests have their own, smaller quota.
    assert api.post("import/bulk_import", json={"contacts": people(1)}).status_code == 200
    single = api.post("import/bulk_import", json={"contacts": people(1)})
    assert single.status_code == 400 and single.json()["message"] == "Rate limit exceeded."


def test_bulk_quota_window_slides(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(bulk_imports_per_minute=1, bulk_window=0.3)
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 400
    time.sleep(0.32)
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200


def test_default_bulk_message_matches_activecampaign(api: Api, emulator: EmulatorServer) -> None:
    for _ in range(100):  # a full minute's quota
        assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    body = api.post("import/bulk_import", json={"contacts": people(2)}).json()
    assert body == {
        "success": 0,
        "message": "Rate limit exceeded.",
        "failureReasons": [
            "Up to 100 imports may be requested per minute.Please batch contacts into larger requests, "
            "or retry this request in a minute."
        ],
    }


def test_more_than_250_contacts_is_refused(api: Api, emulator: EmulatorServer) -> None:
    resp = api.post("import/bulk_import", json={"contacts": people(251)})
    assert resp.status_code == 400
    assert resp.json()["success"] == 0
    assert "250" in resp.json()["message"]
    assert api.post("import/bulk_import", json={"contacts": people(250)}).status_code == 200
    assert len(emulator.account.imports) == 1


def _body_of_size(size: int) -> bytes:
    """A bulk import body of exactly ``size`` bytes (padding in one contact's first name)."""
    contacts = people(2)
    base = len(json.dumps({"contacts": contacts}, separators=(",", ":")).encode())
    contacts[0]["first_name"] += "x" * (size - base)
    data = json.dumps({"contacts": contacts}, separators=(",", ":")).encode()
    assert len(data) == size
    return data


def test_payload_must_be_under_400k_bytes(api: Api, emulator: EmulatorServer) -> None:
    headers = {"Content-Type": "application/json"}
    ok = api.post("import/bulk_import", data=_body_of_size(399_999), headers=headers)
    assert ok.status_code == 200, ok.text
    too_big = api.post("import/bulk_import", data=_body_of_size(400_000), headers=headers)
    assert too_big.status_code == 400
    assert too_big.json()["success"] == 0
    assert "400000" in too_big.json()["message"]
    assert len(emulator.account.imports) == 1


def test_one_bad_email_rejects_the_whole_batch_with_0_based_indexes(
    api: Api, emulator: EmulatorServer
) -> None:
    contacts = people(5)
    contacts[1]["email"] = "no-at-sign.example.com"
    contacts[3]["email"] = "two words@example.com"
    resp = api.post("import/bulk_import", json={"contacts": contacts})
    assert resp.status_code == 400
    assert resp.json() == {
        "success": 0,
        "message": "JSON payload did not pass validation. Please fix failure Reasons and retry. "
        "The import was not queued for processing.",
        "failureReasons": [
            {"contact": 1, "failureReason": "Field' email' incorrect format"},
            {"contact": 3, "failureReason": "Field' email' incorrect format"},
        ],
    }
    time.sleep(0.25)
    assert emulator.account.imports == {}
    assert emulator.account.contacts == {}


@pytest.mark.parametrize(
    "email",
    [
        "a@example.com",
        "first.last+tag@sub.example.co.uk",
        "o'brien@example.ie",
        "x@b.co1",
        "UPPER@EXAMPLE.COM",
    ],
)
def test_email_rules_accept(email: str) -> None:
    assert email_format_problem(email) is None


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.com",
        "a@@example.com",
        "a@b@example.com",
        "a b@example.com",
        "a@example.com ",
        "a,b@example.com",
        'a"b@example.com',
        "a(b)@example.com",
        "a:b@example.com",
        "a;b@example.com",
        "a<b>@example.com",
        "a[b]@example.com",
        "a\\b@example.com",
        "a@example",
        "a@example.c",
        "a@exa,mple.com",
        "a@exa[mple.com",
    ],
)
def test_email_rules_refuse(email: str) -> None:
    assert email_format_problem(email) is not None


# --------------------------------------------------------------------------------------------------
# bulk import: asynchronous processing and unsubscribe semantics
# --------------------------------------------------------------------------------------------------


def test_import_is_processed_after_the_delay(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(import_delay=0.4)
    list_id = make_list(api)
    field_id = api.post("fields", json={"field": {"title": "Tier", "type": "text"}}).json()["field"]["id"]
    existing = api.post("contact/sync", json={"contact": {"email": "person1@example.com"}}).json()["contact"]
    contacts = people(3, fields=[{"id": int(field_id), "value": "gold"}], tags=["vip", "Synced"])
    for c in contacts:
        c["subscribe"] = [{"listid": int(list_id)}]
    queued = api.post(
        "import/bulk_import", json={"contacts": contacts, "callback": {"url": "x", "requestType": "GET"}}
    )
    assert queued.status_code == 200
    body = queued.json()
    assert (
        body["success"] == 1 and body["queued_contacts"] == 3 and body["message"] == "Contact import queued"
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", body["batchId"])

    early = api.get("import/info", params={"batchId": body["batchId"]}).json()
    assert early["status"] is False
    assert api.get("contacts", params={"listid": list_id, "status": 1}).json()["meta"]["total"] == "0"

    done = wait_completed(api, body["batchId"])
    assert done["status"] == "completed"
    assert done["failure"] == []
    # success lists the contacts the batch created, not the one it updated.
    created = {emulator.account.contact(f"person{i}@example.com").id for i in (0, 2)}  # type: ignore[union-attr]
    assert set(done["success"]) == created and existing["id"] not in done["success"]
    assert emulator.account.list_members(list_id) == {f"person{i}@example.com" for i in range(3)}
    assert emulator.account.field_values("person2@example.com") == {"TIER": "gold"}
    assert emulator.account.contact_tags("person0@example.com") == {"vip", "Synced"}
    assert emulator.account.membership("person0@example.com", list_id).changed_by == by_import(
        body["batchId"]
    )  # type: ignore[union-attr]
    # A tag named in any case is the same tag.
    api.post("import/bulk_import", json={"contacts": people(2, tags=["VIP"])})
    emulator.account.process_imports(force=True)
    assert [t.tag for t in emulator.account.tags.values()] == ["vip", "Synced"]


def test_import_status_waiting_then_completed(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(import_delay=0.6)
    batch = api.post("import/bulk_import", json={"contacts": people(2)}).json()["batchId"]
    assert api.get("import/info", params={"batchId": batch}).json()["status"] is False
    time.sleep(0.35)
    assert api.get("import/info", params={"batchId": batch}).json()["status"] == "waiting"
    time.sleep(0.3)
    assert api.get("import/info", params={"batchId": batch}).json()["status"] == "completed"


def test_import_info_errors(api: Api) -> None:
    missing = api.get("import/info")
    assert missing.status_code == 400
    assert missing.json() == {"success": 0, "message": "'batchId' is a required field."}
    unknown = api.get("import/info", params={"batchId": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404
    assert unknown.json()["message"].startswith("No Result found")


def test_import_never_resubscribes_but_contact_lists_status_1_does(
    api: Api, emulator: EmulatorServer
) -> None:
    account = emulator.account
    list_id = make_list(api)
    contact = {"email": "gone@example.com", "subscribe": [{"listid": list_id}]}
    first = api.post("import/bulk_import", json={"contacts": [contact, *people(1)]}).json()["batchId"]
    wait_completed(api, first)
    assert "gone@example.com" in account.list_members(list_id)

    account.unsubscribe_by_contact("Gone@Example.com", list_id)  # the person clicks "unsubscribe"
    membership = account.membership("gone@example.com", list_id)
    assert membership is not None and membership.status == 2 and membership.changed_by == BY_CONTACT

    again = {**contact, "first_name": "Changed"}
    second = api.post("import/bulk_import", json={"contacts": [again, *people(1, 1)]}).json()["batchId"]
    result = wait_completed(api, second)
    assert result["failure"] == ["gone@example.com"]
    assert account.membership("gone@example.com", list_id).status == 2  # type: ignore[union-attr]
    assert account.contact("gone@example.com").first_name == ""  # type: ignore[union-attr]  # untouched
    assert account.list_members(list_id, status=2) == {"gone@example.com"}

    # The contactLists endpoint does re-subscribe (ActiveCampaign documents this).
    cid = account.contact("gone@example.com").id  # type: ignore[union-attr]
    resp = api.post(
        "contactLists", json={"contactList": {"list": int(list_id), "contact": int(cid), "status": 1}}
    )
    assert resp.status_code == 200
    assert resp.json()["contactList"]["status"] == 1
    assert resp.json()["contactList"]["list"] == list_id
    membership = account.membership("gone@example.com", list_id)
    assert membership is not None and membership.status == 1 and membership.changed_by == BY_CONTACT_LISTS
    assert [h.by for h in membership.history] == [by_import(first), BY_CONTACT, BY_CONTACT_LISTS]


def test_import_unsubscribe_and_exclusions(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    for i in range(3):
        account.subscribe(f"person{i}@example.com", list_id)
    account.exclude("person2@example.com")
    contacts = [
        {"email": "person0@example.com", "unsubscribe": [{"listid": list_id}]},
        {"email": "person2@example.com", "first_name": "Excluded"},
        {"email": "nolist@example.com", "subscribe": [{"listid": 999}]},
    ]
    batch = api.post("import/bulk_import", json={"contacts": contacts}).json()["batchId"]
    result = wait_completed(api, batch)
    assert result["failure"] == ["person2@example.com", "nolist@example.com"]
    assert account.list_members(list_id) == {"person1@example.com", "person2@example.com"}
    assert account.list_members(list_id, status=2) == {"person0@example.com"}
    assert account.contact("nolist@example.com") is None
    assert account.import_batch(batch).failure_reasons["person2@example.com"].startswith("email is on")  # type: ignore[union-attr]


def test_contacts_are_never_deleted_and_emails_match_case_insensitively(
    api: Api, emulator: EmulatorServer
) -> None:
    a = api.post("contact/sync", json={"contact": {"email": "Mixed@Example.COM"}}).json()["contact"]
    batch = api.post("import/bulk_import", json={"contacts": [{"email": "mixed@example.com"}, *people(1)]})
    wait_completed(api, batch.json()["batchId"])
    found = api.get("contacts", params={"email": "MIXED@example.com"}).json()
    assert [c["id"] for c in found["contacts"]] == [a["id"]]
    assert found["meta"]["page_input"]["email"] == "MIXED@example.com"
    assert len(emulator.account.contacts) == 2


# --------------------------------------------------------------------------------------------------
# contacts, pagination, memberships
# --------------------------------------------------------------------------------------------------


def test_contacts_pagination_clamps_limit_and_pages_by_id_greater(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    other = make_list(api, "Other")
    for i in range(130):
        account.subscribe(f"c{i:03d}@example.com", list_id if i % 2 == 0 else other)
    account.unsubscribe_by_contact("c000@example.com", list_id)

    default = api.get("contacts").json()
    assert len(default["contacts"]) == 20 and default["meta"]["total"] == "130"
    assert default["meta"]["page_input"]["limit"] == 20

    clamped = api.get("contacts", params={"limit": 500}).json()
    assert len(clamped["contacts"]) == 100 and clamped["meta"]["page_input"]["limit"] == 100
    assert all(isinstance(c["id"], str) for c in clamped["contacts"])
    assert isinstance(clamped["meta"]["total"], str)

    seen: list[int] = []
    last = 0
    while True:
        params = {"orders[id]": "ASC", "id_greater": last, "limit": 7, "listid": list_id, "status": 1}
        page = api.get("contacts", params=params).json()
        ids = [int(c["id"]) for c in page["contacts"]]
        if not ids:
            break
        assert page["meta"]["page_input"]["id_greater"] == last
        seen += ids
        last = ids[-1]
    expected = sorted(int(account.contact(e).id) for e in account.list_members(list_id))  # type: ignore[union-attr]
    assert seen == expected and len(seen) == 64

    offset_page = api.get("contacts", params={"listid": other, "offset": 60, "limit": 10}).json()
    assert len(offset_page["contacts"]) == 5 and offset_page["meta"]["total"] == "65"
    unsub = api.get("contacts", params={"listid": list_id, "status": 2}).json()
    assert [c["email"] for c in unsub["contacts"]] == ["c000@example.com"]
    any_status = api.get("contacts", params={"listid": list_id, "status": -1}).json()
    assert any_status["meta"]["total"] == "65"
    desc = api.get("contacts", params={"orders[id]": "DESC", "limit": 2}).json()
    assert [c["id"] for c in desc["contacts"]] == ["130", "129"]


def test_contact_sync_creates_then_updates(api: Api, emulator: EmulatorServer) -> None:
    field = api.post("fields", json={"field": {"title": "Customer Group", "type": "text"}}).json()["field"]
    payload = {
        "email": "jane@example.com",
        "firstName": "Jane",
        "fieldValues": [{"field": field["id"], "value": "A"}],
    }
    created = api.post("contact/sync", json={"contact": payload})
    assert created.status_code == 201
    contact = created.json()["contact"]
    assert contact["id"] == "1" and contact["email"] == "jane@example.com"
    assert created.json()["fieldValues"][0]["value"] == "A"

    updated = api.post("contact/sync", json={"contact": {"email": "JANE@example.com", "lastName": "Doe"}})
    assert updated.status_code == 200
    assert updated.json()["contact"]["id"] == "1"
    stored = emulator.account.contact("jane@example.com")
    assert stored is not None and (stored.first_name, stored.last_name) == ("Jane", "Doe")
    assert emulator.account.field_values("jane@example.com") == {"CUSTOMER_GROUP": "A"}


def test_contact_sync_invalid_email_is_422_email_invalid(api: Api) -> None:
    resp = api.post("contact/sync", json={"contact": {"email": "not-an-email"}})
    assert resp.status_code == 422
    assert resp.json() == {
        "errors": [
            {
                "title": "Contact Email Address is not valid.",
                "detail": "",
                "code": "email_invalid",
                "error": "must_be_valid_email_address",
                "source": {"pointer": "/data/attributes/email"},
            }
        ]
    }


def test_contact_lists_shapes_and_errors(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    cid = api.post("contact/sync", json={"contact": {"email": "a@example.com"}}).json()["contact"]["id"]
    resp = api.post("contactLists", json={"contactList": {"list": list_id, "contact": cid, "status": "2"}})
    assert resp.status_code == 200
    lists = api.get(f"contacts/{cid}/contactLists").json()["contactLists"]
    assert len(lists) == 1
    assert {k: lists[0][k] for k in ("contact", "list", "status")} == {
        "contact": cid,
        "list": list_id,
        "status": "2",
    }
    assert {"sdate", "udate", "sourceid", "id"} <= set(lists[0])
    assert api.get("contacts/999/contactLists").status_code == 404
    assert (
        api.post("contactLists", json={"contactList": {"list": 999, "contact": cid, "status": 1}}).status_code
        == 404
    )
    missing = api.post("contactLists", json={"contactList": {"list": list_id, "contact": cid}})
    assert missing.status_code == 422 and missing.json()["errors"][0]["code"] == "field_missing"
    detail = api.get(f"contacts/{cid}").json()
    assert detail["contact"]["email"] == "a@example.com" and len(detail["contactLists"]) == 1


# --------------------------------------------------------------------------------------------------
# lists, groups, fields, tags
# --------------------------------------------------------------------------------------------------


def test_lists_create_validate_filter_and_get(api: Api) -> None:
    missing = api.post("lists", json={"list": {"name": "Only a name"}})
    assert missing.status_code == 422
    errors = missing.json()["errors"]
    assert {e["code"] for e in errors} == {"field_missing"}
    assert {e["source"]["pointer"].rsplit("/", 1)[1] for e in errors} == {
        "stringid",
        "sender_url",
        "sender_reminder",
    }

    first = make_list(api, "Weekly Newsletter", "weekly")
    second = make_list(api, "Newsletter VIP", "vip")
    assert (first, second) == ("1", "2")
    dup = api.post(
        "lists", json={"list": {"name": "X", "stringid": "weekly", "sender_url": "u", "sender_reminder": "r"}}
    )
    assert dup.status_code == 422 and dup.json()["errors"][0]["code"] == "duplicate"

    found = api.get("lists", params={"filters[name]": "newsletter"}).json()
    assert [x["name"] for x in found["lists"]] == ["Weekly Newsletter", "Newsletter VIP"]
    assert found["meta"]["total"] == "2"
    exact = api.get("lists", params={"filters[name][eq]": "newsletter vip"}).json()
    assert [x["id"] for x in exact["lists"]] == ["2"]
    assert api.get("lists/2").json()["list"]["stringid"] == "vip"
    nope = api.get("lists/7")
    assert nope.status_code == 404 and nope.json() == {"message": "No Result found for _List with id 7"}


def test_groups_and_list_groups(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.add_group("Marketing")
    groups = api.get("groups").json()
    assert [(g["id"], g["title"]) for g in groups["groups"]] == [("1", "Admin"), ("2", "Marketing")]
    assert groups["meta"]["total"] == "2"
    list_id = make_list(api)
    resp = api.post("listGroups", json={"listGroup": {"listid": int(list_id), "groupid": 2}})
    assert resp.status_code == 201
    assert resp.json()["listGroup"] == {"listid": list_id, "groupid": "2", "id": "1"}
    assert emulator.account.list_group_ids(list_id) == {"2"}
    assert api.post("listGroups", json={"listGroup": {"listid": 99, "groupid": 1}}).status_code == 404
    unknown_group = api.post("listGroups", json={"listGroup": {"listid": list_id, "groupid": 99}})
    assert unknown_group.status_code == 404 and "message" in unknown_group.json()


def test_fields_and_field_rels(api: Api, emulator: EmulatorServer) -> None:
    resp = api.post("fields", json={"field": {"title": "Another Test Title", "type": "text"}})
    assert resp.status_code == 201
    field = resp.json()["field"]
    assert field["perstag"] == "ANOTHER_TEST_TITLE" and field["id"] == "1"
    tagged = api.post(
        "fields", json={"field": {"title": "LTV", "type": "number", "perstag": "lifetime value"}}
    )
    assert tagged.json()["field"]["perstag"] == "LIFETIME_VALUE"
    dup = api.post("fields", json={"field": {"title": "Another Test Title", "type": "text"}})
    assert dup.status_code == 422
    assert dup.json() == {
        "errors": [
            {
                "title": "There is already a field with this title",
                "detail": "There is already a field named 'Another Test Title' -- choose another name",
                "code": "duplicate",
            }
        ]
    }
    rel = api.post("fieldRels", json={"fieldRel": {"field": field["id"], "relid": 0}})
    assert rel.status_code == 201 and rel.json()["fieldRel"]["relid"] == "0"
    listing = api.get("fields", params={"filters[perstag]": "LIFETIME_VALUE"}).json()
    assert [f["title"] for f in listing["fields"]] == ["LTV"] and listing["meta"]["total"] == "1"
    everything = api.get("fields").json()
    assert everything["meta"]["total"] == "2" and everything["fieldOptions"] == []
    assert [r["field"] for r in everything["fieldRels"]] == ["1"]
    assert api.post("fieldRels", json={"fieldRel": {"field": 42, "relid": 0}}).status_code == 404


def test_tags_and_contact_tags(api: Api, emulator: EmulatorServer) -> None:
    resp = api.post("tags", json={"tag": {"tag": "Audience: VIP", "tagType": "contact", "description": ""}})
    assert resp.status_code == 201 and resp.json()["tag"]["id"] == "1"
    dup = api.post("tags", json={"tag": {"tag": "audience: vip", "tagType": "contact"}})
    assert dup.status_code == 422 and dup.json()["errors"][0]["code"] == "duplicate"
    api.post("tags", json={"tag": {"tag": "Other", "tagType": "contact"}})
    found = api.get("tags", params={"search": "vip"}).json()
    assert [t["tag"] for t in found["tags"]] == ["Audience: VIP"] and found["meta"]["total"] == "1"
    cid = api.post("contact/sync", json={"contact": {"email": "t@example.com"}}).json()["contact"]["id"]
    ct = api.post("contactTags", json={"contactTag": {"contact": cid, "tag": "1"}})
    assert ct.status_code == 201 and ct.json()["contactTag"]["tag"] == "1"
    assert emulator.account.contact_tags("t@example.com") == {"Audience: VIP"}
    assert api.post("contactTags", json={"contactTag": {"contact": "99", "tag": "1"}}).status_code == 404


# --------------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_injected_5xx_is_a_cloudflare_html_page(api: Api, emulator: EmulatorServer, status: int) -> None:
    emulator.fail_next(2, status)
    for _ in range(2):
        resp = api.get("users/me")
        assert resp.status_code == status
        assert resp.headers["content-type"].startswith("text/html")
        assert resp.text.startswith("<!DOCTYPE html>") and str(status) in resp.text
    assert api.get("users/me").status_code == 200
    assert [r.fault for r in emulator.account.requests()] == ["status", "status", None]


def test_503_and_429_bursts_carry_retry_after(api: Api, emulator: EmulatorServer) -> None:
    emulator.fail_next(1, 503, retry_after=3)
    emulator.throttle_next(2, retry_after=0.5)
    busy = api.get("users/me")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "3"
    for _ in range(2):
        throttled = api.get("users/me")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "0.5"
        assert throttled.headers["RateLimit-Remaining"] == "0"
    assert api.get("users/me").status_code == 200


def test_faults_can_target_a_path_prefix_and_method(api: Api, emulator: EmulatorServer) -> None:
    emulator.fail_next(1, 502, path="import/", method="POST")
    assert api.get("import/info", params={"batchId": "x"}).status_code == 404  # GET: not targeted
    assert api.get("users/me").status_code == 200
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 502
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert emulator.faults.pending() == []


def test_dropped_connection_is_a_connection_error_and_nothing_happens(
    api: Api, emulator: EmulatorServer
) -> None:
    emulator.drop_next(path="lists")
    with pytest.raises(requests.ConnectionError):
        make_list(api)
    assert emulator.account.lists == {}
    assert emulator.account.requests()[0].status == 0
    assert make_list(api) == "1"  # the next request (new connection) works


def test_drop_after_processing_applies_the_write(api: Api, emulator: EmulatorServer) -> None:
    emulator.drop_next(path="lists", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        make_list(api, "Lost answer", "lost")
    assert [lst.name for lst in emulator.account.lists.values()] == ["Lost answer"]
    retry = api.post(
        "lists",
        json={"list": {"name": "Lost answer", "stringid": "lost", "sender_url": "u", "sender_reminder": "r"}},
    )
    assert retry.status_code == 422  # the client must look the list up instead of blindly retrying


def test_slow_answer_times_out_a_short_read_timeout(api: Api, emulator: EmulatorServer) -> None:
    emulator.slow_next(1, delay=0.4)
    with pytest.raises(requests.ReadTimeout):
        api.session.get(emulator.api_url + "/users/me", timeout=(2, 0.15))
    emulator.slow_next(1, delay=0.2)
    started = time.monotonic()
    assert api.get("users/me").status_code == 200
    assert time.monotonic() - started >= 0.2
    # The abandoned request is still answered by the server (it processes it after the delay).
    deadline = time.monotonic() + 2
    while emulator.account.requests()[0].status == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.status for r in emulator.account.requests()] == [200, 200]


def test_blocked_account_answers_402(api: Api, emulator: EmulatorServer) -> None:
    emulator.block_account()
    resp = api.get("users/me")
    assert resp.status_code == 402 and "payment" in resp.json()["message"]
    emulator.block_account(False)
    assert api.get("users/me").status_code == 200


def test_injected_faults_do_not_use_rate_window_slots(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=1, rate_window=5)
    emulator.fail_next(3, 503)
    assert [api.get("users/me").status_code for _ in range(4)] == [503, 503, 503, 200]
    assert api.get("users/me").status_code == 429


# --------------------------------------------------------------------------------------------------
# admin API, request log
# --------------------------------------------------------------------------------------------------


def test_admin_api_drives_and_inspects_the_account(api: Api, emulator: EmulatorServer) -> None:
    admin = emulator.url + "/_emulator"
    group = requests.post(admin + "/groups", json={"title": "Marketing"}, timeout=5).json()["group"]
    assert group["id"] == "2"
    list_id = make_list(api)
    requests.post(admin + "/subscribe", json={"email": "a@example.com", "list": list_id}, timeout=5)
    unsub = requests.post(admin + "/unsubscribe", json={"email": "a@example.com", "list": list_id}, timeout=5)
    assert unsub.json()["contactList"]["status"] == "2"
    fault = requests.post(admin + "/faults", json={"kind": "status", "status": 504, "count": 1}, timeout=5)
    assert fault.status_code == 201
    assert requests.post(admin + "/faults", json={"kind": "bogus"}, timeout=5).status_code == 400
    assert api.get("users/me").status_code == 504
    requests.post(admin + "/blocked", json={"blocked": True}, timeout=5)
    assert api.get("users/me").status_code == 402
    requests.post(admin + "/blocked", json={"blocked": False}, timeout=5)
    assert api.get("users/me").status_code == 200
    patched = requests.patch(admin + "/config", json={"import_delay": 0.05}, timeout=5).json()
    assert patched["import_delay"] == 0.05 and "api_key" not in patched

    state = requests.get(admin + "/state", timeout=5).json()
    assert state["summary"]["lists"] == 1 and state["summary"]["memberships"] == {"unsubscribed": 1}
    assert [g["title"] for g in state["groups"]] == ["Admin", "Marketing"]
    assert state["contacts"][0]["lists"][list_id]["status"] == 2
    assert state["contacts"][0]["lists"][list_id]["changed_by"] == BY_CONTACT
    assert state["requests"]["by_endpoint"]["GET users/me"] == 3
    members = requests.get(f"{admin}/lists/{list_id}/members", params={"status": 2}, timeout=5).json()
    assert members == {"emails": ["a@example.com"]}
    log = requests.get(admin + "/requests", timeout=5).json()
    assert [r["status"] for r in log["requests"] if r["endpoint"] == "GET users/me"] == [504, 402, 200]

    assert requests.post(admin + "/reset", timeout=5).json() == {"ok": True}
    state = requests.get(admin + "/state", timeout=5).json()
    assert (
        state["lists"] == []
        and state["contacts"] == []
        and [g["title"] for g in state["groups"]] == ["Admin"]
    )


def test_request_log_counts_and_rates(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    api.get(f"lists/{list_id}")
    api.get("contacts", params={"listid": list_id})
    assert [r.endpoint for r in emulator.account.request_log] == [
        "POST lists",
        "GET lists/{id}",
        "GET contacts",
    ]
    counts = emulator.account.request_counts()
    assert counts == {"POST lists": 1, "GET lists/{id}": 1, "GET contacts": 1}
    records = emulator.account.requests(endpoint="GET contacts")
    assert records[0].query.startswith("listid=") and records[0].status == 200
    assert emulator.account.peak_rate(window=10) == 3


def test_a_thousand_contacts_import_and_read_back_quickly(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(import_delay=0)
    list_id = make_list(api)
    started = time.monotonic()
    for start in range(0, 1000, 250):
        batch = [{**c, "subscribe": [{"listid": list_id}]} for c in people(250, start)]
        assert api.post("import/bulk_import", json={"contacts": batch}).status_code == 200
    total, last = 0, 0
    while True:
        page = api.get(
            "contacts", params={"listid": list_id, "status": 1, "id_greater": last, "limit": 100}
        ).json()
        if not page["contacts"]:
            break
        total += len(page["contacts"])
        last = int(page["contacts"][-1]["id"])
    assert total == 1000
    assert time.monotonic() - started < 3


# --------------------------------------------------------------------------------------------------
# server lifecycle and CLI
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(host=host)


def test_server_context_manager_starts_and_stops() -> None:
    account = Account()
    with EmulatorServer(account=account) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.state is account
        resp = requests.get(server.api_url + "/users/me", headers={"Api-Token": server.api_key}, timeout=5)
        assert resp.status_code == 200
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/api/3/users/me", timeout=1)


def test_cli_serves_until_sigterm() -> None:
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_activecampaign.emulator",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--requests-per-second",
        "50",
        "--user",
        "demo",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        resp = requests.get(url + "/api/3/users/me", headers={"Api-Token": "cli-key"}, timeout=5)
        assert resp.status_code == 200 and resp.json()["user"]["username"] == "demo"
        assert requests.get(url + "/api/3/users/me", timeout=5).status_code == 403
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_a_public_bind(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_membership_indexes_agree_with_a_brute_force_scan() -> None:
    """The per-(list, status) sorted indexes behind GET contacts stay right through status changes."""
    rng = random.Random(7)
    account = Account(EmulatorConfig(import_delay=0))
    lists = [account.add_list(f"L{i}").id for i in range(3)]
    emails = [f"u{i}@example.com" for i in range(60)]
    for _ in range(400):
        email, list_id = rng.choice(emails), rng.choice(lists)
        if rng.random() < 0.6 or account.contact(email) is None:
            account.subscribe(email, list_id)
        else:
            account.unsubscribe_by_contact(email, list_id)

    def brute(list_id: str, status: int) -> list[int]:
        return sorted(
            int(c.id)
            for c in account.iter_contacts()
            if list_id in c.memberships and status in (-1, c.memberships[list_id].status)
        )

    for list_id in lists:
        for status in (-1, 1, 2):
            expected = brute(list_id, status)
            for id_greater in (None, 0, 10, 45):
                tail = [i for i in expected if id_greater is None or i > id_greater]
                for offset, limit, descending in ((0, 100, False), (3, 5, False), (0, 7, True), (4, 6, True)):
                    page, total = account.query_contacts(
                        list_id=list_id,
                        status=status,
                        id_greater=id_greater,
                        offset=offset,
                        limit=limit,
                        descending=descending,
                    )
                    ordered = tail[::-1] if descending else tail
                    assert total == len(tail)
                    assert [int(c.id) for c in page] == ordered[offset : offset + limit]
            assert account.list_members(list_id, status) == {
                account.contact_by_id(i).email
                for i in expected  # type: ignore[union-attr]
            }


def test_drops_work_on_a_minimal_uvicorn_install() -> None:
    """Plain ``pip install uvicorn`` means h11 on asyncio (no httptools, uvloop): drops work there too."""
    with EmulatorServer(api_key=API_KEY, uvicorn_options={"http": "h11", "loop": "asyncio"}) as server:
        client = Api(server.api_url)
        server.drop_next()
        server.drop_next(after_processing=True, path="lists")
        with pytest.raises(requests.ConnectionError):
            client.get("users/me")
        with pytest.raises(requests.ConnectionError):
            make_list(client)
        assert list(server.account.lists) == ["1"]
        assert client.get("users/me").status_code == 200
        client.session.close()
