"""The hook's read-back and account methods: exact request shapes against requests-mock.

Shapes follow the API v3 reference (research/spec/activecampaign-v3.openapi.json): contacts paged by id
with the memberships side-loaded, counts from ``meta.total``, exclusions, group limits, field options.
"""

# ruff: noqa: F811  (pytest fixtures imported from hook_fixtures are re-bound as arguments)

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignAuthError,
    ActiveCampaignUnexpectedAnswerError,
)
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from tests.unit.hook_fixtures import (  # noqa: F401  (pytest fixtures)
    BASE,
    FakeTime,
    ac_conn,
    fake_time,
    hook,
    make_hook,
)


def membership(contact: int, list_id: int, status: int, **extra: Any) -> dict[str, Any]:
    return {"contact": str(contact), "list": str(list_id), "status": str(status), "id": f"{contact}{list_id}",
            "sdate": "2026-11-01T10:00:00-06:00", "udate": "2026-11-02T10:00:00-06:00", **extra}


def side_loaded_list(contacts: list[int], records: list[dict[str, Any]]) -> Any:
    """GET contacts?listid=&include=contactLists as ActiveCampaign answers it: the contacts by id, and the
    memberships of those contacts (of every list) in a top-level ``contactLists``."""
    def respond(request: Any, context: Any) -> dict[str, Any]:
        after = int(request.qs.get("id_greater", ["0"])[0])
        limit = int(request.qs["limit"][0])
        page = [c for c in contacts if c > after][:limit]
        remaining = len([c for c in contacts if c > after])
        body: dict[str, Any] = {
            "contacts": [{"id": str(c), "email": f"u{c}@example.com", "contactLists": [
                r["id"] for r in records if r["contact"] == str(c)]} for c in page],
            "meta": {"total": str(remaining)},
        }
        if "include" in request.qs:
            body["contactLists"] = [r for r in records if int(r["contact"]) in page]
        return body
    return respond


# ---------------------------------------------------------------------------------------------------
# Reading a list back with its memberships
# ---------------------------------------------------------------------------------------------------

def test_iter_list_memberships_pairs_each_contact_with_its_membership_of_this_list(
        hook: ActiveCampaignHook, requests_mock: Any) -> None:
    contacts = list(range(1, 151))
    records = []
    for c in contacts:
        records.append(membership(c, 99, 1))  # another list, listed first: must not be paired
        if c != 42:  # contact 42's record for list 7 is missing from the answer
            records.append(membership(c, 7, 2 if c % 10 == 0 else 1))
    requests_mock.get(f"{BASE}/contacts", json=side_loaded_list(contacts, records))

    pairs = list(hook.iter_list_memberships(7))

    assert [contact["id"] for contact, _ in pairs] == [str(c) for c in contacts]
    by_id = {contact["id"]: record for contact, record in pairs}
    assert by_id["42"] is None
    assert by_id["10"] is not None and by_id["10"]["list"] == "7" and by_id["10"]["status"] == "2"
    assert all(record is None or record["list"] == "7" for record in by_id.values())
    assert sum(1 for r in by_id.values() if r and r["status"] == "2") == 15
    history = requests_mock.request_history
    assert len(history) == 2
    for request in history:
        assert request.qs["listid"] == ["7"]
        assert request.qs["include"] == ["contactlists"]  # requests-mock lower-cases query values
        assert request.qs["orders[id]"] == ["asc"]
        assert request.qs["limit"] == ["100"]
        assert "status" not in request.qs and "offset" not in request.qs
    assert [r.qs.get("id_greater") for r in history] == [None, ["100"]]


def test_iter_list_memberships_with_a_status_filter(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    records = [membership(5, 7, 2, unsubreason="too many emails")]
    requests_mock.get(f"{BASE}/contacts", json=side_loaded_list([5], records))
    [(contact, record)] = list(hook.iter_list_memberships("7", status=2, page_size=50))
    assert contact["email"] == "u5@example.com"
    assert record == records[0]
    assert requests_mock.last_request.qs["status"] == ["2"]
    assert requests_mock.last_request.qs["limit"] == ["50"]


def test_iter_list_memberships_reads_records_embedded_in_the_contact(hook: ActiveCampaignHook,
                                                                    requests_mock: Any) -> None:
    embedded = membership(3, 7, 1)
    requests_mock.get(f"{BASE}/contacts", json={
        "contacts": [{"id": "3", "email": "u3@example.com", "contactLists": [membership(3, 8, 2), embedded]}],
        "meta": {"total": "1"}})
    assert list(hook.iter_list_memberships(7)) == [
        ({"id": "3", "email": "u3@example.com", "contactLists": [membership(3, 8, 2), embedded]}, embedded)]


def test_iter_list_memberships_guards_against_an_ignored_cursor(hook: ActiveCampaignHook,
                                                                requests_mock: Any) -> None:
    page = {"contacts": [{"id": str(i)} for i in range(1, 101)], "contactLists": [], "meta": {"total": "900"}}
    requests_mock.get(f"{BASE}/contacts", json=page)
    with pytest.raises(ActiveCampaignUnexpectedAnswerError, match="did not advance"):
        list(hook.iter_list_memberships(7))


# ---------------------------------------------------------------------------------------------------
# Counting in one request
# ---------------------------------------------------------------------------------------------------

def test_count_list_contacts_is_one_request_reading_meta_total(hook: ActiveCampaignHook,
                                                               requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts", json={
        "contacts": [{"id": "17"}], "meta": {"total": "24750", "page_input": {"listid": 7, "status": 1}}})
    assert hook.count_list_contacts("7", 1) == 24750
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.qs == {"listid": ["7"], "status": ["1"], "limit": ["1"]}
    assert hook.request_counts["GET contacts"] == 1


def test_count_list_contacts_of_an_empty_status(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts", json={"contacts": [], "meta": {"total": 0}})
    assert hook.count_list_contacts(7, 2) == 0
    assert requests_mock.last_request.qs["status"] == ["2"]


@pytest.mark.parametrize("meta", [
    {},  # no total
    {"total": "many"},
    {"total": "300", "page_input": {"listid": 0}},  # the list filter was ignored: the whole account
])
def test_count_list_contacts_refuses_an_answer_it_cannot_trust(hook: ActiveCampaignHook, requests_mock: Any,
                                                               meta: dict[str, Any]) -> None:
    requests_mock.get(f"{BASE}/contacts", json={"contacts": [], "meta": meta})
    with pytest.raises(ActiveCampaignUnexpectedAnswerError, match="usable count"):
        hook.count_list_contacts(7, 1)


# ---------------------------------------------------------------------------------------------------
# One list, one membership
# ---------------------------------------------------------------------------------------------------

def test_get_list(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists/7", json={"list": {"id": "7", "name": "VIPs", "stringid": "vips"}})
    assert hook.get_list(7) == {"id": "7", "name": "VIPs", "stringid": "vips"}
    assert requests_mock.last_request.method == "GET"


@pytest.mark.parametrize(("status", "body"), [
    (404, {"message": "No Result found for _List with id 7"}),
    (403, {"message": "No Result found for _List with id 7"}),  # the docs' shape for a missing list
])
def test_get_list_of_a_missing_list_is_none(hook: ActiveCampaignHook, requests_mock: Any, status: int,
                                            body: dict[str, Any]) -> None:
    requests_mock.get(f"{BASE}/lists/7", status_code=status, json=body)
    assert hook.get_list("7") is None
    assert requests_mock.call_count == 1  # not retried


def test_get_list_with_a_rejected_key_raises(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/lists/7", status_code=403, json={"message": "Forbidden"})
    with pytest.raises(ActiveCampaignAuthError):
        hook.get_list(7)


def test_delete_list(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.delete(f"{BASE}/lists/7", json={})
    hook.delete_list("7")
    assert requests_mock.last_request.method == "DELETE"
    assert hook.request_counts["DELETE lists/{id}"] == 1


def test_get_contact_membership_picks_this_list(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    mine = membership(12, 7, 2, unsubreason="", campaign=None)
    requests_mock.get(f"{BASE}/contacts/12/contactLists",
                      json={"contactLists": [membership(12, 70, 1), mine, membership(12, 77, 1)]})
    assert hook.get_contact_membership("12", 7) == mine
    assert hook.get_contact_membership(12, "8") is None


def test_get_contact_membership_of_a_deleted_contact_is_none(hook: ActiveCampaignHook,
                                                             requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/contacts/12/contactLists", status_code=404,
                      json={"errors": [{"status": 404, "title": "Not Found", "detail": "Contact not found"}]})
    assert hook.get_contact_membership(12, 7) is None


# ---------------------------------------------------------------------------------------------------
# Exclusions, group limits, field options
# ---------------------------------------------------------------------------------------------------

def test_iter_exclusions_pages(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    entries = [{"id": str(i), "matchPhrase": f"x{i}@example.com", "matchType": "exact", "lists": []}
               for i in range(1, 131)]
    entries[0].update(matchPhrase="@competitor.com", matchType="end")

    def respond(request: Any, context: Any) -> dict[str, Any]:
        offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
        return {"exclusions": entries[offset:offset + limit], "meta": {"total": len(entries)}}

    requests_mock.get(f"{BASE}/lists/exclusions", json=respond)
    assert list(hook.iter_exclusions()) == entries
    assert [(r.qs["offset"], r.qs["limit"]) for r in requests_mock.request_history] == [
        (["0"], ["100"]), (["100"], ["100"])]


def test_get_group_limits(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    limits = [{"id": "1", "groupid": "1", "limitContact": "0", "limitList": "0"},
              {"id": "2", "groupid": "3", "limitContact": "2500", "limitList": "10"}]
    requests_mock.get(f"{BASE}/groupLimits", json={"groupLimits": limits, "meta": {"total": "2"}})
    assert hook.get_group_limits() == limits
    assert requests_mock.call_count == 1


def test_get_field_options(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    options = [{"id": "1", "field": "62", "value": "Gold", "label": "Gold"},
               {"id": "2", "field": "62", "value": "Silver", "label": "Silver"}]
    requests_mock.get(f"{BASE}/fields/62", json={
        "field": {"id": "62", "type": "dropdown", "perstag": "TIER", "options": ["1", "2"]},
        "fieldOptions": options, "fieldRels": []})
    assert hook.get_field_options("62") == options


def test_create_field_options_body(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    def respond(request: Any, context: Any) -> dict[str, Any]:
        context.status_code = 201
        return {"fieldOptions": [{**o, "field": str(o["field"]), "id": str(i)}
                                 for i, o in enumerate(request.json()["fieldOptions"], start=1)]}

    requests_mock.post(f"{BASE}/fieldOption/bulk", json=respond)
    created = hook.create_field_options("62", ["Gold", "Zoë's tier"], first_order=1)
    assert json.loads(requests_mock.last_request.body) == {"fieldOptions": [
        {"field": 62, "value": "Gold", "label": "Gold", "orderid": 1, "isdefault": False},
        {"field": 62, "value": "Zoë's tier", "label": "Zoë's tier", "orderid": 2, "isdefault": False}]}
    assert [o["id"] for o in created] == ["1", "2"]
    assert hook.create_field_options("62", []) == []
    assert requests_mock.call_count == 1  # no request for no options


def test_create_custom_field_with_options(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.post(f"{BASE}/fields", status_code=201,
                       json={"field": {"id": "63", "title": "Tier", "perstag": "TIER", "type": "listbox"}})
    requests_mock.post(f"{BASE}/fieldRels", status_code=201, json={"fieldRel": {"id": "9"}})
    requests_mock.post(f"{BASE}/fieldOption/bulk", status_code=201, json={"fieldOptions": []})
    field = hook.create_custom_field("Tier", perstag="TIER", field_type="listbox", options=("Gold", "Silver"))
    assert field["id"] == "63"
    calls = [(r.method, r.path.removeprefix("/api/3/"), r.json()) for r in requests_mock.request_history]
    assert calls == [
        ("POST", "fields", {"field": {"type": "listbox", "title": "Tier", "perstag": "TIER", "visible": 1}}),
        ("POST", "fieldrels", {"fieldRel": {"field": 63, "relid": 0}}),
        ("POST", "fieldoption/bulk", {"fieldOptions": [
            {"field": 63, "value": "Gold", "label": "Gold", "orderid": 1, "isdefault": False},
            {"field": 63, "value": "Silver", "label": "Silver", "orderid": 2, "isdefault": False}]}),
    ]


def test_new_options_follow_the_existing_ones(hook: ActiveCampaignHook, requests_mock: Any) -> None:
    requests_mock.get(f"{BASE}/fields/62", json={"fieldOptions": [
        {"id": "1", "field": "62", "value": "Gold", "orderid": 1}, {"id": "2", "field": "62", "value": "Silver",
                                                                   "orderid": "2"}]})
    requests_mock.post(f"{BASE}/fieldOption/bulk", status_code=201, json={"fieldOptions": []})
    hook.create_field_options(62, ["Bronze"])
    assert requests_mock.last_request.json()["fieldOptions"] == [
        {"field": 62, "value": "Bronze", "label": "Bronze", "orderid": 3, "isdefault": False}]
