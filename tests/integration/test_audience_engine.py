"""The audience engine through the real hook, against the emulator over loopback HTTP.

Asserts what ActiveCampaign ends up holding and what the run reports.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from airflow_provider_activecampaign.audience.state import MemberStatus, StateStore
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError, SyncOptions
from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.exceptions import ActiveCampaignServerError
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

COLUMNS = ["email", "first_name", "plan", "tags"]


def people(n: int, *, start: int = 0, plan: str = "pro") -> list[tuple]:
    return [(f"person.{i}@example.com", f"Person{i}", plan, "newsletter") for i in range(start, start + n)]


def run(state_dir: Path, rows: list, *, run_id: str = "run", hook: ActiveCampaignHook | None = None,
        **options: object):
    hook = hook or ActiveCampaignHook()
    store = StateStore(state_dir, account_key=hook.host, list_key="Customers")
    engine = AudienceSync(hook, SyncOptions(list_name="Customers", group_name="Admin", **options),
                          store=store, run_id=run_id)
    return engine.run(COLUMNS, rows)


def list_id(emulator: EmulatorServer) -> str:
    return emulator.account.list_by_name("Customers").id


def test_first_send_creates_list_fields_and_members(ac_default: EmulatorServer, state_dir: Path) -> None:
    rows = people(40) + [("not-an-email", "Bad", "pro", ""), ("PERSON.1@EXAMPLE.COM", "Dup", "pro", "")]
    summary = run(state_dir, rows)

    account = ac_default.account
    lid = list_id(ac_default)
    assert account.list_members(lid) == {f"person.{i}@example.com" for i in range(40)}
    assert account.list_group_ids(lid) == {"1"}  # tied to the "Admin" user group
    assert account.field_values("person.3@example.com")["PLAN"] == "pro"
    assert summary.added == 40 and summary.invalid == 1 and summary.duplicates == 1
    assert summary.list_created and summary.list_id == lid
    report = Path(summary.rejects_report)
    assert list(csv.reader(report.open())) [1][0] == "not-an-email"
    # 40 contacts go in one bulk import, confirmed by polling import/info.
    assert summary.requests_by_endpoint["POST import/bulk_import"] == 1


def test_second_run_sends_only_changes(ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(60), run_id="one")
    before = len(ac_default.account.requests(endpoint="POST import/bulk_import"))

    unchanged = run(state_dir, people(60), run_id="two")
    # look-ups (users/me, groups, fields, lists) and the drift check (2 counts); nothing sent
    assert unchanged.unchanged == 60 and unchanged.api_requests <= 6
    assert unchanged.membership_source == "state" and unchanged.requests_by_endpoint["GET contacts"] == 2
    assert len(ac_default.account.requests(endpoint="POST import/bulk_import")) == before

    changed = people(45) + people(15, start=45, plan="enterprise") + people(12, start=100)
    third = run(state_dir, changed, run_id="three")
    assert (third.updated, third.added, third.unchanged) == (15, 12, 45)
    assert ac_default.account.field_values("person.50@example.com")["PLAN"] == "enterprise"


def test_mirror_unsubscribes_leavers_and_never_deletes(ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(50), run_id="one")
    summary = run(state_dir, people(45), run_id="two", max_removal_ratio=0.5)
    lid = list_id(ac_default)
    assert summary.unsubscribed == 5
    assert ac_default.account.list_members(lid) == {f"person.{i}@example.com" for i in range(45)}
    assert ac_default.account.list_members(lid, status=2) == {f"person.{i}@example.com" for i in range(45, 50)}
    assert ac_default.account.contact("person.49@example.com") is not None  # unsubscribed, not deleted


def test_self_unsubscribed_never_resubscribed_but_our_removals_come_back(
        ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(30), run_id="one")
    lid = list_id(ac_default)
    ac_default.account.unsubscribe_by_contact("person.0@example.com", lid)  # they leave by themselves
    second = run(state_dir, people(28, start=2), run_id="two")  # person.0 and person.1 left the audience
    # The count check sees person.0's own unsubscribe: the list is read back, only person.1 is removed.
    assert second.membership_source == "activecampaign" and "drift" in second.membership_reason
    assert second.unsubscribed == 1 and second.to_unsubscribe == 1
    assert "person.1@example.com" in ac_default.account.list_members(lid, status=2)

    back = run(state_dir, people(30), run_id="three")  # both come back into the audience
    members = ac_default.account.list_members(lid)
    assert "person.1@example.com" in members  # removed by this sync -> subscribed again
    assert "person.0@example.com" not in members  # unsubscribed themselves -> never re-subscribed
    assert back.added == 1 and back.resubscribed == 1 and back.unchanged == 28
    assert back.skipped_unsubscribed == 1  # person.0: remembered as unsubscribed by someone else


def test_a_self_unsubscribe_is_seen_by_the_count_check_and_reported(
        ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(20), run_id="one")
    lid = list_id(ac_default)
    ac_default.account.unsubscribe_by_contact("person.5@example.com", lid)
    summary = run(state_dir, people(20, plan="changed"), run_id="two")  # 20 changed: 19 updates
    assert "person.5@example.com" not in ac_default.account.list_members(lid)
    assert (summary.updated, summary.skipped_unsubscribed, summary.rejected) == (19, 1, 0)
    rejects = Path(summary.rejects_report).read_text()
    assert "person.5@example.com" in rejects and "not re-subscribed" in rejects


def test_full_refresh_reads_membership_and_skips_self_unsubscribed(
        ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(20), run_id="one")
    lid = list_id(ac_default)
    ac_default.account.unsubscribe_by_contact("person.5@example.com", lid)
    summary = run(state_dir, people(20), run_id="two", full_refresh=True)
    assert summary.membership_source == "activecampaign"
    assert (summary.updated, summary.skipped_unsubscribed) == (19, 1)
    assert "person.5@example.com" not in ac_default.account.list_members(lid)


def test_guards_refuse_before_any_write(ac_default: EmulatorServer, state_dir: Path) -> None:
    run(state_dir, people(50), run_id="one")
    lid = list_id(ac_default)
    with pytest.raises(AudienceSyncError, match="max_removal_ratio"):
        run(state_dir, people(10), run_id="two")
    with pytest.raises(AudienceSyncError, match="empty"):
        run(state_dir, [], run_id="three")
    bad = people(5) + [(f"broken{i}", "B", "pro", "") for i in range(5)]
    with pytest.raises(AudienceSyncError, match="max_invalid_ratio"):
        run(state_dir, bad, run_id="four")
    assert len(ac_default.account.list_members(lid)) == 50


def test_unknown_group_fails_with_clear_message(ac_default: EmulatorServer, state_dir: Path) -> None:
    hook = ActiveCampaignHook()
    engine = AudienceSync(hook, SyncOptions(list_name="X", group_name="No Such Group"))
    with pytest.raises(AudienceSyncError, match="Invalid group name 'No Such Group'"):
        engine.run(COLUMNS, people(3))
    assert ac_default.account.list_by_name("X") is None


def test_dry_run_writes_nothing(ac_default: EmulatorServer, state_dir: Path) -> None:
    summary = run(state_dir, people(25) + [("bad", "", "", "")], run_id="dry", dry_run=True)
    assert (summary.to_add, summary.invalid, summary.dry_run) == (25, 1, True)
    assert summary.examples["add"][0].endswith("@e***.com") and "person" not in summary.examples["add"][0]
    assert ac_default.account.list_by_name("Customers") is None
    assert not ac_default.account.requests(method="POST")


def test_crash_then_retry_resumes_without_resending(monkeypatch: pytest.MonkeyPatch,
                                                    ac_default: EmulatorServer, state_dir: Path) -> None:
    rows = people(1000)
    # Batches 1-2 go through; then the importer keeps failing with HTML 500s until attempts run out.
    original = ActiveCampaignHook.bulk_import
    calls = {"n": 0}

    def flaky(self, contacts, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            ac_default.fail_next(count=None, status=500, path="import/bulk_import")
        return original(self, contacts, **kwargs)

    monkeypatch.setattr(ActiveCampaignHook, "bulk_import", flaky)
    impatient = ActiveCampaignHook(max_attempts=2)
    with pytest.raises(ActiveCampaignServerError):
        run(state_dir, rows, run_id="crashy", hook=impatient)
    ac_default.faults.clear()
    lid = list_id(ac_default)
    confirmed = len(ac_default.account.list_members(lid))
    assert confirmed == 500  # two batches of 250 were confirmed before the failure

    monkeypatch.setattr(ActiveCampaignHook, "bulk_import", original)
    retry = run(state_dir, rows, run_id="crashy")  # an Airflow retry: same run id
    assert retry.unchanged == 500 and retry.added == 500
    assert len(ac_default.account.list_members(lid)) == 1000
    store = StateStore(state_dir, account_key=ActiveCampaignHook().host, list_key="Customers")
    members, _ = store.load()
    assert sum(1 for m in members.values() if m.status is MemberStatus.SUBSCRIBED) == 1000
