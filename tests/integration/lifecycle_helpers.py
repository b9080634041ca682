"""Shared helpers for the real-life event tests (issue 8).

A warehouse table the test rewrites between runs, a DAG (test connection >> audience send in mirror
mode) run through ``dag.test()`` - what ``airflow dags test`` does - or through ``airflow dags test`` in
a process of its own, and what a user looks at afterwards: the list in the emulator, the task's summary
and the task log.
"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from tests.integration.conftest import PRODUCTION_KEY, connection_json
from tests.integration.helpers import REPO, task_states, xcom_result

LIST = "Lifecycle members"
TASK = "send_audience"
WAREHOUSE_CONN = "lifecycle_warehouse"
COLUMNS = ("email", "first_name", "plan", "tags", "customer_acct_name")
SQL = f"SELECT {', '.join(COLUMNS)} FROM audience ORDER BY rowid"
# Limits raised where timing is not what a test is about; the hook is told the same.
FAST = {"requests_per_second": 50, "bulk_imports_per_minute": 1000, "single_imports_per_minute": 1000}


# ---------------------------------------------------------------------------------------- audience
def person(i: int, **overrides: str) -> dict[str, str]:
    row = {"email": f"member.{i}@example.com", "first_name": f"Member{i}", "plan": "pro",
           "tags": "newsletter", "customer_acct_name": f"Account {i}"}
    row.update(overrides)
    return row


def people(indexes: Iterable[int], **overrides: str) -> list[dict[str, str]]:
    return [person(i, **overrides) for i in indexes]


def email_of(i: int) -> str:
    return person(i)["email"]


def emails(rows: Iterable[dict[str, str]]) -> set[str]:
    return {r["email"].strip().lower() for r in rows}


class Warehouse:
    """A SQLite table the audience query reads; rewritten between runs like a real warehouse."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with sqlite3.connect(path) as db:
            db.execute(f"CREATE TABLE IF NOT EXISTS audience ({', '.join(c + ' TEXT' for c in COLUMNS)})")

    def set(self, rows: Sequence[dict[str, str]]) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("DELETE FROM audience")
            db.executemany(f"INSERT INTO audience VALUES ({', '.join('?' for _ in COLUMNS)})",
                           [tuple(r.get(c, "") for c in COLUMNS) for r in rows])

    @property
    def connection_json(self) -> str:
        return json.dumps({"conn_type": "sqlite", "host": str(self.path)})


# --------------------------------------------------------------------------------------------- DAG
def build_dag(dag_id: str, *, retries: int = 0, retry_seconds: float = 1.0, **send_options: Any) -> Any:
    """test_connection >> send_audience (mirror), like the example orchestration, reading ``audience``.

    ``state_uri`` is a run param, so one DAG can run on several "workers" (state folders)."""
    from datetime import datetime, timedelta

    from airflow.sdk import DAG, Param

    from airflow_provider_activecampaign.operators.activecampaign import (
        ActiveCampaignAudienceSendOperator,
        ActiveCampaignTestConnectionOperator,
    )

    options: dict[str, Any] = {"mode": "mirror", "max_removal_ratio": 0.5, "import_timeout": 60.0}
    options.update(send_options)
    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False,
             params={"state_uri": Param("", type="string")},
             default_args={"retries": retries, "retry_delay": timedelta(seconds=retry_seconds)}) as dag:
        test = ActiveCampaignTestConnectionOperator(task_id="test_connection")
        send = ActiveCampaignAudienceSendOperator(
            task_id=TASK, sql_conn_id=WAREHOUSE_CONN, sql=SQL, list_name=LIST,
            group_name="Admin", state_uri="{{ params.state_uri }}", **options,
        )
        test >> send
    return dag


def bundle_config(folder: Path) -> str:
    """Airflow's DAG bundle list with ``folder`` added: ``dag.test()`` and ``airflow dags test`` parse a
    DAG from its bundle before running it, so the tests' DAGs live in a bundle of their own."""
    local = "airflow.dag_processing.bundles.local.LocalDagBundle"
    return json.dumps([{"name": "dags-folder", "classpath": local, "kwargs": {"path": str(REPO / "dags")}},
                       {"name": "lifecycle-tests", "classpath": local, "kwargs": {"path": str(folder)}}])


def make_dag(folder: Path, name: str, **options: Any) -> Any:
    """Write a DAG file into the test bundle ``folder`` and return the same DAG (see :func:`build_dag`).

    A fresh DAG id per test: the metadata DB is shared by the session, and a DAG's earlier XComs are
    part of what the send may look at."""
    dag_id = f"lifecycle_{name}_{uuid.uuid4().hex[:8]}"
    (folder / f"{dag_id}.py").write_text(
        "# An Airflow DAG for the lifecycle tests (the DagBag looks for these words).\n"
        "from tests.integration.lifecycle_helpers import build_dag\n"
        f"dag = build_dag({dag_id!r}, **{options!r})\n"
    )
    return build_dag(dag_id, **options)


@dataclass
class Run:
    """One DAG run as a user sees it: its state, the send's summary (XCom) and the task log."""

    dag_run: Any
    summary: dict[str, Any]
    log: str
    states: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.dag_run.state == "success"

    def explain(self) -> str:
        errors = [line for line in self.log.splitlines() if "error" in line.lower() or "Traceback" in line]
        return f"states {self.states}; errors: {errors[-8:]}"


@dataclass
class Scenario:
    """One account, one warehouse, one DAG; ``send(rows)`` puts ``rows`` in the warehouse and runs it."""

    account: EmulatorServer
    warehouse: Warehouse
    dag: Any
    capfd: Any
    worker: Path  # the default worker's state folder (its local disk)
    runs: list[Run] = field(default_factory=list)

    def send(self, rows: Sequence[dict[str, str]] | None, *, worker: Path | None = None,
             expect_success: bool = True) -> Run:
        if rows is not None:
            self.warehouse.set(rows)
        self.capfd.readouterr()
        dag_run = self.dag.test(run_conf={"state_uri": f"file://{worker or self.worker}"})
        out, err = self.capfd.readouterr()
        run = Run(dag_run, xcom_result(dag_run, TASK) or {}, out + err, task_states(dag_run))
        self.runs.append(run)
        if expect_success:
            assert run.ok, run.explain()
        return run

    @property
    def list_id(self) -> str:
        return list_id(self.account)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    """An emulated account with raised limits, as the ``activecampaign_default`` connection."""
    with EmulatorServer(api_key=PRODUCTION_KEY, import_delay=0.05, **FAST) as server:
        monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", connection_json(server.url, PRODUCTION_KEY, **FAST))
        yield server


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    wh = Warehouse(tmp_path / "warehouse.db")
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}", wh.connection_json)
    return wh


@pytest.fixture
def dag_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", bundle_config(folder))
    return folder


@pytest.fixture
def scenario(request: pytest.FixtureRequest, account: EmulatorServer, warehouse: Warehouse, dag_folder: Path,
             tmp_path: Path, capfd: Any) -> Any:
    """``scenario(**send_options)`` -> a :class:`Scenario` whose DAG is named after the test."""

    def make(**options: Any) -> Scenario:
        name = re.sub(r"\W+", "_", request.node.name)[:40]
        worker = tmp_path / "worker_a"
        worker.mkdir(exist_ok=True)
        return Scenario(account, warehouse, make_dag(dag_folder, name, **options), capfd, worker)

    return make


# ------------------------------------------------------------------------------------------ the list
def list_id(emulator: EmulatorServer) -> str:
    found = emulator.account.list_by_name(LIST)
    assert found is not None, f"list {LIST!r} does not exist"
    return str(found.id)


def active(emulator: EmulatorServer) -> set[str]:
    found = emulator.account.list_by_name(LIST)
    return emulator.account.list_members(found.id) if found else set()


def unsubscribed(emulator: EmulatorServer) -> set[str]:
    found = emulator.account.list_by_name(LIST)
    return emulator.account.list_members(found.id, status=2) if found else set()


def read_rejects(summary: dict[str, Any]) -> dict[str, str]:
    """The run's rejects report (email -> reason); empty when it wrote none."""
    import csv

    from airflow.sdk import ObjectStoragePath

    location = summary.get("rejects_report")
    if not location:
        return {}
    with ObjectStoragePath(location).open("r", newline="", encoding="utf-8") as report:
        rows = list(csv.reader(report))
    return {row[0].strip().lower(): row[1] for row in rows[1:] if row}


def assert_list_matches(emulator: EmulatorServer, audience: Iterable[dict[str, str]], *,
                        kept_out: Iterable[str] = ()) -> None:
    """The list's active members are the audience, except ``kept_out`` (unsubscribed by someone else),
    who stay unsubscribed."""
    kept = set(kept_out)
    expected = emails(audience) - kept
    members = active(emulator)
    assert members == expected, (f"missing {sorted(expected - members)[:10]}, "
                                 f"extra {sorted(members - expected)[:10]}")
    assert kept <= unsubscribed(emulator), f"not unsubscribed: {sorted(kept - unsubscribed(emulator))}"


def subscribed_by_contact_lists(emulator: EmulatorServer, email: str, *, after: int = 0) -> bool:
    """Whether a ``POST contactLists`` set ``email`` to status 1 on the list (history entries from
    ``after`` on)."""
    membership = emulator.account.membership(email, list_id(emulator))
    if membership is None:
        return False
    return any(c.status == 1 and c.by == "api:contactLists" for c in membership.history[after:])


def history_length(emulator: EmulatorServer, email: str) -> int:
    membership = emulator.account.membership(email, list_id(emulator))
    return len(membership.history) if membership else 0


def requests_since(emulator: EmulatorServer, start: int, endpoint: str | None = None) -> list[Any]:
    """Requests logged after the first ``start`` ones, optionally of one ``endpoint``."""
    records = emulator.account.request_log[start:]
    return [r for r in records if endpoint is None or r.endpoint == endpoint]


# ------------------------------------------------------------------------------------------ masking
# Anything shaped like an address: plain (ASCII or not) or URL-encoded (%40).
_EMAILISH = re.compile(r"[^\s\"'<>(),;:\[\]/?=&|]+(?:@|%40)[^\s\"'<>(),;:\[\]/?=&|]+", re.IGNORECASE)


def spellings(address: str) -> set[str]:
    """Every way ``address`` or its local part can be written in text: as is, URL-encoded (whole or
    but the @; UTF-8 percent-encoded when not ASCII), JSON's \\u escapes."""
    local, _, domain = address.partition("@")
    forms = {address, quote(address, safe=""), quote(address, safe="@"), quote(address, safe="@+"),
             f"{local}%40{domain}", json.dumps(address)[1:-1]}
    # A mask that catches only the tail of an encoded address still leaks its local part.
    forms |= {local, quote(local, safe=""), quote(local, safe="+"), json.dumps(local)[1:-1]}
    return {f for f in forms if f}


def unmasked(text: str, addresses: Iterable[str]) -> list[str]:
    """The ``addresses`` that appear in ``text`` in any spelling and any case."""
    lowered = text.lower()
    return [a for a in addresses if any(s.lower() in lowered for s in spellings(a))]


def emailish(text: str) -> list[str]:
    """Everything in ``text`` shaped like an email address that is not masked (``j***@e***.com``)."""
    return [m for m in _EMAILISH.findall(text) if "***" not in m]


def assert_masked(run: Run, addresses: Iterable[str]) -> None:
    """No address, in any form, in the task log or the task's XCom."""
    output = run.log + "\n" + json.dumps(run.summary) + "\n" + json.dumps(run.summary, ensure_ascii=False)
    leaked = unmasked(output, addresses)
    assert not leaked, f"unmasked in task output: {leaked[:5]}"
    shaped = emailish(output)
    assert not shaped, f"address-shaped text in task output: {shaped[:5]}"
