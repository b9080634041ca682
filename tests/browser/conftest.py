"""Browser-test fixtures: a real `airflow api-server`, the ActiveCampaign emulator, headless Chromium.

Session-scoped so every test in tests/browser shares one Airflow (migrate + start ≈ 15 s) and one browser.
Every process is started in its own process group and killed at session end, on failure too.

The `airflow dags test` run that the extra-link test inspects takes ≈ 20 s (most of it the in-process
Execution API warming up), so it starts in the background as soon as the DB is migrated and overlaps
with the api-server's start-up and the connection tests.
"""

from __future__ import annotations

import atexit
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.browser.helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    EMULATOR_API_KEY,
    VENV_BIN,
    AirflowApi,
    airflow_env,
    env_connection,
    free_port,
    kill_group,
    run_airflow,
    start_group,
    tail,
    wait_http_ok,
)

BROWSER_DAGS = pathlib.Path(__file__).resolve().parent / "dags"
LINK_DAG_ID = "ac_browser_link"
LINK_CONN_ID = "ac_browser_link"  # the DAG's activecampaign_conn_id

_started: list[subprocess.Popen] = []


@atexit.register
def _kill_leftovers() -> None:  # last resort if pytest dies between a start and its fixture teardown
    for proc in list(_started):
        kill_group(proc, grace=3)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip browser-driving tests before any fixture starts, and only when Debian's Chromium is missing."""
    if "page" in getattr(item, "fixturenames", ()) and not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run scripts/install-browser.sh (apt-get install chromium)")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Remember each phase's outcome so the `page` fixture can screenshot a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def artifacts() -> pathlib.Path:
    """test-artifacts/browser/ (git-ignored), emptied at session start so it only holds this run's files."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def emulator() -> Iterator[object]:
    """The ActiveCampaign API emulator on a free loopback port, accepting EMULATOR_API_KEY only."""
    from airflow_provider_activecampaign.emulator import EmulatorServer

    with EmulatorServer(api_key=EMULATOR_API_KEY) as server:
        yield server


@pytest.fixture(scope="session")
def link_emulator() -> Iterator[object]:
    """A second emulator (its own account) for the background DAG run: the emulator enforces the
    account-wide 5 requests/s, and the audience send must not starve the connection tests' single GET."""
    from airflow_provider_activecampaign.emulator import EmulatorServer

    with EmulatorServer(api_key=EMULATOR_API_KEY) as server:
        yield server


@dataclass
class AirflowHome:
    """A throw-away, migrated AIRFLOW_HOME (SQLite) and the environment every Airflow subprocess uses."""

    path: pathlib.Path
    env: dict[str, str]
    url: str  # where the api-server will listen
    log: pathlib.Path


@dataclass
class AirflowServer:
    url: str
    home: pathlib.Path
    env: dict[str, str]
    api: AirflowApi
    log: pathlib.Path


@pytest.fixture(scope="session")
def airflow_home(artifacts: pathlib.Path) -> Iterator[AirflowHome]:
    """Throw-away AIRFLOW_HOME + `airflow db migrate`.

    SimpleAuthManager with every user an admin (no login page), [core] test_connection = Enabled.
    """
    home = pathlib.Path(tempfile.mkdtemp(prefix="ac_browser_airflow_home_"))
    log = home / "airflow-cli.log"
    url = f"http://127.0.0.1:{free_port()}"
    env = airflow_env(home, BROWSER_DAGS, AIRFLOW__API__BASE_URL=url)
    try:
        t0 = time.monotonic()
        run_airflow(["db", "migrate"], env, timeout=120, log=log)
        print(f"\n[browser] airflow db migrate {time.monotonic() - t0:.1f}s")
        yield AirflowHome(home, env, url, log)
    finally:
        for path in home.glob("*.log"):
            shutil.copy(path, artifacts / path.name)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_server(airflow_home: AirflowHome) -> Iterator[AirflowServer]:
    """`airflow api-server` on 127.0.0.1:<free port>, serving the UI and the REST API."""
    server_log = airflow_home.path / "api-server.log"
    url = airflow_home.url
    port = url.rsplit(":", 1)[1]
    t0 = time.monotonic()
    command = ["api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1"]
    proc = start_group([str(VENV_BIN / "airflow"), *command], airflow_home.env, server_log)
    _started.append(proc)
    try:
        wait_http_ok(f"{url}/api/v2/monitor/health", timeout=90, proc=proc, log=server_log)
        print(f"\n[browser] api-server ready in {time.monotonic() - t0:.1f}s at {url}")
        # With simple_auth_manager_all_admins, GET /auth/token hands out an admin JWT without credentials
        # (airflow/api_fastapi/auth/managers/simple/routes/login.py::create_token_all_admins).
        token = AirflowApi(url).get("/auth/token")
        assert token.status == 201, f"GET /auth/token -> {token.status} {token.body}"
        api = AirflowApi(url, token.body["access_token"])
        yield AirflowServer(url, airflow_home.path, airflow_home.env, api, airflow_home.log)
    finally:
        t_stop = time.monotonic()
        # uvicorn stops at once on SIGTERM, then the interpreter lingers ~4 s in exit hooks; the home is
        # thrown away, so 2 s of grace before SIGKILL is plenty.
        kill_group(proc, grace=2)
        _started.remove(proc)
        print(f"\n[browser] api-server stopped in {time.monotonic() - t_stop:.1f}s")


@dataclass
class BackgroundRun:
    """`airflow dags test` running in its own process group; `wait()` for its result."""

    proc: subprocess.Popen
    log: pathlib.Path
    emulator: object  # the emulator the DAG run talks to
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    def wait(self, timeout: float = 120) -> float:
        try:
            rc = self.proc.wait(timeout=max(1.0, self.started + timeout - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(self.proc, grace=3)
            raise AssertionError(f"`airflow dags test {LINK_DAG_ID}` still running after {timeout}s\n"
                                 f"{tail(self.log)}") from None
        if self.seconds is None:
            self.seconds = time.monotonic() - self.started
        assert rc == 0, f"`airflow dags test {LINK_DAG_ID}` exited {rc}\n{tail(self.log, 60)}"
        return self.seconds


@pytest.fixture(scope="session")
def link_dag_run(airflow_home: AirflowHome, link_emulator) -> Iterator[BackgroundRun]:
    """`airflow dags test ac_browser_link` (tests/browser/dags) against the emulator, same AIRFLOW_HOME/DB.

    Needs only the migrated DB (the api-server never writes DAG bundles), so it runs alongside the
    api-server's start-up and the connection tests.
    """
    import json

    log = airflow_home.path / "dags-test.log"
    env = {
        **airflow_home.env,
        f"AIRFLOW_CONN_{LINK_CONN_ID.upper()}": json.dumps(
            {"conn_type": "activecampaign", "host": link_emulator.url, "password": EMULATOR_API_KEY}
        ),
        "AC_BROWSER_STATE_URI": f"file://{airflow_home.path / 'ac_state'}",
    }
    proc = start_group([str(VENV_BIN / "airflow"), "dags", "test", LINK_DAG_ID], env, log)
    _started.append(proc)
    try:
        yield BackgroundRun(proc, log, link_emulator)
    finally:
        kill_group(proc, grace=3)
        _started.remove(proc)


@pytest.fixture(scope="session", autouse=True)
def _start_link_dag_run_early(request: pytest.FixtureRequest) -> None:
    """Start the DAG run at the beginning of the session if any selected test will inspect it."""
    wanted = any("link_dag_run" in getattr(item, "fixturenames", ()) for item in request.session.items)
    if wanted and CHROMIUM.exists():  # the test that inspects it drives the browser
        request.getfixturevalue("link_dag_run")


@pytest.fixture(scope="session")
def browser_context(airflow_server: AirflowServer) -> Iterator[object]:
    """Headless Debian Chromium through Playwright (never a downloaded browser), fresh profile.

    Depends on airflow_server so the browser (and its keep-alive connections) closes before the server.
    """
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ac_browser_profile_")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 1000},
                locale="en-US",
                timezone_id="UTC",
            )
            context.set_default_timeout(15_000)
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context, request: pytest.FixtureRequest, artifacts: pathlib.Path):
    """A fresh tab; on failure its screenshot is saved as test-artifacts/browser/FAILED-<test>.png."""
    page = browser_context.new_page()
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
            except Exception as error:  # the page may be gone; the failure itself matters more
                print(f"[browser] could not save the failure screenshot: {error}")
        page.close()


@pytest.fixture(scope="session")
def hook_message():
    """What ActiveCampaignHook.test_connection() answers for a URL and key, computed in this process.

    The api-server runs the same hook for the UI's Test and for POST /connections/test, so both must
    show exactly this message.
    """
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

    def _message(host: str, password: str) -> tuple[bool, str]:
        with env_connection("ac_browser_expected", host, password) as conn_id:
            return ActiveCampaignHook(activecampaign_conn_id=conn_id).test_connection()

    return _message
