"""Shared machinery of the benchmarks: a SQLite warehouse, the emulator, and one child process per case.

Each measured case runs in its own Python process (``benchmarks/cases.py``) so its peak RSS is its own:
the child reports its VmHWM from /proc (``ru_maxrss`` would include the parent's high-water mark, which
a vfork/exec child inherits); its CPU time comes from ``os.wait4``. The
emulator runs in the parent (a uvicorn thread), so its memory and its CPU for parsing requests are not
counted against the engine, and its request log gives the API span and the 429/400 answers of a case.

Nothing here asserts: the scripts print figures.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CASES = Path(__file__).resolve().with_name("cases.py")
sys.path.insert(0, str(REPO))

# ActiveCampaign's documented limits, as the benchmarks apply them to the emulator and the hook.
REQUESTS_PER_SECOND = 5
BULK_IMPORTS_PER_MINUTE = 100
IMPORT_DELAY = 0.5
CONTACTS_PER_IMPORT = 250
API_KEY = "bench-key-000001"
# Limits that let the seeding of a large state go as fast as this machine can (emulator and hook alike).
RAISED_HOOK_LIMITS = {"requests_per_second": 10_000, "bulk_imports_per_minute": 1_000_000,
                      "single_imports_per_minute": 1_000_000}

PLANS = ("free", "starter", "pro", "enterprise")
# Every 100th customer (customer_id % 100 = 7) changes plan in the "changed" query.
FULL_QUERY = "SELECT email, first_name, last_name, plan, tags FROM customers ORDER BY customer_id"
CHANGED_QUERY = ("SELECT email, first_name, last_name, CASE WHEN customer_id % 100 = 7 THEN 'changed-' || plan "
                 "ELSE plan END AS plan, tags FROM customers ORDER BY customer_id")


def build_warehouse(path: Path, customers: int) -> Path:
    """A SQLite table of ``customers`` distinct valid customers (built once per size, then reused)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with sqlite3.connect(partial) as db:
        db.execute("CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, email TEXT, first_name TEXT, "
                   "last_name TEXT, plan TEXT, tags TEXT)")

        def rows() -> Iterator[tuple]:
            for i in range(customers):
                yield (i, f"customer.{i}@example.com", f"First{i % 977}", f"Last{i % 1013}",
                       PLANS[(i * 7919) % 4], "newsletter,vip" if i % 10 == 0 else "newsletter")

        db.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?)", rows())
    partial.rename(path)
    return path


def cache_dir() -> Path:
    """Warehouses are kept between runs (a 1,000,000-row one takes a few seconds to build)."""
    return Path(os.environ.get("AC_BENCH_CACHE", Path(tempfile.gettempdir()) / "ac_bench_cache"))


@dataclass
class ChildResult:
    result: dict[str, Any]
    peak_rss_mb: float
    cpu_seconds: float
    wall_seconds: float
    started: float  # time.monotonic() in the parent (the emulator's clock)
    ended: float


def run_case(case: str, **arguments: Any) -> ChildResult:
    """Run ``cases.py <case>`` in a fresh interpreter; its last stdout line is its JSON result."""
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ac_bench_airflow_"))
    started = time.monotonic()
    with tempfile.TemporaryFile("w+") as out:
        child = subprocess.Popen([sys.executable, str(CASES), case, json.dumps(arguments)], stdout=out,
                                 env=env, cwd=REPO)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        ended = time.monotonic()
        out.seek(0)
        lines = out.read().strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark case {case} failed (exit {child.returncode}); output: {lines[-20:]}")
    result = json.loads(lines[-1])
    return ChildResult(result, result["peak_rss_mb"], usage.ru_utime + usage.ru_stime, ended - started, started,
                       ended)


@contextmanager
def emulator(*, raised: bool = False) -> Iterator[Any]:
    """The emulator over loopback with ActiveCampaign's real limits (or none, for seeding)."""
    from airflow_provider_activecampaign.emulator import EmulatorServer

    limits: dict[str, Any] = ({"requests_per_second": None, "bulk_imports_per_minute": None,
                               "single_imports_per_minute": None, "import_delay": 0.0} if raised else
                              {"requests_per_second": REQUESTS_PER_SECOND,
                               "bulk_imports_per_minute": BULK_IMPORTS_PER_MINUTE, "import_delay": IMPORT_DELAY})
    with EmulatorServer(api_key=API_KEY, **limits) as server:
        yield server


def seed_list(server: Any, database: str, query: str, list_name: str) -> int:
    """Make every row of ``query`` an active member of a new list, straight in the emulator's memory
    (sending 1,000,000 contacts over HTTP would take the emulator ~10 minutes). Returns the members."""
    account = server.account
    found = account.list_by_name(list_name)
    list_id = (found or account.add_list(list_name)).id
    account.add_field("Plan", "PLAN")
    with sqlite3.connect(database) as db:
        count = 0
        for (email,) in db.execute(f"SELECT email FROM ({query})"):
            account.subscribe(email, list_id)
            count += 1
    return count


def real_limits(server: Any) -> None:
    """Put the real limits back after seeding (fresh limiter windows: nothing counted yet)."""
    server.account.configure(requests_per_second=REQUESTS_PER_SECOND,
                             bulk_imports_per_minute=BULK_IMPORTS_PER_MINUTE, single_imports_per_minute=20,
                             import_delay=IMPORT_DELAY)


def connection(server: Any, *, raised: bool = False) -> str:
    """An Airflow connection (JSON form) to the emulator, for a child's environment."""
    extra = dict(RAISED_HOOK_LIMITS) if raised else {}
    return json.dumps({"conn_type": "activecampaign", "host": server.url, "password": API_KEY, "extra": extra})


@dataclass
class ApiStats:
    requests: int
    span: float  # first to last request the emulator saw during the case
    too_many: int  # 429 answers
    bad_request: int  # 400 answers (the bulk importer's per-minute refusal among them)
    peak_per_second: int
    by_endpoint: dict[str, int]


def api_stats(server: Any, child: ChildResult) -> ApiStats:
    records = [r for r in server.account.request_log if child.started <= r.time <= child.ended]
    statuses = Counter(r.status for r in records)
    span = records[-1].time - records[0].time if records else 0.0
    return ApiStats(len(records), span, statuses[429], statuses[400], server.account.peak_rate(1.0, records),
                    dict(sorted(Counter(r.endpoint for r in records).items())))


def limits_minimum(contacts: int) -> tuple[float, int]:
    """The shortest API span the limits allow for sending ``contacts`` new contacts in bulk.

    Each import needs at least one status read, and all of them share 5 requests/second; at most 100
    imports may start in any 60 seconds, and the last one is processed ``IMPORT_DELAY`` after queueing.
    """
    imports = math.ceil(contacts / CONTACTS_PER_IMPORT)
    by_rate = (2 * imports - 1) / REQUESTS_PER_SECOND
    by_window = 60.0 * ((imports - 1) // BULK_IMPORTS_PER_MINUTE) + IMPORT_DELAY
    return max(by_rate, by_window), imports


def mb(value: float) -> str:
    return f"{value:,.0f} MB"
