"""Run state on an S3-compatible store (moto in server mode on loopback) through ObjectStoragePath.

What a Celery or Kubernetes deployment relies on: the snapshot, the journal and the lock live in the
bucket, a run killed mid-send (SIGKILL, a separate process) leaves no partial object behind, and its
retry resumes from the journal and ends with the list equal to the audience.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from demo.warehouse import build_warehouse, change_warehouse
from tests.integration.conftest import PRODUCTION_KEY, connection_json
from tests.integration.helpers import REPO, audience_emails, load_dag, task_states, xcom_result
from tests.services import S3Server

pytestmark = [pytest.mark.integration, pytest.mark.s3]

LIST = "VIP customers"
SQL = (REPO / "dags" / "sql" / "audience.sql").read_text()


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    name = f"ac-state-{abs(hash(request.node.name)) % 10**8}"
    s3.client().create_bucket(Bucket=name)
    monkeypatch.setenv("AIRFLOW_CONN_STATE_S3", s3.connection_json())
    # ObjectStoragePath caches one store per connection id for the process: a store an earlier test
    # made (e.g. before this connection existed) must not answer for this one.
    from airflow.sdk.io import store

    monkeypatch.setattr(store, "_STORE_CACHE", {})
    return name


def objects(s3: S3Server, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def assert_no_partial_object(s3: S3Server, bucket: str) -> dict[str, bytes]:
    """No multipart upload left open, and every object reads back whole (gzip checks its CRC and length)."""
    assert not s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    found = objects(s3, bucket)
    for key, body in found.items():
        if key.endswith(".gz"):
            lines = gzip.decompress(body).decode("utf-8").splitlines()
            assert all(json.loads(line) is not None for line in lines), key
        elif key.endswith(".json"):
            json.loads(body)
    return found


def confirmed_members(stored: dict[str, bytes]) -> int:
    """Member lines in the journal segments (a segment's first line is its header)."""
    return sum(len(gzip.decompress(body).splitlines()) - 1 for key, body in stored.items() if "/journal-" in key)


def members(emulator: EmulatorServer) -> set[str]:
    found = emulator.account.list_by_name(LIST)
    return emulator.account.list_members(found.id) if found else set()


@pytest.mark.usefixtures("airflow_db")
def test_orchestration_keeps_its_state_on_s3(ac_default: EmulatorServer, warehouse: Path, s3: S3Server,
                                             bucket: str) -> None:
    state_uri = f"s3://state_s3@{bucket}/activecampaign"  # the connection id rides in the URI
    dag = load_dag("activecampaign_audience_orchestration")
    first = dag.test(run_conf={"state_uri": state_uri})
    assert first.state == "success", task_states(first)
    expected = set(audience_emails(warehouse))
    assert members(ac_default) == expected

    stored = assert_no_partial_object(s3, bucket)
    names = [key.rsplit("/", 1)[-1] for key in stored]
    assert any(n.startswith(("snapshot-", "journal-")) for n in names), names
    assert "lock.json" not in names  # released at the end of the run
    assert any(key.startswith("activecampaign/") and "/rejects/" in key for key in stored)

    changes = change_warehouse(warehouse, fraction=0.05)
    second = dag.test(run_conf={"state_uri": state_uri})
    assert second.state == "success", task_states(second)
    assert members(ac_default) == set(audience_emails(warehouse))
    sent = xcom_result(second, "send_audience")
    # Read from the bucket: only the changes are sent, the unchanged contacts are known.
    assert sent["unchanged"] >= len(expected) - changes["changed"] - changes["opted_out"]
    assert sent["added"] + sent["updated"] <= changes["changed"] + changes["new"]


def send_arguments(tmp_path: Path, bucket: str, run_id: str) -> dict[str, Any]:
    return {
        "dag_id": "activecampaign_audience_orchestration", "run_id": run_id,
        "activecampaign_conn_id": "activecampaign_default", "sql_conn_id": "audience_warehouse", "sql": SQL,
        "list_name": LIST, "group_name": "Admin", "mode": "mirror",
        "state_uri": f"s3://{bucket}/activecampaign", "state_conn_id": "state_s3",
    }  # fmt: skip


def start_send(arguments: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.integration.send_child", json.dumps(arguments)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def wait_for(condition: Any, *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_send_leaves_no_partial_object_and_its_retry_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3: S3Server, bucket: str
) -> None:
    path = tmp_path / "warehouse.db"
    build_warehouse(path, customers=3_000, seed=5)
    monkeypatch.setenv("AIRFLOW_CONN_AUDIENCE_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    expected = set(audience_emails(path))
    # A slow importer (1 s per import) so the kill lands between confirmed batches and the end.
    with EmulatorServer(api_key=PRODUCTION_KEY, import_delay=1.0) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", connection_json(emulator.url, PRODUCTION_KEY))
        arguments = send_arguments(tmp_path, bucket, "scheduled__2026-12-01T06:00:00+00:00")
        first = start_send(arguments, tmp_path / "first.log")
        try:
            # Journal segments are also written before a batch is sent (its intent, header only), so
            # wait for a segment that holds confirmed members: the kill then lands mid-send.
            wait_for(lambda: confirmed_members(objects(s3, bucket)) > 0, timeout=240,
                     what="the first confirmed batch in the bucket", proc=first)  # fmt: skip
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        on_list = members(emulator)
        assert 0 < len(on_list) < len(expected), "the kill must land mid-send"

        stored = assert_no_partial_object(s3, bucket)
        assert any(k.endswith("/lock.json") for k in stored)  # the dead run's lock is still there
        confirmed = confirmed_members(stored)
        assert confirmed > 0

        # Airflow's retry of the killed task: the same run id takes the lock over and resumes.
        retry = start_send(arguments, tmp_path / "retry.log")
        assert retry.wait(300) == 0, (tmp_path / "retry.log").read_text()[-3000:]
        summary = json.loads((tmp_path / "retry.log").read_text().strip().splitlines()[-1])
        assert members(emulator) == expected
        assert summary["added"] <= len(expected) - confirmed  # nothing confirmed is sent again
        # Batches queued before the kill were processed afterwards; the retry resolved them from the
        # journal instead of sending them again.
        assert summary["in_flight_resolved"] >= 1
        final = assert_no_partial_object(s3, bucket)
        assert not any(k.endswith("/lock.json") for k in final)
