"""Sending: bulk import batches at the importer's pace, journaled, polled and repaired.

Every batch's intent (kind, emails, fingerprints) is journaled before it is sent, then its ``batchId``,
then its outcome. The journal is written once per batch: the segment written before batch *n* also
carries batch *n-1*'s ``batchId`` and the outcomes confirmed since. A batch whose outcome is missing
(the worker died, the status could not be read) is resolved by the next run from the journal: its batch
id is polled, or without one those members' memberships are read. Nothing is guessed.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_activecampaign.audience.journal import Journal
from airflow_provider_activecampaign.audience.plan import AudienceSyncRetryableError
from airflow_provider_activecampaign.audience.state import MemberState
from airflow_provider_activecampaign.exceptions import ActiveCampaignBulkImportRejectedError
from airflow_provider_activecampaign.importer import split_import_batches

__all__ = ["Batch", "ImportPipeline", "Journal", "repair_budget"]



def repair_budget(size: int) -> int:
    """Imports allowed to repair one refused batch: enough to bisect down to one bad contact
    (two imports per halving), not enough for a refusal that hits every contact (account, list or
    payload), which would otherwise become hundreds of one-contact imports."""
    return 2 * max(1, math.ceil(math.log2(max(2, size)))) + 2

Member = tuple[str, str, str]  # (email, fingerprint, category)
Outcome = Callable[["Batch", set[str], str], dict[str, MemberState]]


@dataclass
class Batch:
    """A batch sent (or about to be) to the bulk importer."""

    key: str
    kind: str  # "upsert" or "remove"
    members: list[Member]
    batch_id: str | None = None
    submitted_at: float = 0.0
    next_poll_at: float = 0.0
    polls: int = 0


class ImportPipeline:
    """Submit batches at the importer's pace; poll the oldest pending batch between submissions.

    The hook's bulk limiter spaces imports 0.6 s apart; one poll fits in each gap, so polls never push
    the account past its 5 requests/second.
    """

    def __init__(self, client: Any, journal: Journal, outcome: Outcome, *, clock: Callable[[], float],
                 sleep: Callable[[float], None], import_timeout: float, log: logging.Logger,
                 on_rejected: Callable[[Member, str], None]) -> None:
        self.client = client
        self.journal = journal
        self.outcome = outcome  # (batch, failed emails, failure status) -> entries to record
        self.clock = clock
        self.sleep = sleep
        self.import_timeout = import_timeout
        self.log = log
        self.on_rejected = on_rejected  # a contact refused in the request itself (never queued)
        self.pending: deque[Batch] = deque()

    # ------------------------------------------------------------------ sending
    def send(self, payloads: Iterator[dict], meta: dict[str, tuple[str, str]], *, kind: str) -> None:
        """Send every payload; returns once every batch's outcome is recorded (and journaled)."""
        try:
            for payload_batch in split_import_batches(payloads):
                self._poll_due()
                self._submit(payload_batch, meta, kind, budget=[repair_budget(len(payload_batch))])
            self._drain()
        finally:
            self.journal.flush()  # batch ids and outcomes so far: a retry resumes from them

    def _submit(self, payloads: list[dict], meta: dict[str, tuple[str, str]], kind: str, *,
                budget: list[int]) -> None:
        members = [(p["email"], *meta[p["email"]]) for p in payloads]
        batch = Batch(self.journal.new_key(), kind, members)
        self.journal.intent(batch.key, kind, ((e, fp) for e, fp, _c in members))
        self.journal.flush()  # the intent is durable before the request leaves
        try:
            answer = self.client.bulk_import(payloads)
        except ActiveCampaignBulkImportRejectedError as error:
            self.journal.done(batch.key, {})  # nothing was queued
            self._repair(payloads, error, meta, kind, budget)
            return
        batch.batch_id = str(answer.get("batchId") or answer.get("batchid") or "") or None
        if batch.batch_id:
            self.journal.submitted(batch.key, batch.batch_id)
        now = self.clock()
        batch.submitted_at, batch.next_poll_at = now, now + 1.0
        self.pending.append(batch)

    def _repair(self, payloads: list[dict], error: ActiveCampaignBulkImportRejectedError,
                meta: dict[str, tuple[str, str]], kind: str, budget: list[int]) -> None:
        """A batch refused whole: set aside the contacts it names, resend the rest, try those alone.

        The docs don't say whether failureReasons[].contact is 0- or 1-based, so both neighbours are
        suspects; each is sent alone, which names exactly what is wrong. Without a usable hint the batch
        is halved, within :func:`repair_budget` imports; a refusal that outlasts it is systematic: the
        remaining contacts are reported with the reason, not retried one by one.
        """
        message = error.api_message or str(error)
        suspects: set[int] = set()
        for reason in error.failure_reasons:
            if isinstance(reason, dict) and str(reason.get("contact", "")).isdigit():
                index = int(reason["contact"])
                suspects.update(i for i in (index, index - 1) if 0 <= i < len(payloads))
        if suspects and len(suspects) < len(payloads) and budget[0] >= len(suspects) + 1:
            self.log.warning("A batch of %d was refused whole (%s); retrying without %d suspect contact(s).",
                             len(payloads), message, len(suspects))
            rest = [p for i, p in enumerate(payloads) if i not in suspects]
            budget[0] -= len(suspects) + 1
            self._submit(rest, meta, kind, budget=budget)
            for i in sorted(suspects):
                self._submit([payloads[i]], meta, kind, budget=budget)
            return
        if len(payloads) == 1 or budget[0] < 2:
            why = "import refused" if len(payloads) == 1 else "batch refused whole, systematically"
            if len(payloads) > 1:
                self.log.warning("A batch of %d was refused whole (%s); not splitting it further: reported.",
                                 len(payloads), message)
            for payload in payloads:
                email = payload["email"]
                self.on_rejected((email, *meta[email]), f"{why}: {message}")
            return
        middle = len(payloads) // 2
        budget[0] -= 2
        for half in (payloads[:middle], payloads[middle:]):
            self._submit(half, meta, kind, budget=budget)

    # ------------------------------------------------------------------ polling
    def _drain(self) -> None:
        while self.pending:
            wait = self.pending[0].next_poll_at - self.clock()
            if wait > 0:
                self.sleep(wait)
            self._poll_due()

    def _poll_due(self) -> None:
        if not self.pending or self.pending[0].next_poll_at > self.clock():
            return
        head = self.pending[0]
        if not head.batch_id:  # queued without an id: its members' status is read by the next run
            self.pending.popleft()
            self.log.warning("ActiveCampaign queued a batch without a batchId; the next run reads its "
                             "members' status.")
            return
        status = self.client.get_import_status(head.batch_id)
        head.polls += 1
        state = status.get("status")
        if state in ("failed", "interrupted"):
            self.pending.popleft()
            failed = {m[0] for m in head.members}
            self.journal.done(head.key, self.outcome(head, failed, f"ActiveCampaign import batch {state}"))
            return
        if state != "completed":
            if self.clock() - head.submitted_at > self.import_timeout:
                raise AudienceSyncRetryableError(
                    f"Import batch {head.batch_id} not processed after {self.import_timeout:.0f}s (status "
                    f"{state!r}). Its id is journaled: a retry polls it and resumes from there."
                )
            head.next_poll_at = self.clock() + min(10.0, 1.0 * 2 ** min(head.polls, 4))
            return
        self.pending.popleft()
        failed = {str(e).strip().lower() for e in status.get("failure") or []}
        self.journal.done(head.key, self.outcome(head, failed, ""))

    def wait_for(self, batch: Batch) -> dict | None:
        """Poll one journaled batch until ActiveCampaign finished it; None when its status is unreadable."""
        started = self.clock()
        delay = 1.0
        while True:
            try:
                status = self.client.get_import_status(str(batch.batch_id))
            except Exception as error:  # an unknown or expired batch id: read the members instead
                self.log.warning("Could not read import batch %s (%s).", batch.batch_id, error)
                return None
            if status.get("status") in ("completed", "failed", "interrupted"):
                return status
            if self.clock() - started > self.import_timeout:
                raise AudienceSyncRetryableError(
                    f"Import batch {batch.batch_id} of an earlier attempt is still not processed after "
                    f"{self.import_timeout:.0f}s; a retry polls it again."
                )
            self.sleep(delay)
            delay = min(10.0, delay * 2)
