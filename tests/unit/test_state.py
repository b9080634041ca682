"""Run state: snapshot + journal, crash safety, compaction, locking and rejects reports.

Every test runs on a local folder and on an fsspec in-memory object store (``upath.UPath("memory://")``),
which offers the same operations as Airflow's ObjectStoragePath on S3/GCS: whole-object writes, no
rename, no append.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from airflow_provider_activecampaign.audience.journal import done_event, intent_event, submitted_event
from airflow_provider_activecampaign.audience.lease import LeaseLock
from airflow_provider_activecampaign.audience.state import (
    LoadInfo,
    MemberState,
    MemberStatus,
    StateConflictError,
    StateCorruptError,
    StateLockedError,
    StateMeta,
    StateStore,
    safe_name,
)

S, U, R = MemberStatus.SUBSCRIBED, MemberStatus.UNSUBSCRIBED, MemberStatus.REFUSED
ACCOUNT = "https://acct.api-us1.com"
LIST = "VIP customers / EU"


@pytest.fixture(params=["local", "memory"])
def root(request, tmp_path):
    if request.param == "local":
        yield tmp_path / "state"
        return
    upath = pytest.importorskip("upath")
    path = upath.UPath(f"memory://ac-state-{uuid.uuid4().hex}/state")
    yield path
    fs = path.fs
    if fs.exists(path.path):
        fs.rm(path.path, recursive=True)


def store_at(root, list_key=LIST, **kwargs):
    kwargs.setdefault("lock_settle_seconds", 0)
    return StateStore(root, account_key=ACCOUNT, list_key=list_key, **kwargs)


def names(store):
    return sorted(p.name for p in store.directory.iterdir())


def write_bytes(path, data: bytes):
    with path.open("wb") as stream:
        stream.write(data)


def read_bytes(path) -> bytes:
    with path.open("rb") as stream:
        return stream.read()


# ------------------------------------------------------------------------------------------- basics
def test_enum_and_named_tuple_shapes():
    assert [s.value for s in MemberStatus] == ["s", "u", "o", "r"]
    assert MemberStatus("s") is S
    state = MemberState("abc", S)
    assert state.contact_id is None and state == ("abc", S, None, None, None, 0)


def test_empty_state_loads_empty(root):
    members, info = store_at(root).load()
    assert members == {}
    assert info.generation == 0 and info.snapshot is None and info.members == 0 and info.warnings == ()


def test_record_then_load_round_trips(root):
    store = store_at(root)
    entries = {
        "ann@example.com": MemberState("f1", S),
        "bob@example.com": MemberState("f2", U, "17"),
        "josé@bücher.de": MemberState("f3", R),
        'odd"quote\\@x.com': MemberState("", S),  # any key survives the JSON encoding
    }
    path = store.record(entries, run_id="scheduled__2026-11-27T00:00:00+00:00")
    assert path.name.startswith("journal-0-scheduled__2026-11-27T00-00-00-00-00-")
    assert path.name.endswith("-000000.jsonl.gz")
    members, info = store_at(root).load()
    assert members == entries
    assert all(type(m) is MemberState for m in members.values())
    assert members["bob@example.com"].status is U  # the enum member itself, not a look-alike string
    assert (info.journals_applied, info.journal_entries, info.members) == (1, 4, 4)


def test_files_live_under_safe_account_and_list_folders(root):
    store = store_at(root)
    store.record({"a@b.co": MemberState("f", S)}, run_id="r1")
    assert store.directory.name == safe_name(LIST)
    assert "/" not in store.directory.name and " " not in store.directory.name
    assert names(store) == [f"journal-0-{safe_name('r1')}-000000.jsonl.gz"]
    other = store_at(root, list_key="VIP customers - EU")
    assert other.directory != store.directory


def test_empty_record_writes_nothing(root):
    store = store_at(root)
    assert store.record({}, run_id="r1") is None
    assert not store.directory.exists()


def test_status_may_be_given_as_its_letter_but_not_as_nonsense(root):
    store = store_at(root)
    store.record({"a@b.co": MemberState("f", "u")}, run_id="r1")
    assert store_at(root).load()[0]["a@b.co"].status is U
    with pytest.raises(ValueError, match="not a MemberStatus"):
        store.record({"a@b.co": MemberState("f", "subscribed")}, run_id="r1")


# ----------------------------------------------------------------------------------------- journals
def test_journals_apply_in_the_order_they_were_written(root):
    first = store_at(root)
    first.record({"a@x.co": MemberState("old", S), "b@x.co": MemberState("b", S)},
                 run_id="scheduled__2026-01-02")
    first.record({"a@x.co": MemberState("newer", S)}, run_id="scheduled__2026-01-02")
    # A later run whose id sorts *before* the first one's: still applied after it.
    second = store_at(root)
    second.load()
    second.record({"a@x.co": MemberState("", U), "c@x.co": MemberState("c", R)}, run_id="manual__2026-01-03")
    members, info = store_at(root).load()
    assert members == {"a@x.co": MemberState("", U), "b@x.co": MemberState("b", S),
                       "c@x.co": MemberState("c", R)}
    assert info.journals_applied == 3
    seqs = sorted(name.rsplit("-", 1)[1] for name in names(second))
    assert seqs == ["000000.jsonl.gz", "000001.jsonl.gz", "000002.jsonl.gz"]


def test_a_retry_of_the_same_run_never_overwrites_its_earlier_segments(root):
    store_at(root).record({"a@x.co": MemberState("1", S)}, run_id="run")
    store_at(root).record({"b@x.co": MemberState("2", S)}, run_id="run")  # new process, no load()
    members, _ = store_at(root).load()
    assert set(members) == {"a@x.co", "b@x.co"}


def test_truncated_journal_from_a_crash_is_skipped_with_a_warning(root):
    store = store_at(root)
    store.record({"a@x.co": MemberState("1", S)}, run_id="run")
    broken = store.record({"b@x.co": MemberState("2", S), "c@x.co": MemberState("3", S)}, run_id="run")
    data = read_bytes(broken)
    write_bytes(broken, data[: len(data) // 2])  # the process died mid-write
    fresh = store_at(root)
    members, info = fresh.load()
    assert members == {"a@x.co": MemberState("1", S)}
    assert info.skipped_journals == (broken.name,)
    assert len(info.warnings) == 1 and broken.name in info.warnings[0] and "sent again" in info.warnings[0]
    # recording carries on after the broken segment instead of overwriting it
    nxt = fresh.record({"b@x.co": MemberState("2", S)}, run_id="run")
    assert nxt.name.endswith("-000002.jsonl.gz")
    assert set(store_at(root).load()[0]) == {"a@x.co", "b@x.co"}


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not gzip at all",
        gzip.compress(b"{not json\n"),
        gzip.compress(b'{"generation": 0, "count": 2}\n["a@x.co","1","s",null]\n'),  # count mismatch
        gzip.compress(b'{"generation": 0, "count": 1}\n["a@x.co","1","?",null]\n'),  # unknown status
        gzip.compress(b'{"generation": 0, "count": 1}\n["a@x.co","1"]\n'),  # short entry
    ],
)
def test_unreadable_journal_segments_are_skipped(root, payload):
    store = store_at(root)
    store.record({"ok@x.co": MemberState("1", S)}, run_id="run")
    write_bytes(store.directory / f"journal-0-{safe_name('run')}-000001.jsonl.gz", payload)
    members, info = store_at(root).load()
    assert members == {"ok@x.co": MemberState("1", S)}
    assert len(info.skipped_journals) == 1


def test_a_transient_read_error_fails_the_load_instead_of_skipping(root, monkeypatch):
    store = store_at(root)
    store.record({"ok@x.co": MemberState("1", S)}, run_id="run")

    def flaky(self, journal):
        raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(StateStore, "_read_journal", flaky)
    with pytest.raises(ConnectionResetError):
        store_at(root).load()


# ---------------------------------------------------------------------------------------- snapshots
def test_compaction_replaces_journals_with_one_snapshot(root):
    store = store_at(root)
    store.record({"a@x.co": MemberState("1", S)}, run_id="r1")
    store.record({"b@x.co": MemberState("2", S)}, run_id="r1")
    members, _ = store.load()
    members["c@x.co"] = MemberState("3", R, "99")
    snapshot = store.compact(members)
    assert names(store) == ["snapshot-1.jsonl.gz"] == [snapshot.name]
    loaded, info = store_at(root).load()
    assert loaded == members
    assert (info.generation, info.snapshot, info.snapshot_entries, info.journals_applied) == (
        1, "snapshot-1.jsonl.gz", 3, 0)
    # the header line says what the file holds
    with gzip.open(io.BytesIO(read_bytes(snapshot))) as stream:
        header = json.loads(stream.readline())
    assert header["generation"] == 1 and header["count"] == 3 and "written_at" in header

    # journals written after compaction belong to generation 1 and apply on top of it
    store.record({"a@x.co": MemberState("", U)}, run_id="r2")
    loaded, info = store_at(root).load()
    assert loaded["a@x.co"] == MemberState("", U) and info.journals_applied == 1
    store.compact(loaded)
    assert names(store) == ["snapshot-2.jsonl.gz"]
    assert store_at(root).load()[0] == loaded


def test_crash_between_compaction_and_cleanup_is_harmless(root):
    store = store_at(root)
    store.record({"a@x.co": MemberState("old", S)}, run_id="r1")
    old_journal = next(store.directory.iterdir())
    old_bytes = read_bytes(old_journal)
    store.compact({"a@x.co": MemberState("new", S)})
    write_bytes(old_journal, old_bytes)  # as if the delete never happened
    write_bytes(store.directory / "snapshot-0.jsonl.gz", b"leftover")  # an older snapshot, never read
    members, info = store_at(root).load()
    assert members == {"a@x.co": MemberState("new", S)}
    assert info.generation == 1 and info.ignored_files == 2 and info.warnings == ()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "count"])
def test_corrupt_snapshot_raises_instead_of_starting_empty(root, damage):
    store = store_at(root)
    snapshot = store.compact({f"m{i}@x.co": MemberState(str(i), S) for i in range(500)})
    data = read_bytes(snapshot)
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "garbage":
        data = b"\x00" * 40
    else:
        lines = gzip.decompress(data).split(b"\n")
        data = gzip.compress(b"\n".join(lines[:-2] + [b""]))  # one entry lost, header says 500
    write_bytes(snapshot, data)
    with pytest.raises(StateCorruptError, match="Refusing to start from an empty state") as error:
        store_at(root).load()
    assert snapshot.name in str(error.value)


def test_a_transient_read_error_on_the_snapshot_is_not_called_corruption(root, monkeypatch):
    store_at(root).compact({"a@x.co": MemberState("1", S)})

    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(gzip, "GzipFile", Unreachable)
    with pytest.raises(ConnectionResetError):
        store_at(root).load()


def test_journals_without_their_snapshot_raise(root):
    store = store_at(root)
    snapshot = store.compact({"a@x.co": MemberState("1", S)})
    store.record({"b@x.co": MemberState("2", S)}, run_id="r")
    snapshot.unlink()
    with pytest.raises(StateCorruptError, match="snapshot-1.jsonl.gz"):
        store_at(root).load()


def test_compaction_refuses_to_overwrite_a_newer_state(root):
    a, b = store_at(root), store_at(root)
    a.load()
    b.load()
    a.compact({"a@x.co": MemberState("1", S)})
    with pytest.raises(StateConflictError, match="another run"):
        b.compact({"b@x.co": MemberState("2", S)})
    assert store_at(root).load()[0] == {"a@x.co": MemberState("1", S)}


def test_failed_compaction_leaves_the_previous_state(root):
    store = store_at(root)
    store.compact({"a@x.co": MemberState("1", S)})
    bad = {f"m{i}@x.co": MemberState(str(i), S) for i in range(20_000)} | {"z@x.co": MemberState("z", "?")}
    with pytest.raises(ValueError, match="not a MemberStatus"):
        store.compact(bad)
    assert names(store) == ["snapshot-1.jsonl.gz"]
    assert store_at(root).load()[0] == {"a@x.co": MemberState("1", S)}


def test_compact_without_load_continues_the_generations(root):
    store_at(root).compact({"a@x.co": MemberState("1", S)})
    store_at(root).compact({"a@x.co": MemberState("2", S)})
    assert names(store_at(root)) == ["snapshot-2.jsonl.gz"]


def test_a_loaded_state_is_packed_not_a_dict_of_tuples(root):
    """A million members must fit next to the audience: the loaded state takes ~75 bytes a member."""
    from airflow_provider_activecampaign.audience.compact_state import CompactState

    entries = {f"m{i}@x.co": MemberState(f"{i:012x}", S, str(i + 1)) for i in range(1000)}
    entries |= {"id@x.co": MemberState("samefp", S, "5"), "adopted@x.co": MemberState("", S)}
    store_at(root).compact(entries)
    members, _ = store_at(root).load()
    assert isinstance(members, CompactState) and members == entries
    assert members["id@x.co"] == MemberState("samefp", S, "5")
    assert members.nbytes() < 100 * len(entries)


def test_reading_in_small_pieces_cuts_lines_correctly(root, monkeypatch):
    from airflow_provider_activecampaign.audience import state as state_module

    members = {f"user{i}@exämple.com": MemberState(f"{i:012x}", S, str(i)) for i in range(200)}
    store_at(root).compact(members)
    monkeypatch.setattr(state_module, "_READ_BLOCK", 7)  # every block ends mid-line
    assert store_at(root).load()[0] == members


def test_large_state_round_trips(root):
    members = {
        f"user{i}@example.com": MemberState(f"{i:012x}", (S, U, R)[i % 3], str(i) if i % 7 == 0 else None)
        for i in range(30_000)
    }
    store_at(root).compact(members)
    loaded, info = store_at(root).load()
    assert loaded == members and info.snapshot_entries == 30_000


# ------------------------------------------------------------------------------------- verified header
META = StateMeta(api_url=ACCOUNT, user_id="1", list_id="7", list_name=LIST, active=2, unsubscribed=1,
                 reconciled_at="2026-12-01T10:00:00+00:00")


def test_the_snapshot_header_carries_meta_and_a_generation_unique_per_snapshot(root):
    store = store_at(root)
    members = {"a@x.com": MemberState("f", S, "1"), "b@x.com": MemberState("f", S),
               "c@x.com": MemberState("f", U, "3", 1764583200)}
    store.compact(members, meta=META)
    first = store.generation_id
    loaded, info = store_at(root).load()
    assert info.meta == META and info.generation_id == first and first.startswith("1-")
    assert loaded == members and loaded["c@x.com"].at == 1764583200
    assert store_at(root).peek_generation_id() == first
    other_root = root / "other"
    other = store_at(other_root)
    other.compact(members, meta=META)
    assert other.generation_id.startswith("1-") and other.generation_id != first  # another lineage


def test_an_old_snapshot_without_meta_loads_as_unverified(root):
    store = store_at(root)
    store.compact({"a@x.com": MemberState("f", S)})
    _members, info = store_at(root).load()
    assert info.meta is None and info.generation_id


def test_refusals_and_unsubscribes_keep_their_reason_time_and_attempts(root):
    store = store_at(root)
    entries = {"r@x.com": MemberState("f", R, None, 1764583200, "on the exclusion list", 2),
               "o@x.com": MemberState("g", MemberStatus.UNSUBSCRIBED_ELSEWHERE, "9", 1764583201, "reason")}
    store.record(entries, run_id="run")
    assert store_at(root).load()[0] == entries


def test_journal_events_give_the_batches_still_in_flight(root):
    store = store_at(root)
    store.record({}, run_id="r", events=[intent_event("r:1", "upsert", [("a@x.com", "f")]),
                                          intent_event("r:2", "remove", [("b@x.com", "g")])])
    store.record({"a@x.com": MemberState("f", S)}, run_id="r",
                 events=[submitted_event("r:1", "batch-1"), done_event("r:1"), submitted_event("r:2", "batch-2")])
    _members, info = store_at(root).load()
    assert [(b.key, b.kind, b.batch_id, b.members) for b in info.in_flight] == [
        ("r:2", "remove", "batch-2", (("b@x.com", "g"),))]


# ------------------------------------------------------------------------------------------ locking
def test_lock_is_written_and_released(root):
    store = store_at(root)
    with store.lock("run-1") as held:
        holder = store.read_lock()
        assert holder["run_id"] == "run-1" and holder["pid"] and holder["host"] and holder["acquired_at"]
        assert held.is_ours()
    assert store.read_lock() is None
    assert not store.lock_path.exists()


def test_lock_held_by_another_run_raises_with_who_and_since(root):
    store = store_at(root)
    with store.lock("scheduled__a"):
        with pytest.raises(StateLockedError) as error, store_at(root).lock("manual__b"):
            pytest.fail("must not get here")
        assert error.value.run_id == "scheduled__a"
        assert "scheduled__a" in str(error.value) and "since" in str(error.value)
        assert error.value.acquired_at
    assert store.read_lock() is None  # the refused run did not remove the holder's lock


def _plant_lock(store, run_id, age_seconds, *, host="old-worker", pid=1):
    moment = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age_seconds)).isoformat()
    store.directory.mkdir(parents=True, exist_ok=True)
    body = {"run_id": run_id, "acquired_at": moment, "heartbeat_at": moment, "host": host,
            "pid": pid, "token": "t-old"}
    write_bytes(store.lock_path, json.dumps(body).encode())


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_lock_is_taken_over(root):
    store = store_at(root)
    _plant_lock(store, "crashed_run", age_seconds=7 * 3600)
    with store.lock("new_run") as held:
        assert store.read_lock()["run_id"] == "new_run" and held.is_ours()
    assert store.read_lock() is None


def test_a_lease_renewed_elsewhere_is_respected_until_it_lapses(root):
    store = store_at(root)
    _plant_lock(store, "busy_run", age_seconds=120)  # another host, renewed 2 minutes ago
    with pytest.raises(StateLockedError, match="stops renewing for 300 s"), store.lock("new_run"):
        pass
    _plant_lock(store, "busy_run", age_seconds=301)  # stopped renewing: the default lease is 5 minutes
    with store.lock("new_run"):
        assert store.read_lock()["run_id"] == "new_run"
    _plant_lock(store, "busy_run", age_seconds=60)
    with store.lock("new_run", lease_seconds=30):
        assert store.read_lock()["run_id"] == "new_run"


def test_a_dead_process_on_this_host_loses_its_lock_at_once(root):
    store = store_at(root)
    _plant_lock(store, "killed_run", age_seconds=1, host=socket.gethostname(), pid=_dead_pid())
    with store.lock("next_run"):
        assert store.read_lock()["run_id"] == "next_run"


def test_a_live_process_on_this_host_keeps_its_lock(root):
    store = store_at(root)
    _plant_lock(store, "live_run", age_seconds=1, host=socket.gethostname(), pid=os.getpid())
    with pytest.raises(StateLockedError), store.lock("next_run"):
        pass


def test_the_holder_renews_its_lease_in_the_background(root):
    store = store_at(root, lease_seconds=0.5)  # renewed every 0.1 s
    with store.lock("long_run"):
        first = store.read_lock()["heartbeat_at"]
        time.sleep(0.6)
        assert store.read_lock()["heartbeat_at"] > first
        with pytest.raises(StateLockedError), store_at(root, lease_seconds=0.5).lock("other_run"):
            pass  # still renewed, so still held although older than the lease
    assert store.read_lock() is None


def test_retry_of_the_same_run_takes_the_lock_over(root):
    store = store_at(root)
    _plant_lock(store, "scheduled__x", age_seconds=5)  # attempt 1 died holding it
    with store.lock("scheduled__x"):
        assert store.read_lock()["token"] != "t-old"
    assert store.read_lock() is None


def test_release_leaves_a_lock_that_is_no_longer_ours(root):
    store = store_at(root)
    with store.lock("run-1"):
        _plant_lock(store, "run-2", age_seconds=0)  # taken over meanwhile (e.g. declared stale)
    assert store.read_lock()["run_id"] == "run-2"


def test_heartbeat_keeps_a_long_run_from_looking_abandoned(root):
    store = store_at(root)
    _plant_lock(store, "run-1", age_seconds=7 * 3600)
    with store.lock("run-1") as held:
        body = store.read_lock()
        body["acquired_at"] = body["heartbeat_at"] = "2000-01-01T00:00:00+00:00"
        write_bytes(store.lock_path, json.dumps(body).encode())
        assert held.heartbeat()
        with pytest.raises(StateLockedError), store_at(root).lock("run-2"):
            pass


def test_unreadable_lock_is_not_silently_ignored(root):
    store = store_at(root)
    store.directory.mkdir(parents=True, exist_ok=True)
    write_bytes(store.lock_path, b"{trunc")
    with pytest.raises(StateLockedError, match="unreadable"), store.lock("run-1"):
        pass


def test_lock_confirms_ownership_after_writing(root, monkeypatch):
    store = store_at(root)
    real_write = LeaseLock.write

    def racing_write(self, body):
        real_write(self, body)
        real_write(self, {**body, "run_id": "other", "token": "theirs"})  # another run wrote right after

    monkeypatch.setattr(LeaseLock, "write", racing_write)
    with pytest.raises(StateLockedError, match="Lost the race"), store.lock("run-1"):
        pass


# ------------------------------------------------------------------------------------------ rejects
def test_rejects_report(root):
    store = store_at(root)
    run_id = "manual__2026-11-27T10:00:00+00:00"
    expected = store.rejects_path(run_id)
    assert expected.name == f"{safe_name(run_id)}.csv"
    path = store.write_rejects(run_id, [("bad@", "invalid: nothing after @"),
                                        ("=cmd|' /C calc'!A0", "invalid: missing @"),
                                        ("josé@x.co", 'refused, "unsubscribed"')])
    assert path == expected
    text = read_bytes(path).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["email", "reason"]
    assert rows[1:] == [["bad@", "invalid: nothing after @"],
                        ["'=cmd|' /C calc'!A0", "invalid: missing @"],  # never run as a formula
                        ["josé@x.co", 'refused, "unsubscribed"']]
    assert "rejects" in str(path)


# --------------------------------------------------------------------------------------- safe names
@pytest.mark.parametrize(
    "key",
    ["VIP customers / EU", "https://acct.api-us1.com", "../../etc", "", "ünïcödé list", "a" * 300, "..."],
)
def test_safe_name(key):
    name = safe_name(key)
    assert name == safe_name(key)
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert not name.startswith(".") and len(name) <= 60


def test_safe_names_do_not_collide():
    keys = ["VIP customers", "VIP-customers", "vip customers", "VIP_customers", "VIP  customers"]
    assert len({safe_name(k) for k in keys}) == len(keys)


def test_load_info_is_a_plain_record():
    assert LoadInfo().warnings == () and LoadInfo(members=3).members == 3


def test_audience_modules_import_without_airflow():
    code = (
        "import sys\n"
        "import airflow_provider_activecampaign.audience.emails\n"
        "import airflow_provider_activecampaign.audience.records\n"
        "import airflow_provider_activecampaign.audience.state\n"
        "bad = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
