"""List memberships and the events that change them: the API's contactLists, what people, users and
automations do outside the API, deleted lists and contacts, and the exclusion list."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from typing import Any

from airflow_provider_activecampaign.emulator.contacts import Contacts
from airflow_provider_activecampaign.emulator.errors import (
    ApiError,
    field_missing,
    invalid,
    not_found,
    unprocessable,
)
from airflow_provider_activecampaign.emulator.records import (
    ACTIVE,
    BOUNCED,
    BY_ADMIN,
    BY_BOUNCE,
    BY_CONTACT,
    BY_CONTACT_LISTS,
    BY_FORM,
    BY_SEED,
    SOURCE_ADMIN,
    SOURCE_API,
    SOURCE_FORM,
    SOURCE_RESUBSCRIBED,
    SOURCE_UNKNOWN,
    UNCONFIRMED,
    UNSUBSCRIBED,
    Contact,
    Exclusion,
    Membership,
    MembershipChange,
    by_automation,
)
from airflow_provider_activecampaign.emulator.rules import (
    EXCLUSION_CHANNELS,
    MATCH_TYPES,
    as_text,
    normalize_email,
    now_iso,
    opt_text,
)


class Memberships(Contacts):
    """Memberships with who changed them, the events, deletions and the exclusion list."""

    # ---- list memberships --------------------------------------------------------------------

    def _set_status(
        self,
        contact: Contact,
        list_id: str,
        status: int,
        by: str,
        sourceid: str | None = None,
        *,
        unsubreason: str = "",
        campaign: str | None = None,
        message: str | None = None,
        unsubscribe_automation: str | None = None,
        form: str | None = None,
    ) -> Membership:
        """Change (or create) a membership; a change to the same status is no change at all.

        Every real change stamps ``udate``, records who made it in ``changed_by`` and the history,
        and replaces the unsubscribe fields with this change's (a subscription clears them).
        """
        stamp, wall = now_iso(), time.time()
        m = contact.memberships.get(list_id)
        cid = int(contact.id)
        if m is None:
            m = Membership(
                id=self._new_id("contactLists"),
                contact_id=contact.id,
                list_id=list_id,
                status=status,
                sdate=stamp,
                udate=stamp,
                sourceid=sourceid or SOURCE_UNKNOWN,
                changed_by=by,
                created=wall,
            )
            contact.memberships[list_id] = m
            bisect.insort(self._list_members[list_id], cid)
            bisect.insort(self._list_by_status.setdefault((list_id, status), []), cid)
        elif m.status == status:
            return m  # no change, no history entry
        else:
            old = self._list_by_status[(list_id, m.status)]
            del old[bisect.bisect_left(old, cid)]
            bisect.insort(self._list_by_status.setdefault((list_id, status), []), cid)
            m.status, m.udate, m.changed_by = status, stamp, by
            if sourceid is not None:
                m.sourceid = sourceid
            if status in (ACTIVE, UNCONFIRMED):
                m.sdate = stamp
        m.updated = wall
        if status in (ACTIVE, UNCONFIRMED):
            m.unsubreason, m.campaign, m.message, m.unsubscribe_automation = "", None, None, None
            if form is not None:
                m.form = form
        else:
            m.unsubreason, m.campaign, m.message = unsubreason, campaign, message
            m.unsubscribe_automation = unsubscribe_automation
        m.history.append(
            MembershipChange(
                status=status,
                by=by,
                at=stamp,
                unsubreason=m.unsubreason,
                campaign=m.campaign,
                message=m.message,
                unsubscribe_automation=m.unsubscribe_automation,
                sourceid=m.sourceid,
            )
        )
        return m

    def set_list_status(self, data: dict[str, Any]) -> tuple[Membership, Contact]:
        """POST contactLists: status 1 subscribes, even someone who unsubscribed themselves (as
        ActiveCampaign documents); status 2 unsubscribes. A re-subscription (from 2 or 3 to 1) is
        recorded with sourceid 4 unless the caller sent another."""
        with self.lock:
            self.process_imports()
            missing = [k for k in ("list", "contact", "status") if as_text(data.get(k)) == ""]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            try:
                status = int(str(data["status"]))
            except ValueError:
                status = -99
            if status not in (ACTIVE, UNSUBSCRIBED):
                raise unprocessable(invalid("status", "status must be 1 (active) or 2 (unsubscribed)"))
            contact = self._contact_by_id(data["contact"])
            if contact is None:
                raise not_found("Subscriber", data["contact"])
            list_id = str(data["list"])
            if list_id not in self._lists:
                raise not_found("_List", list_id)
            sourceid = opt_text(data.get("sourceid")) or None
            current = contact.memberships.get(list_id)
            if sourceid is None:
                resubscribe = status == ACTIVE and current is not None and current.status in (UNSUBSCRIBED, BOUNCED)
                sourceid = SOURCE_RESUBSCRIBED if resubscribe else (SOURCE_API if current is None else None)
            return self._set_status(contact, list_id, status, BY_CONTACT_LISTS, sourceid), contact

    def membership(self, email: str, list_id: object) -> Membership | None:
        with self.lock:
            contact = self.contact(email)
            return contact.memberships.get(str(list_id)) if contact else None

    def contact_lists(self, contact_id: object) -> list[Membership]:
        """GET contacts/{id}/contactLists."""
        with self.lock:
            return list(self.get_contact(contact_id).memberships.values())

    def list_members(self, list_id: object, status: int | None = ACTIVE) -> set[str]:
        """Emails on ``list_id`` with ``status`` (1 active, 2 unsubscribed; None or -1: any)."""
        with self.lock:
            self.process_imports()
            lid = str(list_id)
            if status is None or status == -1:
                ids = self._list_members.get(lid, [])
            else:
                ids = self._list_by_status.get((lid, status), [])
            return {self._contacts[cid].email for cid in ids}

    # ---- membership events (what people, users and automations do outside the API) -----------

    def _event_contact(self, email: str, list_id: object, *, create: bool = False) -> tuple[Contact, str]:
        self.process_imports()
        lid = self.get_list(list_id).id
        if create:
            return self._upsert(email)[0], lid
        contact = self._by_email.get(normalize_email(email))
        if contact is None:
            raise KeyError(f"no contact with email {email!r}")
        return contact, lid

    def subscribe(self, email: str, list_id: object) -> Membership:
        """Test helper: make ``email`` (created if needed) an active member of ``list_id``."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            return self._set_status(contact, lid, ACTIVE, BY_SEED)

    def signup_by_form(self, email: str, list_id: object, *, confirmed: bool = True, form_id: str = "1") -> Membership:
        """The person subscribes (or re-subscribes) themselves through a form: status 1 (0 while a
        double opt-in is not ``confirmed``). Creates the contact if needed."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            status = ACTIVE if confirmed else UNCONFIRMED
            return self._set_status(contact, lid, status, BY_FORM, SOURCE_FORM, form=str(form_id))

    def unsubscribe_by_contact(
        self,
        email: str,
        list_id: object,
        reason: str = "",
        *,
        campaign_id: object = None,
        message_id: object = None,
    ) -> Membership:
        """The person unsubscribes themselves (the link in an email, or the preferences page):
        status 2 with their ``reason`` (may be empty) and, from an email's link, its campaign and
        message. Bulk imports then refuse to re-subscribe them to that list."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(
                contact,
                lid,
                UNSUBSCRIBED,
                BY_CONTACT,
                unsubreason=reason,
                campaign=None if campaign_id is None else str(campaign_id),
                message=None if message_id is None else str(message_id),
            )

    def unsubscribe_by_admin(self, email: str, list_id: object) -> Membership:
        """A user of the account unsubscribes the contact by hand in the web app."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(contact, lid, UNSUBSCRIBED, BY_ADMIN)

    def unsubscribe_by_automation(self, email: str, list_id: object, automation_id: object) -> Membership:
        """An automation's "unsubscribe" step: status 2 with ``unsubscribeAutomation`` set."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(
                contact, lid, UNSUBSCRIBED, by_automation(automation_id), unsubscribe_automation=str(automation_id)
            )

    def bounce(self, email: str, list_id: object) -> Membership:
        """The address bounced: status 3 on ``list_id``."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(contact, lid, BOUNCED, BY_BOUNCE)

    def add_by_hand(self, email: str, list_id: object) -> Membership:
        """A user adds the contact (created if needed) to the list by hand: status 1, by "admin"."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            return self._set_status(contact, lid, ACTIVE, BY_ADMIN, SOURCE_ADMIN)

    # ---- deletions ---------------------------------------------------------------------------

    def delete_list(self, list_id: object) -> None:
        """DELETE lists/{id} (and the same by hand): the list, its memberships, its user-group and
        field ties go. Contacts stay. A missing list is ActiveCampaign's 403 "No Result found"."""
        with self.lock:
            self.process_imports()
            lid = str(list_id)
            if lid not in self._lists:
                raise ApiError(403, {"message": f"No Result found for _List with id {lid}"})
            for cid in self._list_members.pop(lid):
                self._contacts[cid].memberships.pop(lid, None)
            for key in [k for k in self._list_by_status if k[0] == lid]:
                del self._list_by_status[key]
            self._list_groups = {k: v for k, v in self._list_groups.items() if v.list_id != lid}
            self._field_rels = {k: v for k, v in self._field_rels.items() if v.relid != lid}
            for exclusion in self._exclusions.values():
                if lid in exclusion.lists:
                    exclusion.lists.remove(lid)
            del self._lists[lid]

    def delete_contact(self, email: str) -> None:
        """Delete the contact with this email (and its memberships, field values and tags)."""
        with self.lock:
            self.process_imports()
            contact = self._by_email.get(normalize_email(email))
            if contact is None:
                raise KeyError(f"no contact with email {email!r}")
            self._delete_contact(contact)

    def delete_contact_by_id(self, contact_id: object) -> None:
        """DELETE contacts/{id}: 404 "No result found for contact with id N" when missing."""
        with self.lock:
            self.process_imports()
            contact = self._contact_by_id(contact_id)
            if contact is None:
                raise ApiError(404, {"message": f"No result found for contact with id {contact_id}"})
            self._delete_contact(contact)

    def _delete_contact(self, contact: Contact) -> None:
        cid = int(contact.id)
        for lid, m in contact.memberships.items():
            for ids in (self._list_members[lid], self._list_by_status[(lid, m.status)]):
                del ids[bisect.bisect_left(ids, cid)]
        for tag_id in contact.tag_ids:
            self._contact_tags.pop((contact.id, tag_id), None)
        del self._contacts[cid]
        del self._contact_ids[bisect.bisect_left(self._contact_ids, cid)]
        del self._by_email[contact.email]

    # ---- exclusion list ----------------------------------------------------------------------

    def add_exclusion(
        self, match_phrase: str, match_type: str = "exact", channel: str = "all", lists: Iterable[object] = ()
    ) -> Exclusion:
        """POST lists/exclusions: emails matching ``match_phrase`` (exact, begin, end) are never
        subscribed to the lists the exclusion covers (every list unless ``channel`` is "several")."""
        with self.lock:
            phrase = as_text(match_phrase).strip()
            if not phrase:
                raise unprocessable(field_missing("matchPhrase"))
            kind = MATCH_TYPES.get(as_text(match_type).strip().lower())
            if kind is None:
                raise unprocessable(
                    invalid("matchType", f"Invalid matchType: {match_type!r}. Allowed: exact, begin, end")
                )
            chan = as_text(channel) or "all"
            if chan not in EXCLUSION_CHANNELS:
                raise unprocessable(invalid("channel", f"Invalid channel: {chan!r}"))
            list_ids = [str(x) for x in lists]
            if list_ids and chan != "several":
                raise unprocessable(invalid("lists", f'List IDs must be empty for channel "{chan}"'))
            missing = [x for x in list_ids if x not in self._lists]
            if missing:
                raise not_found("_List", missing[0])
            exclusion = Exclusion(
                id=self._new_id("exclusions"),
                match_phrase=phrase,
                match_type=kind,
                channel=chan,
                lists=list_ids,
                cdate=now_iso(),
            )
            self._exclusions[exclusion.id] = exclusion
            return exclusion

    def get_exclusion(self, exclusion_id: object) -> Exclusion:
        with self.lock:
            found = self._exclusions.get(str(exclusion_id))
            if found is None:
                raise ApiError(404, {"message": f"Exclusion not found [id={exclusion_id}]"})
            return found

    def update_exclusion(self, exclusion_id: object, channel: str, lists: Iterable[object] = ()) -> Exclusion:
        """PUT lists/exclusions/{id}: change which lists the entry covers (``lists`` only with "several")."""
        with self.lock:
            exclusion = self.get_exclusion(exclusion_id)
            if channel not in EXCLUSION_CHANNELS:
                raise unprocessable(invalid("channel", f"Invalid channel: {channel!r}"))
            list_ids = [str(x) for x in lists]
            if list_ids and channel != "several":
                raise unprocessable(invalid("lists", f'List IDs must be empty for channel "{channel}"'))
            missing = [x for x in list_ids if x not in self._lists]
            if missing:
                raise not_found("_List", missing[0])
            exclusion.channel, exclusion.lists = channel, list_ids
            return exclusion

    def delete_exclusion(self, exclusion_id: object) -> None:
        """DELETE lists/exclusions/{id}."""
        with self.lock:
            self.get_exclusion(exclusion_id)
            del self._exclusions[str(exclusion_id)]

    def exclude(self, email: str) -> Exclusion:
        """Put ``email`` on the account's exclusion list (an exact entry for every list)."""
        with self.lock:
            key = normalize_email(email)
            for exclusion in self._exclusions.values():
                if exclusion.match_type == "exact" and exclusion.match_phrase.lower() == key:
                    return exclusion
            return self.add_exclusion(key, "exact")

    def lift_exclusion(self, email: str) -> int:
        """Remove every exact exclusion entry for ``email``; returns how many went."""
        with self.lock:
            key = normalize_email(email)
            gone = [
                x.id for x in self._exclusions.values() if x.match_type == "exact" and x.match_phrase.lower() == key
            ]
            for ident in gone:
                del self._exclusions[ident]
            return len(gone)

    @property
    def exclusions(self) -> set[str]:
        """The exact emails on the exclusion list (patterns: ``exclusion_entries``)."""
        with self.lock:
            return {x.match_phrase.lower() for x in self._exclusions.values() if x.match_type == "exact"}

    @property
    def exclusion_entries(self) -> list[Exclusion]:
        with self.lock:
            return list(self._exclusions.values())

    def excluded_by(self, email: str, list_ids: Iterable[str] = ()) -> Exclusion | None:
        """The first exclusion that keeps ``email`` off any of ``list_ids`` (or off every list)."""
        with self.lock:
            wanted = set(list_ids)
            for exclusion in self._exclusions.values():
                if exclusion.matches(email) and exclusion.covers(wanted):
                    return exclusion
            return None
