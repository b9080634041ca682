"""Read an audience query's rows from any common.sql connection, in bounded memory.

``open_sql_rows`` is the one way the provider reads a database: it resolves the connection's own
hook (Postgres, MySQL, Snowflake, SQLite, ...), runs the query and yields the rows chunk by chunk.
The cursor and the connection are closed on every exit, errors and abandoned iterators included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException

SqlParameters = Sequence[Any] | Mapping[str, Any]


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
) -> Iterator[tuple[list[str], Iterator[Sequence[Any]]]]:
    """Run ``sql`` on connection ``conn_id``; yield ``(columns, rows)`` with rows fetched in chunks.

    :param conn_id: an Airflow connection whose hook is a common.sql ``DbApiHook``
    :param sql: one SELECT statement
    :param parameters: bind parameters passed to ``cursor.execute``
    :param hook_params: keyword arguments for the hook (``Connection.get_hook(hook_params=...)``)
    :param fetch_size: rows per ``fetchmany`` round trip
    """
    if int(fetch_size) < 1:
        raise ValueError(f"fetch_size must be at least 1, not {fetch_size!r}.")
    hook = get_db_hook(conn_id, hook_params=hook_params)
    with contextlib.closing(hook.get_conn()) as conn, contextlib.closing(conn.cursor()) as cursor:
        if parameters is not None:
            cursor.execute(sql, parameters)
        else:
            cursor.execute(sql)
        if cursor.description is None:
            raise AirflowFailException(f"The query on {conn_id!r} returned no result set (is it a SELECT?).")
        columns = [str(d[0]) for d in cursor.description]
        yield columns, _fetch_chunks(cursor, int(fetch_size))


def _fetch_chunks(cursor: Any, fetch_size: int) -> Iterator[Sequence[Any]]:
    while batch := cursor.fetchmany(fetch_size):
        yield from batch
