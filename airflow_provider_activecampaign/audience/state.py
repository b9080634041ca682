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

The snapshot's header records what it was verified against (:class:`StateMeta`: API URL, user id, list
id and name, the list's active/unsubscribed counts, the last full read-back) and a ``generation_id``
unique per snapshot (counter + random token), which the operator publishes where every worker sees it:
a copy whose id differs from the published one is stale.

Journal segments may also carry *events* in their header: a batch's intent (kind, emails,
fingerprints) written before it is sent, its ``batchId`` once ActiveCampaign queued it, and ``done``
once its outcome is recorded. :meth:`StateStore.load` returns the batches whose outcome is missing
(:attr:`LoadInfo.in_flight`) so the next run resolves them from ActiveCampaign instead of guessing.

Locking (:meth:`StateStore.lock`): a lease renewed while the run lives, see :mod:`.lease`.

Memory and speed: one :class:`MemberState` (a small NamedTuple holding one of the status members) per
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
import re
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from json.encoder import encode_basestring as _quote  # JSON string literal, non-ASCII kept as is
from typing import Any, NamedTuple

from airflow_provider_activecampaign.audience.journal import InFlightBatch, in_flight_batches
from airflow_provider_activecampaign.audience.lease import (
    DEFAULT_LEASE_SECONDS,
    Lease,
    LeaseLock,
    StateLockedError,
)

__all__ = [
    "InFlightBatch",
    "Lease",
    "LoadInfo",
    "MemberState",
    "MemberStatus",
    "StateConflictError",
    "StateCorruptError",
    "StateError",
    "StateLockedError",
    "StateMeta",
    "StateStore",
    "safe_name",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: member entries may carry at/note/attempts; snapshot header carries meta
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

    SUBSCRIBED = "s"  # we subscribed them and ActiveCampaign confirmed it (or the list read back says so)
    UNSUBSCRIBED = "u"  # this sync unsubscribed them, at ``at``: the only membership it may re-subscribe
    UNSUBSCRIBED_ELSEWHERE = "o"  # unsubscribed (bounced, ...) by anyone but this sync: never touched
    REFUSED = "r"  # the importer refused them (``note`` says why, ``attempts`` how often): offered again


_STATUS: dict[str, MemberStatus] = {status.value: status for status in MemberStatus}
# Works for members and for their plain letters alike ("s" == MemberStatus.SUBSCRIBED, same hash).
_CODES: dict[str, str] = {status.value: status.value for status in MemberStatus}


class MemberState(NamedTuple):
    """One member's state: the fingerprint of what was last confirmed, and its status.

    ``at`` (epoch seconds) is when this sync unsubscribed them (UNSUBSCRIBED), when someone else's
    unsubscribe was seen (UNSUBSCRIBED_ELSEWHERE) or when the importer refused them (REFUSED); ``note``
    is the reason, ``attempts`` how many times in a row they were refused.
    """

    fingerprint: str
    status: MemberStatus
    contact_id: str | None = None
    at: int | None = None
    note: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class StateMeta:
    """What a snapshot was verified against: the account, the list (by id) and its counts then."""

    api_url: str
    user_id: str | None
    list_id: str
    list_name: str
    active: int  # members with status 1 when the snapshot was written
    unsubscribed: int  # members with status 2
    reconciled_at: str | None  # ISO time of the last read-back of the whole list

    def as_dict(self) -> dict[str, Any]:
        return {"api_url": self.api_url, "user_id": self.user_id, "list_id": self.list_id,
                "list_name": self.list_name, "active": self.active, "unsubscribed": self.unsubscribed,
                "reconciled_at": self.reconciled_at}

    @classmethod
    def from_dict(cls, data: Any) -> StateMeta | None:
        if not isinstance(data, dict) or not data.get("list_id"):
            return None
        return cls(api_url=str(data.get("api_url") or ""), user_id=_opt_str(data.get("user_id")),
                   list_id=str(data["list_id"]), list_name=str(data.get("list_name") or ""),
                   active=int(data.get("active") or 0), unsubscribed=int(data.get("unsubscribed") or 0),
                   reconciled_at=_opt_str(data.get("reconciled_at")))


def _opt_str(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


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
    meta: StateMeta | None = None  # None: an old or unverified state (read the list back)
    generation_id: str | None = None  # "<generation>-<token>": unique per snapshot, published to workers
    in_flight: tuple[InFlightBatch, ...] = ()


class StateError(Exception):
    """Base class of the state store's errors."""


class StateCorruptError(StateError):
    """The state cannot be read; carrying on would mean starting from nothing."""


class StateConflictError(StateError):
    """Another process changed the state since this one loaded it."""


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
        for entry in entries:
            if len(entry) != 4:  # the long form: unsubscribe/refusal time, reason, attempts
                email, fingerprint, code, contact_id, at, note, attempts = entry
                into[email] = make((fingerprint, statuses[code], None if contact_id is None else str(contact_id),
                                    at, note, int(attempts or 0)))
                continue
            email, fingerprint, code, contact_id = entry
            status = statuses[code]
            if contact_id is None:
                state = shared.get(fingerprint)
                if state is None or state[1] is not status:
                    state = make((fingerprint, status, None, None, None, 0))
                    if room and fingerprint not in shared:
                        shared[fingerprint] = state
                        room = len(shared) < _SHARE_LIMIT
            else:
                state = make((fingerprint, status, str(contact_id), None, None, 0))
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

    def __init__(self, root: Any, *, account_key: str, list_key: str, lock_settle_seconds: float = 0.5,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS):
        if not account_key or not list_key:
            raise ValueError("account_key and list_key must be non-empty")
        self.root = root
        self.account_key = account_key
        self.list_key = list_key
        self.directory = root / safe_name(account_key) / safe_name(list_key)
        self.lock_settle_seconds = lock_settle_seconds
        self.lease_seconds = lease_seconds
        self.generation_id: str | None = None  # of the snapshot loaded or last written
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
        # Packed arrays, not a dict of tuples: ~75 bytes a member instead of ~390 (see compact_state).
        from airflow_provider_activecampaign.audience.compact_state import CompactState

        members: Any = CompactState()
        snapshot_entries = 0
        snapshot_name = None
        header: dict[str, Any] = {}
        if generation:
            snapshot_name = snapshots[generation].name
            snapshot_entries, header = self._read_snapshot(snapshots[generation], generation, members)
        events: list[dict[str, Any]] = []
        current = sorted((j for j in journals if j.generation == generation),
                         key=lambda j: (j.seq, j.run_key))
        ignored = len(snapshots) - (1 if generation else 0) + len(journals) - len(current)
        warnings: list[str] = []
        skipped: list[str] = []
        applied = journal_entries = 0
        for journal in current:
            try:
                entries, segment_events = self._read_journal(journal)
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
            events.extend(segment_events)
            applied += 1
            journal_entries += len(entries)
        self._generation, self._next_seq = generation, next_seq
        self.generation_id = _generation_id(generation, header)
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
            meta=StateMeta.from_dict(header.get("meta")),
            generation_id=self.generation_id,
            in_flight=in_flight_batches(events),
        )
        return members, info

    def _read_snapshot(self, path: Any, generation: int,
                       members: Any) -> tuple[int, dict[str, Any]]:
        parser = _Parser()
        count = 0
        try:
            with path.open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                header = json.loads(stream.readline())
                if not isinstance(header, dict) or header.get("generation") != generation:
                    raise ValueError(f"header {header!r} does not match generation {generation}")
                with gc_paused():
                    for block in _line_blocks(stream):
                        part: dict[str, MemberState] = {}  # one block at a time, then packed in bulk
                        count += parser.parse(block, part)
                        members.extend(part)
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
        return count, header

    def _read_journal(self, journal: _Journal) -> tuple[dict[str, MemberState], list[dict[str, Any]]]:
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
        events = header.get("events") or []
        if not isinstance(events, list):
            raise ValueError("events is not a list")
        return entries, events

    def peek_generation_id(self) -> str | None:
        """The generation id of the newest snapshot on the store now (reads only its header line)."""
        snapshots, _journals = self._scan()
        if not snapshots:
            return None
        generation = max(snapshots)
        try:
            with snapshots[generation].open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                header = json.loads(stream.readline())
        except _FORMAT_ERRORS:
            return None
        return _generation_id(generation, header if isinstance(header, dict) else {})

    # ------------------------------------------------------------------------------------- writing
    @staticmethod
    def _entry_line(email: str, state: MemberState) -> str:
        fingerprint, status, contact_id, at, note, attempts = state
        code = _status_code(status)
        cid = "null" if contact_id is None else _quote(str(contact_id))
        if at is None and note is None and not attempts:
            return f'[{_quote(email)},{_quote(fingerprint)},"{code}",{cid}]'
        when = "null" if at is None else str(int(at))
        why = "null" if note is None else _quote(str(note))
        return f'[{_quote(email)},{_quote(fingerprint)},"{code}",{cid},{when},{why},{int(attempts or 0)}]'

    def record(self, entries: Mapping[str, MemberState], *, run_id: str,
               events: Iterable[Mapping[str, Any]] = ()) -> Any:
        """Commit the members confirmed batches changed, and batch events: one new journal segment.

        ``events`` are batch intents/ids/outcomes (see :func:`intent_event`). Returns the segment's path;
        nothing is written (and ``None`` returned) when both are empty.
        """
        events = list(events)
        if not entries and not events:
            return None
        if self._generation is None or self._next_seq is None:
            self._generation, self._next_seq = self._position(*self._scan())
        generation, seq = self._generation, self._next_seq
        header = {"generation": generation, "run_id": run_id, "seq": seq,
                  "written_at": _now().isoformat(), "count": len(entries), "format": FORMAT_VERSION}
        if events:
            header["events"] = events
        lines = [self._encode(header)]
        lines.extend(self._entry_line(email, state) for email, state in entries.items())
        data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=6, mtime=0)
        path = self.directory / f"journal-{generation}-{safe_name(run_id)}-{seq:06d}.jsonl.gz"
        self._ensure_directory()
        with path.open("wb") as stream:
            stream.write(data)
        self._next_seq = seq + 1
        return path

    def compact(self, members: Mapping[str, MemberState], *, meta: StateMeta | None = None) -> Any:
        """Replace the whole state with ``members``: a new snapshot, then old files deleted.

        ``meta`` is what the snapshot was verified against (written to its header); the new snapshot's
        :attr:`generation_id` is what the caller publishes.

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
        header: dict[str, Any] = {"generation": generation, "token": uuid.uuid4().hex[:12],
                                  "written_at": _now().isoformat(), "count": len(members), "format": FORMAT_VERSION}
        if meta is not None:
            header["meta"] = meta.as_dict()
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
        self.generation_id = _generation_id(generation, header)
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

    def _lease_lock(self) -> LeaseLock:
        return LeaseLock(self.lock_path, settle_seconds=self.lock_settle_seconds,
                         lease_seconds=self.lease_seconds)

    def read_lock(self) -> dict[str, Any] | None:
        """The current lock's content, or ``None`` when the list is not locked."""
        return self._lease_lock().read()

    def acquire_lock(self, run_id: str, *, lease_seconds: float | None = None, heartbeat: bool = True) -> Lease:
        """Take the list's lease (see :mod:`.lease`); release it with :meth:`Lease.release`."""
        self._ensure_directory()
        return self._lease_lock().acquire(run_id, lease_seconds=lease_seconds, heartbeat=heartbeat)

    @contextlib.contextmanager
    def lock(self, run_id: str, *, lease_seconds: float | None = None) -> Iterator[Lease]:
        """Hold the list's lease for the duration of the block, renewing it in the background.

        Raises :class:`StateLockedError` while another live run holds it. A retry of the same run id, a
        holder on this host whose process is gone, and a holder that stopped renewing for
        ``lease_seconds`` are taken over. On exit the lock is deleted only if it is still ours.
        """
        held = self.acquire_lock(run_id, lease_seconds=lease_seconds)
        try:
            yield held
        finally:
            held.release()

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


def _generation_id(generation: int, header: Mapping[str, Any]) -> str | None:
    if not generation:
        return None
    return f"{generation}-{header.get('token') or 'v1'}"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
