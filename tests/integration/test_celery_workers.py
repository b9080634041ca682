"""The orchestration DAG under a real scheduler with the CeleryExecutor and two workers.

A deployment as users run it: API server, scheduler, DAG processor and Celery workers as separate
processes, a Redis broker (Debian's redis-server), PostgreSQL as the metadata database (the throwaway
server of tests/services.py). Each worker has its own AIRFLOW_HOME, i.e. its own local disk. Runs are
steered to a worker by starting only that one, so consecutive runs land on different workers.

Selected with ``-m celery``; it takes a few minutes (Airflow processes start slowly on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from demo.warehouse import build_warehouse, change_warehouse
from tests.integration.conftest import PRODUCTION_KEY, connection_json
from tests.integration.helpers import REPO, audience_emails
from tests.services import PostgresServer, S3Server, free_port, redis_server, wait_for_port

pytestmark = [pytest.mark.integration, pytest.mark.celery]

DAG_ID = "activecampaign_audience_orchestration"
LIST = "VIP customers"


class Deployment:
    """Airflow's processes sharing one configuration (environment variables), each logging to a file."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def airflow(self, *args: str, home: Path | None = None, check: bool = True) -> str:
        env = {**self.env, **({"AIRFLOW_HOME": str(home)} if home else {})}
        done = subprocess.run([sys.executable, "-m", "airflow", *args], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=300)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"airflow {' '.join(args)} failed: {done.stderr[-3000:]}")
        return done.stdout

    def start(self, name: str, *args: str, home: Path | None = None) -> None:
        env = {**self.env, **({"AIRFLOW_HOME": str(home)} if home else {})}
        log = (self.root / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen([sys.executable, "-m", "airflow", *args], env=env, cwd=REPO,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, name: str) -> None:
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the process group: celery's forked pool goes too
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")[-4000:]


def metadata_query(postgres: PostgresServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    dsn = postgres.dsn.replace(f"dbname={postgres.database}", "dbname=airflow_meta")
    with closing(psycopg2.connect(dsn)) as db, db.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


@pytest.fixture(scope="module")
def deployment(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("celery_deployment")
    with closing(psycopg2.connect(postgres.dsn)) as db:
        db.autocommit = True
        with db.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS airflow_meta")
            cur.execute("CREATE DATABASE airflow_meta")
    with redis_server() as broker:
        meta = (f"postgresql+psycopg2://{postgres.user}:{postgres.password}@127.0.0.1:{postgres.port}/"
                "airflow_meta")  # fmt: skip
        api_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
        env.update({
            "AIRFLOW_HOME": str(root / "home-scheduler"),
            "AIRFLOW__CORE__EXECUTOR": "airflow.providers.celery.executors.celery_executor.CeleryExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "celery-test-jwt-secret-0123456789abcdef",
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{meta}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the runs the test triggers
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "task-logs"),
            "PYTHONPATH": str(REPO),
        })
        dep = Deployment(root, env)
        try:
            dep.airflow("db", "migrate")
            dep.airflow("pools", "set", "activecampaign_default", "1", "ActiveCampaign account")
            dep.start("api-server", "api-server", "--port", str(api_port), "--host", "127.0.0.1")
            dep.start("scheduler", "scheduler")
            dep.start("dag-processor", "dag-processor")
            wait_for_port(api_port, timeout=180, what="airflow api-server")
            deadline = time.monotonic() + 240
            while not metadata_query(postgres, "SELECT 1 FROM dag WHERE dag_id = %s", DAG_ID):
                if time.monotonic() > deadline:
                    raise AssertionError(f"the DAG was never parsed: {dep.log('dag-processor')}")
                time.sleep(1)
            dep.airflow("dags", "unpause", DAG_ID)
            yield dep
        finally:
            dep.stop_all()


@contextlib.contextmanager
def worker(dep: Deployment, name: str, home: Path) -> Iterator[None]:
    """One Celery worker whose AIRFLOW_HOME (and so its default state folder) is its own disk."""
    home.mkdir(parents=True, exist_ok=True)
    dep.start(name, "celery", "worker", "--concurrency", "1", "--celery-hostname", f"{name}@%h", home=home)
    try:
        yield
    finally:
        dep.stop(name)


def run_dag(dep: Deployment, postgres: PostgresServer, run_id: str, conf: dict[str, Any],
            worker_name: str, timeout: float = 300) -> dict[str, str]:
    dep.airflow("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = metadata_query(postgres, "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", DAG_ID, run_id)
        if rows and rows[0][0] in ("success", "failed"):
            break
        time.sleep(2)
    tis = dict(metadata_query(postgres, "SELECT task_id, state FROM task_instance WHERE run_id = %s", run_id))
    state = rows[0][0] if rows else None
    assert state == "success", (state, tis, dep.log(worker_name), dep.log("scheduler"))
    return {k: str(v) for k, v in tis.items()}


def members(emulator: EmulatorServer) -> set[str]:
    found = emulator.account.list_by_name(LIST)
    return emulator.account.list_members(found.id) if found else set()


@pytest.fixture
def account(deployment: Deployment, tmp_path: Path) -> Iterator[tuple[EmulatorServer, Path]]:
    warehouse = tmp_path / "warehouse.db"
    build_warehouse(warehouse, customers=400, seed=31)
    with EmulatorServer(api_key=PRODUCTION_KEY, import_delay=0.2) as emulator:
        deployment.env["AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT"] = connection_json(emulator.url, PRODUCTION_KEY)
        deployment.env["AIRFLOW_CONN_AUDIENCE_WAREHOUSE"] = json.dumps({"conn_type": "sqlite",
                                                                        "host": str(warehouse)})
        yield emulator, warehouse


def test_runs_on_two_workers_with_state_on_s3(deployment: Deployment, postgres: PostgresServer, s3: S3Server,
                                              account: tuple[EmulatorServer, Path], tmp_path: Path) -> None:
    emulator, warehouse = account
    s3.client().create_bucket(Bucket="celery-state")
    deployment.env["AIRFLOW_CONN_STATE_S3"] = s3.connection_json()
    conf = {"state_uri": "s3://state_s3@celery-state/activecampaign"}

    with worker(deployment, "worker-a", tmp_path / "disk-a"):
        run_dag(deployment, postgres, "s3_run_1", conf, "worker-a")
    assert members(emulator) == set(audience_emails(warehouse))

    change_warehouse(warehouse, fraction=0.05)
    with worker(deployment, "worker-b", tmp_path / "disk-b"):
        run_dag(deployment, postgres, "s3_run_2", conf, "worker-b")
    assert members(emulator) == set(audience_emails(warehouse))
    # Neither worker kept a local copy: the state is the bucket's.
    assert not any((tmp_path / d / "activecampaign_state").exists() for d in ("disk-a", "disk-b"))
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket="celery-state").get("Contents", [])]
    assert any("/snapshot-" in k or "/journal-" in k for k in keys), keys


def test_runs_on_two_workers_with_local_state(deployment: Deployment, postgres: PostgresServer,
                                              account: tuple[EmulatorServer, Path], tmp_path: Path) -> None:
    """Each worker keeps its own copy; the copy on worker A is stale by the third run (B sent in between)."""
    emulator, warehouse = account
    conf = {"state_uri": ""}  # the default: $AIRFLOW_HOME/activecampaign_state, the worker's own disk
    with worker(deployment, "worker-a", tmp_path / "disk-a"):
        run_dag(deployment, postgres, "local_run_1", conf, "worker-a")
    assert members(emulator) == set(audience_emails(warehouse))

    change_warehouse(warehouse, fraction=0.05)
    with worker(deployment, "worker-b", tmp_path / "disk-b"):
        run_dag(deployment, postgres, "local_run_2", conf, "worker-b")
    assert members(emulator) == set(audience_emails(warehouse))

    change_warehouse(warehouse, fraction=0.05)
    with worker(deployment, "worker-a", tmp_path / "disk-a"):
        run_dag(deployment, postgres, "local_run_3", conf, "worker-a")
    assert members(emulator) == set(audience_emails(warehouse))
    assert (tmp_path / "disk-a" / "activecampaign_state").exists()
    assert (tmp_path / "disk-b" / "activecampaign_state").exists()
