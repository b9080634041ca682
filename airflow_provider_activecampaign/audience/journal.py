"""The run's journal: batch intents, batch ids and outcomes, written once per batch.

Events live in the header of journal segments (see :mod:`.state`): ``intent`` (kind, emails and
fingerprints, written before the request), ``submitted`` (the ``batchId`` ActiveCampaign answered) and
``done`` (the outcome is in the same or an earlier segment's entries). An intent without ``done`` is a
batch in flight, which the next run resolves (:mod:`.resolve`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_activecampaign.audience.state import MemberState, StateStore

__all__ = ["InFlightBatch", "Journal", "done_event", "in_flight_batches", "intent_event", "submitted_event"]


@dataclass(frozen=True)
class InFlightBatch:
    """A batch whose intent was journaled but whose outcome was not (a crash, a lost confirmation)."""

    key: str
    kind: str  # "upsert", "remove" or "resubscribe"
    members: tuple[tuple[str, str], ...]  # (email, fingerprint)
    intended_at: int  # epoch seconds
    batch_id: str | None = None


def intent_event(key: str, kind: str, members: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Journal event: a batch is about to be sent (written before the request)."""
    return {"type": "intent", "key": key, "kind": kind, "at": int(time.time()),
            "members": [[email, fp] for email, fp in members]}


def submitted_event(key: str, batch_id: str) -> dict[str, Any]:
    """Journal event: ActiveCampaign queued the batch under ``batch_id``."""
    return {"type": "submitted", "key": key, "batch_id": batch_id}


def done_event(key: str) -> dict[str, Any]:
    """Journal event: the batch's outcome is recorded (in the same segment's entries)."""
    return {"type": "done", "key": key}


def in_flight_batches(events: Iterable[Mapping[str, Any]]) -> tuple[InFlightBatch, ...]:
    """The intents without a ``done``, with their batch id when one was journaled."""
    intents: dict[str, InFlightBatch] = {}
    for event in events:
        key = str(event.get("key"))
        kind = event.get("type")
        if kind == "intent":
            intents[key] = InFlightBatch(key=key, kind=str(event.get("kind")),
                                         members=tuple((str(e), str(f)) for e, f in event.get("members") or ()),
                                         intended_at=int(event.get("at") or 0))
        elif kind == "submitted" and key in intents:
            batch = intents[key]
            intents[key] = InFlightBatch(batch.key, batch.kind, batch.members, batch.intended_at,
                                         str(event.get("batch_id") or "") or None)
        elif kind == "done":
            intents.pop(key, None)
    return tuple(intents.values())


class Journal:
    """Buffers batch events and confirmed entries; :meth:`flush` writes them as one journal segment."""

    def __init__(self, store: StateStore | None, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.events: list[dict[str, Any]] = []
        self.entries: dict[str, MemberState] = {}
        self.confirmed: dict[str, MemberState] = {}  # everything this run recorded (for compaction)
        self.writes = 0
        self._seq = 0

    def new_key(self) -> str:
        self._seq += 1
        return f"{self.run_id}:{self._seq}"

    def intent(self, key: str, kind: str, members: Iterable[tuple[str, str]]) -> None:
        self.events.append(intent_event(key, kind, members))

    def submitted(self, key: str, batch_id: str) -> None:
        self.events.append(submitted_event(key, batch_id))

    def done(self, key: str | None, entries: dict[str, MemberState]) -> None:
        if key is not None:
            self.events.append(done_event(key))
        self.entries.update(entries)
        self.confirmed.update(entries)

    def flush(self) -> None:
        if not self.events and not self.entries:
            return
        if self.store is not None:
            self.store.record(self.entries, run_id=self.run_id, events=self.events)
            self.writes += 1
        self.events, self.entries = [], {}


