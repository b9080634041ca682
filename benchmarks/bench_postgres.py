"""Benchmark: a 1,000,000-row dry run read from a real PostgreSQL server, next to a 1,000-row one.

Starts a throwaway PostgreSQL cluster on loopback (tests/services.py; the server comes from
scripts/install-services.sh), fills a ``customers`` table, and runs the engine's dry run (read, validate,
fingerprint, compare with the empty state, spool) through ``open_sql_rows`` in a fresh process per case,
for psycopg 3 and psycopg2. ``--compare-client-cursor`` also runs the same read through the driver's
plain cursor (what v0.1 did), which holds the whole result in memory.

Printed per driver: rows/s over the 1,000-row run ((N - 1,000) / (t_N - t_1000)) and the peak RSS
difference. Asserts nothing. ``python benchmarks/bench_postgres.py [-n 1000000] [--compare-client-cursor]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMALL = 1_000
PG_CONN_ID = "bench_postgres"
AC_CONN_ID = "activecampaign_bench"
QUERY = "SELECT email, first_name, last_name, plan, tags FROM customers ORDER BY customer_id"


def fill(dsn: str, rows: int) -> None:
    import psycopg2

    with closing(psycopg2.connect(dsn)) as db, db, db.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS customers")
        cur.execute(
            "CREATE TABLE customers AS SELECT i AS customer_id, 'customer.' || i || '@example.com' AS email, "
            "'First' || (i % 977) AS first_name, 'Last' || (i % 1013) AS last_name, "
            "(ARRAY['free','starter','pro','enterprise'])[1 + (i::bigint * 7919) % 4] AS plan, "
            "CASE WHEN i % 10 = 0 THEN 'newsletter,vip' ELSE 'newsletter' END AS tags "
            f"FROM generate_series(0, {rows - 1}) AS i"
        )
        cur.execute("ALTER TABLE customers ADD PRIMARY KEY (customer_id)")
        cur.execute("ANALYZE customers")


def child(arguments: dict[str, Any]) -> dict[str, Any]:
    """One dry run in this process: read ``limit`` rows from PostgreSQL and plan them."""
    os.environ["AIRFLOW_CONN_" + PG_CONN_ID.upper()] = arguments["pg_connection"]
    os.environ["AIRFLOW_CONN_" + AC_CONN_ID.upper()] = arguments["ac_connection"]
    from airflow.providers.postgres.hooks import postgres

    postgres.USE_PSYCOPG3 = arguments["driver"] == "psycopg"  # which driver PostgresHook.get_conn() uses
    from airflow_provider_activecampaign.audience.state import StateStore
    from airflow_provider_activecampaign.audience.sync import AudienceSync, SyncOptions
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
    from airflow_provider_activecampaign.sql_source import get_db_hook, open_sql_rows

    logging.basicConfig(level=logging.WARNING)
    hook = ActiveCampaignHook(activecampaign_conn_id=AC_CONN_ID)
    store = StateStore(Path(arguments["state_dir"]), account_key=urlsplit(hook.api_url).netloc,
                       list_key="Benchmark postgres")  # fmt: skip
    engine = AudienceSync(hook, SyncOptions(list_name="Benchmark postgres", dry_run=True), store=store,
                          run_id=f"dry-{arguments['limit']}")  # fmt: skip
    sql = f"{QUERY} LIMIT {arguments['limit']}"
    started = time.perf_counter()
    if arguments["cursor"] == "server":
        with open_sql_rows(PG_CONN_ID, sql, fetch_size=5000) as (columns, rows):
            engine.plan(columns, rows)
    else:  # v0.1's read: the driver's default (client-side) cursor, then fetchmany
        with closing(get_db_hook(PG_CONN_ID).get_conn()) as conn, closing(conn.cursor()) as cursor:
            cursor.execute(sql)
            columns = [d[0] for d in cursor.description]

            def rows() -> Any:
                while batch := cursor.fetchmany(5000):
                    yield from batch

            engine.plan(columns, rows())
    seconds = time.perf_counter() - started
    summary = engine.finish().as_dict()
    return {"seconds": seconds, "rows_read": summary.get("rows_read")}


def run_child(arguments: dict[str, Any]) -> tuple[dict[str, Any], float, float]:
    """Run one case in a fresh interpreter; its peak RSS comes from wait4's usage of that child only."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ac_bench_airflow_"))
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(arguments)], stdout=out, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        lines = out.read().strip().splitlines()
    if os.waitstatus_to_exitcode(status) != 0 or not lines:
        raise RuntimeError(f"benchmark case failed: {arguments} -> {lines[-20:]}")
    return json.loads(lines[-1]), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="rows in the large dry run")
    parser.add_argument("--drivers", default="psycopg,psycopg2")
    parser.add_argument("--compare-client-cursor", action="store_true",
                        help="also measure the driver's plain cursor (reads the whole result at execute)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    from harness import connection, emulator, mb

    from tests.services import postgres_server

    n = args.n
    cursors = ["server", "client"] if args.compare_client_cursor else ["server"]
    with postgres_server(database="bench") as pg, emulator() as server:
        began = time.perf_counter()
        fill(pg.dsn, n)
        print(f"== PostgreSQL dry run: {n:,} rows vs {SMALL:,} rows (one process each); "
              f"table filled in {time.perf_counter() - began:.1f} s")  # fmt: skip
        for driver in args.drivers.split(","):
            for cursor in cursors:
                runs = {}
                for limit in (SMALL, n):
                    with tempfile.TemporaryDirectory() as state_dir:
                        runs[limit] = run_child({"driver": driver, "cursor": cursor, "limit": limit,
                                                 "state_dir": state_dir, "pg_connection": pg.connection_json(),
                                                 "ac_connection": connection(server)})  # fmt: skip
                (small, small_rss, small_cpu), (large, large_rss, large_cpu) = runs[SMALL], runs[n]
                rate = (n - SMALL) / max(1e-9, large["seconds"] - small["seconds"])
                cpu_rate = (n - SMALL) / max(1e-9, large_cpu - small_cpu)  # what a loaded machine hides
                label = "server-side cursor (open_sql_rows)" if cursor == "server" else "plain client cursor (v0.1)"
                print(f"-- {driver:8} {label}: {n:,} rows in {large['seconds']:.1f} s "
                      f"({large['rows_read']:,} rows read), peak RSS {mb(large_rss)} vs {mb(small_rss)} for {SMALL:,}: "
                      f"difference {mb(large_rss - small_rss)}; rows/s over the {SMALL:,}-row run: {rate:,.0f} "
                      f"(per CPU second of the task process: {cpu_rate:,.0f})")


if __name__ == "__main__":
    main()
