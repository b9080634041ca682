"""Benchmark: an incremental run at 1,000,000 members, 1% changed, against the emulator with
ActiveCampaign's real limits.

The list is built first straight in the emulator's memory, and the state a full send would leave is
written by the engine's own StateStore, fingerprints and header (``--seed-by-sending`` builds both by
a real full send with the limits raised instead: ~10 minutes at 1,000,000). Then the 1%-changed run
goes with the real limits, in its own process: wall time, local rows/s (the plan: read, validate,
fingerprint, compare, spool), peak RSS, requests. Asserts nothing. ``python benchmarks/bench_million.py [-n 1000000]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from harness import (
    CHANGED_QUERY,
    FULL_QUERY,
    api_stats,
    build_warehouse,
    cache_dir,
    connection,
    emulator,
    mb,
    real_limits,
    run_case,
    seed_list,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="members")
    parser.add_argument("--seed-by-sending", action="store_true", help="build list and state by a full send")
    args = parser.parse_args()
    n = args.n
    database = str(build_warehouse(cache_dir() / f"warehouse-{n}.sqlite", n))
    print(f"== incremental run at {n:,} members, 1% changed, real limits")
    with emulator(raised=True) as server, tempfile.TemporaryDirectory() as state_dir:
        common = {"database": database, "state_dir": state_dir, "list_name": "Benchmark million"}
        if args.seed_by_sending:
            seed = run_case("sync", query=FULL_QUERY, run_id="seed", connection=connection(server, raised=True),
                            **common)
            s = seed.result["summary"]
            print(f"-- seeding full send (limits raised): {s['added']:,} added in {seed.wall_seconds:.1f} s, "
                  f"plan {n / seed.result['plan_seconds']:,.0f} rows/s, peak RSS {mb(seed.peak_rss_mb)}")
        else:
            started = time.monotonic()
            server.account.add_list(common["list_name"])
            # The state needs only the list's id: its child computes it while this process fills the list.
            with ThreadPoolExecutor(1) as pool:
                seeding = pool.submit(run_case, "seed_state", query=FULL_QUERY,
                                      connection=connection(server, raised=True), **common)
                members = seed_list(server, database, FULL_QUERY, common["list_name"])
                seed = seeding.result()
            print(f"-- seeded {members:,} list members in the emulator and a state of "
                  f"{seed.result['members']:,} in {time.monotonic() - started:.1f} s")
        real_limits(server)
        run = run_case("sync", query=CHANGED_QUERY, run_id="changed", connection=connection(server), **common)
        stats = api_stats(server, run)
        s = run.result["summary"]
        sent = s["added"] + s["updated"] + s["unsubscribed"]
        print(f"-- 1% changed: wall {run.wall_seconds:.1f} s (process; engine {run.result['seconds']:.1f} s: "
              f"plan {run.result['plan_seconds']:.1f} s + send {run.result['execute_seconds']:.1f} s)")
        print(f"   local rows/s {n / run.result['plan_seconds']:,.0f} (wall), "
              f"{n / run.result['plan_cpu_seconds']:,.0f} (CPU time) | peak RSS {mb(run.peak_rss_mb)} | "
              f"{sent:,} contacts sent | API span {stats.span:.1f} s, {stats.requests} requests, "
              f"429: {stats.too_many}, 400: {stats.bad_request}")
        print(f"   requests: {json.dumps(stats.by_endpoint)}; membership source {s.get('membership_source')!r}")


if __name__ == "__main__":
    main()
