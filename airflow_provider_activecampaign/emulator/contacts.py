"""An account's contacts: lookup, upsert (contact/sync), custom field values, tags, and the indexed
GET contacts query."""

from __future__ import annotations

import bisect
import time
import uuid
from collections.abc import Iterable
from typing import Any

from airflow_provider_activecampaign.emulator.catalog import Catalog
from airflow_provider_activecampaign.emulator.errors import (
    ApiError,
    field_missing,
    invalid,
    not_found,
    unprocessable,
)
from airflow_provider_activecampaign.emulator.records import (
    Contact,
    ContactTag,
    FieldValue,
)
from airflow_provider_activecampaign.emulator.rules import (
    as_text,
    email_format_problem,
    normalize_email,
    now_iso,
    opt_text,
)


class Contacts(Catalog):
    """Contacts, their field values and tags."""

    # ---- contacts ----------------------------------------------------------------------------

    def contact(self, email: str) -> Contact | None:
        """The contact with this email (case-insensitive), or None."""
        with self.lock:
            self.process_imports()
            return self._by_email.get(normalize_email(email))

    def contact_by_id(self, contact_id: object) -> Contact | None:
        with self.lock:
            self.process_imports()
            return self._contact_by_id(contact_id)

    def _contact_by_id(self, contact_id: object) -> Contact | None:
        try:
            return self._contacts.get(int(str(contact_id)))
        except ValueError:
            return None

    def get_contact(self, contact_id: object) -> Contact:
        with self.lock:
            contact = self.contact_by_id(contact_id)
            if contact is None:
                raise not_found("Subscriber", contact_id)
            return contact

    @property
    def contacts(self) -> dict[str, Contact]:
        """All contacts by (lower-cased) email."""
        with self.lock:
            self.process_imports()
            return dict(self._by_email)

    def _upsert(self, email: str, **attrs: str | None) -> tuple[Contact, bool]:
        """Create or update a contact; attributes given as None are left alone. Never deletes."""
        key = normalize_email(email)
        stamp = now_iso()
        contact = self._by_email.get(key)
        created = contact is None
        if contact is None:
            contact = Contact(
                id=self._new_id("contacts"),
                email=key,
                first_name="",
                last_name="",
                phone="",
                orgname="",
                cdate=stamp,
                udate=stamp,
                hash=uuid.uuid4().hex,
                created=time.time(),
            )
            self._contacts[int(contact.id)] = contact
            self._contact_ids.append(int(contact.id))
            self._by_email[key] = contact
        for name, value in attrs.items():
            if value is not None:
                setattr(contact, name, value)
        # A membership change does not move the contact's udate: ActiveCampaign does not document
        # that it does, so the product must not rely on it.
        contact.udate, contact.updated = stamp, time.time()
        return contact, created

    def add_contact(
        self, email: str, first_name: str = "", last_name: str = "", phone: str = "", **fields: str
    ) -> Contact:
        """Test helper: create or update a contact; ``fields`` are custom field values by perstag."""
        with self.lock:
            contact, _ = self._upsert(email, first_name=first_name, last_name=last_name, phone=phone)
            for perstag, value in fields.items():
                fld = self.field_by_perstag(perstag)
                if fld is None:
                    raise KeyError(f"no custom field with perstag {perstag!r}")
                self._set_field_value(contact, fld.id, str(value))
            return contact

    def sync_contact(self, data: dict[str, Any]) -> tuple[Contact, bool, list[FieldValue]]:
        """POST contact/sync: upsert by email. Returns (contact, created, field values written)."""
        with self.lock:
            email = data.get("email")
            if not as_text(email):
                raise unprocessable(field_missing("email", "Email address is required."))
            if email_format_problem(as_text(email).strip()):
                raise unprocessable(
                    {
                        "title": "Contact Email Address is not valid.",
                        "detail": "",
                        "code": "email_invalid",
                        "error": "must_be_valid_email_address",
                        "source": {"pointer": "/data/attributes/email"},
                    }
                )
            values = data.get("fieldValues") or []
            if not isinstance(values, list):
                raise unprocessable(invalid("fieldValues", "fieldValues must be a list"))
            for item in values:
                if not isinstance(item, dict) or str(item.get("field")) not in self._fields:
                    ref = item.get("field") if isinstance(item, dict) else item
                    raise unprocessable(
                        {
                            "title": f"Custom field with id {ref} was not found",
                            "detail": "",
                            "code": "related_missing",
                            "source": {"pointer": "/data/attributes/fieldValues"},
                        }
                    )
                problem = self.value_problem(str(item["field"]), as_text(item.get("value")))
                if problem is not None:
                    raise unprocessable(invalid("fieldValues", f"Invalid value for field {item['field']}: {problem}"))
            contact, created = self._upsert(
                as_text(email),
                first_name=opt_text(data.get("firstName")),
                last_name=opt_text(data.get("lastName")),
                phone=opt_text(data.get("phone")),
            )
            written = [
                self._set_field_value(contact, str(item["field"]), as_text(item.get("value"))) for item in values
            ]
            return contact, created, written

    def _set_field_value(self, contact: Contact, field_id: str, value: str) -> FieldValue:
        stamp = now_iso()
        fv = contact.field_values.get(field_id)
        if fv is None:
            fv = FieldValue(
                id=self._new_id("fieldValues"),
                contact_id=contact.id,
                field_id=field_id,
                value=value,
                cdate=stamp,
                udate=stamp,
            )
            contact.field_values[field_id] = fv
        else:
            fv.value, fv.udate = value, stamp
        return fv

    def field_values(self, email: str) -> dict[str, str]:
        """A contact's custom field values by perstag (tests read these)."""
        with self.lock:
            contact = self.contact(email)
            if contact is None:
                return {}
            return {self._fields[fid].perstag: fv.value for fid, fv in contact.field_values.items()}

    def query_contacts(
        self,
        *,
        email: str | None = None,
        email_like: str | None = None,
        list_id: str | None = None,
        status: int = -1,
        id_greater: int | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 20,
        dates: dict[str, float] | None = None,
    ) -> tuple[list[Contact], int]:
        """GET contacts: one page of matching contacts and the total number matching.

        Cheap on big accounts: ``email`` is an index lookup; ``listid`` (+ ``status``) and the
        unfiltered listing slice id-sorted indexes after a bisect for ``id_greater``, so a page costs
        O(log n + limit). Only ``email_like``, ``status`` without ``listid`` and ``dates`` scan.
        ``dates`` holds the ``filters[created_before|created_after|updated_before|updated_after]``
        moments (epoch seconds): "before" is strictly earlier, "after" at or later.
        """
        dates = dates or {}
        with self.lock:
            self.process_imports()
            if email is None and email_like is None and not dates and (list_id is not None or status == -1):
                if list_id is None:
                    ids = self._contact_ids
                elif status == -1:
                    ids = self._list_members.get(list_id, [])
                else:
                    ids = self._list_by_status.get((list_id, status), [])
                start = bisect.bisect_right(ids, id_greater) if id_greater is not None else 0
                total = len(ids) - start
                if descending:
                    end = len(ids) - offset
                    chosen = list(reversed(ids[max(start, end - limit) : end])) if end > start else []
                else:
                    chosen = list(ids[start + offset : start + offset + limit])
                return [self._contacts[i] for i in chosen], total
            candidates: Iterable[Contact]
            if email is not None:
                found = self._by_email.get(normalize_email(email))
                candidates = [found] if found else []
            elif list_id is not None:
                ids = self._list_members.get(list_id, [])
                start = bisect.bisect_right(ids, id_greater) if id_greater is not None else 0
                seq = ids[start:]
                candidates = (self._contacts[i] for i in (reversed(seq) if descending else seq))
            else:
                all_ids = self._contact_ids
                start = bisect.bisect_right(all_ids, id_greater) if id_greater is not None else 0
                seq = all_ids[start:]
                candidates = (self._contacts[i] for i in (reversed(seq) if descending else seq))

            def keep(contact: Contact) -> bool:
                if id_greater is not None and int(contact.id) <= id_greater:
                    return False
                if email_like is not None and email_like.lower() not in contact.email:
                    return False
                if dates and not _within(contact, dates):
                    return False
                if list_id is not None:
                    m = contact.memberships.get(list_id)
                    return m is not None and (status == -1 or m.status == status)
                if status != -1:
                    return any(m.status == status for m in contact.memberships.values())
                return True

            page: list[Contact] = []
            total = 0
            for contact in candidates:
                if not keep(contact):
                    continue
                if offset <= total < offset + limit:
                    page.append(contact)
                total += 1
            return page, total

    # ---- contact tags ------------------------------------------------------------------------

    def add_contact_tag(self, data: dict[str, Any]) -> ContactTag:
        """POST contactTags: idempotent (tagging twice returns the existing record)."""
        with self.lock:
            self.process_imports()
            missing = [k for k in ("contact", "tag") if as_text(data.get(k)) == ""]
            if missing:
                raise unprocessable(
                    *(
                        {
                            "status": 422,
                            "title": "Missing attribute",
                            "source": {"pointer": f"/data/attributes/{k}"},
                        }
                        for k in missing
                    )
                )
            contact = self._contact_by_id(data["contact"])
            if contact is None:
                raise ApiError(404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Contact not found"}]})
            tag_id = str(data["tag"])
            if tag_id not in self._tags:
                raise ApiError(404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Tag not found"}]})
            return self._tag_contact(contact, tag_id)

    def _tag_contact(self, contact: Contact, tag_id: str) -> ContactTag:
        key = (contact.id, tag_id)
        existing = self._contact_tags.get(key)
        if existing is not None:
            return existing
        ct = ContactTag(id=self._new_id("contactTags"), contact_id=contact.id, tag_id=tag_id, cdate=now_iso())
        self._contact_tags[key] = ct
        contact.tag_ids.add(tag_id)
        return ct

    def contact_tags(self, email: str) -> set[str]:
        """Names of the tags on a contact."""
        with self.lock:
            contact = self.contact(email)
            return {self._tags[t].tag for t in contact.tag_ids} if contact else set()


def _within(contact: Contact, dates: dict[str, float]) -> bool:
    checks = {
        "created_before": lambda t: contact.created < t,
        "created_after": lambda t: contact.created >= t,
        "updated_before": lambda t: contact.updated < t,
        "updated_after": lambda t: contact.updated >= t,
    }
    return all(checks[name](moment) for name, moment in dates.items() if name in checks)
