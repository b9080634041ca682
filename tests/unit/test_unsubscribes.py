"""Unsubscribes back to the warehouse: who made the change, and the table's idempotent upsert."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from airflow_provider_activecampaign.audience.unsubscribes import (
    UnsubscribeRow,
    UnsubscribesTable,
    changed_by,
    unsubscribe_rows,
)

UTC = dt.timezone.utc
SYNC_AT = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def membership(status: str = "2", udate: str = "2026-12-01T04:00:00-06:00", **extra: object) -> dict:
    return {"status": status, "udate": udate, "unsubreason": "", "campaign": None, "message": None,
            "unsubscribeAutomation": None, **extra}


def test_who_made_the_change() -> None:
    assert changed_by(membership(unsubreason="Too many emails")) == "contact"
    assert changed_by(membership(campaign="12", message="3")) == "contact"  # an email's unsubscribe link
    assert changed_by(membership(unsubscribeAutomation="7")) == "other"
    assert changed_by(membership(status="3")) == "other"  # bounced
    assert changed_by(membership()) == "other"  # nothing tells: a user, the API, or a silent contact
    # The sync's own unsubscribe, still as it left it (10:00 UTC == 04:00 -06:00).
    assert changed_by(membership(), by_sync=True, sync_unsubscribed_at=SYNC_AT) == "sync"
    assert changed_by(membership(), by_sync=True) == "sync"  # a state that does not record the time
    # Changed an hour after the sync unsubscribed them: someone else did it since.
    later = membership(udate="2026-12-01T05:00:00-06:00")
    assert changed_by(later, by_sync=True, sync_unsubscribed_at=SYNC_AT) == "other"
    # The contact's own reason wins over the state's memory.
    assert changed_by(membership(unsubreason="bye"), by_sync=True, sync_unsubscribed_at=SYNC_AT) == "contact"
    assert changed_by(membership(campaign="0", message="0")) == "other"  # "0" is ActiveCampaign's none


def test_the_listing_status_stands_in_for_a_missing_membership_record() -> None:
    rows = list(unsubscribe_rows([({"email": "a@x.com"}, None), ({"email": "b@x.com"}, None)], "5", status=2))
    assert rows == [UnsubscribeRow("a@x.com", "5", "unsubscribed", None, "other"),
                    UnsubscribeRow("b@x.com", "5", "unsubscribed", None, "other")]


def test_rows_from_memberships() -> None:
    pairs = [
        ({"email": " Ann@Example.com "}, membership(unsubreason="no")),
        ({"email": "bob@example.com"}, membership(status="3", udate="2026-12-01 09:00:00")),
        ({"email": ""}, membership()),  # a contact without an email is skipped
        ({"email": "cy@example.com"}, membership(status="1")),  # active: not reported
        ({"email": "di@example.com"}, None),
        ({"email": "ed@example.com"}, membership()),
    ]
    rows = list(unsubscribe_rows(pairs, "5", sync_unsubscribes={"ed@example.com": SYNC_AT}))
    assert rows == [
        UnsubscribeRow("ann@example.com", "5", "unsubscribed", "2026-12-01T10:00:00+00:00", "contact"),
        UnsubscribeRow("bob@example.com", "5", "bounced", "2026-12-01T09:00:00", "other"),
        UnsubscribeRow("ed@example.com", "5", "unsubscribed", "2026-12-01T10:00:00+00:00", "sync"),
    ]


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    yield connection
    connection.close()


def table_rows(conn: sqlite3.Connection) -> list[tuple]:
    return sorted(conn.execute("SELECT email, list_id, status, changed_at, changed_by FROM unsubs").fetchall())


def row(email: str, status: str = "unsubscribed", at: str = "2026-12-01T10:00:00+00:00", by: str = "contact",
        list_id: str = "5") -> UnsubscribeRow:
    return UnsubscribeRow(email, list_id, status, at, by)


def test_the_table_is_upserted_by_email_and_list(conn: sqlite3.Connection) -> None:
    table = UnsubscribesTable("unsubs", batch_size=2)
    conn.execute(table.create_sql())
    conn.execute(table.create_sql())  # idempotent
    first = table.write(conn, "5", [row("a@x.com"), row("b@x.com"), row("c@x.com", "bounced", by="other")])
    assert (first.inserted, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)
    assert first.by_status == {"unsubscribed": 2, "bounced": 1}
    # Another list's rows are never touched by this list's write.
    table.write(conn, "9", [row("a@x.com", list_id="9")])

    again = table.write(conn, "5", [row("a@x.com"), row("b@x.com"), row("c@x.com", "bounced", by="other")])
    assert (again.inserted, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)

    # b re-subscribed (gone), c went from bounced to unsubscribed, d is new.
    later = table.write(conn, "5", [row("a@x.com"), row("c@x.com", at="2026-12-02T08:00:00+00:00"),
                                    row("d@x.com", by="other")])
    assert (later.inserted, later.updated, later.removed, later.unchanged) == (1, 1, 1, 1)
    assert table_rows(conn) == [
        ("a@x.com", "5", "unsubscribed", "2026-12-01T10:00:00+00:00", "contact"),
        ("a@x.com", "9", "unsubscribed", "2026-12-01T10:00:00+00:00", "contact"),
        ("c@x.com", "5", "unsubscribed", "2026-12-02T08:00:00+00:00", "contact"),
        ("d@x.com", "5", "unsubscribed", "2026-12-01T10:00:00+00:00", "other"),
    ]


def test_a_failed_write_leaves_the_table_as_it_was(conn: sqlite3.Connection) -> None:
    table = UnsubscribesTable("unsubs")
    conn.execute(table.create_sql())
    table.write(conn, "5", [row("a@x.com")])

    # a's old row is deleted first, then b's insert breaks a NOT NULL constraint mid-transaction.
    broken = UnsubscribeRow("b@x.com", "5", None, None, "other")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        table.write(conn, "5", [row("a@x.com", "bounced"), broken])
    assert table_rows(conn) == [("a@x.com", "5", "unsubscribed", "2026-12-01T10:00:00+00:00", "contact")]


@pytest.mark.parametrize("name", ["unsubs; DROP TABLE x", "a b", "1abc", "a.b.c.d", ""])
def test_table_names_are_plain_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="not a plain table name"):
        UnsubscribesTable(name)


def test_schema_qualified_names_and_placeholders() -> None:
    table = UnsubscribesTable("marketing.unsubscribes", placeholder="%s")
    assert "CREATE TABLE IF NOT EXISTS marketing.unsubscribes" in table.create_sql()
