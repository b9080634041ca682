"""Account rules a send must respect, over real HTTP: the exclusion list's patterns, user groups'
contact limits, and custom field types with their options and value formats."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from airflow_provider_activecampaign.emulator import EmulatorServer
from tests.emulator.client import Api, make_list, wait_completed


def import_contacts(api: Api, contacts: list[dict[str, Any]]) -> dict[str, Any]:
    resp = api.post("import/bulk_import", json={"contacts": contacts})
    assert resp.status_code == 200, resp.text
    return wait_completed(api, resp.json()["batchId"])


def joiners(list_id: str, *emails: str) -> list[dict[str, Any]]:
    return [{"email": e, "subscribe": [{"listid": list_id}]} for e in emails]


def add_exclusion(api: Api, phrase: str, match_type: str, **extra: Any) -> requests.Response:
    return api.post("lists/exclusions", json={"exclusion": {"matchPhrase": phrase, "matchType": match_type, **extra}})


# --------------------------------------------------------------------------------------------------
# exclusion list
# --------------------------------------------------------------------------------------------------


def test_exclusion_patterns_exact_begin_and_end_refuse_matching_imports(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    created = [
        add_exclusion(api, "Boss@Example.com", "exact"),
        add_exclusion(api, "test", "begin"),
        add_exclusion(api, "@competitor.io", "end"),
    ]
    assert [r.status_code for r in created] == [201, 201, 201]
    listed = api.get("lists/exclusions").json()
    assert listed["meta"]["total"] == 3
    assert [(x["matchPhrase"], x["matchType"]) for x in listed["exclusions"]] == [
        ("Boss@Example.com", "exact"),
        ("test", "begin"),
        ("@competitor.io", "end"),
    ]
    emails = [
        "boss@example.com",  # exact, case-insensitive
        "bossy@example.com",
        "tester@example.com",  # begins with "test"
        "atest@example.com",
        "jo@competitor.io",  # ends with "@competitor.io"
        "jo@competitor.io.example.com",
    ]
    result = import_contacts(api, joiners(list_id, *emails))
    assert result["failure"] == ["boss@example.com", "tester@example.com", "jo@competitor.io"]
    assert emulator.account.list_members(list_id) == {
        "bossy@example.com",
        "atest@example.com",
        "jo@competitor.io.example.com",
    }

    begin_id = created[1].json()["exclusion"]["id"]
    assert api.get(f"lists/exclusions/{begin_id}").json()["matchPhrase"] == "test"
    assert api.session.delete(f"{api.base}/lists/exclusions/{begin_id}", timeout=5).json() == {}
    missing = api.get(f"lists/exclusions/{begin_id}")
    assert missing.status_code == 404 and missing.json() == {"message": f"Exclusion not found [id={begin_id}]"}
    again = import_contacts(api, joiners(list_id, "tester@example.com"))
    assert again["failure"] == [] and "tester@example.com" in emulator.account.list_members(list_id)


def test_exclusion_for_several_lists_applies_to_those_lists_only(api: Api, emulator: EmulatorServer) -> None:
    covered, free = make_list(api, "Covered"), make_list(api, "Free")
    assert add_exclusion(api, "@blocked.com", "end", channel="several", lists=[covered]).status_code == 201
    result = import_contacts(api, joiners(covered, "a@blocked.com") + joiners(free, "b@blocked.com"))
    assert result["failure"] == ["a@blocked.com"]
    # Widened to every list (PUT), it refuses on the other list too.
    exclusion_id = api.get("lists/exclusions").json()["exclusions"][0]["id"]
    widened = api.session.put(f"{api.base}/lists/exclusions/{exclusion_id}", json={"channel": "all"}, timeout=5)
    assert widened.status_code == 200 and widened.json()["lists"] == [] and widened.json()["channel"] == "all"
    assert import_contacts(api, joiners(free, "c@blocked.com"))["failure"] == ["c@blocked.com"]
    assert api.get("lists/exclusions", params={"filters[matchPhrase]": "blocked"}).json()["meta"]["total"] == 1


def test_exclusion_input_is_validated(api: Api) -> None:
    list_id = make_list(api)
    assert add_exclusion(api, "x", "contains").status_code == 422
    assert add_exclusion(api, "", "exact").status_code == 422
    refused = add_exclusion(api, "x@y.com", "exact", channel="all", lists=[list_id])
    assert refused.status_code == 422 and "must be empty" in refused.json()["errors"][0]["title"]


# --------------------------------------------------------------------------------------------------
# user group limits
# --------------------------------------------------------------------------------------------------


def test_group_limits_lists_each_group_with_its_contact_limit(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.add_group("Marketing")
    before = api.get("groupLimits").json()
    assert [(g["groupid"], g["limitContact"]) for g in before["groupLimits"]] == [("1", "0"), ("2", "0")]
    resp = requests.post(
        f"{emulator.url}/_emulator/set_group_limit", json={"group_title": "Admin", "limit_contact": 5}, timeout=5
    )
    assert resp.status_code == 200 and resp.json()["groupLimit"]["limitContact"] == "5"
    after = api.get("groupLimits").json()
    assert after["groupLimits"][0]["limitContact"] == "5" and after["meta"]["total"] == "2"
    assert (
        requests.post(
            f"{emulator.url}/_emulator/set_group_limit", json={"group_title": "Nobody", "limit_contact": 1}, timeout=5
        ).status_code
        == 404
    )


def test_importer_refuses_contacts_over_the_group_contact_limit(api: Api, emulator: EmulatorServer) -> None:
    account = emulator.account
    first, second = make_list(api, "First"), make_list(api, "Second")
    outside = make_list(api, "Outside")  # not tied to the group: not counted
    for lid in (first, second):
        api.post("listGroups", json={"listGroup": {"listid": lid, "groupid": 1}})
    account.subscribe("old@example.com", first)
    account.subscribe("left@example.com", first)
    account.unsubscribe_by_contact("left@example.com", first)  # unsubscribed from all: does not count
    account.set_group_limit("Admin", 3)

    result = import_contacts(
        api,
        joiners(second, "old@example.com", "n1@example.com", "n2@example.com", "n3@example.com")
        + joiners(outside, "n4@example.com"),
    )
    # old@ counts already (once, however many lists); n1 and n2 fill the limit; n3 is over it.
    assert result["failure"] == ["n3@example.com"]
    assert account.list_members(second) == {"old@example.com", "n1@example.com", "n2@example.com"}
    assert "n4@example.com" in account.list_members(outside)
    assert account.contact("n3@example.com") is None
    batch = next(b for b in account.imports.values() if "n3@example.com" in b.failure)
    assert batch.failure_reasons["n3@example.com"].startswith("over the contact limit")

    # Removing someone frees a place in the same batch.
    freed = import_contacts(
        api,
        [{"email": "n1@example.com", "unsubscribe": [{"listid": second}]}, *joiners(second, "n3@example.com")],
    )
    assert freed["failure"] == []
    assert account.list_members(second) == {"old@example.com", "n2@example.com", "n3@example.com"}


# --------------------------------------------------------------------------------------------------
# custom field types and options
# --------------------------------------------------------------------------------------------------


def make_field(api: Api, title: str, field_type: str) -> str:
    resp = api.post("fields", json={"field": {"title": title, "type": field_type}})
    assert resp.status_code == 201, resp.text
    return resp.json()["field"]["id"]


def add_options(api: Api, field_id: str, *values: str) -> requests.Response:
    items = [{"field": field_id, "value": v, "label": f"Option {v}", "orderid": i} for i, v in enumerate(values, 1)]
    return api.post("fieldOption/bulk", json={"fieldOptions": items})


@pytest.mark.parametrize(
    "field_type", ["text", "textarea", "date", "datetime", "dropdown", "radio", "checkbox", "listbox", "hidden"]
)
def test_every_documented_field_type_can_be_created(api: Api, field_type: str) -> None:
    field_id = make_field(api, f"F {field_type}", field_type)
    assert api.get(f"fields/{field_id}").json()["field"]["type"] == field_type


def test_field_options_are_created_in_bulk_and_listed_with_the_field(api: Api) -> None:
    field_id = make_field(api, "Tier", "dropdown")
    resp = add_options(api, field_id, "gold", "silver")
    assert resp.status_code == 201
    created = resp.json()["fieldOptions"]
    assert [(o["value"], o["label"], o["field"], o["orderid"]) for o in created] == [
        ("gold", "Option gold", field_id, 1),
        ("silver", "Option silver", field_id, 2),
    ]
    one = api.get(f"fields/{field_id}").json()
    assert [o["value"] for o in one["fieldOptions"]] == ["gold", "silver"]
    assert one["field"]["options"] == [o["id"] for o in created]
    assert [o["value"] for o in api.get(f"fields/{field_id}/options").json()["fieldOptions"]] == ["gold", "silver"]
    listing = api.get("fields").json()
    assert [o["value"] for o in listing["fieldOptions"]] == ["gold", "silver"]

    assert add_options(api, field_id, "gold").status_code == 422  # already an option
    assert add_options(api, make_field(api, "Plain", "text"), "x").status_code == 422  # text has no options
    bad = api.post("fieldOption/bulk", json={"fieldOptions": {}})
    assert bad.status_code == 422 and bad.json()["errors"].startswith("Bulk operation failed")
    assert add_options(api, "999", "x").status_code == 404


def sync(api: Api, field_id: str, value: str) -> requests.Response:
    return api.post(
        "contact/sync",
        json={"contact": {"email": "typed@example.com", "fieldValues": [{"field": field_id, "value": value}]}},
    )


@pytest.mark.parametrize(
    ("field_type", "good", "bad"),
    [
        ("date", ["2024-02-29", ""], ["2023-02-29", "29/02/2024", "2024-2-9", "2024-02-29T10:00:00+00:00"]),
        (
            "datetime",
            ["2024-05-06T07:08:09-05:00", "2024-05-06T07:08:09+00:00", "2024-05-06T07:08:09Z"],
            ["2024-05-06T07:08:09", "2024-05-06 07:08:09", "2024-05-06"],
        ),
        ("dropdown", ["gold"], ["Gold", "bronze", "||gold||"]),
        ("radio", ["silver"], ["gold,silver"]),
        ("listbox", ["||gold||", "||gold||silver||"], ["gold", "gold||silver", "||gold||bronze||", "||||"]),
        ("checkbox", ["||silver||gold||"], ["silver", "||silver"]),
        ("text", ["anything at all", "2024-13-45"], []),
    ],
)
def test_field_values_are_checked_in_activecampaigns_formats(
    api: Api, emulator: EmulatorServer, field_type: str, good: list[str], bad: list[str]
) -> None:
    field_id = make_field(api, "Typed", field_type)
    if field_type in ("dropdown", "radio", "listbox", "checkbox"):
        assert add_options(api, field_id, "gold", "silver").status_code == 201
    for value in good:
        resp = sync(api, field_id, value)
        assert resp.status_code in (200, 201), (value, resp.text)
        assert emulator.account.field_values("typed@example.com")["TYPED"] == value
    for value in bad:
        resp = sync(api, field_id, value)
        assert resp.status_code == 422, value
        assert resp.json()["errors"][0]["code"] == "field_invalid"


def test_importer_refuses_a_contact_with_a_badly_formatted_value_and_stores_good_ones(
    api: Api, emulator: EmulatorServer
) -> None:
    account = emulator.account
    list_id = make_list(api)
    born = make_field(api, "Born", "date")
    interests = make_field(api, "Interests", "listbox")
    add_options(api, interests, "golf", "chess")
    good = {
        "email": "ok@example.com",
        "fields": [{"id": born, "value": "1990-07-01"}, {"id": interests, "value": "||golf||chess||"}],
    }
    wrong_date = {"email": "date@example.com", "fields": [{"id": born, "value": "07/01/1990"}]}
    wrong_option = {"email": "opt@example.com", "fields": [{"id": interests, "value": "||golf||tennis||"}]}
    result = import_contacts(api, [{**c, "subscribe": [{"listid": list_id}]} for c in (good, wrong_date, wrong_option)])
    assert result["failure"] == ["date@example.com", "opt@example.com"]
    assert account.field_values("ok@example.com") == {"BORN": "1990-07-01", "INTERESTS": "||golf||chess||"}
    assert account.contact("date@example.com") is None and account.contact("opt@example.com") is None
    batch = next(iter(account.imports.values()))
    assert "YYYY-MM-DD" in batch.failure_reasons["date@example.com"]
    assert "'tennis' is not an option" in batch.failure_reasons["opt@example.com"]
