"""Fixtures for tests that run the real hook, engine and DAGs against the emulator over loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from demo.warehouse import build_warehouse
from tests.services import PostgresServer, S3Server, postgres_server, s3_server

SANDBOX_KEY = "sandbox-test-key-0001"
PRODUCTION_KEY = "production-test-key-0002"


def connection_json(url: str, key: str, **extra: object) -> str:
    return json.dumps({"conn_type": "activecampaign", "host": url, "password": key, "extra": extra})


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated metadata DB in the test AIRFLOW_HOME (dag.test() needs one)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def production() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=PRODUCTION_KEY, import_delay=0.2) as server:
        yield server


@pytest.fixture
def sandbox() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=SANDBOX_KEY, import_delay=0.2) as server:
        yield server


@pytest.fixture
def ac_default(monkeypatch: pytest.MonkeyPatch, production: EmulatorServer) -> EmulatorServer:
    monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", connection_json(production.url, PRODUCTION_KEY))
    return production


@pytest.fixture
def ac_sandbox(monkeypatch: pytest.MonkeyPatch, sandbox: EmulatorServer) -> EmulatorServer:
    monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_SANDBOX", connection_json(sandbox.url, SANDBOX_KEY))
    return sandbox


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small sample warehouse, registered as the `audience_warehouse` SQLite connection."""
    path = tmp_path / "warehouse.db"
    build_warehouse(path, customers=300, seed=11)
    monkeypatch.setenv("AIRFLOW_CONN_AUDIENCE_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (started only if a test asks for it)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 in server mode on a loopback port for the session."""
    with s3_server() as server:
        yield server
