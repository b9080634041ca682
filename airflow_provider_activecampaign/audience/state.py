"""What ActiveCampaign confirmed for one list, kept between runs so a run sends only what changed.

The state of one (account, list) lives in its own folder, ``<root>/<account>/<list>/`` (both keys made
safe, see :func:`safe_name`)::

    snapshot-<generation>.jsonl.gz                     all members, first line a header
    journal-<generation>-<run>-<seq:06d>.jsonl.gz      the members one confirmed batch changed
    lock.json                                          the run holding the list, while it runs
    rejects/<run>.csv                                  rows a run could not send, and why

It works on any path-like object offering ``/``, ``open("rb"|"wb")``, ``exists()``, ``unlink()``,
``iterdir()``, ``mkdir(parents=True, exist_ok=True)`` and ``.name``: :class:`pathlib.Path`, Airflow's
``ObjectStoragePath`` and ``upath.UPath`` (``s3://``, ``gs://``, ``memory://`` ...). Nothing else is used:
object stores have no atomic rename and no append, so every file is written whole by one ``open("wb")``
and never modified afterwards.

Crash safety:

* :meth:`StateStore.record` is the commit point of a confirmed batch: one new journal segment. A crash
  while writing it leaves a truncated segment (or, on object stores, none at all); :meth:`~StateStore.load`
  skips a segment it cannot read completely and says so in :class:`LoadInfo`. Those members were never
  recorded as confirmed, so the next run simply sends them again (imports are idempotent upserts).
* :meth:`StateStore.compact` writes the next generation's snapshot, checks it reads back whole, and only
  then deletes the older snapshot and journals. Loading always starts from the highest generation and
  ignores older journals, so a crash at any point leaves a loadable state.
* An unreadable *snapshot* is an error (:class:`StateCorruptError`), never an empty state: starting empty
  would resend the whole audience and, worse, blind the removal guards.

Journal segments are applied in the order they were written: ``seq`` counts up across all runs of a
generation (a new store continues after the highest ``seq`` already there), so ordering by ``seq`` is
chronological, which ordering by run id would not be (``manual__...`` sorts before ``scheduled__...``
whatever the dates).

Locking (:meth:`StateStore.lock`) is best effort: object stores offer no atomic create-if-absent here, so
two runs starting within the same instant could both believe they hold the lock; writing, pausing
``lock_settle_seconds`` and reading back narrows that window to the gap between one run's check and its
write. The primary guard is Airflow's: ``max_active_runs=1`` on the DAG and a pool per list or account.

Memory and speed: one :class:`MemberState` (a 3-tuple holding one of the three status members) per
member, and members with equal fingerprints share one; the snapshot is streamed from gzip and parsed a
megabyte at a time. Measured for 1,000,000 members (27-character emails, CPython 3.11): about 115 MB
for an email-only audience, about 255 MB when every member's attributes differ, ~1-2 s of CPU to load;
writing that snapshot takes ~2 s and ~20 MB.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import gc
import gzip
import hashlib
import io
import json
import logging
import os
import re
import socket
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from json.encoder import encode_basestring as _quote  # JSON string literal, non-ASCII kept as is
from typing import Any, NamedTuple

__all__ = [
    "LoadInfo",
    "MemberState",
    "MemberStatus",
    "StateConflictError",
    "StateCorruptError",
    "StateError",
    "StateLock",
    "StateLockedError",
    "StateStore",
    "safe_name",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
LOCK_NAME = "lock.json"
REJECTS_FOLDER = "rejects"
_SNAPSHOT = re.compile(r"snapshot-(\d+)\.jsonl\.gz")
_JOURNAL = re.compile(r"journal-(\d+)-(.+)-(\d{6,})\.jsonl\.gz")
_CHUNK = 10_000
_READ_BLOCK = 1 << 20  # bytes of decompressed lines parsed per json.loads call
_SHARE_LIMIT = 1 << 14
# What a damaged file raises. Other OSErrors (network, permissions) propagate unchanged: a transient
# read failure must fail the task (and be retried), never be mistaken for a damaged file.
_FORMAT_ERRORS = (gzip.BadGzipFile, EOFError, ValueError, KeyError, TypeError, IndexError, zlib.error)


class MemberStatus(str, Enum):
    """What ActiveCampaign confirmed about a member of the list."""

    SUBSCRIBED = "s"  # we subscribed them and ActiveCampaign confirmed it
    UNSUBSCRIBED = "u"  # this sync unsubscribed them
    REFUSED = "r"  # ActiveCampaign refused them (unsubscribed themselves, excluded, bounced ...)


_STATUS: dict[str, MemberStatus] = {status.value: status for status in MemberStatus}
# Works for members and for their plain letters alike ("s" == MemberStatus.SUBSCRIBED, same hash).
_CODES: dict[str, str] = {status.value: status.value for status in MemberStatus}


class MemberState(NamedTuple):
    """One member's state: the fingerprint of what was last confirmed, and its status."""

    fingerprint: str
    status: MemberStatus
    contact_id: str | None = None


@dataclass(frozen=True)
class LoadInfo:
    """How :meth:`StateStore.load` went."""

    generation: int = 0
    snapshot: str | None = None  # file name, None when there is no snapshot yet
    snapshot_entries: int = 0
    journals_applied: int = 0
    journal_entries: int = 0
    skipped_journals: tuple[str, ...] = ()  # unreadable segments (a crash while writing them)
    ignored_files: int = 0  # older generations left by an interrupted compaction
    members: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()


class StateError(Exception):
    """Base class of the state store's errors."""


class StateCorruptError(StateError):
    """The state cannot be read; carrying on would mean starting from nothing."""


class StateConflictError(StateError):
    """Another process changed the state since this one loaded it."""


class StateLockedError(StateError):
    """Another run holds the list's lock."""

    def __init__(self, message: str, *, holder: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = dict(holder or {})
        self.run_id = self.holder.get("run_id")
        self.acquired_at = self.holder.get("acquired_at")
        self.host = self.holder.get("host")
        self.pid = self.holder.get("pid")


def safe_name(key: str) -> str:
    """A file/object name for any key: readable slug + 10 hex digits of its hash (so no two collide).

    ``"VIP customers / EU"`` -> ``"VIP-customers-EU-<hash>"``.
    """
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", key).strip("-._")[:48].strip("-._") or "key"
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=5).hexdigest()
    return f"{slug}-{digest}"


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _status_code(status: MemberStatus | str) -> str:
    try:
        return _CODES[status]
    except (KeyError, TypeError):
        raise ValueError(f"{status!r} is not a MemberStatus") from None


class _Parser:
    """Turns blocks of entry lines into MemberStates, sharing identical ones.

    Members with equal attributes have equal fingerprints (the email is not part of it), so an
    email-only audience of a million members needs only a handful of distinct MemberState objects.
    The sharing table is bounded: past ``_SHARE_LIMIT`` distinct states, new ones are no longer shared.
    """

    def __init__(self) -> None:
        self.shared: dict[str, MemberState] = {}  # fingerprint -> the first state seen with it

    def parse(self, block: bytes, into: dict[str, MemberState]) -> int:
        """Parse whole lines (``block`` ends with a newline) into ``into``; returns the entry count.

        One ``json.loads`` per block: JSON strings never hold a raw newline, so the lines become the
        elements of one array by turning newlines into commas.
        """
        if not block:
            return 0
        if not block.endswith(b"\n"):
            block += b"\n"  # a last line without its newline: parse it, the counts will tell
        lines = block.count(b"\n")
        entries = json.loads(b"[" + block[:-1].replace(b"\n", b",") + b"]")
        if len(entries) != lines:
            raise ValueError(f"{lines} lines held {len(entries)} entries")
        shared, statuses, make = self.shared, _STATUS, MemberState._make
        room = len(shared) < _SHARE_LIMIT
        for email, fingerprint, code, contact_id in entries:
            status = statuses[code]
            if contact_id is None:
                state = shared.get(fingerprint)
                if state is None or state[1] is not status:
                    state = make((fingerprint, status, None))
                    if room and fingerprint not in shared:
                        shared[fingerprint] = state
                        room = len(shared) < _SHARE_LIMIT
            else:
                state = make((fingerprint, status, str(contact_id)))
            into[email] = state
        return lines


def _line_blocks(stream: Any) -> Iterator[bytes]:
    """Read ``stream`` in big pieces cut after the last newline of each."""
    rest = b""
    while chunk := stream.read(_READ_BLOCK):
        chunk = rest + chunk if rest else chunk
        cut = chunk.rfind(b"\n") + 1
        rest = chunk[cut:]
        if cut:
            yield chunk[:cut]
    if rest:
        yield rest


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a million objects that form no cycles: it
    would rescan them over and over (3x slower state loads, ~15% slower audience reads)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Journal(NamedTuple):
    generation: int
    seq: int
    run_key: str
    path: Any


class StateStore:
    """Snapshot + journal state of one list of one account, on a local or object-store path."""

    def __init__(self, root: Any, *, account_key: str, list_key: str, lock_settle_seconds: float = 0.5):
        if not account_key or not list_key:
            raise ValueError("account_key and list_key must be non-empty")
        self.root = root
        self.account_key = account_key
        self.list_key = list_key
        self.directory = root / safe_name(account_key) / safe_name(list_key)
        self.lock_settle_seconds = lock_settle_seconds
        self._generation: int | None = None
        self._next_seq: int | None = None
        self._directory_ready = False
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def __repr__(self) -> str:
        return f"StateStore({str(self.directory)!r})"

    # ------------------------------------------------------------------------------------ listing
    def _ensure_directory(self) -> None:
        if not self._directory_ready:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._directory_ready = True

    def _scan(self) -> tuple[dict[int, Any], list[_Journal]]:
        snapshots: dict[int, Any] = {}
        journals: list[_Journal] = []
        try:
            children = list(self.directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            return snapshots, journals
        for child in children:
            name = child.name
            if match := _SNAPSHOT.fullmatch(name):
                snapshots[int(match[1])] = child
            elif match := _JOURNAL.fullmatch(name):
                journals.append(_Journal(int(match[1]), int(match[3]), match[2], child))
        return snapshots, journals

    def _position(self, snapshots: dict[int, Any], journals: list[_Journal]) -> tuple[int, int]:
        generation = max(snapshots, default=0)
        next_seq = max((j.seq for j in journals if j.generation == generation), default=-1) + 1
        return generation, next_seq

    # --------------------------------------------------------------------------------------- load
    def load(self) -> tuple[dict[str, MemberState], LoadInfo]:
        """Every member's state: the newest snapshot plus its generation's journals, in order."""
        started = time.perf_counter()
        snapshots, journals = self._scan()
        generation, next_seq = self._position(snapshots, journals)
        orphans = sorted({j.generation for j in journals if j.generation > generation})
        if orphans:
            raise StateCorruptError(
                f"State in {self.directory} has journal segments of generation {orphans[0]} but no "
                f"snapshot-{orphans[0]}.jsonl.gz: the snapshot they build on is missing. Restore it, or "
                "delete the folder so the next run rebuilds from ActiveCampaign (full refresh)."
            )
        members: dict[str, MemberState] = {}
        snapshot_entries = 0
        snapshot_name = None
        if generation:
            snapshot_name = snapshots[generation].name
            snapshot_entries = self._read_snapshot(snapshots[generation], generation, members)
        current = sorted((j for j in journals if j.generation == generation),
                         key=lambda j: (j.seq, j.run_key))
        ignored = len(snapshots) - (1 if generation else 0) + len(journals) - len(current)
        warnings: list[str] = []
        skipped: list[str] = []
        applied = journal_entries = 0
        for journal in current:
            try:
                entries = self._read_journal(journal)
            except _FORMAT_ERRORS as error:
                message = (
                    f"Skipped unreadable journal segment {journal.path.name} ({type(error).__name__}: "
                    f"{error}); a run probably stopped while writing it, so its batch was never recorded "
                    "as confirmed and will be sent again."
                )
                log.warning(message)
                warnings.append(message)
                skipped.append(journal.path.name)
                continue
            members.update(entries)
            applied += 1
            journal_entries += len(entries)
        self._generation, self._next_seq = generation, next_seq
        info = LoadInfo(
            generation=generation,
            snapshot=snapshot_name,
            snapshot_entries=snapshot_entries,
            journals_applied=applied,
            journal_entries=journal_entries,
            skipped_journals=tuple(skipped),
            ignored_files=ignored,
            members=len(members),
            seconds=time.perf_counter() - started,
            warnings=tuple(warnings),
        )
        return members, info

    def _read_snapshot(self, path: Any, generation: int, members: dict[str, MemberState]) -> int:
        parser = _Parser()
        count = 0
        try:
            with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                header = json.loads(stream.readline())
                if not isinstance(header, dict) or header.get("generation") != generation:
                    raise ValueError(f"header {header!r} does not match generation {generation}")
                with gc_paused():
                    for block in _line_blocks(stream):
                        count += parser.parse(block, members)
            if count != header.get("count"):
                raise ValueError(f"{count} entries but the header says {header.get('count')}")
        except _FORMAT_ERRORS as error:
            older = sorted(g for g in self._scan()[0] if g < generation)
            hint = (
                f"If it was left by a crash while compacting, delete it to fall back on "
                f"snapshot-{older[-1]}.jsonl.gz; otherwise delete" if older else "Restore it, or delete"
            )
            raise StateCorruptError(
                f"The state snapshot {path} is unreadable ({type(error).__name__}: {error}). Refusing to "
                f"start from an empty state, which would resend every contact and disable the removal "
                f"guards. {hint} the folder {self.directory} so the next run rebuilds from ActiveCampaign "
                "(full refresh)."
            ) from error
        return count

    def _read_journal(self, journal: _Journal) -> dict[str, MemberState]:
        with journal.path.open("rb") as raw:
            data = gzip.decompress(raw.read())
        header_line, _, body = data.partition(b"\n")
        if not header_line:
            raise ValueError("empty segment")
        header = json.loads(header_line)
        if not isinstance(header, dict) or header.get("generation") != journal.generation:
            raise ValueError(f"header {header!r} does not match the file name")
        entries: dict[str, MemberState] = {}
        count = _Parser().parse(body, entries)
        if header.get("count") != count:
            raise ValueError(f"{count} entries but the header says {header.get('count')}")
        return entries

    # ------------------------------------------------------------------------------------- writing
    @staticmethod
    def _entry_line(email: str, state: MemberState) -> str:
        fingerprint, status, contact_id = state
        code = _status_code(status)
        cid = "null" if contact_id is None else _quote(str(contact_id))
        return f'[{_quote(email)},{_quote(fingerprint)},"{code}",{cid}]'

    def record(self, entries: Mapping[str, MemberState], *, run_id: str) -> Any:
        """Commit the members one confirmed batch changed: one new journal segment. Returns its path.

        Nothing is written (and ``None`` returned) for an empty mapping.
        """
        if not entries:
            return None
        if self._generation is None or self._next_seq is None:
            self._generation, self._next_seq = self._position(*self._scan())
        generation, seq = self._generation, self._next_seq
        header = {"generation": generation, "run_id": run_id, "seq": seq,
                  "written_at": _now().isoformat(), "count": len(entries), "format": FORMAT_VERSION}
        lines = [self._encode(header)]
        lines.extend(self._entry_line(email, state) for email, state in entries.items())
        data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=6, mtime=0)
        path = self.directory / f"journal-{generation}-{safe_name(run_id)}-{seq:06d}.jsonl.gz"
        self._ensure_directory()
        with path.open("wb") as stream:
            stream.write(data)
        self._next_seq = seq + 1
        return path

    def compact(self, members: Mapping[str, MemberState]) -> Any:
        """Replace the whole state with ``members``: a new snapshot, then old files deleted.

        ``members`` must be the complete state (what :meth:`load` returned with this run's changes
        applied). Raises :class:`StateConflictError` if another process compacted since :meth:`load`.
        Returns the new snapshot's path.
        """
        snapshots, journals = self._scan()
        current = max(snapshots, default=0)
        if self._generation is not None and current != self._generation:
            raise StateConflictError(
                f"The state in {self.directory} moved from generation {self._generation} to {current} "
                "since it was loaded: another run wrote it. Not overwriting; the next run starts from "
                "the newer state."
            )
        generation = current + 1
        path = self.directory / f"snapshot-{generation}.jsonl.gz"
        self._ensure_directory()
        header = {"generation": generation, "written_at": _now().isoformat(), "count": len(members),
                  "format": FORMAT_VERSION}
        written = 0
        try:
            with path.open("wb") as raw, gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0
            ) as stream:
                stream.write((self._encode(header) + "\n").encode("utf-8"))
                chunk: list[str] = []
                for email, state in members.items():
                    chunk.append(self._entry_line(email, state))
                    if len(chunk) >= _CHUNK:
                        stream.write(("\n".join(chunk) + "\n").encode("utf-8"))
                        written += len(chunk)
                        chunk.clear()
                if chunk:
                    stream.write(("\n".join(chunk) + "\n").encode("utf-8"))
                    written += len(chunk)
        except BaseException:
            self._delete(path)  # closing it may have stored a partial file; never leave one behind
            raise
        self._verify_snapshot(path, written + 1)
        # Old snapshots first, then journals: while an older snapshot exists, its journals all do too.
        for old in sorted(snapshots):
            self._delete(snapshots[old])
        for journal in journals:
            if journal.generation < generation:
                self._delete(journal.path)
        self._generation, self._next_seq = generation, 0
        return path

    def _verify_snapshot(self, path: Any, lines: int) -> None:
        counted = 0
        try:
            with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                while block := stream.read(1 << 20):
                    counted += block.count(b"\n")
        except (OSError, *_FORMAT_ERRORS) as error:
            counted = -1
            reason = f"{type(error).__name__}: {error}"
        else:
            reason = f"{counted} lines read back, {lines} written"
        if counted != lines:
            self._delete(path)
            raise StateCorruptError(
                f"The new snapshot {path} did not read back whole ({reason}); it was removed and the "
                "previous state kept."
            )

    def _delete(self, path: Any) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as error:  # leftovers are ignored by load(); never fail a finished run for them
            log.warning("Could not delete %s: %s", path, error)

    # ------------------------------------------------------------------------------------- locking
    @property
    def lock_path(self) -> Any:
        return self.directory / LOCK_NAME

    def read_lock(self) -> dict[str, Any] | None:
        """The current lock's content, or ``None`` when the list is not locked."""
        path = self.lock_path
        try:
            if not path.exists():
                return None
            with path.open("rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(data)
            if not isinstance(holder, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            raise StateLockedError(
                f"The lock {path} is unreadable ({error}). If no run is working on this list, delete it."
            ) from error
        return holder

    def acquire_lock(self, run_id: str, *, stale_after_seconds: float = 6 * 3600) -> StateLock:
        """Take the list's lock (see :meth:`lock`); release it with :meth:`StateLock.release`."""
        holder = self.read_lock()
        if holder is not None:
            age = _lock_age(holder)
            if holder.get("run_id") == run_id:
                log.info("Taking over the lock of an earlier attempt of run %s (%s).", run_id, _who(holder))
            elif age is not None and age > stale_after_seconds:
                log.warning("Taking over a stale lock (%s, %.0f s old).", _who(holder), age)
            else:
                raise StateLockedError(
                    f"Another run holds the lock on {self.directory}: {_who(holder)}. Two runs on the "
                    f"same list would corrupt its state; wait for it to finish. A lock older than "
                    f"{stale_after_seconds:.0f} s is considered abandoned; if you are sure that run is "
                    f"dead, delete {self.lock_path}.",
                    holder=holder,
                )
        now = _now().isoformat()
        token = uuid.uuid4().hex
        body = {"run_id": run_id, "acquired_at": now, "heartbeat_at": now, "host": socket.gethostname(),
                "pid": os.getpid(), "token": token}
        self._ensure_directory()
        self._write_lock(body)
        if self.lock_settle_seconds:
            time.sleep(self.lock_settle_seconds)
        confirmed = self.read_lock()
        if confirmed is None or confirmed.get("token") != token:
            raise StateLockedError(
                f"Lost the race for the lock on {self.directory} to "
                f"{_who(confirmed) if confirmed else 'a run that already released it'}.",
                holder=confirmed,
            )
        return StateLock(self, body)

    @contextlib.contextmanager
    def lock(self, run_id: str, *, stale_after_seconds: float = 6 * 3600) -> Iterator[StateLock]:
        """Hold the list's lock for the duration of the block.

        Raises :class:`StateLockedError` when another run holds a lock younger than
        ``stale_after_seconds`` (since its last :meth:`StateLock.heartbeat`). A retry of the same run id
        takes the lock over. On exit the lock is deleted only if it is still ours.
        """
        held = self.acquire_lock(run_id, stale_after_seconds=stale_after_seconds)
        try:
            yield held
        finally:
            held.release()

    def _write_lock(self, body: Mapping[str, Any]) -> None:
        with self.lock_path.open("wb") as stream:
            stream.write(json.dumps(body).encode("utf-8"))

    # ------------------------------------------------------------------------------------- rejects
    def rejects_path(self, run_id: str) -> Any:
        """Where :meth:`write_rejects` puts a run's rejects report."""
        return self.directory / REJECTS_FOLDER / f"{safe_name(run_id)}.csv"

    def write_rejects(self, run_id: str, rows: Iterable[tuple[str, str]]) -> Any:
        """Write the CSV ``email,reason`` report of a run's rejected rows; returns its path.

        Cells starting with ``= + - @`` get a leading ``'`` so spreadsheets never run them as formulas.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(("email", "reason"))
        writer.writerows((_cell(email), _cell(reason)) for email, reason in rows)
        path = self.rejects_path(run_id)
        (self.directory / REJECTS_FOLDER).mkdir(parents=True, exist_ok=True)
        with path.open("wb") as stream:
            stream.write(buffer.getvalue().encode("utf-8"))
        return path


class StateLock:
    """A held lock; :meth:`heartbeat` during long runs keeps it from looking abandoned."""

    def __init__(self, store: StateStore, body: dict[str, Any]):
        self.store = store
        self.body = body
        self.released = False

    @property
    def run_id(self) -> str:
        return self.body["run_id"]

    def is_ours(self) -> bool:
        try:
            current = self.store.read_lock()
        except StateLockedError:
            return False
        return current is not None and current.get("token") == self.body["token"]

    def heartbeat(self) -> bool:
        """Refresh the lock's ``heartbeat_at``; ``False`` (and nothing written) if it was taken over."""
        if self.released or not self.is_ours():
            return False
        self.body["heartbeat_at"] = _now().isoformat()
        self.store._write_lock(self.body)
        return True

    def release(self) -> None:
        """Delete the lock if it is still ours; leave another run's lock alone."""
        if self.released:
            return
        self.released = True
        if self.is_ours():
            self.store._delete(self.store.lock_path)
        else:
            log.warning("The lock on %s was taken over by another run; leaving it in place.",
                        self.store.directory)


def _lock_age(holder: Mapping[str, Any]) -> float | None:
    times = []
    for key in ("acquired_at", "heartbeat_at"):
        try:
            moment = _dt.datetime.fromisoformat(str(holder[key]))
        except (KeyError, ValueError):
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        times.append(moment)
    if not times:
        return None
    return (_now() - max(times)).total_seconds()


def _who(holder: Mapping[str, Any]) -> str:
    return (f"run {holder.get('run_id')!r} on host {holder.get('host')!r} (pid {holder.get('pid')}), "
            f"since {holder.get('acquired_at')}")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
