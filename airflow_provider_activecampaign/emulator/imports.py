"""The bulk importer: limits and whole-batch validation at request time, then a queue processed
lazily by the clock (a batch is applied ``import_delay`` seconds after it was queued, by the next
call that looks at state), with per-contact refusals reported by ``import/info``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_activecampaign.emulator.errors import (
    ApiError,
    bulk_error,
    not_found,
)
from airflow_provider_activecampaign.emulator.memberships import Memberships
from airflow_provider_activecampaign.emulator.records import (
    ACTIVE,
    BOUNCED,
    UNSUBSCRIBED,
    ImportBatch,
    by_import,
)
from airflow_provider_activecampaign.emulator.rules import (
    as_text,
    email_format_problem,
    list_ids,
    normalize_email,
    now_iso,
    opt_text,
)


@dataclass
class ContactLimit:
    """A user group's contact limit while a batch is applied: its lists and who counts."""

    group: str
    limit: int
    lists: set[str]
    active: set[int]


class ImportQueue(Memberships):
    """POST import/bulk_import, GET import/info and GET import/bulk_import."""

    # ---- bulk import -------------------------------------------------------------------------

    def queue_import(self, payload: Any, size: int) -> ImportBatch:
        """POST import/bulk_import: check limits and every email, then queue the batch.

        Order of checks: payload size and contact count (cheap, consume no quota), then the bulk
        importer quota, then per-contact validation. Any invalid contact rejects the whole batch
        (nothing queued) and lists every offender by 0-based index.
        """
        cfg = self.config
        if size >= cfg.max_import_bytes:
            raise bulk_error(
                f"Payload too large: {size} bytes. A bulk import request must be less than "
                f"{cfg.max_import_bytes} bytes ({cfg.max_import_bytes - 1:,} bytes or less)."
            )
        contacts = payload.get("contacts") if isinstance(payload, dict) else None
        if not isinstance(contacts, list) or not contacts:
            raise bulk_error("'contacts' is a required field and must be a non-empty list.")
        if len(contacts) > cfg.max_contacts_per_import:
            raise bulk_error(
                f"Too many contacts: {len(contacts)}. Contacts can be imported in batches of up to "
                f"{cfg.max_contacts_per_import} items."
            )
        with self.lock:
            self._admit_bulk(single=len(contacts) == 1)
            reasons: list[dict[str, Any]] = []
            for index, item in enumerate(contacts):
                email = item.get("email") if isinstance(item, dict) else None
                if email is None or email == "":
                    reasons.append({"contact": index, "failureReason": "Field' email' is required"})
                elif email_format_problem(email):
                    reasons.append({"contact": index, "failureReason": "Field' email' incorrect format"})
            if reasons:
                raise ApiError(
                    400,
                    {
                        "success": 0,
                        "message": "JSON payload did not pass validation. Please fix failure Reasons and "
                        "retry. The import was not queued for processing.",
                        "failureReasons": reasons,
                    },
                )
            now = self.clock()
            callback = payload.get("callback")
            batch = ImportBatch(
                batch_id=str(uuid.uuid4()),
                contacts=contacts,
                queued_at=now,
                ready_at=now + max(0.0, float(cfg.import_delay)),
                queued_wall=now_iso(),
                callback=callback if isinstance(callback, dict) else None,
            )
            self._imports[batch.batch_id] = batch
            self._pending.append(batch)
            return batch

    def import_status(self, batch_id: str) -> dict[str, Any]:
        """GET import/info: ``status`` is false during the first half of the delay, then "waiting",
        then "completed" with created contact ids in ``success`` and failed emails in ``failure``."""
        with self.lock:
            self.process_imports()
            batch = self._imports.get(batch_id)
            if batch is None:
                raise not_found("Import", batch_id)
            if batch.completed:
                return {"status": "completed", "success": list(batch.success), "failure": list(batch.failure)}
            early = self.clock() < batch.queued_at + (batch.ready_at - batch.queued_at) / 2
            return {"status": False if early else "waiting", "success": [], "failure": []}

    def import_summary(self) -> dict[str, Any]:
        """GET import/bulk_import: daily aggregate of outstanding and completed batches."""
        with self.lock:
            self.process_imports()
            day = datetime.now().date().isoformat()
            out = [b for b in self._imports.values() if not b.completed]
            done = [b for b in self._imports.values() if b.completed]

            def agg(batches: list[ImportBatch]) -> list[dict[str, str]]:
                if not batches:
                    return []
                return [
                    {
                        "forDate": day,
                        "batches": str(len(batches)),
                        "contacts": str(sum(len(b.contacts) for b in batches)),
                    }
                ]

            return {"outstanding": agg(out), "recentlyCompleted": agg(done)}

    @property
    def imports(self) -> dict[str, ImportBatch]:
        with self.lock:
            self.process_imports()
            return dict(self._imports)

    def import_batch(self, batch_id: str) -> ImportBatch | None:
        with self.lock:
            self.process_imports()
            return self._imports.get(batch_id)

    def process_imports(self, *, force: bool = False) -> int:
        """Apply every queued batch that is due (all of them with ``force``); returns how many."""
        with self.lock:
            pending = self._pending
            if not pending:
                return 0
            now = self.clock()
            done = 0
            while pending and (force or pending[0].ready_at <= now):
                self._apply_batch(pending.popleft(), now)
                done += 1
            return done

    def _apply_batch(self, batch: ImportBatch, now: float) -> None:
        limits = self._contact_limits()
        for item in batch.contacts:
            problem = self._apply_import_contact(batch, item, limits)
            if problem is not None:
                email = str(item.get("email"))
                batch.failure.append(email)
                batch.failure_reasons[email] = problem
        batch.status = "completed"
        batch.processed_at = now

    def _contact_limits(self) -> list[ContactLimit]:
        """The user groups with a contact limit, each with its lists and the contacts active on them.

        A contact counts once however many of the group's lists they are active on, and not at all
        when unsubscribed from all of them (as ActiveCampaign bills). Built once per batch.
        """
        limits = []
        for group in self._groups.values():
            if group.limit_contact <= 0:
                continue
            lists = {lg.list_id for lg in self._list_groups.values() if lg.group_id == group.id}
            active = set().union(*(self._list_by_status.get((lid, ACTIVE), []) for lid in lists))
            limits.append(ContactLimit(group.title, group.limit_contact, lists, active))
        return limits

    def _apply_import_contact(self, batch: ImportBatch, item: dict[str, Any], limits: list[ContactLimit]) -> str | None:
        """Apply one imported contact; returns why it failed (then nothing at all is changed)."""
        key = normalize_email(str(item["email"]))
        subscribe = list_ids(item.get("subscribe"))
        unsubscribe = list_ids(item.get("unsubscribe"))
        exclusion = self.excluded_by(key, subscribe)
        if exclusion is not None:
            return f"email is on the exclusion list ({exclusion.match_type} {exclusion.match_phrase!r})"
        for lid in subscribe + unsubscribe:
            if lid not in self._lists:
                return f"list {lid} does not exist"
        existing = self._by_email.get(key)
        if existing is not None:
            for lid in subscribe:
                m = existing.memberships.get(lid)
                if m is not None and m.status == UNSUBSCRIBED:
                    return f"contact unsubscribed from list {lid}; imports do not re-subscribe"
                if m is not None and m.status == BOUNCED:
                    return f"contact bounced on list {lid}"
        values: list[tuple[str, str]] = []
        for fv in item.get("fields") or []:
            fid = str(fv.get("id")) if isinstance(fv, dict) else ""
            if fid not in self._fields:
                batch.warnings.append(f"{key}: unknown custom field id {fid!r} ignored")
                continue
            value = as_text(fv.get("value"))
            problem = self.value_problem(fid, value)
            if problem is not None:
                return f"field {fid}: {problem}"
            values.append((fid, value))
        cid = int(existing.id) if existing is not None else None
        for limit in limits:
            counted = cid is not None and cid in limit.active
            if not counted and limit.lists.intersection(subscribe) and len(limit.active) >= limit.limit:
                return f"over the contact limit of user group {limit.group!r} ({limit.limit} contacts)"
        contact, created = self._upsert(
            str(item["email"]),
            first_name=opt_text(item.get("first_name")),
            last_name=opt_text(item.get("last_name")),
            phone=opt_text(item.get("phone")),
            orgname=opt_text(item.get("customer_acct_name")),
        )
        if created:
            batch.success.append(contact.id)
        for fid, value in values:
            self._set_field_value(contact, fid, value)
        tags = item.get("tags") or []
        for raw in [tags] if isinstance(tags, str) else tags:
            name = str(raw).strip()
            if name:
                tag = self._tags_by_name.get(name.lower()) or self._make_tag(name)
                self._tag_contact(contact, tag.id)
        marker = by_import(batch.batch_id)
        for lid in subscribe:
            self._set_status(contact, lid, ACTIVE, marker)
        for lid in unsubscribe:
            self._set_status(contact, lid, UNSUBSCRIBED, marker)
        for limit in limits:
            if limit.lists.intersection(subscribe + unsubscribe):
                still = any(m.status == ACTIVE for lid, m in contact.memberships.items() if lid in limit.lists)
                (limit.active.add if still else limit.active.discard)(int(contact.id))
        return None
