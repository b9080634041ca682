"""Consent: may this sync set a contact's membership back to active? Only if it is its own unsubscribe.

ActiveCampaign's status 2 does not say who unsubscribed (the contact, a user, an automation, the API),
and ``POST contactLists`` with status 1 re-subscribes anyone. So the sync records *when* it unsubscribed
each contact, and before re-subscribing reads the membership: it must still be status 2, unchanged
since (``udate`` not later than the sync's unsubscribe), with no unsubscribe reason and no campaign,
message or automation behind it. Anything else was someone else's decision and is never overridden.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = ["Verdict", "membership_status", "parse_time", "resubscribe_verdict", "unsubscribed_by_others"]

# Fields of a membership record that name who or what unsubscribed the contact.
_ORIGIN_FIELDS = ("campaign", "message", "automation", "unsubscribeAutomation")


class Verdict(NamedTuple):
    """``action`` is "resubscribe" (contactLists, then the bulk update), "import" (no membership or
    already active: the bulk importer handles them) or "skip" (never touch); ``reason`` says why."""

    action: str
    reason: str


def parse_time(value: Any) -> int | None:
    """ActiveCampaign's ``"2026-12-01T14:05:09-06:00"`` (or ``" "``-separated) as epoch seconds."""
    if value in (None, "", "0000-00-00 00:00:00"):
        return None
    text = str(value).strip().replace(" ", "T", 1)
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return math.floor(moment.timestamp())


def membership_status(membership: Mapping[str, Any] | None) -> int | None:
    if not membership:
        return None
    try:
        return int(str(membership.get("status")))
    except ValueError:
        return None


def _set(value: Any) -> bool:
    return value not in (None, "", "0", 0, False)


def unsubscribed_by_others(membership: Mapping[str, Any], our_unsubscribe_at: int | None) -> str | None:
    """Why a status-2 membership is not (or no longer) this sync's own unsubscribe; None if it is."""
    if our_unsubscribe_at is None:
        return "this sync never unsubscribed them"
    if _set(membership.get("unsubreason")):
        return "they gave an unsubscribe reason"
    for name in _ORIGIN_FIELDS:
        if _set(membership.get(name)):
            return f"unsubscribed through a {name}"
    changed = parse_time(membership.get("udate"))
    if changed is None:
        return "the membership does not say when it last changed"
    if changed > our_unsubscribe_at:
        return "the membership changed after this sync unsubscribed them"
    return None


def resubscribe_verdict(membership: Mapping[str, Any] | None, our_unsubscribe_at: int | None) -> Verdict:
    """The consent rule for a contact the state says this sync unsubscribed, now back in the audience."""
    status = membership_status(membership)
    if membership is None or status is None:
        return Verdict("import", "no membership of the list any more")
    if status == 1:
        return Verdict("import", "already active again")
    if status != 2:
        return Verdict("skip", f"membership status {status} (bounced or unconfirmed): not touched")
    why = unsubscribed_by_others(membership, our_unsubscribe_at)
    if why is not None:
        return Verdict("skip", f"unsubscribed by someone else: {why}")
    return Verdict("resubscribe", "still this sync's own unsubscribe")
