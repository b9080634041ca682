"""open_sql_rows: any common.sql connection, rows in chunks, cursor and connection always closed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_activecampaign import sql_source
from airflow_provider_activecampaign.compat import AirflowFailException
from airflow_provider_activecampaign.sql_source import open_sql_rows


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "wh.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT, plan TEXT)")
        db.executemany(
            "INSERT INTO customers (email, plan) VALUES (?, ?)",
            [(f"user{i}@example.com", "gold" if i % 2 else "free") for i in range(1, 1201)],
        )
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


class Spy:
    """Wraps the hook's DB-API connection to record fetchmany sizes and close() calls."""

    def __init__(self) -> None:
        self.fetch_sizes: list[int] = []
        self.cursor_closed = False
        self.conn_closed = False

    def wrap(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = sql_source.get_db_hook
        spy = self

        class Cursor:
            def __init__(self, real: Any) -> None:
                self.real = real

            def __getattr__(self, name: str) -> Any:
                return getattr(self.real, name)

            def fetchmany(self, size: int) -> list[Any]:
                spy.fetch_sizes.append(size)
                return self.real.fetchmany(size)

            def close(self) -> None:
                spy.cursor_closed = True
                self.real.close()

        class Conn:
            def __init__(self, real: Any) -> None:
                self.real = real

            def cursor(self) -> Cursor:
                return Cursor(self.real.cursor())

            def close(self) -> None:
                spy.conn_closed = True
                self.real.close()

        def get_db_hook(conn_id: str, **kwargs: Any) -> Any:
            hook = original(conn_id, **kwargs)
            real_get_conn = hook.get_conn
            hook.get_conn = lambda: Conn(real_get_conn())
            return hook

        monkeypatch.setattr(sql_source, "get_db_hook", get_db_hook)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    s = Spy()
    s.wrap(monkeypatch)
    return s


def test_reads_every_row_in_chunks_and_closes(warehouse: Path, spy: Spy) -> None:
    with open_sql_rows("wh", "SELECT email, plan FROM customers ORDER BY id", fetch_size=500) as (columns, rows):
        assert columns == ["email", "plan"]
        got = list(rows)
    assert len(got) == 1200
    assert tuple(got[0]) == ("user1@example.com", "gold")
    assert tuple(got[-1]) == ("user1200@example.com", "free")
    assert spy.fetch_sizes == [500, 500, 500, 500]  # 500+500+200, then the empty fetch that ends it
    assert spy.cursor_closed and spy.conn_closed


def test_parameters_are_bound(warehouse: Path) -> None:
    with open_sql_rows("wh", "SELECT email FROM customers WHERE plan = ? AND id <= ?", parameters=("gold", 10)) as (
        _,
        rows,
    ):
        assert [r[0] for r in rows] == [f"user{i}@example.com" for i in (1, 3, 5, 7, 9)]


def test_closed_when_the_consumer_stops_early(warehouse: Path, spy: Spy) -> None:
    with open_sql_rows("wh", "SELECT email FROM customers", fetch_size=100) as (_, rows):
        assert next(rows)[0] == "user1@example.com"
    assert spy.fetch_sizes == [100]
    assert spy.cursor_closed and spy.conn_closed


def test_closed_when_the_consumer_fails(warehouse: Path, spy: Spy) -> None:
    with (
        pytest.raises(RuntimeError, match="engine broke"),
        open_sql_rows("wh", "SELECT email FROM customers") as (
            _,
            rows,
        ),
    ):
        next(rows)
        raise RuntimeError("engine broke")
    assert spy.cursor_closed and spy.conn_closed


def test_closed_when_the_query_fails(warehouse: Path, spy: Spy) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"), open_sql_rows("wh", "SELECT * FROM nope"):
        pass
    assert spy.cursor_closed and spy.conn_closed


def test_statement_without_result_set_fails_clearly(warehouse: Path, spy: Spy) -> None:
    with (
        pytest.raises(AirflowFailException, match="no result set"),
        open_sql_rows("wh", "UPDATE customers SET plan = 'x' WHERE 0"),
    ):
        pass
    assert spy.cursor_closed and spy.conn_closed


def test_non_sql_connection_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_AC",
        json.dumps({"conn_type": "activecampaign", "host": "https://acct.api-us1.com", "password": "k3y-secret"}),
    )
    with (
        pytest.raises(AirflowFailException, match=r"'ac' is not a SQL database connection.*ActiveCampaignHook"),
        open_sql_rows("ac", "SELECT 1"),
    ):
        pass


def test_hook_params_reach_the_hook(warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    from airflow.providers.sqlite.hooks.sqlite import SqliteHook

    original_init = SqliteHook.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        seen.update(kwargs)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(SqliteHook, "__init__", init)
    with open_sql_rows("wh", "SELECT 1", hook_params={"log_sql": False}) as (_, rows):
        assert [tuple(r) for r in rows] == [(1,)]
    assert seen.get("log_sql") is False


def test_fetch_size_must_be_positive(warehouse: Path) -> None:
    with pytest.raises(ValueError, match="fetch_size"), open_sql_rows("wh", "SELECT 1", fetch_size=0):
        pass
