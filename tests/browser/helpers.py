"""Plumbing for the browser tests: free ports, process groups, readiness polling, a tiny API client.

Nothing here imports Airflow: the Airflow under test runs in subprocesses with their own AIRFLOW_HOME.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts" / "browser"

CHROMIUM = pathlib.Path("/usr/bin/chromium")
# Debian's Chromium only: no test tool may download its own browser build.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

EMULATOR_API_KEY = "browser-e2e-key-4f1c9a"  # the emulator's one valid key
WRONG_API_KEY = "wrong-key-000000"

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def free_port() -> int:
    """A currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def env_connection(conn_id: str, host: str, password: str, **extra: Any):
    """Define an Airflow connection for this process only (AIRFLOW_CONN_<ID>, JSON form), then restore."""
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    old = os.environ.get(var)
    os.environ[var] = json.dumps({"conn_type": "activecampaign", "host": host, "password": password,
                                  "extra": extra})
    try:
        yield conn_id
    finally:
        if old is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = old


def airflow_env(home: pathlib.Path, dags_folder: pathlib.Path, **extra: str) -> dict[str, str]:
    """A hermetic environment for Airflow subprocesses.

    Inherited AIRFLOW__* / AIRFLOW_CONN_* / AIRFLOW_VAR_* variables (the unit-test conftest sets some,
    e.g. UNIT_TEST_MODE) are dropped so the api-server behaves like a plain local deployment.
    """
    dropped = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "_AIRFLOW")
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME" and not k.startswith(dropped)}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(64),  # >= 64 bytes for HS512
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # The hook runs inside the api-server and must reach the loopback emulator directly.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def run_airflow(args: list[str], env: Mapping[str, str], *, timeout: float, log: pathlib.Path) -> str:
    """Run an `airflow` CLI command to completion; output goes to `log`. Raises with the log tail."""
    with log.open("ab") as out:
        out.write(f"\n$ airflow {' '.join(args)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            _die_with_us([str(VENV_BIN / "airflow"), *args]),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            raise AssertionError(f"`airflow {' '.join(args)}` timed out after {timeout}s\n{tail(log)}") \
                from None
        finally:
            kill_group(proc)  # leftover children of a finished command, if any
    if rc != 0:
        raise AssertionError(f"`airflow {' '.join(args)}` exited {rc}\n{tail(log)}")
    return log.read_text(errors="replace")


def _die_with_us(cmd: list[str]) -> list[str]:
    """Prefix `setpriv --pdeathsig TERM` (util-linux, always on Debian): the child gets SIGTERM if pytest
    dies without running its fixture teardown (SIGKILL, a CI timeout, a hang killed from outside)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *cmd] if setpriv else cmd


def start_group(cmd: list[str], env: Mapping[str, str], log: pathlib.Path) -> subprocess.Popen:
    """Start a long-running command in its own process group (so it and its workers die together)."""
    out = log.open("ab")
    try:
        return subprocess.Popen(
            _die_with_us(cmd),
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        out.close()  # the child holds its own copy


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of `proc` (started with start_new_session, so pgid == pid), SIGKILL
    whatever is left after `grace` seconds. Also reaps `proc`. Safe to call more than once."""
    pgid = proc.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def tail(path: pathlib.Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"(no log at {path})"
    return f"--- last {lines} lines of {path} ---\n" + "\n".join(text[-lines:])


def wait_http_ok(
    url: str, *, timeout: float, proc: subprocess.Popen | None = None, log: pathlib.Path | None = None
) -> Any:
    """Poll `url` until it answers 200; fail fast (with the log tail) if `proc` exits first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} was ready\n"
                                 f"{tail(log) if log else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return json.loads(resp.read() or b"null")
                last = resp.status
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as error:
            last = error
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s (last: {last!r})\n{tail(log) if log else ''}")


@dataclass
class ApiResponse:
    status: int
    body: Any


@dataclass
class AirflowApi:
    """Minimal JSON client for the api-server (urllib only, no proxy)."""

    url: str
    token: str | None = None
    _opener: urllib.request.OpenerDirector = field(
        default_factory=lambda: urllib.request.build_opener(urllib.request.ProxyHandler({}))
    )

    def request(self, method: str, path: str, body: Any = None) -> ApiResponse:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=60) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as error:
            raw, status = error.read(), error.code
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return ApiResponse(status, parsed)

    def get(self, path: str) -> ApiResponse:
        return self.request("GET", path)

    def post(self, path: str, body: Any) -> ApiResponse:
        return self.request("POST", path, body)

    def delete(self, path: str) -> ApiResponse:
        return self.request("DELETE", path)
