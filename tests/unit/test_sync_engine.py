"""The audience engine's decisions, against an in-memory fake of the hook (no network, no Airflow)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_activecampaign.audience.state import MemberStatus, StateStore
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError, SyncOptions
from airflow_provider_activecampaign.exceptions import ActiveCampaignBulkImportRejectedError

COLUMNS = ["email", "first_name", "segment"]


class FakeActiveCampaign:
    """Just enough of ActiveCampaignHook: records what was sent, answers like ActiveCampaign."""

    api_url = "https://fake.api-us1.com"

    def __init__(self, *, poison: set[str] = frozenset(), one_based: bool = False,
                 indexed_reasons: bool = True) -> None:
        self.indexed_reasons = indexed_reasons
        self.request_counts: Counter = Counter()
        self.lists: dict[str, dict] = {}
        self.members: dict[str, int] = {}  # email -> status on the one list
        self.contacts: dict[str, str] = {}  # email -> id
        self.fields: dict[str, dict] = {}
        self.imports: list[list[dict]] = []
        self.poison = poison  # emails ActiveCampaign refuses whole-batch
        self.one_based = one_based
        self.list_status_calls: list[tuple[str, int]] = []

    def _count(self, key: str) -> None:
        self.request_counts[key] += 1

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
        self.lists[name] = {"id": "7", "name": name}
        return self.lists[name]

    def add_list_to_group(self, list_id: str, group_id: str) -> dict:
        self._count("POST listGroups")
        return {}

    def iter_list_contacts(self, list_id: str, status: int | None = 1) -> Iterator[dict]:
        self._count("GET contacts")
        return iter([{"email": e} for e, s in self.members.items() if s == status])

    def _id(self, email: str) -> str:
        return self.contacts.setdefault(email, str(len(self.contacts) + 1))

    def bulk_import(self, contacts: list[dict]) -> dict:
        self._count("POST import/bulk_import")
        bad = [i for i, c in enumerate(contacts) if c["email"] in self.poison]
        if bad:
            reasons = [{"contact": i + self.one_based, "failureReason": "Field' email' incorrect format"}
                       for i in bad] if self.indexed_reasons else ["Contact import failed"]
            raise ActiveCampaignBulkImportRejectedError("rejected", failure_reasons=reasons,
                                                        api_message="JSON payload did not pass validation")
        self.imports.append(contacts)
        failed = []
        for c in contacts:
            self._id(c["email"])
            if c.get("subscribe"):
                if self.members.get(c["email"]) == 2:
                    failed.append(c["email"])
                else:
                    self.members[c["email"]] = 1
            if c.get("unsubscribe"):
                self.members[c["email"]] = 2
        self._last = failed
        return {"batchId": f"b{len(self.imports)}", "queued_contacts": len(contacts)}

    def get_import_status(self, batch_id: str) -> dict:
        self._count("GET import/info")
        return {"status": "completed", "success": [], "failure": self._last}

    def sync_contact(self, contact: dict) -> dict:
        self._count("POST contact/sync")
        return {"id": self._id(contact["email"]), "email": contact["email"]}

    def get_contact_lists(self, contact_id: str) -> list[dict]:
        self._count("GET contacts/{id}/contactLists")
        email = next(e for e, i in self.contacts.items() if i == contact_id)
        status = self.members.get(email)
        return [] if status is None else [{"list": "7", "status": str(status)}]

    def set_list_status(self, contact_id: str, list_id: str, status: int) -> dict:
        self._count("POST contactLists")
        email = next(e for e, i in self.contacts.items() if i == contact_id)
        self.members[email] = status
        self.list_status_calls.append((email, status))
        return {}

    def find_contact_by_email(self, email: str) -> dict | None:
        self._count("GET contacts")
        return {"id": self.contacts[email]} if email in self.contacts else None


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
    assert sum(len(batch) for batch in client.imports) == 28
    assert {e for e, s in client.members.items() if s == 1} == {f"p{i}@example.com" for i in range(30)}
    assert summary.added == 30 and summary.rejected == 0


def test_rejection_without_a_usable_index_is_bisected_down_to_the_culprit(tmp_path: Path) -> None:
    client = FakeActiveCampaign(poison={"p13@example.com"}, indexed_reasons=False)
    summary = engine(client, tmp_path).run(COLUMNS, rows(40))
    assert (summary.added, summary.rejected) == (39, 1)
    assert "p13@example.com" not in client.members
    report = Path(summary.rejects_report).read_text()
    assert "p13@example.com,import refused" in report
    members, _ = StateStore(tmp_path, account_key="fake", list_key="L").load()
    assert members["p13@example.com"].status is MemberStatus.REFUSED  # not offered again unless it changes


@pytest.mark.parametrize("one_based", [False, True])
def test_rejection_index_base_does_not_matter(tmp_path: Path, one_based: bool) -> None:
    client = FakeActiveCampaign(poison={"p0@example.com", "p29@example.com"}, one_based=one_based)
    summary = engine(client, tmp_path).run(COLUMNS, rows(30))
    assert len([e for e, s in client.members.items() if s == 1]) == 30
    assert summary.added == 30


def test_small_delta_uses_contact_sync_and_respects_self_unsubscribes(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path, run_id="one").run(COLUMNS, rows(20))
    client.members["p3@example.com"] = 2  # they unsubscribed themselves
    changed = rows(3) + rows(1, start=3, segment="b") + rows(16, start=4)
    client.request_counts.clear()
    summary = engine(client, tmp_path, run_id="two").run(COLUMNS, changed)
    assert client.request_counts["POST import/bulk_import"] == 0  # < 10 contacts: contact/sync path
    assert client.members["p3@example.com"] == 2 and ("p3@example.com", 1) not in client.list_status_calls
    assert summary.skipped_unsubscribed == 1 and summary.updated == 0


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
