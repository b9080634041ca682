"""`make demo`: the example DAGs end to end through Airflow, against two embedded emulator accounts.

1. builds the sample warehouse (SQLite, 20,000+ customers) under .demo/ (git-ignored);
2. starts a sandbox and a production ActiveCampaign emulator on loopback ports;
3. runs `airflow dags test activecampaign_sandbox_promotion` (approved by DAG param),
   then `activecampaign_audience_orchestration` twice, changing ~1% of customers in between;
   then some members unsubscribe themselves or bounce, `activecampaign_unsubscribes` writes them back
   into the warehouse, and `activecampaign_campaign` sends treatment groups A and B to their own lists,
   counting the control group and leaving out everyone the write-back stored;
4. prints what each step sent, rejected and unsubscribed, how long it took, where the rejects are;
5. stops the emulators it started, even on failure; exits non-zero if any DAG run failed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from demo.warehouse import build_warehouse, change_warehouse  # noqa: E402

WORK = REPO / ".demo"
AIRFLOW_HOME = WORK / "airflow_home"
WAREHOUSE = WORK / "warehouse.db"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_emulator(stack: ExitStack, name: str, api_key: str) -> str:
    port = free_port()
    log = open(WORK / f"emulator-{name}.log", "w")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_activecampaign.emulator", "--port", str(port),
         "--api-key", api_key], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    stack.callback(stop_process, proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} emulator exited; see {log.name}")
        try:
            if requests.get(f"{url}/api/3/users/me", headers={"Api-Token": api_key}, timeout=1).ok:
                return url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the {name} emulator did not start within 30 s")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def airflow(env: dict[str, str], *args: str, log_name: str | None = None) -> int:
    out = open(WORK / log_name, "w") if log_name else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.run([str(BIN / "airflow"), *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT, cwd=REPO).returncode
    finally:
        if log_name:
            out.close()


def last_run(dag_id: str) -> tuple[str, str, dict[str, dict], dict[str, tuple[str, float]]]:
    """(run_id, state, XCom return values by task, (state, seconds) by task) of the newest run."""
    with sqlite3.connect(AIRFLOW_HOME / "airflow.db") as db:
        run_id, state = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                                   (dag_id,)).fetchone()
        values = {}
        for task_id, value in db.execute("SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
                                         "AND key = 'return_value'", (dag_id, run_id)):
            try:
                values[task_id] = json.loads(value)
            except (TypeError, ValueError):
                values[task_id] = {}
        tasks = {}
        for task_id, ti_state, start, end in db.execute(
                "SELECT task_id, state, julianday(start_date), julianday(end_date) FROM task_instance "
                "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)):
            seconds = (end - start) * 86400 if start and end else 0.0
            tasks[task_id] = (ti_state or "none", seconds)
    return run_id, state, values, tasks


def describe(step: str, dag_id: str, wall: float) -> bool:
    run_id, state, values, tasks = last_run(dag_id)
    print(f"\n== {step}: {dag_id} -> {state.upper()} in {wall:.1f}s")
    order = sorted(tasks, key=lambda t: list(tasks).index(t))
    for task_id in order:
        ti_state, seconds = tasks[task_id]
        v = values.get(task_id) or {}
        line = f"   {task_id:<28} {ti_state:<10} {seconds:6.1f}s"
        if "verified" in v:
            line += f"  verified={v['verified']}: {v['message']}"
        elif "rows_read" in v and v.get("dry_run"):
            line += (f"  plan: {v['to_add']} to add, {v['to_update']} to update, {v['unchanged']} unchanged,"
                     f" {v['to_unsubscribe']} to unsubscribe, {v['invalid']} invalid")
        elif "rows_read" in v:
            line += (f"  rows {v['rows_read']}, added {v['added']}, updated {v['updated']}, "
                     f"unchanged {v['unchanged']}, unsubscribed {v['unsubscribed']}, invalid {v['invalid']}, "
                     f"duplicates {v['duplicates']}, rejected {v['rejected']}, {v['api_requests']} API requests")
            if v.get("rejects_report"):
                line += f"\n   {'':<28} rejects report: {v['rejects_report']}"
        elif "groups" in v:
            total = v["total"]
            line += (f"  control {total['control_contacts']} (never sent), {v['in_two_groups']} rows in two groups"
                     f" rejected, {total['api_requests']} API requests")
            for group, g in v["groups"].items():
                line += (f"\n   {'':<28} group {group}: list {g.get('list_name')!r} (id {g.get('list_id')}), "
                         f"{g.get('contacts')} contacts, added {g.get('added')}, unsubscribed {g.get('unsubscribed')}")
        elif "inserted" in v:
            line += (f"  {v['read']} unsubscribed/bounced read -> table {v['table']}: {v['inserted']} inserted, "
                     f"{v['updated']} updated, {v['removed']} removed, {v['unchanged']} unchanged; changed by "
                     f"{v['by_changed_by']}; {v['api_requests']} API requests")
        elif "username" in v:
            line += f"  connected to {v['api_url']} as {v['username']}"
        elif "list_created" in v:
            line += f"  list id {v['list_id']} ({'created' if v['list_created'] else 'existing'})"
        print(line)
    return state == "success"


def members_leave(production: str, *, unsubscribe: int = 30, bounce: int = 10) -> str:
    """Between sends: some members unsubscribe themselves (half with a reason), a few bounce."""
    with sqlite3.connect(WAREHOUSE) as db:
        emails = [e for (e,) in db.execute("SELECT lower(trim(email)) FROM customers WHERE opted_in = 1 "
                                           "AND email LIKE '%_@_%._%' AND email NOT LIKE '% %' ORDER BY customer_id")]
    lists = requests.get(f"{production}/api/3/lists", params={"limit": 100},
                         headers={"Api-Token": "production-demo-key-0002"}, timeout=10).json()["lists"]
    list_id = next(lst["id"] for lst in lists if lst["name"] == "VIP customers")
    done = {"unsubscribe_by_contact": 0, "bounce": 0}
    for number, email in enumerate(emails[: unsubscribe + bounce]):
        event = "unsubscribe_by_contact" if number < unsubscribe else "bounce"
        body: dict[str, object] = {"email": email, "list_id": list_id}
        if event == "unsubscribe_by_contact" and number % 2 == 0:
            body["reason"] = "Too many emails"
        if requests.post(f"{production}/_emulator/{event}", json=body, timeout=10).ok:
            done[event] += 1
    return f"{done['unsubscribe_by_contact']} unsubscribed themselves, {done['bounce']} bounced"


def main() -> int:
    started = time.monotonic()
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK).mkdir(parents=True)
    rows = build_warehouse(WAREHOUSE, customers=20_000)
    print(f"Sample warehouse: {rows} customer rows in {WAREHOUSE.relative_to(REPO)}")
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_AUDIENCE_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    ok = True
    with ExitStack() as stack:
        sandbox = start_emulator(stack, "sandbox", "sandbox-demo-key-0001")
        production = start_emulator(stack, "production", "production-demo-key-0002")
        print(f"Emulators: sandbox {sandbox}, production {production}")
        env["AIRFLOW_CONN_ACTIVECAMPAIGN_SANDBOX"] = json.dumps(
            {"conn_type": "activecampaign", "host": sandbox, "password": "sandbox-demo-key-0001"})
        env["AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT"] = json.dumps(
            {"conn_type": "activecampaign", "host": production, "password": "production-demo-key-0002"})
        if airflow(env, "db", "migrate", log_name="airflow-db-migrate.log") != 0:
            print("airflow db migrate failed; see .demo/airflow-db-migrate.log")
            return 1
        for pool in ("activecampaign_default", "activecampaign_sandbox"):
            airflow(env, "pools", "set", pool, "1", "ActiveCampaign account: 5 requests/second shared")

        steps = [
            ("1. promotion", "activecampaign_sandbox_promotion", ["-c", json.dumps({"approve": True})]),
            ("2. scheduled send", "activecampaign_audience_orchestration", []),
            ("3. incremental send", "activecampaign_audience_orchestration", []),
            ("4. unsubscribes write-back", "activecampaign_unsubscribes", []),
            ("5. campaign send", "activecampaign_campaign", []),
        ]
        for step, dag_id, extra in steps:
            if step.startswith("3."):
                changes = change_warehouse(WAREHOUSE, fraction=0.01)
                print(f"\nWarehouse changed: {changes['changed']} customers changed plan, "
                      f"{changes['opted_out']} opted out, {changes['new']} new")
            if step.startswith("4."):
                print(f"\nMembers leave the list: {members_leave(production)}")
            log_name = f"{dag_id}-{step[0]}.log"
            t0 = time.monotonic()
            airflow(env, "dags", "test", dag_id, *extra, log_name=log_name)
            if not describe(step, dag_id, time.monotonic() - t0):
                print(f"   task logs: .demo/{log_name}")
                ok = False
                break
        if ok:
            with sqlite3.connect(WAREHOUSE) as db:
                stored = db.execute("SELECT count(*) FROM activecampaign_unsubscribes").fetchone()[0]
                left_out = db.execute(
                    "SELECT count(DISTINCT u.email) FROM activecampaign_unsubscribes u JOIN customers c "
                    "ON u.email = lower(trim(c.email)) WHERE c.opted_in = 1").fetchone()[0]
            print(f"\nThe write-back stored {stored} people in activecampaign_unsubscribes; the campaign's query "
                  f"(dags/sql/campaign.sql) left out the {left_out} of them still in the customer table.")
            counts = requests.get(f"{production}/_emulator/state", timeout=5).json()
            print(f"\nProduction account now holds: {json.dumps(counts.get('summary', counts))[:400]}")
    print(f"\nDemo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s. "
          f"Logs and run state under .demo/.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
