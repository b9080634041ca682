"""Benchmark: a full send and a 1%-changed send against the emulator with ActiveCampaign's real limits,
plus a 1,000,000-row local pass (read, validate, plan, batch; no network).

Prints figures; asserts nothing. Run with `make bench` or `python benchmarks/bench_send.py [-n 25000]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ac_bench_airflow_"))

PLANS = ["free", "starter", "pro", "enterprise"]
COLUMNS = ["email", "first_name", "last_name", "plan", "tags"]


def rows(n: int, changed: set[int] = frozenset(), seed: int = 1) -> Iterator[tuple]:
    rng = random.Random(seed)
    for i in range(n):
        plan = rng.choice(PLANS)
        if i in changed:
            plan = "changed-" + plan
        yield (f"customer.{i}@example.com", f"First{i % 977}", f"Last{i % 1013}", plan,
               "newsletter,vip" if i % 10 == 0 else "newsletter")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class NoNetworkClient:
    """Stands in for the hook in the local pass: an existing list with no members, fields known."""

    api_url = "https://local.api-us1.com"
    request_counts: Counter = Counter()

    def find_user_group(self, name: str) -> dict:
        return {"id": "1", "title": name}

    def get_custom_fields(self) -> dict:
        return {"PLAN": {"id": "1", "perstag": "PLAN"}}

    def find_list_by_name(self, name: str) -> dict:
        return {"id": "1", "name": name}

    def iter_list_contacts(self, list_id: str, status: int | None = 1) -> Iterator[dict]:
        return iter(())


def local_pass(n: int) -> dict:
    from airflow_provider_activecampaign.audience.batching import split_import_batches
    from airflow_provider_activecampaign.audience.records import to_import_contact
    from airflow_provider_activecampaign.audience.sync import AudienceSync, SyncOptions

    engine = AudienceSync(NoNetworkClient(), SyncOptions(list_name="bench", group_name="Admin"))
    t0 = time.perf_counter()
    engine.plan(COLUMNS, rows(n))
    t_plan = time.perf_counter() - t0
    batches = contacts = 0
    payloads = (to_import_contact(c, field_ids=engine.field_ids, subscribe_list_id=1)
                for _cat, _fp, c in engine._iter_spool())
    for batch in split_import_batches(payloads):
        batches += 1
        contacts += len(batch)
    total = time.perf_counter() - t0
    engine.finish()
    return {"rows": n, "plan_seconds": round(t_plan, 2), "total_seconds": round(total, 2),
            "rows_per_second_plan": round(n / t_plan), "rows_per_second_total": round(n / total),
            "batches": batches, "contacts_batched": contacts, "peak_rss_mb": round(peak_rss_mb(), 1)}


def network_runs(n: int, import_delay: float) -> None:
    from airflow_provider_activecampaign.audience.state import StateStore
    from airflow_provider_activecampaign.audience.sync import AudienceSync, SyncOptions
    from airflow_provider_activecampaign.emulator import EmulatorServer

    key = "bench-key-000001"
    with EmulatorServer(api_key=key, import_delay=import_delay) as emulator, \
            tempfile.TemporaryDirectory() as state_dir:
        os.environ["AIRFLOW_CONN_ACTIVECAMPAIGN_BENCH"] = json.dumps(
            {"conn_type": "activecampaign", "host": emulator.url, "password": key})
        from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

        imports = math.ceil(n / 250)
        # The limits' minimum: imports spaced 0.6 s apart (100/minute), then the last batch processed.
        minimum = (imports - 1) * 0.6 + import_delay
        changed = set(random.Random(5).sample(range(n), n // 100))
        for label, data in (("full send", rows(n)), ("1% changed", rows(n, changed))):
            hook = ActiveCampaignHook(activecampaign_conn_id="activecampaign_bench")
            store = StateStore(Path(state_dir), account_key=hook.host, list_key="bench")
            engine = AudienceSync(hook, SyncOptions(list_name="Benchmark", group_name="Admin"),
                                  store=store, run_id=label.replace(" ", "-"))
            t0 = time.perf_counter()
            engine.plan(COLUMNS, data)
            t_plan = time.perf_counter() - t0
            engine.execute()
            s = engine.finish()
            seconds = time.perf_counter() - t0
            sent = s.added + s.updated + s.unsubscribed
            print(f"\n-- {label}: {n} rows")
            print(f"   wall {seconds:.1f}s, {sent} contacts sent, {sent / seconds:.0f} contacts/s, "
                  f"{s.rejected} rejected")
            print(f"   API requests {s.api_requests}: {json.dumps(s.requests_by_endpoint)}")
            print(f"   read+validate+plan, incl. its 3-4 API look-ups: {n / t_plan:,.0f} rows/s ({t_plan:.2f}s)")
            if label == "full send":
                print(f"   minimum the limits allow: {minimum:.1f}s -> measured/minimum = {seconds / minimum:.3f}")
                print(f"   imports {s.requests_by_endpoint.get('POST import/bulk_import', 0)} "
                      f"(ceil(N/250) = {imports}), polls {s.requests_by_endpoint.get('GET import/info', 0)}, "
                      f"average request rate {s.api_requests / seconds:.2f}/s")
            else:
                print(f"   sent {sent / n:.2%} of contacts (changed rows: {len(changed) / n:.2%})")
            rate_limited = sum(1 for r in emulator.account.request_log if r.status == 429)
            print(f"   429 answers from the emulator so far: {rate_limited}")
        print(f"\npeak RSS of this process: {peak_rss_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=25_000, help="contacts in the network benchmark")
    parser.add_argument("--local-rows", type=int, default=1_000_000)
    parser.add_argument("--import-delay", type=float, default=0.5)
    parser.add_argument("--local-only", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.local_only:
        print(json.dumps(local_pass(args.local_only)))
        return
    print(f"ActiveCampaign limits: 5 requests/s, 100 bulk imports/minute, 250 contacts/import "
          f"(ceiling 25,000 contacts/minute). Emulator import delay {args.import_delay}s.")
    network_runs(args.n, args.import_delay)
    # The local pass runs in its own process so its peak memory is its own.
    out = subprocess.run([sys.executable, __file__, "--local-only", str(args.local_rows)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\n-- local pass, no network: {result['rows']:,} rows")
    print(f"   read+validate+plan {result['rows_per_second_plan']:,} rows/s; with batching "
          f"{result['rows_per_second_total']:,} rows/s ({result['total_seconds']}s); "
          f"{result['batches']} import batches; peak RSS {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
