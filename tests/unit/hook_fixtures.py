"""Shared fixtures for the hook tests (imported explicitly by the test_hook*.py modules).

Kept out of a conftest.py so other test packages' fixtures can't collide with these names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

API_KEY = "ak-3f9c2e71d0b84a6e95c1-SECRET-KEY"
API_URL = "https://acct.api-us1.com"
BASE = f"{API_URL}/api/3"
CONN_ENV = "AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT"


class FakeTime:
    """A clock that only moves when something sleeps: waits are recorded, never spent."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)


class MaxJitter:
    """Stands in for random.Random: full jitter at its upper bound, so backoff waits are exact."""

    def uniform(self, low: float, high: float) -> float:
        return high


def set_connection(monkeypatch: pytest.MonkeyPatch, *, host: str = API_URL, password: str | None = API_KEY,
                   conn_id: str = "activecampaign_default", **extra: Any) -> None:
    """An env-var connection in JSON form; outside a task Airflow 3 reads connections only from env."""
    conn: dict[str, Any] = {"conn_type": "activecampaign", "host": host}
    if password is not None:
        conn["password"] = password
    if extra:
        conn["extra"] = extra
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def ac_conn(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Default connection to https://acct.api-us1.com; call the fixture value to change it."""
    set_connection(monkeypatch)

    def _set(**kwargs: Any) -> None:
        set_connection(monkeypatch, **kwargs)

    return _set


@pytest.fixture
def make_hook(ac_conn: Callable[..., None], fake_time: FakeTime) -> Callable[..., ActiveCampaignHook]:
    def _make(**kwargs: Any) -> ActiveCampaignHook:
        kwargs.setdefault("sleep", fake_time.sleep)
        kwargs.setdefault("clock", fake_time.clock)
        hook = ActiveCampaignHook(**kwargs)
        hook._rng = MaxJitter()  # type: ignore[assignment]
        return hook

    return _make


@pytest.fixture
def hook(make_hook: Callable[..., ActiveCampaignHook]) -> ActiveCampaignHook:
    return make_hook()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[Callable[[],
             str]]:
    """Everything logged, however it was routed: Airflow 3 hook loggers are structlog (rendered to the
    console), so both the stdlib records and the captured stdout/stderr are returned."""
    # INFO: urllib3/requests_mock DEBUG lines (full URLs) are the libraries', not the hook's.
    caplog.set_level(logging.INFO)
    seen: list[str] = []

    def _text() -> str:
        out, err = capfd.readouterr()
        seen.append(out + err)
        return caplog.text + "".join(seen)

    yield _text
