"""One benchmark case per process (started by harness.run_case): ``cases.py <case> '<json arguments>'``.

Prints its result as one JSON line on stdout. Keeps to the engine's public surface (AudienceSync,
SyncOptions, StateStore, the hook) so the figures are what a task would see.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONN_ID = "activecampaign_bench"


def sqlite_rows(database: str, query: str, fetch_size: int = 5000) -> tuple[list[str], Iterator[tuple]]:
    """Like the operator's SQL source: one cursor, ``fetchmany(fetch_size)`` until it runs dry."""
    db = sqlite3.connect(database)
    cursor = db.execute(query)
    columns = [d[0] for d in cursor.description]

    def chunks() -> Iterator[tuple]:
        try:
            while batch := cursor.fetchmany(fetch_size):
                yield from batch
        finally:
            cursor.close()
            db.close()

    return columns, chunks()


def _store(hook: Any, state_dir: str, list_name: str) -> Any:
    from airflow_provider_activecampaign.audience.state import StateStore

    # The operator's keys: the account's host and the list's name.
    return StateStore(Path(state_dir), account_key=urlsplit(hook.api_url).netloc, list_key=list_name)


def sync(database: str, query: str, connection: str, state_dir: str, list_name: str, run_id: str,
         dry_run: bool = False) -> dict[str, Any]:
    """One run of the engine (plan, then execute unless a dry run), timed in its two halves."""
    os.environ["AIRFLOW_CONN_" + CONN_ID.upper()] = connection
    from airflow_provider_activecampaign.audience.sync import AudienceSync, SyncOptions
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

    logging.basicConfig(level=logging.WARNING)
    hook = ActiveCampaignHook(activecampaign_conn_id=CONN_ID)
    engine = AudienceSync(hook, SyncOptions(list_name=list_name, dry_run=dry_run), store=_store(hook, state_dir,
                          list_name), run_id=run_id)
    columns, rows = sqlite_rows(database, query)
    started, cpu_started = time.perf_counter(), time.process_time()
    plan = engine.plan(columns, rows)
    planned, cpu_planned = time.perf_counter(), time.process_time()
    if not dry_run:
        # execute(plan) is the engine contract; older engines took no argument.
        if inspect.signature(engine.execute).parameters:
            engine.execute(plan)
        else:
            engine.execute()
    summary = engine.finish().as_dict()
    ended = time.perf_counter()
    # CPU seconds too: on a shared machine they say what the wall clock cannot.
    return {"plan_seconds": planned - started, "execute_seconds": ended - planned,
            "plan_cpu_seconds": cpu_planned - cpu_started, "cpu_seconds": time.process_time() - cpu_started,
            "seconds": ended - started, "summary": summary}


def seed_state(database: str, query: str, connection: str, state_dir: str, list_name: str) -> dict[str, Any]:
    """Write the state a full send of ``query`` would leave (every row subscribed, fingerprinted by the
    engine's own functions), verified against the emulator's list, without sending anything."""
    os.environ["AIRFLOW_CONN_" + CONN_ID.upper()] = connection
    import datetime as dt

    from airflow_provider_activecampaign.audience import state as state_module
    from airflow_provider_activecampaign.audience.records import InvalidRow, RowMapper, fingerprint
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

    hook = ActiveCampaignHook(activecampaign_conn_id=CONN_ID)
    found = hook.find_list_by_name(list_name)
    assert found is not None, "seed the emulator's list first"
    columns, rows = sqlite_rows(database, query)
    mapper = RowMapper(columns)
    subscribed = state_module.MemberStatus.SUBSCRIBED
    members: dict[str, Any] = {}
    to_record = getattr(mapper, "map_record", mapper.map)  # (v0.1 had map() only)
    for number, row in enumerate(rows, start=1):
        record = to_record(row, number)
        if not isinstance(record, InvalidRow):
            email = record[0] if type(record) is tuple else record.email
            members[email] = state_module.MemberState(fingerprint(record), subscribed)
    store = _store(hook, state_dir, list_name)
    meta_type = getattr(state_module, "StateMeta", None)
    if meta_type is None:  # the v0.1 state had no header to verify
        store.compact(members)
    else:
        meta = meta_type(api_url=hook.api_url, user_id=str(hook.get_current_user()["id"]), list_id=str(found["id"]),
                         list_name=list_name, active=len(members), unsubscribed=0,
                         reconciled_at=dt.datetime.now(dt.timezone.utc).isoformat())
        store.compact(members, meta=meta)
    return {"members": len(members)}


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM of its memory since exec). Not ``ru_maxrss``: a child started
    by vfork/exec inherits its parent's high-water mark there, and the parent holds the emulator."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


CASES = {"sync": sync, "seed_state": seed_state}

if __name__ == "__main__":
    name, arguments = sys.argv[1], json.loads(sys.argv[2])
    result = CASES[name](**arguments)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, default=str))
