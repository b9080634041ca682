"""The emulator's bulk importer over real HTTP: limits, whole-batch validation, asynchronous processing
and what an import may not do (re-subscribe)."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from airflow_provider_activecampaign.emulator import (
    BY_CONTACT,
    BY_CONTACT_LISTS,
    EmulatorServer,
    by_import,
    email_format_problem,
)
from tests.emulator.client import Api, make_list, people, wait_completed

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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


def test_one_bad_email_rejects_the_whole_batch_with_0_based_indexes(api: Api, emulator: EmulatorServer) -> None:
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
    queued = api.post("import/bulk_import", json={"contacts": contacts, "callback": {"url": "x", "requestType": "GET"}})
    assert queued.status_code == 200
    body = queued.json()
    assert body["success"] == 1 and body["queued_contacts"] == 3 and body["message"] == "Contact import queued"
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
    assert emulator.account.membership("person0@example.com", list_id).changed_by == by_import(body["batchId"])  # type: ignore[union-attr]
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


def test_import_never_resubscribes_but_contact_lists_status_1_does(api: Api, emulator: EmulatorServer) -> None:
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
    resp = api.post("contactLists", json={"contactList": {"list": int(list_id), "contact": int(cid), "status": 1}})
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


def test_contacts_are_never_deleted_and_emails_match_case_insensitively(api: Api, emulator: EmulatorServer) -> None:
    a = api.post("contact/sync", json={"contact": {"email": "Mixed@Example.COM"}}).json()["contact"]
    batch = api.post("import/bulk_import", json={"contacts": [{"email": "mixed@example.com"}, *people(1)]})
    wait_completed(api, batch.json()["batchId"])
    found = api.get("contacts", params={"email": "MIXED@example.com"}).json()
    assert [c["id"] for c in found["contacts"]] == [a["id"]]
    assert found["meta"]["page_input"]["email"] == "MIXED@example.com"
    assert len(emulator.account.contacts) == 2
