"""The audience engine's decisions, against an in-memory fake of the hook (no network, no Airflow)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_activecampaign.audience.state import MemberStatus, StateStore
from airflow_provider_activecampaign.audience.sync import (
    AudienceSync,
    AudienceSyncError,
    AudienceSyncRetryableError,
    SyncOptions,
)
from airflow_provider_activecampaign.exceptions import ActiveCampaignBulkImportRejectedError

COLUMNS = ["email", "first_name", "segment"]


class FakeActiveCampaign:
    """Just enough of ActiveCampaignHook: records what was sent, answers like ActiveCampaign.

    Memberships carry status, ``udate`` (real epoch seconds, as the consent rule compares them with the
    sync's own clock), ``unsubreason`` and ``automation``; imports are processed at once.
    """

    api_url = "https://fake.api-us1.com"

    def __init__(self, *, poison: set[str] = frozenset(), one_based: bool = False,
                 indexed_reasons: bool = True, general_refusal: bool = False) -> None:
        self.indexed_reasons = indexed_reasons
        self.general_refusal = general_refusal
        self.request_counts: Counter = Counter()
        self.lists: dict[str, dict] = {}
        self.memberships: dict[str, dict] = {}  # email -> membership of the one list
        self.contacts: dict[str, str] = {}  # email -> id
        self.fields: dict[str, dict] = {}
        self.imports: list[list[dict]] = []
        self.rejected_imports = 0
        self.poison = poison  # emails ActiveCampaign refuses whole-batch
        self.excluded: set[str] = set()
        self.one_based = one_based
        self.list_status_calls: list[tuple[str, int]] = []
        self.batches: dict[str, list[str]] = {}
        self.pending_batches: set[str] = set()  # batch ids import/info reports as still waiting
        self.ids_filter = True

    @property
    def members(self) -> dict[str, int]:
        return {e: m["status"] for e, m in self.memberships.items()}

    def active(self) -> set[str]:
        return {e for e, m in self.memberships.items() if m["status"] == 1}

    def set_status(self, email: str, status: int, **extra: object) -> None:
        self._id(email)
        self.memberships[email] = {"status": status, "udate": int(time.time()), "unsubreason": "",
                                   "automation": "0", **extra}

    def _count(self, key: str) -> None:
        self.request_counts[key] += 1

    def get_current_user(self) -> dict:
        self._count("GET users/me")
        return {"id": "1", "username": "admin"}

    def find_user_group(self, name: str) -> dict | None:
        self._count("GET groups")
        return {"id": "1", "title": name} if name == "Admin" else None

    def get_custom_fields(self) -> dict:
        self._count("GET fields")
        return dict(self.fields)

    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text") -> dict:
        self._count("POST fields")
        self.fields[perstag] = {"id": str(len(self.fields) + 1), "perstag": perstag}
        return self.fields[perstag]

    def find_list_by_name(self, name: str) -> dict | None:
        self._count("GET lists")
        return self.lists.get(name)

    def create_list(self, name: str, **kwargs: object) -> dict:
        self._count("POST lists")
        self.lists[name] = {"id": str(7 + len(self.lists)), "name": name}
        return self.lists[name]

    def add_list_to_group(self, list_id: str, group_id: str) -> dict:
        self._count("POST listGroups")
        return {}

    def count_list_contacts(self, list_id: str, status: int) -> int:
        self._count("GET contacts")
        return sum(1 for m in self.memberships.values() if m["status"] == status)

    def _membership_json(self, email: str) -> dict:
        m = self.memberships[email]
        stamp = dt.datetime.fromtimestamp(m["udate"], dt.timezone.utc).isoformat()
        return {"list": "7", "contact": self.contacts[email], "status": str(m["status"]), "udate": stamp,
                "unsubreason": m["unsubreason"], "automation": m["automation"], "campaign": "0"}

    def iter_list_memberships(self, list_id: str, *, status: int | None = None,
                              page_size: int = 100) -> Iterator[tuple[dict, dict | None]]:
        members = [e for e, m in self.memberships.items() if status is None or m["status"] == status]
        for start in range(0, max(1, len(members)), page_size):
            self._count("GET contacts")
            for email in members[start:start + page_size]:
                yield {"id": self.contacts[email], "email": email}, self._membership_json(email)

    def get_contact_membership(self, contact_id: str, list_id: str) -> dict | None:
        self._count("GET contacts/{id}/contactLists")
        email = next(e for e, i in self.contacts.items() if i == contact_id)
        return self._membership_json(email) if email in self.memberships else None

    def iter_contacts(self, params: dict | None = None, *, page_size: int = 100) -> Iterator[dict]:
        self._count("GET contacts")
        wanted = set((params or {}).get("ids[]", ())) if self.ids_filter else None
        for email, cid in self.contacts.items():
            if wanted is None or cid in wanted:
                yield {"id": cid, "email": email}

    def _id(self, email: str) -> str:
        return self.contacts.setdefault(email, str(len(self.contacts) + 1))

    def bulk_import(self, contacts: list[dict]) -> dict:
        self._count("POST import/bulk_import")
        bad = [i for i, c in enumerate(contacts) if c["email"] in self.poison]
        if bad or self.general_refusal:
            self.rejected_imports += 1
            reasons = [{"contact": i + self.one_based, "failureReason": "Field' email' incorrect format"}
                       for i in bad] if self.indexed_reasons and not self.general_refusal else ["Contact import failed"]
            raise ActiveCampaignBulkImportRejectedError("rejected", failure_reasons=reasons,
                                                        api_message="JSON payload did not pass validation")
        self.imports.append(contacts)
        failed = []
        for c in contacts:
            email = c["email"]
            if c.get("subscribe"):
                if email in self.excluded or self.members.get(email) == 2:
                    failed.append(email)
                    continue
                self._id(email)
                if self.members.get(email) != 1:
                    self.set_status(email, 1)
            if c.get("unsubscribe"):
                self._id(email)
                self.set_status(email, 2)
        batch_id = f"b{len(self.imports)}"
        self.batches[batch_id] = failed
        return {"batchId": batch_id, "queued_contacts": len(contacts)}

    def get_import_status(self, batch_id: str) -> dict:
        self._count("GET import/info")
        if batch_id in self.pending_batches:
            return {"status": "waiting"}
        return {"status": "completed", "success": [], "failure": self.batches[batch_id]}

    def set_list_status(self, contact_id: str, list_id: str, status: int) -> dict:
        self._count("POST contactLists")
        email = next(e for e, i in self.contacts.items() if i == contact_id)
        self.set_status(email, int(status))
        self.list_status_calls.append((email, int(status)))
        return {}

    def iter_exclusions(self) -> Iterator[dict]:
        self._count("GET lists/exclusions")
        return iter([{"matchPhrase": e, "matchType": "exact"} for e in sorted(self.excluded)])

    def find_contact_by_email(self, email: str) -> dict | None:
        self._count("GET contacts")
        return {"id": self.contacts[email], "email": email} if email in self.contacts else None

    def delete_contact(self, email: str) -> None:
        self.contacts.pop(email)
        self.memberships.pop(email, None)


def rows(n: int, start: int = 0, segment: str = "a") -> list[tuple]:
    return [(f"p{i}@example.com", f"P{i}", segment) for i in range(start, start + n)]


class FakeTime:
    """A clock that only moves when the engine sleeps: waits cost nothing and nothing spins."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def engine(client: FakeActiveCampaign, tmp_path: Path, run_id: str = "r", **options: object) -> AudienceSync:
    store = StateStore(tmp_path, account_key="fake", list_key="L", lock_settle_seconds=0)
    fake = FakeTime()
    return AudienceSync(client, SyncOptions(list_name="L", group_name="Admin", **options), store=store,
                        run_id=run_id, clock=fake.clock, sleep=fake.sleep)


def test_whole_batch_rejection_is_repaired_by_setting_suspects_aside(tmp_path: Path) -> None:
    client = FakeActiveCampaign(poison={"p7@example.com"})
    summary = engine(client, tmp_path).run(COLUMNS, rows(30))
    # The rest went in one resent batch; the suspects (index 7 and its neighbour) went one by one.
    assert [len(batch) for batch in client.imports] == [28, 1]
    assert client.active() == {f"p{i}@example.com" for i in range(30)} - {"p7@example.com"}
    assert (summary.added, summary.rejected) == (29, 1)
    assert "p7@example.com,import refused" in Path(summary.rejects_report).read_text()


def test_rejection_without_a_usable_index_is_bisected_down_to_the_culprit(tmp_path: Path) -> None:
    client = FakeActiveCampaign(poison={"p13@example.com"}, indexed_reasons=False)
    summary = engine(client, tmp_path).run(COLUMNS, rows(40))
    assert (summary.added, summary.rejected) == (39, 1)
    assert "p13@example.com" not in client.members
    report = Path(summary.rejects_report).read_text()
    assert "p13@example.com,import refused" in report
    members, _ = StateStore(tmp_path, account_key="fake", list_key="L").load()
    refused = members["p13@example.com"]
    assert refused.status is MemberStatus.REFUSED and refused.attempts == 1 and refused.at
    assert "JSON payload did not pass validation" in refused.note


def test_a_systematic_whole_batch_refusal_stops_bisecting_and_is_reported(tmp_path: Path) -> None:
    client = FakeActiveCampaign(general_refusal=True)
    summary = engine(client, tmp_path).run(COLUMNS, rows(250))
    assert client.rejected_imports <= 20  # not 250 one-contact imports
    assert summary.rejected == 250 and summary.added == 0
    assert "batch refused whole, systematically" in Path(summary.rejects_report).read_text()


@pytest.mark.parametrize("one_based", [False, True])
def test_rejection_index_base_does_not_matter(tmp_path: Path, one_based: bool) -> None:
    client = FakeActiveCampaign(poison={"p0@example.com", "p29@example.com"}, one_based=one_based)
    summary = engine(client, tmp_path).run(COLUMNS, rows(30))
    assert client.active() == {f"p{i}@example.com" for i in range(1, 29)}
    assert (summary.added, summary.rejected) == (28, 2)


def test_a_three_contact_change_goes_through_the_importer_with_its_tags(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    columns = ["email", "first_name", "tags", "customer_acct_name"]
    base = [(f"p{i}@example.com", f"P{i}", "old", "Acme") for i in range(20)]
    engine(client, tmp_path, run_id="one").run(columns, base)
    changed = [(e, n, "old,vip", "Beta") if i < 3 else (e, n, t, a) for i, (e, n, t, a) in enumerate(base)]
    client.imports.clear()
    summary = engine(client, tmp_path, run_id="two").run(columns, changed)
    assert summary.updated == 3 and client.request_counts["POST contactLists"] == 0
    sent = {c["email"]: c for batch in client.imports for c in batch}
    assert set(sent) == {"p0@example.com", "p1@example.com", "p2@example.com"}
    assert all(c["tags"] == ["old", "vip"] and c["customer_acct_name"] == "Beta" and c["exclude_automations"]
               for c in sent.values())


def test_removal_guard_and_empty_guard_stop_before_writing(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(100))
    before = client.request_counts["POST import/bulk_import"]
    with pytest.raises(AudienceSyncError, match="unsubscribe 50 of the list's 100 members"):
        engine(client, tmp_path, run_id="two").run(COLUMNS, rows(50))
    with pytest.raises(AudienceSyncError, match="empty"):
        engine(client, tmp_path, run_id="three").run(COLUMNS, [])
    assert client.request_counts["POST import/bulk_import"] == before
    allowed = engine(client, tmp_path, run_id="four", max_removal_ratio=0.6).run(COLUMNS, rows(50))
    assert allowed.unsubscribed == 50


def test_action_on_empty_skip_sends_nothing(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    summary = engine(client, tmp_path, run_id="two", action_on_empty="skip").run(COLUMNS, [])
    assert summary.unsubscribed == 0 and len([s for s in client.members.values() if s == 1]) == 20


def test_upsert_mode_never_unsubscribes(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(30))
    summary = engine(client, tmp_path, run_id="two", mode="upsert").run(COLUMNS, rows(5))
    assert summary.to_unsubscribe == 0 and len([s for s in client.members.values() if s == 1]) == 30


def test_missing_custom_fields_fail_before_writing_when_creation_is_off(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    with pytest.raises(AudienceSyncError, match="SEGMENT"):
        engine(client, tmp_path, create_custom_fields=False).run(COLUMNS, rows(5))
    assert not client.lists and not client.imports


def test_state_records_confirmed_members(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path).run(COLUMNS, rows(12))
    members, _ = StateStore(tmp_path, account_key="fake", list_key="L").load()
    assert len(members) == 12 and {m.status for m in members.values()} == {MemberStatus.SUBSCRIBED}


def test_logs_never_hold_an_email_address(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = FakeActiveCampaign(poison={"p7@example.com"})
    summary = engine(client, tmp_path, progress_interval=0).run(COLUMNS, rows(40) + [("broken@", "X", "a")])
    assert "@example.com" not in caplog.text and "broken@" not in caplog.text
    assert all("@e***" in e for e in summary.examples["add"])


# ----------------------------------------------------------------------------- verified state
def load_state(tmp_path: Path) -> tuple[dict, object]:
    return StateStore(tmp_path, account_key="fake", list_key="L").load()


def test_the_state_header_records_account_list_counts_and_a_unique_generation(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    first = engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    _members, info = load_state(tmp_path)
    meta = info.meta
    assert (meta.api_url, meta.user_id, meta.list_id, meta.list_name) == (client.api_url, "1", "7", "L")
    assert (meta.active, meta.unsubscribed) == (20, 0) and meta.reconciled_at
    assert first.state_generation == info.generation_id and info.generation_id.startswith("1-")
    # Two lineages reaching the same counter still have different generations.
    other = tmp_path / "other"
    engine(FakeActiveCampaign(), other, run_id="one").run(COLUMNS, rows(20))
    assert StateStore(other, account_key="fake", list_key="L").load()[1].generation_id != info.generation_id


def test_a_drift_free_run_costs_a_handful_of_requests_and_no_read_of_the_list(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    first = engine(client, tmp_path, run_id="one").run(COLUMNS, rows(300))
    client.request_counts.clear()
    summary = engine(client, tmp_path, run_id="two", published_generation=first.state_generation).run(
        COLUMNS, rows(3, segment="b") + rows(297, start=3))
    assert (summary.membership_source, summary.updated) == ("state", 3)
    assert summary.membership_reason.startswith("verified")
    # users/me, groups, fields, lists, 2 counts, 1 import, 1 poll
    assert summary.api_requests == 8 and summary.requests_by_endpoint["GET contacts"] == 2


def test_a_hand_added_member_is_drift_and_a_mirror_removes_them(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    client.set_status("hand@example.com", 1)  # a person added them to the list
    summary = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(20))
    assert summary.membership_source == "activecampaign" and "drift" in summary.membership_reason
    assert summary.unsubscribed == 1 and client.members["hand@example.com"] == 2
    assert client.active() == {f"p{i}@example.com" for i in range(20)}


def test_a_stale_copy_is_read_back(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    summary = engine(client, tmp_path, run_id="two", published_generation="9-elsewhere").run(COLUMNS, rows(20))
    assert summary.membership_source == "activecampaign" and "stale copy" in summary.membership_reason


def test_reconcile_every_forces_a_read_back(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    summary = engine(client, tmp_path, run_id="two", reconcile_every=dt.timedelta(0)).run(COLUMNS, rows(20))
    assert summary.membership_source == "activecampaign" and "reconcile_every" in summary.membership_reason


def test_a_list_recreated_under_the_same_name_is_filled(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    client.lists["L"] = {"id": "99", "name": "L"}  # deleted and recreated: empty, another id
    client.memberships.clear()
    summary = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(20))
    assert "recreated (id 7 -> 99)" in summary.membership_reason
    assert summary.added == 20 and len(client.active()) == 20


def test_a_deleted_list_is_recreated_and_filled(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    client.lists.clear()
    client.memberships.clear()
    summary = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(20))
    assert summary.list_created and summary.membership_source == "new list"
    assert summary.added == 20 and len(client.active()) == 20


def test_a_list_member_without_an_email_is_ignored_when_reading(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    client.lists["L"] = {"id": "7", "name": "L"}
    client.set_status("", 1)
    summary = engine(client, tmp_path).run(COLUMNS, rows(5))
    assert summary.added == 5 and summary.to_unsubscribe == 0


# ------------------------------------------------------------------------------------ consent
def test_a_contact_who_resubscribed_then_unsubscribed_themselves_is_never_resubscribed(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    engine(client, tmp_path, run_id="two").run(COLUMNS, rows(19))  # p19 left: the sync unsubscribed them
    assert client.members["p19@example.com"] == 2
    time.sleep(2.1)  # their own change comes later than the sync's (udate has one-second resolution)
    client.set_status("p19@example.com", 1)  # signed up again through a form
    client.set_status("p19@example.com", 2, unsubreason="too many emails")  # then unsubscribed themselves
    summary = engine(client, tmp_path, run_id="three").run(COLUMNS, rows(20))
    assert client.members["p19@example.com"] == 2 and ("p19@example.com", 1) not in client.list_status_calls
    assert summary.skipped_unsubscribed == 1 and summary.resubscribed == 0
    members, _ = load_state(tmp_path)
    assert members["p19@example.com"].status is MemberStatus.UNSUBSCRIBED_ELSEWHERE


def test_an_unsubscribe_changed_since_the_sync_made_it_is_not_the_syncs_any_more(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    engine(client, tmp_path, run_id="two").run(COLUMNS, rows(19))
    time.sleep(2.1)
    client.set_status("p19@example.com", 2)  # an admin or automation touched it again, no reason given
    # (The counts match, so no read-back: the consent rule alone must catch it.)
    summary = engine(client, tmp_path, run_id="three").run(COLUMNS, rows(20))
    assert client.members["p19@example.com"] == 2 and summary.skipped_unsubscribed == 1


def test_a_member_the_sync_removed_comes_back_through_contact_lists_then_the_importer(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    engine(client, tmp_path, run_id="two").run(COLUMNS, rows(19))
    client.imports.clear()
    summary = engine(client, tmp_path, run_id="three").run(COLUMNS, rows(20))
    assert ("p19@example.com", 1) in client.list_status_calls and client.members["p19@example.com"] == 1
    assert [c["email"] for batch in client.imports for c in batch] == ["p19@example.com"]  # fields, tags
    assert (summary.resubscribed, summary.added, summary.skipped_unsubscribed) == (1, 1, 0)


def test_new_members_are_never_subscribed_through_contact_lists(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    engine(client, tmp_path, run_id="two").run(COLUMNS, rows(23))  # 3 new: a small run
    assert client.request_counts["POST contactLists"] == 0 and len(client.active()) == 23


# ----------------------------------------------------------------------------------- refusals
def test_a_lifted_exclusion_lets_the_refused_contacts_in_on_the_next_run(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    client.excluded = {"p1@example.com", "p2@example.com"}
    first = engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    assert (first.added, first.refused) == (18, 2)
    assert list(first.refusals.values()) == [2] and "exclusion list" in next(iter(first.refusals))
    assert first.requests_by_endpoint["GET lists/exclusions"] == 1  # read once, only to name the reason
    members, _ = load_state(tmp_path)
    assert "exclusion list" in members["p1@example.com"].note and members["p1@example.com"].at
    assert "p1@example.com,refused by the importer: on the account's exclusion list" in Path(
        first.rejects_report).read_text()
    client.excluded = set()
    second = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(20))
    assert second.added == 2 and len(client.active()) == 20


def test_refusals_are_offered_again_a_bounded_number_of_times(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    client.excluded = {"p1@example.com"}
    offered = []
    for run in range(8):
        summary = engine(client, tmp_path, run_id=f"r{run}").run(COLUMNS, rows(20))
        offered.append(summary.to_add)
    assert offered == [20, 1, 1, 1, 1, 0, 0, 0]  # the first run and 4 more attempts (5 in all)
    members, _ = load_state(tmp_path)
    assert members["p1@example.com"].attempts == 5


# ---------------------------------------------------------------------------------- bad data
def test_an_oversized_row_is_rejected_at_plan_time_and_the_rest_is_sent(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    data = rows(12)
    data[4] = ("big@example.com", "B", "x" * 450_000)
    summary = engine(client, tmp_path).run(COLUMNS, data)
    assert summary.added == 11 and summary.rejected == 1
    assert "big@example.com,too large for one bulk import request" in Path(summary.rejects_report).read_text()


def test_a_removal_of_a_contact_deleted_in_activecampaign_is_dropped_not_sent(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    # Deleted and, in the same moment, someone hand-added: the counts still match.
    client.delete_contact("p19@example.com")
    client.set_status("hand@example.com", 1)
    client.imports.clear()
    summary = engine(client, tmp_path, run_id="two", max_removal_ratio=1).run(COLUMNS, rows(19))
    assert summary.removals_dropped == 1 and "p19@example.com" not in client.contacts
    assert not any(c["email"] == "p19@example.com" for batch in client.imports for c in batch)


def test_removals_read_only_the_contacts_being_removed(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(300))
    for i in range(100):  # a big unsubscribed population the check must not read
        client.set_status(f"old{i}@example.com", 2)
    engine(client, tmp_path, run_id="two").run(COLUMNS, rows(300))  # read back once (drift)
    client.request_counts.clear()
    summary = engine(client, tmp_path, run_id="three").run(COLUMNS, rows(298))
    assert summary.unsubscribed == 2 and summary.membership_source == "state"
    assert summary.requests_by_endpoint["GET contacts"] == 3  # 2 counts + 1 page of ids


# ------------------------------------------------------------------------------------ journal
def test_an_import_not_processed_in_time_is_retryable_and_the_retry_resumes(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    client.pending_batches = {"b2"}
    with pytest.raises(AudienceSyncRetryableError, match="retry polls it"):
        engine(client, tmp_path, run_id="two", import_timeout=5).run(COLUMNS, rows(20, segment="b"))
    _members, info = load_state(tmp_path)
    assert [(b.kind, b.batch_id, len(b.members)) for b in info.in_flight] == [("upsert", "b2", 20)]
    client.pending_batches = set()
    imports_before = len(client.imports)
    retry = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(20, segment="b"))
    assert retry.in_flight_resolved == 1 and retry.to_update == 0 and len(client.imports) == imports_before
    assert not load_state(tmp_path)[1].in_flight


def test_a_removal_whose_confirmation_was_lost_is_the_syncs_own_unsubscribe(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    store = StateStore(tmp_path, account_key="fake", list_key="L")
    store.load()
    # A worker journaled the intent, sent the removal and died before writing the batch id.
    from airflow_provider_activecampaign.audience.journal import intent_event
    store.record({}, run_id="dead", events=[intent_event("dead:1", "remove", [("p19@example.com", "")])])
    client.set_status("p19@example.com", 2)
    summary = engine(client, tmp_path, run_id="next").run(COLUMNS, rows(19))
    assert summary.in_flight_resolved == 1 and summary.to_unsubscribe == 0
    members, _ = load_state(tmp_path)
    assert members["p19@example.com"].status is MemberStatus.UNSUBSCRIBED  # ours: may come back later
    engine(client, tmp_path, run_id="later").run(COLUMNS, rows(20))
    assert client.members["p19@example.com"] == 1


def test_journal_writes_are_one_per_batch_not_per_contact(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    sync = engine(client, tmp_path)
    sync.run(COLUMNS, rows(600))  # 3 batches
    assert sync.journal.writes <= 4


# ------------------------------------------------------------------------------ plan as a value
def test_the_plan_is_a_frozen_printable_value_without_addresses(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    sync = engine(client, tmp_path, run_id="two")
    plan = sync.plan(COLUMNS, rows(19) + rows(2, start=30))
    assert (plan.list_id, plan.to_add, plan.to_unsubscribe, plan.membership_source) == ("7", 2, 1, "state")
    assert plan.state_generation == load_state(tmp_path)[1].generation_id
    assert "@" not in str(plan) and "@" not in repr(plan.as_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.to_add = 0  # type: ignore[misc]
    sync.execute(plan)
    assert len(client.active()) == 21


def test_execute_refuses_a_plan_whose_state_changed_since(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    sync = engine(client, tmp_path, run_id="two")
    plan = sync.plan(COLUMNS, rows(21))
    engine(client, tmp_path, run_id="meanwhile").run(COLUMNS, rows(22))
    with pytest.raises(AudienceSyncError, match="state changed since the plan"):
        sync.execute(plan)


def test_removal_checks_by_email_are_bounded_when_contact_ids_are_unknown(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    client.ids_filter = False  # a server that ignores ids[]: the engine falls back to email look-ups
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(300))  # fresh send: no contact ids known
    client.request_counts.clear()
    summary = engine(client, tmp_path, run_id="two").run(COLUMNS, rows(250))
    assert summary.unsubscribed == 50 and summary.membership_source == "state"
    assert summary.requests_by_endpoint["GET contacts"] == 2 + 10  # the counts + at most 10 look-ups
