"""Audiences read from a real PostgreSQL server (a throwaway cluster on loopback, see tests/services.py).

Both drivers the Postgres provider uses are covered: psycopg 3 (its default with SQLAlchemy 2) and
psycopg2. The read must go through a server-side cursor, or the driver holds the whole result in
memory at execute() (issue 11: 324 MB more for 1,000,000 rows).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import psycopg2.extras
import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.sql_source import open_sql_rows
from demo.warehouse import build_warehouse
from tests.integration.helpers import audience_emails, load_dag, task_states, xcom_result
from tests.services import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

ROWS = 20_000


@pytest.fixture(params=["psycopg", "psycopg2"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which driver PostgresHook.get_conn() uses (psycopg 3 by default when installed)."""
    from airflow.providers.postgres.hooks import postgres

    monkeypatch.setattr(postgres, "USE_PSYCOPG3", request.param == "psycopg")
    return str(request.param)


@pytest.fixture(scope="module")
def numbers(postgres: PostgresServer) -> Iterator[str]:
    with closing(psycopg2.connect(postgres.dsn)) as db, db, db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS numbers")
        cur.execute(f"CREATE TABLE numbers AS SELECT n, 'user' || n || '@example.com' AS email "
                    f"FROM generate_series(1, {ROWS}) AS n")  # fmt: skip
    yield "numbers"


@pytest.fixture
def pg_conn(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_PG_WAREHOUSE", postgres.connection_json())
    return "pg_warehouse"


def backend_queries(postgres: PostgresServer) -> list[str]:
    """The last statement of every other session on the warehouse database."""
    with closing(psycopg2.connect(postgres.dsn)) as db, db, db.cursor() as cur:
        cur.execute("SELECT query FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    (postgres.database,))  # fmt: skip
        return [row[0] for row in cur.fetchall()]


def test_reads_through_a_server_side_cursor(driver: str, numbers: str, pg_conn: str, postgres: PostgresServer,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_activecampaign.sql_source")
    with open_sql_rows(pg_conn, "SELECT n, email FROM numbers ORDER BY n", fetch_size=1000) as (columns, rows):
        assert columns == ["n", "email"]
        first = next(rows)
        # The reading session's last statement is a FETCH of 1000 rows from our named cursor: the
        # rest of the result is still on the server.
        fetches = [q for q in backend_queries(postgres) if q.startswith("FETCH FORWARD 1000 FROM")]
        assert len(fetches) == 1 and '"ac_audience_' in fetches[0], backend_queries(postgres)
        rest = list(rows)
    assert tuple(first) == (1, "user1@example.com")
    assert [tuple(r) for r in rest] == [(n, f"user{n}@example.com") for n in range(2, ROWS + 1)]
    assert f"a server-side cursor ({driver}, DECLARE ac_audience_" in caplog.text
    assert backend_queries(postgres) == []  # the connection was closed


def test_parameters_and_an_abandoned_read(driver: str, numbers: str, pg_conn: str, postgres: PostgresServer) -> None:
    with open_sql_rows(pg_conn, "SELECT email FROM numbers WHERE n <= %(upto)s ORDER BY n",
                       parameters={"upto": 3}, fetch_size=2) as (_, rows):  # fmt: skip
        assert [r[0] for r in rows] == ["user1@example.com", "user2@example.com", "user3@example.com"]
    with open_sql_rows(pg_conn, "SELECT n FROM numbers", fetch_size=100) as (_, rows):
        next(rows)  # the consumer stops early (a guard refused the run): nothing stays open
    assert backend_queries(postgres) == []


def test_query_error_closes_the_connection(driver: str, pg_conn: str, postgres: PostgresServer) -> None:
    with pytest.raises(Exception, match="no_such_table"), open_sql_rows(pg_conn, "SELECT * FROM no_such_table"):
        pass
    assert backend_queries(postgres) == []


def copy_warehouse(sqlite_path: Path, postgres: PostgresServer, table: str = "customers") -> int:
    """The demo's SQLite warehouse, copied into PostgreSQL with the same schema."""
    with sqlite3.connect(sqlite_path) as src:
        rows = src.execute("SELECT customer_id, email, first_name, last_name, phone, plan, lifetime_value, "
                           "opted_in FROM customers").fetchall()  # fmt: skip
    with closing(psycopg2.connect(postgres.dsn)) as db, db, db.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE TABLE {table} (customer_id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
                    "last_name TEXT, phone TEXT, plan TEXT, lifetime_value DOUBLE PRECISION, "
                    "opted_in INTEGER NOT NULL DEFAULT 1)")  # fmt: skip
        psycopg2.extras.execute_values(cur, f"INSERT INTO {table} VALUES %s", rows, page_size=1000)
    return len(rows)


@pytest.mark.usefixtures("airflow_db")
def test_three_thousand_row_send_from_postgres_is_exact(
    ac_default: EmulatorServer, postgres: PostgresServer, pg_conn: str, tmp_path: Path, state_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sqlite_path = tmp_path / "warehouse.db"
    build_warehouse(sqlite_path, customers=2_970, seed=23)  # + ~1% case-only duplicates = 3,000 rows
    copied = copy_warehouse(sqlite_path, postgres)
    assert 2_990 <= copied <= 3_010
    caplog.set_level(logging.INFO, logger="airflow_provider_activecampaign.sql_source")

    dag = load_dag("activecampaign_audience_orchestration")
    run = dag.test(run_conf={"state_uri": f"file://{state_dir}", "warehouse_conn_id": pg_conn})
    assert run.state == "success", task_states(run)

    expected = set(audience_emails(sqlite_path))
    found = ac_default.account.list_by_name("VIP customers")
    assert found is not None and ac_default.account.list_members(found.id) == expected
    sent = xcom_result(run, "send_audience")
    assert sent["rows_read"] == copied
    assert sent["added"] == len(expected) and sent["invalid"] > 0 and sent["duplicates"] > 0
    assert "server-side cursor (psycopg" in caplog.text
