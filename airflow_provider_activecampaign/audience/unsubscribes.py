"""Unsubscribes and bounces back to the warehouse: who said no, when, and who made the change.

Plain Python, no Airflow imports. :func:`unsubscribe_rows` turns a list's memberships (the hook's
``iter_list_memberships``) into rows; :class:`UnsubscribesTable` writes them into a table through any
DB-API connection, in one transaction, touching only the rows that changed.

Who made the change (``changed_by``), as far as ActiveCampaign's membership record tells
(research/lifecycle.md section 1: status 2 alone does not say who):

* ``sync``: this provider's audience send unsubscribed them (the run state says so, and nothing
  changed the membership since);
* ``contact``: the membership carries an unsubscribe reason, or the campaign or message whose
  unsubscribe link they used;
* ``other``: anything else: an automation, a user of the account, another API client, a bounce,
  or a contact who left no trace of it being them.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_activecampaign.audience.emails import normalize_email

__all__ = ["STATUS_NAMES", "UnsubscribeRow", "UnsubscribesTable", "WriteCounts", "changed_by", "unsubscribe_rows"]

STATUS_NAMES = {2: "unsubscribed", 3: "bounced"}
COLUMNS = ("email", "list_id", "status", "changed_at", "changed_by")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}")
_EMPTY_IDS = (None, "", "0", 0)
# The run state's clock and ActiveCampaign's udate are different machines: allow this much skew when
# deciding that an unsubscribe is still the one the sync made.
CLOCK_SKEW = _dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class UnsubscribeRow:
    """One row of the table."""

    email: str
    list_id: str
    status: str
    changed_at: str | None
    changed_by: str

    def as_tuple(self) -> tuple[str, str, str, str | None, str]:
        return (self.email, self.list_id, self.status, self.changed_at, self.changed_by)


def parse_timestamp(value: Any) -> _dt.datetime | None:
    """ActiveCampaign's ``udate`` (ISO 8601 with offset, or ``YYYY-MM-DD HH:MM:SS``) as a datetime."""
    if not value:
        return None
    text = str(value).strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _utc_text(value: Any) -> str | None:
    """``udate`` as ISO 8601 in UTC when it carries an offset; as given otherwise (zone unknown)."""
    parsed = parse_timestamp(value)
    if parsed is None:
        return str(value).strip() or None if value else None
    if parsed.tzinfo is None:
        return parsed.isoformat(timespec="seconds")
    return parsed.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")


def changed_by(membership: Mapping[str, Any] | None, *, by_sync: bool = False,
               sync_unsubscribed_at: _dt.datetime | None = None) -> str:
    """``sync``, ``contact`` or ``other`` for one status-2/3 membership (see the module doc).

    ``by_sync``: the run state says this sync unsubscribed the contact, at ``sync_unsubscribed_at``
    (aware) when it records the time.
    """
    record = membership or {}
    if str(record.get("status")) == "3":
        return "other"  # a bounce: the receiving mail server
    if str(record.get("unsubreason") or "").strip():
        return "contact"
    if record.get("campaign") not in _EMPTY_IDS or record.get("message") not in _EMPTY_IDS:
        return "contact"  # the unsubscribe link of a campaign's email
    if record.get("unsubscribeAutomation") not in _EMPTY_IDS:
        return "other"
    if by_sync:
        udate = parse_timestamp(record.get("udate"))
        if sync_unsubscribed_at is None or udate is None or udate.tzinfo is None:
            return "sync"  # nothing says it changed after the sync's unsubscribe
        if udate <= sync_unsubscribed_at + CLOCK_SKEW:
            return "sync"
    return "other"


def unsubscribe_rows(
    memberships: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
    list_id: str,
    *,
    status: int | None = None,
    sync_unsubscribes: Mapping[str, _dt.datetime | None] | None = None,
) -> Iterator[UnsubscribeRow]:
    """Rows for the (contact, membership) pairs of one list; contacts without an email are skipped.

    ``status``: the status the contacts were listed by (``contacts?listid=&status=``); it stands in for a
    membership record the answer did not side-load. ``sync_unsubscribes``: email -> when this sync
    unsubscribed them (the run state), if known.
    """
    ours = sync_unsubscribes or {}
    for contact, membership in memberships:
        email = normalize_email(contact.get("email"))
        if not email:
            continue
        record = membership if membership is not None else ({"status": status} if status is not None else {})
        code = str(record.get("status", "")).strip()
        name = STATUS_NAMES.get(int(code)) if code.isdigit() else None
        if name is None:
            continue  # not unsubscribed or bounced (or a status we do not know): not ours to report
        by = changed_by(record, by_sync=email in ours, sync_unsubscribed_at=ours.get(email))
        yield UnsubscribeRow(email, str(list_id), name, _utc_text(record.get("udate")), by)


# --------------------------------------------------------------------------------------------- table
@dataclass
class WriteCounts:
    """What one write changed in the table."""

    inserted: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    by_status: Counter = field(default_factory=Counter)
    by_changed_by: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"inserted": self.inserted, "updated": self.updated, "removed": self.removed,
                "unchanged": self.unchanged, "by_status": dict(self.by_status),
                "by_changed_by": dict(self.by_changed_by)}


class UnsubscribesTable:
    """The warehouse table: one row per (email, list_id), written through a DB-API connection.

    ``placeholder`` is the driver's parameter marker (common.sql's ``DbApiHook.placeholder``: ``?`` for
    SQLite, ``%s`` for Postgres and MySQL). Dates are ISO 8601 text, which every database stores and
    sorts the same way.
    """

    def __init__(self, table: str, *, placeholder: str = "?", batch_size: int = 1000) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"table {table!r} is not a plain table name (letters, digits, _; schema.table allowed)")
        self.table = table
        self.placeholder = placeholder
        self.batch_size = batch_size

    def create_sql(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "email VARCHAR(320) NOT NULL, list_id VARCHAR(32) NOT NULL, status VARCHAR(16) NOT NULL, "
            "changed_at VARCHAR(40), changed_by VARCHAR(16) NOT NULL, PRIMARY KEY (email, list_id))"
        )

    def read(self, cursor: Any, list_id: str) -> dict[str, tuple[str, str | None, str]]:
        """The table's rows for one list: email -> (status, changed_at, changed_by)."""
        cursor.execute(f"SELECT email, status, changed_at, changed_by FROM {self.table} "
                       f"WHERE list_id = {self.placeholder}", (str(list_id),))
        return {str(email): (str(status), changed_at, str(by)) for email, status, changed_at, by in cursor.fetchall()}

    def write(self, conn: Any, list_id: str, rows: Iterable[UnsubscribeRow]) -> WriteCounts:
        """Make the list's rows equal ``rows`` (the complete set): insert the new, rewrite the changed,
        remove those no longer unsubscribed or bounced. One transaction: a failure leaves the table as it was.
        """
        counts = WriteCounts()
        cursor = conn.cursor()
        try:
            before = self.read(cursor, list_id)
            wanted: dict[str, UnsubscribeRow] = {}
            for row in rows:
                wanted.setdefault(row.email, row)  # a contact appears once per list; keep the first
            stale: list[tuple[str, str]] = []
            fresh: list[tuple] = []
            for email, row in wanted.items():
                counts.by_status[row.status] += 1
                counts.by_changed_by[row.changed_by] += 1
                known = before.get(email)
                if known is None:
                    counts.inserted += 1
                    fresh.append(row.as_tuple())
                elif known != (row.status, row.changed_at, row.changed_by):
                    counts.updated += 1
                    stale.append((email, str(list_id)))
                    fresh.append(row.as_tuple())
                else:
                    counts.unchanged += 1
            gone = [(email, str(list_id)) for email in before if email not in wanted]
            counts.removed = len(gone)
            p = self.placeholder
            delete = f"DELETE FROM {self.table} WHERE email = {p} AND list_id = {p}"
            insert = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({', '.join([p] * len(COLUMNS))})"
            for chunk in _chunks(stale + gone, self.batch_size):
                cursor.executemany(delete, chunk)
            for chunk in _chunks(fresh, self.batch_size):
                cursor.executemany(insert, chunk)
            conn.commit()
        except Exception:
            conn.rollback()
            raise
        finally:
            cursor.close()
        return counts


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
