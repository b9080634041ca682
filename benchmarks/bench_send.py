"""Benchmark: a 25,000-contact full send, then a 1%-changed run, against the emulator with
ActiveCampaign's real limits (5 requests/s, 100 bulk imports/minute, imports processed 0.5 s after
queueing).

Prints, side by side: the measured API span and wall time, the limits' minimum and their ratio, the
429/400 answers; for the 1%-changed run the contacts sent and the requests by endpoint (the drift
check included). Asserts nothing. ``python benchmarks/bench_send.py [-n 25000]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile

from harness import (
    CHANGED_QUERY,
    FULL_QUERY,
    api_stats,
    build_warehouse,
    cache_dir,
    connection,
    emulator,
    limits_minimum,
    mb,
    run_case,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=25_000, help="contacts in the audience")
    args = parser.parse_args()
    n = args.n
    database = str(build_warehouse(cache_dir() / f"warehouse-{n}.sqlite", n))
    minimum, imports = limits_minimum(n)
    print(f"== send benchmark: {n:,} contacts, emulator with 5 req/s, 100 bulk imports/min, "
          f"imports processed 0.5 s after queueing")
    with emulator() as server, tempfile.TemporaryDirectory() as state_dir:
        common = {"database": database, "connection": connection(server), "state_dir": state_dir,
                  "list_name": "Benchmark"}
        full = run_case("sync", query=FULL_QUERY, run_id="full", **common)
        stats = api_stats(server, full)
        s = full.result["summary"]
        sent = s["added"] + s["updated"] + s["unsubscribed"]
        print(f"-- full send: {sent:,} contacts sent, {s['rejected']} rejected")
        print(f"   API span {stats.span:.1f} s | limits' minimum {minimum:.1f} s ({imports} imports + "
              f"{imports} status reads at 5/s) | ratio {stats.span / minimum:.3f}")
        print(f"   wall {full.wall_seconds:.1f} s (process), engine {full.result['seconds']:.1f} s | "
              f"429: {stats.too_many} | 400: {stats.bad_request} | peak {stats.peak_per_second} req/s")
        print(f"   requests {stats.requests}: {json.dumps(stats.by_endpoint)}")
        print(f"   peak RSS {mb(full.peak_rss_mb)}")

        changed = run_case("sync", query=CHANGED_QUERY, run_id="changed", **common)
        stats = api_stats(server, changed)
        s = changed.result["summary"]
        sent = s["added"] + s["updated"] + s["unsubscribed"]
        expected = len(range(7, n, 100))
        print(f"-- 1% changed ({expected:,} rows changed): {sent:,} contacts sent ({sent / n:.2%} of {n:,}) "
              f"in {stats.requests} requests (summary api_requests {s['api_requests']})")
        print(f"   requests: {json.dumps(stats.by_endpoint)}")
        print(f"   membership source {s.get('membership_source')!r}; wall {changed.wall_seconds:.1f} s; "
              f"429: {stats.too_many} | 400: {stats.bad_request}")


if __name__ == "__main__":
    main()
