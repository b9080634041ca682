"""``EmulatorAdmin`` drives an emulator from another process's point of view: only its URL, over HTTP."""

from __future__ import annotations

import pytest

from airflow_provider_activecampaign.emulator import BY_ADMIN, BY_CONTACT, BY_FORM, EmulatorServer
from airflow_provider_activecampaign.emulator.admin_client import EmulatorAdmin, EmulatorAdminError
from tests.emulator.client import Api, make_list, wait_completed


def test_admin_client_runs_the_events_and_reads_who_changed_what(api: Api, emulator: EmulatorServer) -> None:
    admin = EmulatorAdmin(emulator.api_url)  # with or without /api/3
    list_id = make_list(api)
    assert admin.add_by_hand("a@example.com", list_id)["status"] == "1"
    admin.signup_by_form("b@example.com", list_id)
    admin.unsubscribe_by_contact("a@example.com", list_id, reason="bye", campaign_id=3)
    admin.unsubscribe_by_automation("b@example.com", list_id, 8)
    assert admin.list_members(list_id, status=2) == {"a@example.com", "b@example.com"}
    record = admin.membership("a@example.com", list_id)
    assert (record["unsubreason"], record["campaign"], record["changed_by"]) == ("bye", "3", BY_CONTACT)
    assert [h["by"] for h in record["history"]] == [BY_ADMIN, BY_CONTACT]
    assert [h["by"] for h in admin.membership("b@example.com", list_id)["history"]][0] == BY_FORM

    admin.exclude("c@example.com")
    resp = api.post("import/bulk_import", json={"contacts": [{"email": "c@example.com"}, {"email": "d@example.com"}]})
    assert wait_completed(api, resp.json()["batchId"])["failure"] == ["c@example.com"]
    assert admin.lift_exclusion("c@example.com") == 1
    assert admin.set_group_limit("Admin", 10)["limitContact"] == "10"
    admin.delete_contact("d@example.com")
    admin.delete_list(list_id)
    state = admin.state()
    assert state["summary"]["lists"] == 0 and state["summary"]["contacts"] == 2
    assert admin.configure(user_id="5")["user_id"] == "5"
    assert api.get("users/me").json()["user"]["id"] == "5"


def test_admin_client_raises_the_admin_apis_refusals(emulator: EmulatorServer) -> None:
    admin = EmulatorAdmin(emulator.url)
    with pytest.raises(EmulatorAdminError) as refused:
        admin.unsubscribe_by_admin("nobody@example.com", "1")
    assert refused.value.status == 404
    with pytest.raises(ValueError, match="unknown emulator event"):
        admin.event("resubscribe_everyone")
