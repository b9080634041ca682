"""Fixtures: one emulator server for the whole module, reset to a known state before every test.

Starting uvicorn costs ~0.25 s (mostly its shutdown), so tests share a server and get a fresh
account (data, faults, request log, limiter windows) plus default test limits each time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from tests.emulator.client import API_KEY, Api

# Generous limits by default so functional tests are not throttled; limit tests lower them.
TEST_DEFAULTS = {
    "requests_per_second": None,
    "rate_window": 1.0,
    "retry_after": 1,
    "import_delay": 0.2,
    "bulk_imports_per_minute": 100,
    "single_imports_per_minute": 20,
    "bulk_window": 60.0,
    "max_contacts_per_import": 250,
    "max_import_bytes": 400_000,
    "user": "emulator",
    "user_id": "1",
}


@pytest.fixture(scope="module")
def _server() -> Iterator[EmulatorServer]:
    with EmulatorServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def emulator(_server: EmulatorServer) -> EmulatorServer:
    """The shared server with a fresh account and the test defaults above."""
    _server.account.config = replace(_server.account.config, **TEST_DEFAULTS)
    _server.reset()
    return _server


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[Api]:
    """A small client for /api/3 with the right key (a fresh connection pool per test)."""
    client = Api(emulator.api_url)
    yield client
    client.session.close()
