"""A list's life in the emulator, over real HTTP: membership records with dates and reasons, the
events people, users and automations cause outside the API, and who made each change.

These are what the lifecycle work relies on (CONTRACTS.md, "Emulator behaviour the product relies
on"); each event is driven both through ``emulator.account`` and through the ``/_emulator`` admin API.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from airflow_provider_activecampaign.emulator import (
    BY_ADMIN,
    BY_CONTACT,
    BY_CONTACT_LISTS,
    BY_FORM,
    EmulatorServer,
    by_automation,
    by_import,
)
from tests.emulator.client import Api, make_list, wait_completed


def admin(emulator: EmulatorServer, event: str, **body: Any) -> requests.Response:
    return requests.post(f"{emulator.url}/_emulator/{event}", json=body, timeout=5)


def admin_membership(emulator: EmulatorServer, email: str, list_id: str) -> dict[str, Any]:
    resp = requests.get(f"{emulator.url}/_emulator/membership", params={"email": email, "list_id": list_id}, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.json()["contactList"]


def import_contacts(api: Api, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    resp = api.post("import/bulk_import", json={"contacts": contacts})
    assert resp.status_code == 200, resp.text
    batch_id = resp.json()["batchId"]
    return {"batchId": batch_id, **wait_completed(api, batch_id)}


def record_of(api: Api, email: str, list_id: str) -> dict[str, Any]:
    """The contact's membership of ``list_id`` as GET contacts/{id}/contactLists answers it."""
    found = api.get("contacts", params={"email": email}).json()["contacts"]
    assert len(found) == 1, found
    records = api.get(f"contacts/{found[0]['id']}/contactLists").json()["contactLists"]
    return next(r for r in records if r["list"] == list_id)


def count(api: Api, list_id: str, status: int) -> int:
    body = api.get("contacts", params={"listid": list_id, "status": status, "limit": 1}).json()
    assert len(body["contacts"]) <= 1
    return int(body["meta"]["total"])


# --------------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------------


def test_membership_record_carries_dates_reason_campaign_and_who_changed_it(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    first = import_contacts(api, [{"email": "ann@example.com", "subscribe": [{"listid": list_id}]}])
    subscribed = record_of(api, "ann@example.com", list_id)
    assert subscribed["status"] == "1"
    assert subscribed["sdate"] == subscribed["udate"] and subscribed["sdate"][:4].isdigit()
    assert subscribed["unsubreason"] == "" and subscribed["campaign"] is None
    assert subscribed["unsubscribeAutomation"] is None and subscribed["automation"] is None
    assert {"message", "sourceid", "created_timestamp", "updated_timestamp"} <= set(subscribed)

    time.sleep(1.05)  # udate has ActiveCampaign's one-second resolution
    emulator.account.unsubscribe_by_contact(
        "ann@example.com", list_id, reason="Too many emails", campaign_id=7, message_id=9
    )
    gone = record_of(api, "ann@example.com", list_id)
    assert gone["status"] == "2"
    assert gone["udate"] > gone["sdate"] == subscribed["sdate"]
    assert (gone["unsubreason"], gone["campaign"], gone["message"]) == ("Too many emails", "7", "9")

    history = admin_membership(emulator, "ann@example.com", list_id)
    assert history["changed_by"] == BY_CONTACT
    assert [(h["status"], h["by"]) for h in history["history"]] == [
        (1, by_import(first["batchId"])),
        (2, BY_CONTACT),
    ]
    assert history["history"][1]["unsubreason"] == "Too many emails"


def test_counts_per_status_are_exact_in_one_request_each(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    other = make_list(api, "Other")
    for i in range(7):
        account.subscribe(f"a{i}@example.com", list_id)
    account.subscribe("elsewhere@example.com", other)
    for i in range(3):
        account.unsubscribe_by_contact(f"a{i}@example.com", list_id)
    account.bounce("a3@example.com", list_id)
    account.signup_by_form("pending@example.com", list_id, confirmed=False)
    emulator.account.clear_requests()
    assert [count(api, list_id, s) for s in (0, 1, 2, 3)] == [1, 3, 3, 1]
    assert count(api, list_id, -1) == 8 and count(api, other, 1) == 1
    assert emulator.account.request_counts() == {"GET contacts": 6}


def test_include_contact_lists_side_loads_memberships_at_the_top_level(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    other = make_list(api, "Other")
    for i in range(3):
        account.subscribe(f"m{i}@example.com", list_id)
    account.subscribe("m0@example.com", other)
    account.unsubscribe_by_admin("m1@example.com", list_id)
    body = api.get(
        "contacts", params={"listid": list_id, "include": "contactLists", "orders[id]": "ASC", "limit": 2}
    ).json()
    assert [c["email"] for c in body["contacts"]] == ["m0@example.com", "m1@example.com"]
    side = {m["id"]: m for m in body["contactLists"]}
    assert sorted((m["contact"], m["list"], m["status"]) for m in side.values()) == [
        ("1", list_id, "1"),
        ("1", other, "1"),
        ("2", list_id, "2"),
    ]
    for contact in body["contacts"]:
        assert all(side[mid]["contact"] == contact["id"] for mid in contact["contactLists"])
    assert body["meta"]["total"] == "3"
    plain = api.get("contacts", params={"listid": list_id}).json()
    assert "contactLists" not in plain and "contactLists" not in plain["contacts"][0]


# --------------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------------


def test_form_signup_re_subscribes_after_the_sync_removed_them_then_own_unsubscribe_sticks(
    api: Api, emulator: EmulatorServer
) -> None:
    """Issue 8's consent story: removed by the sync, back through a form, then gone by their own hand."""
    list_id = make_list(api)
    joined = import_contacts(api, [{"email": "cy@example.com", "subscribe": [{"listid": list_id}]}])
    removed = import_contacts(api, [{"email": "cy@example.com", "unsubscribe": [{"listid": list_id}]}])
    assert admin(emulator, "signup_by_form", email="cy@example.com", list_id=list_id).status_code == 200
    assert record_of(api, "cy@example.com", list_id)["status"] == "1"
    resp = admin(emulator, "unsubscribe_by_contact", email="cy@example.com", list_id=list_id, reason="no")
    assert resp.json()["contactList"]["unsubreason"] == "no"
    refused = import_contacts(api, [{"email": "cy@example.com", "subscribe": [{"listid": list_id}]}])
    assert refused["failure"] == ["cy@example.com"]
    history = admin_membership(emulator, "cy@example.com", list_id)
    assert [(h["status"], h["by"]) for h in history["history"]] == [
        (1, by_import(joined["batchId"])),
        (2, by_import(removed["batchId"])),
        (1, BY_FORM),
        (2, BY_CONTACT),
    ]
    assert history["status"] == "2" and history["sourceid"] == "1"


def test_unsubscribes_by_admin_and_by_automation_say_who(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    for email in ("ad@example.com", "au@example.com"):
        admin(emulator, "add_by_hand", email=email, list_id=list_id)
    assert emulator.account.list_members(list_id) == {"ad@example.com", "au@example.com"}
    assert admin_membership(emulator, "ad@example.com", list_id)["changed_by"] == BY_ADMIN

    assert admin(emulator, "unsubscribe_by_admin", email="ad@example.com", list_id=list_id).status_code == 200
    resp = admin(emulator, "unsubscribe_by_automation", email="au@example.com", list_id=list_id, automation_id=12)
    assert resp.status_code == 200
    by_hand = record_of(api, "ad@example.com", list_id)
    by_flow = record_of(api, "au@example.com", list_id)
    assert by_hand["status"] == by_flow["status"] == "2"
    assert by_hand["unsubscribeAutomation"] is None and by_flow["unsubscribeAutomation"] == "12"
    assert admin_membership(emulator, "ad@example.com", list_id)["changed_by"] == BY_ADMIN
    assert admin_membership(emulator, "au@example.com", list_id)["changed_by"] == by_automation(12)


def test_admin_events_refuse_unknown_names_arguments_and_contacts(emulator: EmulatorServer, api: Api) -> None:
    list_id = make_list(api)
    assert admin(emulator, "resubscribe_everyone").status_code == 404
    assert admin(emulator, "add_by_hand", email="x@example.com", list_id=list_id, status=1).status_code == 400
    assert admin(emulator, "unsubscribe_by_admin", email="nobody@example.com", list_id=list_id).status_code == 404
    assert admin(emulator, "add_by_hand", email="x@example.com", list_id="999").status_code == 404


def test_contact_lists_status_1_re_subscribes_anyone_and_is_recorded_with_sourceid_4(
    api: Api, emulator: EmulatorServer
) -> None:
    account = emulator.account
    list_id = make_list(api)
    account.subscribe("dee@example.com", list_id)
    account.unsubscribe_by_contact("dee@example.com", list_id, reason="bye")
    cid = account.contact("dee@example.com").id  # type: ignore[union-attr]
    resp = api.post("contactLists", json={"contactList": {"list": list_id, "contact": cid, "status": 1}})
    assert resp.status_code == 200
    record = resp.json()["contactList"]
    assert record["status"] == 1 and record["sourceid"] == "4" and record["unsubreason"] == ""
    history = admin_membership(emulator, "dee@example.com", list_id)
    assert [h["by"] for h in history["history"]][-2:] == [BY_CONTACT, BY_CONTACT_LISTS]
    assert history["history"][-2]["unsubreason"] == "bye"  # who made it status 2, and why, is kept


def test_deleted_list_is_gone_with_its_memberships_and_contacts_stay(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    keep = make_list(api, "Keep")
    for i in range(3):
        account.subscribe(f"d{i}@example.com", list_id)
    account.subscribe("d0@example.com", keep)
    api.post("listGroups", json={"listGroup": {"listid": list_id, "groupid": 1}})

    assert api.session.delete(f"{api.base}/lists/{list_id}", timeout=5).json() == {}
    assert api.get(f"lists/{list_id}").status_code == 404
    assert count(api, list_id, 1) == 0 and count(api, keep, 1) == 1
    assert len(account.contacts) == 3 and account.list_group_ids(list_id) == set()
    assert [r["list"] for r in api.get("contacts/1/contactLists").json()["contactLists"]] == [keep]
    again = api.session.delete(f"{api.base}/lists/{list_id}", timeout=5)
    assert again.status_code == 403 and again.json()["message"] == f"No Result found for _List with id {list_id}"
    # Recreated under the same name: a new id, empty.
    new_id = make_list(api, "Audience", stringid="audience-2")
    assert new_id != list_id and count(api, new_id, 1) == 0
    assert admin(emulator, "delete_list", list_id=keep).status_code == 200
    assert account.lists.keys() == {new_id}


def test_deleted_contact_is_gone_everywhere(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    list_id = make_list(api)
    for i in range(4):
        account.subscribe(f"e{i}@example.com", list_id)
    account.unsubscribe_by_contact("e3@example.com", list_id)
    cid = account.contact("e1@example.com").id  # type: ignore[union-attr]
    assert api.session.delete(f"{api.base}/contacts/{cid}", timeout=5).json() == {}
    missing = api.session.delete(f"{api.base}/contacts/{cid}", timeout=5)
    assert missing.status_code == 404 and missing.json()["message"] == f"No result found for contact with id {cid}"
    assert admin(emulator, "delete_contact", email="E3@example.com").status_code == 200
    assert api.get(f"contacts/{cid}").status_code == 404
    assert count(api, list_id, 1) == 2 and count(api, list_id, 2) == 0
    assert api.get("contacts", params={"email": "e1@example.com"}).json()["contacts"] == []
    ids = [c["id"] for c in api.get("contacts", params={"orders[id]": "ASC"}).json()["contacts"]]
    assert ids == ["1", "3"]
    # Imported again, the address is a new contact with a new id and no memberships.
    import_contacts(api, [{"email": "e1@example.com"}, {"email": "e9@example.com"}])
    assert int(account.contact("e1@example.com").id) > 4  # type: ignore[union-attr]
    assert account.membership("e1@example.com", list_id) is None


def test_exclusion_refuses_the_import_until_lifted(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    joiners = [{"email": f"x{i}@example.com", "subscribe": [{"listid": list_id}]} for i in range(3)]
    assert admin(emulator, "exclude", email="X1@example.com").status_code == 200
    first = import_contacts(api, joiners)
    assert first["failure"] == ["x1@example.com"]
    assert emulator.account.contact("x1@example.com") is None
    assert admin(emulator, "lift_exclusion", email="x1@example.com").json() == {"ok": True, "count": 1}
    second = import_contacts(api, joiners)
    assert second["failure"] == []
    assert emulator.account.list_members(list_id) == {"x0@example.com", "x1@example.com", "x2@example.com"}


@pytest.mark.parametrize("status_maker", ["unsubscribe_by_contact", "unsubscribe_by_admin", "bounce"])
def test_importer_never_re_subscribes_an_unsubscribed_or_bounced_contact(
    api: Api, emulator: EmulatorServer, status_maker: str
) -> None:
    account = emulator.account
    list_id = make_list(api)
    account.subscribe("f@example.com", list_id)
    getattr(account, status_maker)("f@example.com", list_id)
    result = import_contacts(api, [{"email": "f@example.com", "first_name": "New", "subscribe": [{"listid": list_id}]}])
    assert result["failure"] == ["f@example.com"]
    assert account.membership("f@example.com", list_id).status in (2, 3)  # type: ignore[union-attr]
    assert account.contact("f@example.com").first_name == ""  # type: ignore[union-attr]


def test_default_user_group_is_admin(api: Api) -> None:
    assert [g["title"] for g in api.get("groups").json()["groups"]] == ["Admin"]


def test_a_contact_without_an_email_can_be_on_a_list(api: Api, emulator: EmulatorServer) -> None:
    """Accounts hold contacts without an email (e.g. SMS only); a list read must cope with them."""
    list_id = make_list(api)
    emulator.account.subscribe("has@example.com", list_id)
    assert admin(emulator, "add_by_hand", email="", list_id=list_id).status_code == 200
    body = api.get("contacts", params={"listid": list_id, "status": 1, "include": "contactLists"}).json()
    assert sorted((c["email"], c["email_empty"]) for c in body["contacts"]) == [
        ("", True),
        ("has@example.com", False),
    ]
    assert len(body["contactLists"]) == 2 and body["meta"]["total"] == "2"
