"""The local pass's shortcuts keep the engine's results: fingerprints deferred to send time, a packed
state, the marshal spool (no network, no Airflow)."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_activecampaign.audience.compact_state import CompactState
from airflow_provider_activecampaign.audience.records import RowMapper, fingerprint
from airflow_provider_activecampaign.audience.state import MemberStatus, StateStore
from tests.unit.test_sync_engine import COLUMNS, FakeActiveCampaign, engine, rows


def _load(tmp_path: Path) -> CompactState:
    members, _ = StateStore(tmp_path, account_key="fake", list_key="L").load()
    assert isinstance(members, CompactState)
    return members


def test_new_contacts_are_recorded_with_their_fingerprint_and_the_next_run_sends_nothing(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    audience = rows(40) + [("P3@EXAMPLE.COM", "again", "a")]  # a duplicate differing in case
    first = engine(client, tmp_path).run(COLUMNS, audience)
    assert (first.added, first.duplicates) == (40, 1)
    mapper = RowMapper(COLUMNS)
    expected = {row[0]: fingerprint(mapper.map(row, 1)) for row in rows(40)}
    assert {email: m.fingerprint for email, m in _load(tmp_path).items()} == expected
    imports = len(client.imports)
    again = engine(client, tmp_path, run_id="r2").run(COLUMNS, audience)
    assert (again.unchanged, again.to_add, again.to_update, len(client.imports)) == (40, 0, 0, imports)


def test_a_changed_contact_is_sent_with_its_new_fields(tmp_path: Path) -> None:
    client = FakeActiveCampaign()
    engine(client, tmp_path).run(COLUMNS, rows(40))
    changed = rows(40)
    changed[7] = (changed[7][0], "Renamed", "b")
    summary = engine(client, tmp_path, run_id="r2").run(COLUMNS, changed)
    assert (summary.to_update, summary.updated, summary.unchanged) == (1, 1, 39)
    sent = [c for batch in client.imports[-1:] for c in batch]
    assert [c["email"] for c in sent] == ["p7@example.com"] and sent[0]["first_name"] == "Renamed"
    state = _load(tmp_path)
    assert state["p7@example.com"].fingerprint == fingerprint(RowMapper(COLUMNS).map(changed[7], 1))
    assert state["p7@example.com"].status is MemberStatus.SUBSCRIBED
