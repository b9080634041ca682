"""Who is on the list: the state checked cheaply against ActiveCampaign, or the list read back.

ActiveCampaign is the truth; the state is a cache of it for one account and one list id. Every run
checks, in three requests, that the cache still holds: the list found by name has the state's id, and
the counts of active (status 1) and unsubscribed (status 2) members equal the state's. When it does not
(drift, a stale copy, a recreated list, or ``reconcile_every`` has passed) the list is read back, 100
members a request with their memberships, and the state's membership part rebuilt from it.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any

from airflow_provider_activecampaign.audience.client import ActiveCampaignClient
from airflow_provider_activecampaign.audience.compact_state import CompactState
from airflow_provider_activecampaign.audience.consent import membership_status, parse_time, unsubscribed_by_others
from airflow_provider_activecampaign.audience.state import MemberState, MemberStatus

__all__ = [
    "NOT_STATUS_2",
    "check_removals",
    "drift_reason",
    "read_back",
    "state_counts",
]

S, U, ELSEWHERE, R = (MemberStatus.SUBSCRIBED, MemberStatus.UNSUBSCRIBED, MemberStatus.UNSUBSCRIBED_ELSEWHERE,
              MemberStatus.REFUSED)
# ``note`` prefix of an UNSUBSCRIBED_ELSEWHERE member whose status is not 2 (bounced, unconfirmed...):
# not counted among the list's unsubscribed members.
NOT_STATUS_2 = "status "


def _email(contact: Mapping[str, Any]) -> str | None:
    email = str(contact.get("email") or "").strip().lower()
    return email or None


def state_counts(state: Mapping[str, MemberState]) -> tuple[int, int]:
    """(active, unsubscribed) members of the list according to the state."""
    active = unsubscribed = 0
    members: Iterable[MemberState] = state.values()
    if isinstance(state, CompactState):  # packed members carry no note: count their status bytes
        packed, members = state.status_counts()
        active, unsubscribed = packed[S], packed[U] + packed[ELSEWHERE]
    for member in members:
        status = member[1]
        if status is S:
            active += 1
        elif status is U or (status is ELSEWHERE and not (member[4] or "").startswith(NOT_STATUS_2)):
            unsubscribed += 1
    return active, unsubscribed


def drift_reason(client: ActiveCampaignClient, list_id: str, state: Mapping[str, MemberState]) -> str | None:
    """Why the state no longer matches the list (two count requests), or None when it matches."""
    active, unsubscribed = state_counts(state)
    real_active = client.count_list_contacts(list_id, 1)
    if real_active != active:
        return f"drift: the list has {real_active} active members, the state {active}"
    real_unsubscribed = client.count_list_contacts(list_id, 2)
    if real_unsubscribed != unsubscribed:
        return f"drift: the list has {real_unsubscribed} unsubscribed members, the state {unsubscribed}"
    return None


def classify(membership: Mapping[str, Any] | None, known: MemberState | None, contact_id: str | None,
             now: int) -> MemberState | None:
    """The state entry for one member read back from the list (None: not a member, forget it)."""
    status = membership_status(membership)
    if status == 1:
        fingerprint = known.fingerprint if known is not None and known.status is S else ""
        return MemberState(fingerprint, S, contact_id)
    if status == 2:
        assert membership is not None
        fingerprint = known.fingerprint if known is not None else ""
        ours_at = known.at if known is not None and known.status is U else None
        why = unsubscribed_by_others(membership, ours_at)
        if why is None:
            return MemberState(fingerprint, U, contact_id, ours_at)
        if known is not None and known.status is ELSEWHERE and not (known.note or "").startswith(NOT_STATUS_2):
            return known._replace(contact_id=contact_id)
        seen = parse_time(membership.get("udate")) or now
        return MemberState(fingerprint, ELSEWHERE, contact_id, seen, f"unsubscribed by someone else ({why})")
    if status is None:
        return None
    return MemberState(known.fingerprint if known else "", ELSEWHERE, contact_id, now,
                       f"{NOT_STATUS_2}{status} on the list (bounced or unconfirmed): not touched")


def email_key(email: str) -> str:
    """A short one-way key of an email: what is published to other workers instead of the address."""
    return hashlib.blake2b(email.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def unsubscribe_ledger(state: Mapping[str, MemberState]) -> dict[str, int]:
    """{email_key: when} of every member this sync unsubscribed: published with the generation, so a
    worker whose copy is stale still knows which unsubscribes were the sync's own."""
    return {email_key(e): int(m.at) for e, m in state.items() if m[1] is U and m.at is not None}


def read_back(client: ActiveCampaignClient, list_id: str, old: Mapping[str, MemberState],
              into: MutableMapping[str, MemberState], *, ledger: Mapping[str, int] | None = None) -> int:
    """Rebuild ``into`` from the list read back (paged, with memberships); returns members read.

    Refusals are kept from ``old`` (they concern contacts not on the list); every membership entry
    comes from ActiveCampaign. Members without an email are ignored. ``ledger`` (see
    :func:`unsubscribe_ledger`) names unsubscribes another worker's run made.
    """
    now = int(time.time())
    for email, member in old.items():
        if member.status is R:
            into[email] = member
    read = 0
    for contact, membership in client.iter_list_memberships(list_id):
        address = _email(contact)
        if address is None:
            continue  # a list member without an email cannot be in any audience
        email = address
        read += 1
        known = old.get(email)
        if ledger and membership_status(membership) == 2 and (known is None or known.status is not U):
            at = ledger.get(email_key(email))
            if at is not None:  # the sync unsubscribed them, on another worker
                known = MemberState(known.fingerprint if known else "", U, known.contact_id if known else None, at)
        entry = classify(membership, known, _opt_id(contact.get("id")), now)
        if entry is not None:
            into[email] = entry
    return read


def _opt_id(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


# Removals whose contact id is unknown are looked up by email (one request each) up to this many; the
# rest are trusted to exist because the run verified the list's counts (a deleted contact changes them).
MAX_EMAIL_CHECKS = 10


def check_removals(client: ActiveCampaignClient, removals: Iterable[str],
                   state: Mapping[str, MemberState]) -> tuple[list[str], list[str], dict[str, str]]:
    """Split planned removals into (exists: send, gone from ActiveCampaign: drop) and return the contact
    ids found. Reads only these contacts: by id, 100 a request with ``ids[]``, or by email (at most
    ``MAX_EMAIL_CHECKS``) when the id is unknown or the server ignored the filter."""
    removals = list(removals)
    by_id: dict[str, str] = {}
    unknown: list[str] = []
    for email in removals:
        known = state.get(email)
        if known is not None and known.contact_id:
            by_id[known.contact_id] = email
        else:
            unknown.append(email)
    found: dict[str, str] = {}  # email -> contact id
    checked: set[str] = set()
    ids = list(by_id)
    for start in range(0, len(ids), 100):
        page = ids[start:start + 100]
        # At most one page: a server that ignored the filter must not page through the whole account.
        answer = list(itertools.islice(client.iter_contacts({"ids[]": page}, page_size=100), 100))
        returned = {str(c.get("id")) for c in answer}
        if not returned <= set(page):
            unknown.extend(by_id[i] for i in ids[start:])  # the filter was ignored: look up one by one
            break
        checked.update(by_id[i] for i in page)
        for contact in answer:
            found[by_id[str(contact.get("id"))]] = str(contact.get("id"))
    for email in unknown[:MAX_EMAIL_CHECKS]:
        checked.add(email)
        looked_up = client.find_contact_by_email(email)
        if looked_up is not None:
            found[email] = str(looked_up["id"])
    send = [e for e in removals if e in found or e not in checked]
    gone = [e for e in removals if e in checked and e not in found]
    return send, gone, found


def ceil_now() -> int:
    """Now, rounded up to the second."""
    return math.ceil(time.time())


def unsubscribe_stamp() -> int:
    """The time recorded for an unsubscribe this sync just saw confirmed: now, rounded down.

    ActiveCampaign's ``udate`` has one-second resolution. The sync's own change was processed before
    this moment, so its ``udate`` is at most this second; :func:`wait_for_next_second` then makes
    sure anyone else's change comes in a later second, so the consent rule can tell them apart.
    """
    return math.floor(time.time())


def wait_for_next_second(sleep: Callable[[float], None] = time.sleep) -> None:
    """Sleep to the next whole second (wall clock) after the last unsubscribe this run confirmed."""
    now = time.time()
    sleep(math.floor(now) + 1 - now + 0.01)
