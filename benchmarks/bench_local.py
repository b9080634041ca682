"""Benchmark: the local pass. A 1,000,000-row dry run from SQLite next to a 1,000-row one.

Both read the same warehouse through a cursor (``fetchmany``), validate, fingerprint, compare with the
(empty) state and spool, against the emulator (the few look-ups cost the same in both). Each runs in its
own process; printed: rows/s over the 1,000-row run ((N - 1,000) / (t_N - t_1000)) and the peak RSS
difference. Asserts nothing. ``python benchmarks/bench_local.py [-n 1000000]``.
"""

from __future__ import annotations

import argparse
import tempfile

from harness import FULL_QUERY, build_warehouse, cache_dir, connection, emulator, mb, run_case

SMALL = 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1_000_000, help="rows in the large dry run")
    args = parser.parse_args()
    n = args.n
    database = str(build_warehouse(cache_dir() / f"warehouse-{n}.sqlite", n))
    print(f"== local pass: dry run of {n:,} rows vs {SMALL:,} rows from SQLite (one process each)")
    results = {}
    with emulator() as server:
        for rows in (SMALL, n):
            with tempfile.TemporaryDirectory() as state_dir:
                results[rows] = run_case("sync", database=database, query=f"{FULL_QUERY} LIMIT {rows}",
                                         connection=connection(server), state_dir=state_dir,
                                         list_name="Benchmark local", run_id=f"dry-{rows}", dry_run=True)
    small, large = results[SMALL], results[n]
    for rows, child in results.items():
        s = child.result["summary"]
        print(f"-- {rows:>9,} rows: plan {child.result['plan_seconds']:.2f} s, run {child.result['seconds']:.2f} s, "
              f"process {child.wall_seconds:.1f} s, peak RSS {mb(child.peak_rss_mb)}; "
              f"valid {s['valid']:,}, to_add {s['to_add']:,}")
    rate = (n - SMALL) / max(1e-9, large.result["seconds"] - small.result["seconds"])
    cpu_rate = (n - SMALL) / max(1e-9, large.result["cpu_seconds"] - small.result["cpu_seconds"])
    print(f"   rows/s over the {SMALL:,}-row run: {rate:,.0f} (wall), {cpu_rate:,.0f} (CPU time) | peak RSS "
          f"difference {mb(large.peak_rss_mb - small.peak_rss_mb)}")


if __name__ == "__main__":
    main()
