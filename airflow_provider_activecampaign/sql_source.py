"""Read an audience query's rows from any common.sql connection, in bounded memory.

``open_sql_rows`` is the one way the provider reads a database: it resolves the connection's own
hook (Postgres, MySQL, Snowflake, SQLite, ...), runs the query and yields the rows chunk by chunk.
The cursor and the connection are closed on every exit, errors and abandoned iterators included.

Some drivers receive the whole result at ``execute()`` with their default cursor, whatever
``fetchmany`` does afterwards (psycopg2, psycopg 3, MySQLdb, PyMySQL). For those the query runs in a
server-side cursor, so only ``fetch_size`` rows are in memory at a time. Every other driver is read
with ``fetchmany``; ``STREAMING_DRIVERS`` lists those whose default cursor is known to stream.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseHook

from airflow_provider_activecampaign.compat import AirflowFailException

log = logging.getLogger(__name__)

SqlParameters = Sequence[Any] | Mapping[str, Any]

# DB-API modules whose plain cursor already fetches from the server as ``fetchmany`` asks (checked
# against each driver's documentation); anything else is read with fetchmany and may be buffered.
STREAMING_DRIVERS: Mapping[str, str] = {
    "sqlite3": "SQLite steps through the result as rows are fetched",
    "snowflake": "Snowflake's connector downloads result chunks lazily",
    "google": "BigQuery's DB-API cursor pages through the result",
    "trino": "Trino's client fetches result pages as they are read",
    "oracledb": "python-oracledb fetches arraysize rows per round trip",
    "mysql": "mysql-connector's default cursor is unbuffered",
    "databricks": "the Databricks SQL connector fetches result batches lazily",
}


@dataclass(frozen=True)
class ReadMethod:
    """How the rows are read: printed in the task log so a user can see whether the read streams."""

    driver: str
    description: str
    streams: bool


def get_db_hook(conn_id: str, *, hook_params: Mapping[str, Any] | None = None) -> Any:
    """The connection's common.sql hook, or a clear failure naming the connection and its hook."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    hook = BaseHook.get_connection(conn_id).get_hook(hook_params=dict(hook_params) if hook_params else None)
    if not isinstance(hook, DbApiHook):
        raise AirflowFailException(
            f"Connection {conn_id!r} is not a SQL database connection "
            f"(its hook is {type(hook).__name__}, not a common.sql DbApiHook)."
        )
    return hook


@contextlib.contextmanager
def open_sql_rows(
    conn_id: str,
    sql: str,
    *,
    parameters: SqlParameters | None = None,
    hook_params: Mapping[str, Any] | None = None,
    fetch_size: int = 5000,
) -> Iterator[tuple[list[str], Iterator[Sequence[Any] | Mapping[str, Any]]]]:
    """Run ``sql`` on connection ``conn_id``; yield ``(columns, rows)`` with rows fetched in chunks.

    :param conn_id: an Airflow connection whose hook is a common.sql ``DbApiHook``
    :param sql: one SELECT statement
    :param parameters: bind parameters passed to ``cursor.execute``
    :param hook_params: keyword arguments for the hook (``Connection.get_hook(hook_params=...)``)
    :param fetch_size: rows per round trip, and the most rows held in memory by the driver
    """
    fetch_size = int(fetch_size)
    if fetch_size < 1:
        raise ValueError(f"fetch_size must be at least 1, not {fetch_size!r}.")
    hook = get_db_hook(conn_id, hook_params=hook_params)
    with contextlib.closing(hook.get_conn()) as conn:
        open_cursor, method = _cursor_for(conn, fetch_size)
        log.info("Reading %r with %s, %d rows per fetch.", conn_id, method.description, fetch_size)
        with contextlib.closing(open_cursor()) as cursor:
            if parameters is not None:
                cursor.execute(sql, parameters)
            else:
                cursor.execute(sql)
            first: list[Any] = []
            if cursor.description is None and method.streams and method.driver == "psycopg2":
                # psycopg2 describes a named cursor only after its first FETCH.
                first = list(cursor.fetchmany(fetch_size))
            if cursor.description is None:
                raise AirflowFailException(f"The query on {conn_id!r} returned no result set (is it a SELECT?).")
            columns = [str(d[0]) for d in cursor.description]
            yield columns, _fetch_chunks(cursor, fetch_size, first)


def _fetch_chunks(cursor: Any, fetch_size: int, first: list[Any]) -> Iterator[Any]:
    yield from first
    if first and len(first) < fetch_size:
        return  # a short first chunk is the whole result
    while batch := cursor.fetchmany(fetch_size):
        yield from batch


def _cursor_for(conn: Any, fetch_size: int) -> tuple[Callable[[], Any], ReadMethod]:
    """A cursor factory for this connection's driver, and how it reads."""
    module = type(conn).__module__ or ""
    top = module.split(".", 1)[0]
    if top == "psycopg2":
        return _psycopg_named(conn, fetch_size, driver="psycopg2")
    if top == "psycopg":
        return _psycopg_named(conn, fetch_size, driver="psycopg")
    if top in ("MySQLdb", "pymysql"):
        return _mysql_unbuffered(conn, top)
    if top in STREAMING_DRIVERS:
        return conn.cursor, ReadMethod(top, f"fetchmany ({STREAMING_DRIVERS[top]})", streams=True)
    return conn.cursor, ReadMethod(top or "unknown", f"fetchmany (driver {module!r} may buffer the result)", False)


def _psycopg_named(conn: Any, fetch_size: int, *, driver: str) -> tuple[Callable[[], Any], ReadMethod]:
    name = f"ac_audience_{uuid.uuid4().hex[:16]}"
    method = ReadMethod(driver, f"a server-side cursor ({driver}, DECLARE {name})", streams=True)

    def open_cursor() -> Any:
        # A server-side cursor lives in a transaction; the connection is ours and read-only, so
        # leaving autocommit is safe (closing the connection rolls the read transaction back).
        if conn.autocommit:
            conn.autocommit = False
        cursor = conn.cursor(name=name)
        cursor.itersize = fetch_size
        return cursor

    return open_cursor, method


def _mysql_unbuffered(conn: Any, driver: str) -> tuple[Callable[[], Any], ReadMethod]:
    if driver == "pymysql":
        import pymysql.cursors as cursors
    else:
        import MySQLdb.cursors as cursors  # type: ignore[no-redef]
    configured = getattr(conn, "cursorclass", None)
    # Keep the hook's row shape (dict rows from a "cursor": "dictcursor" extra) but unbuffered.
    if isinstance(configured, type) and issubclass(configured, cursors.SSCursor):
        chosen = configured
    elif isinstance(configured, type) and issubclass(configured, cursors.DictCursorMixin):
        chosen = cursors.SSDictCursor
    else:
        chosen = cursors.SSCursor
    method = ReadMethod(driver, f"an unbuffered server-side cursor ({driver} {chosen.__name__})", streams=True)
    return (lambda: conn.cursor(chosen)), method
