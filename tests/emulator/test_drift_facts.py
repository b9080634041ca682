"""What a run can check cheaply to know the account and list are still what its state says, over
real HTTP: the account's user id, a list's id and created date, and contacts changed since a moment."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import requests

from airflow_provider_activecampaign.emulator import EmulatorServer
from tests.emulator.client import API_KEY, Api, make_list


def test_users_me_id_is_stable_across_resets_and_set_per_account(api: Api, emulator: EmulatorServer) -> None:
    assert api.get("users/me").json()["user"]["id"] == "1"
    emulator.reset()
    assert api.get("users/me").json()["user"]["id"] == "1"
    with EmulatorServer(api_key=API_KEY, user_id="734") as other:
        client = Api(other.api_url)
        assert client.get("users/me").json()["user"]["id"] == "734"
        other.reset()
        assert client.get("users/me").json()["user"]["id"] == "734"
        list_id = make_list(client)
        created = client.get(f"lists/{list_id}").json()["list"]
        assert (created["userid"], created["user"]) == ("734", "734")
        client.session.close()
    # Changed at run time (another account now answers at this URL).
    patched = requests.patch(f"{emulator.url}/_emulator/config", json={"user_id": "9"}, timeout=5)
    assert patched.status_code == 200 and patched.json()["user_id"] == "9"
    assert api.get("users/me").json()["user"]["id"] == "9"


def test_lists_carry_their_created_date_and_a_recreated_list_is_another_list(
    api: Api, emulator: EmulatorServer
) -> None:
    before = datetime.now(timezone.utc).replace(microsecond=0)
    resp = api.post(
        "lists",
        json={
            "list": {"name": "Audience", "stringid": "audience", "sender_url": "https://x.io", "sender_reminder": "r"}
        },
    )
    first = resp.json()["list"]
    cdate = datetime.fromisoformat(first["cdate"])
    assert cdate.tzinfo is not None and before <= cdate <= datetime.now(timezone.utc)
    assert api.get(f"lists/{first['id']}").json()["list"]["cdate"] == first["cdate"]
    listed = api.get("lists", params={"filters[name]": "Audience"}).json()["lists"]
    assert [(x["id"], x["cdate"]) for x in listed] == [(first["id"], first["cdate"])]

    time.sleep(1.05)  # cdate has one-second resolution
    emulator.account.delete_list(first["id"])
    second_id = make_list(api, "Audience", stringid="audience")
    second = api.get(f"lists/{second_id}").json()["list"]
    assert second_id != first["id"] and datetime.fromisoformat(second["cdate"]) > cdate


def test_contacts_updated_after_a_moment_and_a_membership_change_does_not_count(
    api: Api, emulator: EmulatorServer
) -> None:
    account = emulator.account
    list_id = make_list(api)
    for i in range(3):
        account.subscribe(f"u{i}@example.com", list_id)
    time.sleep(1.05)
    moment = datetime.now().astimezone().replace(microsecond=0).isoformat()
    api.post("contact/sync", json={"contact": {"email": "u1@example.com", "firstName": "Changed"}})
    account.unsubscribe_by_contact("u2@example.com", list_id)  # not a change of the contact record
    body = api.get("contacts", params={"filters[updated_after]": moment}).json()
    assert [c["email"] for c in body["contacts"]] == ["u1@example.com"]
    assert body["meta"]["total"] == "1" and body["meta"]["page_input"]["filters"] == {"updated_after": moment}
    older = api.get("contacts", params={"filters[updated_before]": moment, "listid": list_id}).json()
    assert sorted(c["email"] for c in older["contacts"]) == ["u0@example.com", "u2@example.com"]
    created = api.get("contacts", params={"filters[created_after]": moment[:10]}).json()
    assert created["meta"]["total"] == "3"  # a plain date is that day's midnight
    ignored = api.get("contacts", params={"filters[updated_after]": "last tuesday"}).json()
    assert ignored["meta"]["total"] == "3" and "filters" not in ignored["meta"]["page_input"]
