"""The emulator's resources over real HTTP: contacts and pagination, memberships, lists, user groups,
custom fields and tags."""

from __future__ import annotations

import os
import random

from airflow_provider_activecampaign.emulator import (
    Account,
    EmulatorConfig,
    EmulatorServer,
)
from tests.emulator.client import Api, make_list

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    assert api.post("contactLists", json={"contactList": {"list": 999, "contact": cid, "status": 1}}).status_code == 404
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
    tagged = api.post("fields", json={"field": {"title": "LTV", "type": "number", "perstag": "lifetime value"}})
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
