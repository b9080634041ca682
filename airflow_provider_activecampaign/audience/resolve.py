"""Batches an earlier attempt journaled but never confirmed, resolved from ActiveCampaign.

* A batch with a journaled ``batchId`` is polled: once processed, its outcome is recorded as if the
  earlier attempt had confirmed it (failures included).
* Without a batch id (the worker died between the request and the journal write) or when its status
  cannot be read, an upsert is simply planned again (imports are idempotent upserts), while removals and
  re-subscriptions are resolved by reading those members' memberships: a status-2 membership that changed
  after the intent, with no reason, campaign or automation behind it, is this sync's unsubscribe; any
  other status 2 was someone else's. A lost confirmation is never taken for the contact's own unsubscribe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_activecampaign.audience.consent import membership_status, parse_time
from airflow_provider_activecampaign.audience.pipeline import Batch, ImportPipeline, Journal
from airflow_provider_activecampaign.audience.state import InFlightBatch, MemberState, MemberStatus

__all__ = ["CLOCK_SKEW_SECONDS", "resolve_in_flight"]

# ActiveCampaign's clock and ours may differ: a membership changed up to this long before the intent
# still counts as changed by it.
CLOCK_SKEW_SECONDS = 60
_ORIGINS = ("unsubreason", "campaign", "message", "automation", "unsubscribeAutomation")


def resolve_in_flight(client: Any, pipeline: ImportPipeline, journal: Journal, batches: Iterable[InFlightBatch],
                      state: Mapping[str, MemberState], list_id: str | None,
                      log: logging.Logger) -> dict[str, MemberState]:
    """Resolve each in-flight batch; journals a ``done`` for each and returns the entries to apply."""
    resolved: dict[str, MemberState] = {}
    for flight in batches:
        entries: dict[str, MemberState] = {}
        if list_id is None:
            log.info("Batch %s of an earlier attempt was for a list that is gone; dropped.", flight.key)
        elif flight.kind in ("upsert", "remove") and flight.batch_id:
            batch = Batch(flight.key, flight.kind, [(e, fp, "resolved") for e, fp in flight.members],
                          flight.batch_id)
            status = pipeline.wait_for(batch)
            if status is not None:
                if status.get("status") == "completed":
                    failed = {str(e).strip().lower() for e in status.get("failure") or []}
                    entries = pipeline.outcome(batch, failed, "")
                journal.done(flight.key, entries)
                resolved.update(entries)
                log.info("Resolved batch %s of an earlier attempt from its import status (%s).",
                         flight.batch_id, status.get("status"))
                continue
            entries = _read_members(client, flight, state, list_id)
        elif flight.kind in ("remove", "resubscribe"):
            entries = _read_members(client, flight, state, list_id)
        # an upsert without a batch id: nothing is recorded, the plan sends those contacts again
        journal.done(flight.key, entries)
        resolved.update(entries)
    return resolved


def _read_members(client: Any, flight: InFlightBatch, state: Mapping[str, MemberState],
                  list_id: str) -> dict[str, MemberState]:
    entries: dict[str, MemberState] = {}
    for email, fingerprint in flight.members:
        known = state.get(email)
        contact_id = known.contact_id if known is not None else None
        if not contact_id:
            found = client.find_contact_by_email(email)
            if found is None:
                continue  # gone from ActiveCampaign: the read-back or the plan handles it
            contact_id = str(found["id"])
        membership = client.get_contact_membership(contact_id, list_id)
        status = membership_status(membership)
        if membership is None or status is None:
            continue
        if flight.kind == "resubscribe":
            if status == 1:
                entries[email] = MemberState("", MemberStatus.SUBSCRIBED, contact_id)
            continue
        if status != 2:
            continue  # the removal did not happen: the member stays as the state says
        changed = parse_time(membership.get("udate"))
        by_others = any(membership.get(name) not in (None, "", "0", 0) for name in _ORIGINS)
        old_fp = known.fingerprint if known is not None else fingerprint
        if changed is not None and changed >= flight.intended_at - CLOCK_SKEW_SECONDS and not by_others:
            entries[email] = MemberState(old_fp, MemberStatus.UNSUBSCRIBED, contact_id, changed)
        else:
            entries[email] = MemberState(old_fp, MemberStatus.UNSUBSCRIBED_ELSEWHERE, contact_id, changed,
                                         "unsubscribed by someone else before this sync's removal")
    return entries
