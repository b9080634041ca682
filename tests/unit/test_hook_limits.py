"""Client-side rate limits: spacing limiters shared per API URL, per process, across hooks and threads."""

# ruff: noqa: F811  (pytest fixtures imported from hook_fixtures are re-bound as arguments)

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_activecampaign.emulator.store import max_in_sliding_window
from airflow_provider_activecampaign.hooks.activecampaign import (
    LIMITER_MARGIN,
    ActiveCampaignHook,
    SpacingLimiter,
    get_limiter,
)
from airflow_provider_activecampaign.hooks.limits import ImportLedger, ledger_path
from tests.unit.hook_fixtures import (  # noqa: F401  (pytest fixtures)
    BASE,
    FakeTime,
    ac_conn,
    fake_time,
    hook,
    make_hook,
    set_connection,
)

BULK = f"{BASE}/import/bulk_import"


def record_times(requests_mock: Any, url: str, clock: Callable[[], float], method: str = "GET",
                 body: dict | None = None) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def respond(request: Any, context: Any) -> dict:
        with lock:
            times.append(clock())
        return body or {}

    requests_mock.register_uri(method, url, json=respond)
    return times


def test_sliding_helper() -> None:
    assert max_in_sliding_window([0, 0.1, 0.2, 1.0, 1.05], 1.0) == 4
    assert max_in_sliding_window([0, 0.1, 1.0, 1.2], 1.0) == 2
    assert max_in_sliding_window([0, 0.5, 0.99], 1.0) == 3


def test_no_sliding_second_holds_more_than_the_rate(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                    requests_mock: Any) -> None:
    times = record_times(requests_mock, f"{BASE}/lists", fake_time.clock)
    for _ in range(40):
        hook.request("GET", "lists")
    assert len(times) == 40
    assert max_in_sliding_window(times, 1.0) == 5
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) >= 0.2 * LIMITER_MARGIN - 1e-9
    assert times[-1] - times[0] == pytest.approx(39 * 0.2 * LIMITER_MARGIN, abs=1e-3)  # not slower either


def test_spacing_keeps_any_second_within_the_rate() -> None:
    clock = FakeTime(0.0)
    spaced = SpacingLimiter(1.0 / 5 * LIMITER_MARGIN, clock.clock)
    granted = []
    for _ in range(20):
        spaced.acquire(clock.sleep)
        granted.append(clock.now)
    assert max_in_sliding_window(granted, 1.0) <= 5


def test_the_first_permit_opens_the_window() -> None:
    """A limiter made a while before its first permit must still space the second one from the first."""
    clock = FakeTime(0.0)
    limiter = SpacingLimiter(1.0, clock.clock)
    clock.sleep(0.7)  # first request comes 0.7 s after the limiter was made
    limiter.acquire(clock.sleep)
    first = clock.now
    limiter.acquire(clock.sleep)
    assert clock.now - first >= 1.0


def test_rates_come_from_the_connection(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                                        fake_time: FakeTime, requests_mock: Any) -> None:
    ac_conn(requests_per_second="2")
    times = record_times(requests_mock, f"{BASE}/lists", fake_time.clock)
    hook = make_hook()
    for _ in range(10):
        hook.request("GET", "lists")
    assert max_in_sliding_window(times, 1.0) == 2
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.5


def test_raised_rate_for_tests(ac_conn: Callable[..., None], make_hook: Callable[..., Any],
                               fake_time: FakeTime, requests_mock: Any) -> None:
    ac_conn(requests_per_second=1000)
    times = record_times(requests_mock, f"{BASE}/lists", fake_time.clock)
    hook = make_hook()
    for _ in range(100):
        hook.request("GET", "lists")
    assert times[-1] - times[0] < 0.11


def test_registry_shares_per_url_rate_and_clock(fake_time: FakeTime) -> None:
    a = get_limiter("https://a.api-us1.com", "requests", 5.0, 1.0, fake_time.clock)
    assert get_limiter("https://a.api-us1.com", "requests", 5.0, 1.0, fake_time.clock) is a
    assert get_limiter("https://a.api-us1.com", "requests", 2.0, 1.0, fake_time.clock) is not a
    assert get_limiter("https://b.api-us1.com", "requests", 5.0, 1.0, fake_time.clock) is not a
    assert get_limiter("https://a.api-us1.com", "bulk_imports", 5.0, 1.0, fake_time.clock) is not a
    assert get_limiter("https://a.api-us1.com", "requests", 5.0, 1.0, time.monotonic) is not a
    assert (a.window_calls, a.window) == (5, 1.0)
    slow = get_limiter("https://a.api-us1.com", "requests", 0.5, 1.0, fake_time.clock)
    assert (slow.window_calls, slow.window) == (1, 2.0) and slow.period == pytest.approx(2.0 * LIMITER_MARGIN)


def test_hook_instances_share_one_limiter(make_hook: Callable[..., ActiveCampaignHook], fake_time: FakeTime,
                                          requests_mock: Any) -> None:
    hooks = [make_hook() for _ in range(3)]
    assert len({id(h._general_limiter()) for h in hooks}) == 1
    times = record_times(requests_mock, f"{BASE}/lists", fake_time.clock)
    for _ in range(10):
        for h in hooks:
            h.request("GET", "lists")
    assert max_in_sliding_window(times, 1.0) == 5


def test_different_settings_do_not_share(monkeypatch: pytest.MonkeyPatch, fake_time: FakeTime) -> None:
    set_connection(monkeypatch, conn_id="fast", requests_per_second=50)
    set_connection(monkeypatch, conn_id="slow", requests_per_second=1)
    fast = ActiveCampaignHook("fast", sleep=fake_time.sleep, clock=fake_time.clock)
    slow = ActiveCampaignHook("slow", sleep=fake_time.sleep, clock=fake_time.clock)
    assert fast._general_limiter() is not slow._general_limiter()
    assert slow._general_limiter().period == pytest.approx(1.0 * LIMITER_MARGIN)


TWO = [{"email": "a@example.com"}, {"email": "b@example.com"}]
ONE = [{"email": "a@example.com"}]


def test_the_first_100_imports_go_at_the_requests_pace(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                       requests_mock: Any) -> None:
    """No bulk spacing: 100 imports take 99 request slots (~20 s at 5/s), not 99 x 0.6 s."""
    times = record_times(requests_mock, BULK, fake_time.clock, "POST", {"batchId": "b"})
    for _ in range(100):
        hook.bulk_import(TWO)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == pytest.approx(0.2 * LIMITER_MARGIN)  # only the requests budget paces them
    assert times[-1] - times[0] == pytest.approx(99 * 0.2 * LIMITER_MARGIN, abs=1e-6)


def test_the_101st_import_waits_until_the_first_leaves_the_window(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                                  requests_mock: Any) -> None:
    times = record_times(requests_mock, BULK, fake_time.clock, "POST", {"batchId": "b"})
    for _ in range(101):
        hook.bulk_import(TWO)
    assert times[99] - times[0] < 21  # the first hundred went at once
    assert times[100] >= times[0] + 60.0  # the 101st waited out the first one's minute ...
    assert times[100] <= times[0] + 60.0 * LIMITER_MARGIN + 1e-6  # ... and not much longer
    assert max_in_sliding_window(times, 60.0) == 100


def test_single_contact_imports_have_their_own_window_of_20(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                            requests_mock: Any) -> None:
    times = record_times(requests_mock, BULK, fake_time.clock, "POST", {"batchId": "b"})
    for _ in range(21):
        hook.bulk_import(ONE)
    assert times[19] - times[0] < 5
    assert times[20] >= times[0] + 60.0
    assert hook._bulk_limiter(1) is not hook._bulk_limiter(2)


def test_single_and_multi_contact_windows_do_not_block_each_other(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                                  requests_mock: Any) -> None:
    times = record_times(requests_mock, BULK, fake_time.clock, "POST", {"batchId": "b"})
    for _ in range(20):
        hook.bulk_import(ONE)
    for _ in range(100):
        hook.bulk_import(TWO)
    assert times[-1] - times[0] < 30  # 120 imports in 24 s of request slots


def test_two_hooks_share_one_import_window(make_hook: Callable[..., ActiveCampaignHook], fake_time: FakeTime,
                                           requests_mock: Any) -> None:
    """Two tasks (or two runs) in one process: the second sees the first one's minute."""
    times = record_times(requests_mock, BULK, fake_time.clock, "POST", {"batchId": "b"})
    first_run, second_run = make_hook(), make_hook()
    for _ in range(60):
        first_run.bulk_import(TWO)
    for _ in range(41):
        second_run.bulk_import(TWO)
    assert times[100] >= times[0] + 60.0
    assert max_in_sliding_window(times, 60.0) == 100


def test_no_sliding_minute_holds_more_than_100_imports_under_jitter(hook: ActiveCampaignHook,
                                                                    fake_time: FakeTime,
                                                                    requests_mock: Any) -> None:
    """The server counts arrivals. Requests delayed on the way, slow answers and status reads in between
    must never put 101 arrivals in one minute; and the pace stays close to the budget's."""
    import random

    rng = random.Random(7)
    arrivals: list[float] = []

    def network(request: Any, context: Any) -> dict:
        delay = rng.choice([0.0, 0.01, 0.05]) if len(arrivals) % 9 else 2.0  # some badly delayed
        arrivals.append(fake_time.now + delay)
        fake_time.now += delay + rng.uniform(0.0, 0.1)  # answers take a while too
        return {"batchId": "b"}

    requests_mock.post(BULK, json=network)
    requests_mock.get(f"{BASE}/import/info", json={"status": "completed"})
    for i in range(350):
        hook.bulk_import(TWO)
        if i % 3 == 0:
            hook.get_import_status("b")
    assert len(arrivals) == 350
    assert max_in_sliding_window(arrivals, 60.0) <= 100
    # 350 imports: three full windows, then 50 at the requests' pace (status reads in between)
    assert arrivals[-1] - arrivals[0] < 3 * 60 * LIMITER_MARGIN + 50 * 0.5


def test_bulk_limits_from_the_connection(ac_conn: Callable[..., None], make_hook: Callable[..., Any]) -> None:
    ac_conn(bulk_imports_per_minute="30", single_imports_per_minute="6")
    hook = make_hook()
    assert (hook._bulk_limiter(5).window_calls, hook._bulk_limiter(5).period) == (30, 0.0)
    assert hook._bulk_limiter(1).window_calls == 6
    assert hook._bulk_limiter(5).window == pytest.approx(60.0 * LIMITER_MARGIN)


def test_bulk_imports_also_pass_the_general_limiter(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                    requests_mock: Any) -> None:
    times = record_times(requests_mock, f"{BASE}/lists", fake_time.clock)
    requests_mock.post(BULK, json={"batchId": "b"})
    hook.request("GET", "lists")
    hook.bulk_import([{"email": "a@example.com"}, {"email": "b@example.com"}])
    hook.request("GET", "lists")
    all_times = times  # lists only; the import happened in between
    assert all_times[1] - all_times[0] >= 2 * 0.2 * LIMITER_MARGIN - 1e-9


def test_a_429_holds_back_other_hooks_sharing_the_limiter(make_hook: Callable[..., ActiveCampaignHook],
                                                          fake_time: FakeTime, requests_mock: Any) -> None:
    """Retry-After pauses the account's budget: another hook asking meanwhile waits it out too."""
    first, other = make_hook(), make_hook()
    requests_mock.get(f"{BASE}/lists", [{"status_code": 429, "headers": {"Retry-After": "30"}},
                                        {"status_code": 200, "json": {}}])
    other_times = record_times(requests_mock, f"{BASE}/tags", fake_time.clock)
    paused_at: list[float] = []

    def sleep_while_other_works(seconds: float) -> None:
        if seconds == 30 and not paused_at:  # first's Retry-After wait: other tries meanwhile
            paused_at.append(fake_time.now)
            other.request("GET", "tags")
        fake_time.sleep(seconds)

    first.sleep = sleep_while_other_works
    first.request("GET", "lists")
    assert other_times and other_times[0] >= paused_at[0] + 30


def test_threads_and_hooks_share_the_limiter(monkeypatch: pytest.MonkeyPatch, requests_mock: Any) -> None:
    """Real clock, real threads: 4 hooks in 4 threads at 100 req/s together, not 4 x 100."""
    set_connection(monkeypatch, host="https://threads.api-us1.com", requests_per_second=100)
    times = record_times(requests_mock, "https://threads.api-us1.com/api/3/lists", time.monotonic)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            worker_hook = ActiveCampaignHook()  # real time.sleep and time.monotonic
            for _ in range(6):
                worker_hook.request("GET", "lists")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(times) == 24
    period = 0.01 * LIMITER_MARGIN
    # permits are >= period apart, so 24 of them span >= 23 periods (minus scheduling noise)
    assert times[-1] - times[0] >= 23 * period * 0.9


def test_arrival_jitter_cannot_crowd_a_sliding_second(hook: ActiveCampaignHook, fake_time: FakeTime,
                                                      requests_mock: Any) -> None:
    """The server counts *arrivals*, which jitter. With spacing alone, one request that arrives 50 ms
    late makes six arrivals within a second; the completion-time guard prevents that."""
    import random

    rng = random.Random(3)
    arrivals: list[float] = []

    def network(request: Any, context: Any) -> dict:
        delay = 0.05 if len(arrivals) % 7 == 0 else rng.uniform(0.0, 0.03)
        arrivals.append(fake_time.now + delay)
        fake_time.now += delay + 0.002  # the answer comes back just after arrival
        return {}

    requests_mock.get(f"{BASE}/lists", json=network)
    for _ in range(60):
        hook.request("GET", "lists")
    assert max_in_sliding_window(arrivals, 1.0) <= 5
    assert arrivals[-1] - arrivals[0] < 60 / 5 * 1.1  # and still close to the full budget


def test_spacing_alone_would_have_crowded_that_second() -> None:
    """The failure mode the guard exists for, shown on a limiter without it."""
    clock = FakeTime(0.0)
    spacing_only = SpacingLimiter(0.2 * LIMITER_MARGIN, clock.clock)  # no window guard
    arrivals = []
    for i in range(6):
        spacing_only.acquire(clock.sleep)
        arrivals.append(clock.now + (0.05 if i == 0 else 0.0))
        spacing_only.release()
    assert max_in_sliding_window(arrivals, 1.0) == 6


def test_requests_in_flight_hold_their_slot() -> None:
    clock = FakeTime(0.0)
    limiter = SpacingLimiter(0.001, clock.clock, window_calls=3, window=1.0)
    for _ in range(3):
        limiter.acquire(clock.sleep)  # three requests sent, none answered yet
    released: list[float] = []

    def sleep(seconds: float) -> None:  # while the 4th waits, the first answer comes back
        clock.sleep(seconds)
        if not released:
            limiter.release()
            released.append(clock.now)

    limiter.acquire(sleep)
    assert released and clock.now >= released[0] + 1.0  # counted from its completion time


def test_an_interrupted_wait_gives_its_slot_back() -> None:
    clock = FakeTime(0.0)
    limiter = SpacingLimiter(10.0, clock.clock, window_calls=2, window=1.0)
    limiter.acquire(clock.sleep)
    limiter.release()

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        limiter.acquire(interrupted)  # spacing wait of 10 s interrupted
    assert limiter._in_flight == 0


# ---------------------------------------------------------------------------------------------------
# The import window shared by the processes of one host
# ---------------------------------------------------------------------------------------------------

def _import_window(clock: FakeTime, ledger: ImportLedger) -> SpacingLimiter:
    return SpacingLimiter(0.0, clock.clock, window_calls=100, window=60.0 * LIMITER_MARGIN, ledger=ledger)


def test_a_new_process_waits_out_the_imports_another_process_just_made(tmp_path: Path) -> None:
    clock = FakeTime(5_000.0)
    path = tmp_path / "imports.ledger"
    earlier_run = _import_window(clock, ImportLedger(path, owner="101"))
    first_done = None
    for _ in range(100):
        earlier_run.acquire(clock.sleep)
        clock.sleep(0.2)
        earlier_run.release()
        first_done = first_done or clock.now
    next_run = _import_window(clock, ImportLedger(path, owner="202"))  # a fresh process: empty memory
    started = clock.now
    next_run.acquire(clock.sleep)
    assert clock.now >= first_done + 60.0 * LIMITER_MARGIN  # it waited for the first import to leave
    assert clock.now - started < 61.2  # and no longer


def test_a_process_does_not_count_its_own_lines_twice(tmp_path: Path) -> None:
    clock = FakeTime(5_000.0)
    limiter = _import_window(clock, ImportLedger(tmp_path / "imports.ledger", owner="303"))
    for _ in range(99):
        limiter.acquire(clock.sleep)
        limiter.release()
    before = clock.now
    limiter.acquire(clock.sleep)  # the 100th: within the budget, no wait
    assert clock.now == before


def test_old_lines_do_not_count_and_the_file_stays_small(tmp_path: Path) -> None:
    clock = FakeTime(5_000.0)
    path = tmp_path / "imports.ledger"
    ledger = ImportLedger(path, owner="404", horizon=120.0)
    for i in range(2_000):
        ledger.record(clock.now + i)  # one a second for half an hour
    assert path.stat().st_size < 2 * ImportLedger._PRUNE_BYTES
    reader = ImportLedger(path, owner="505")
    assert len(reader.others(clock.now + 1_999 - 60.0)) == 60


def test_a_ledger_that_cannot_be_written_is_turned_off(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the ledger's folder should be")
    clock = FakeTime(5_000.0)
    ledger = ImportLedger(blocked / "imports.ledger", owner="606")
    limiter = _import_window(clock, ledger)
    for _ in range(3):
        limiter.acquire(clock.sleep)
        limiter.release()
    assert not ledger.enabled and ledger.others(0.0) == []


def test_only_the_real_clocks_import_windows_use_a_ledger(fake_time: FakeTime) -> None:
    real = get_limiter("https://ledger.api-us1.com", "bulk_imports", 100, 60.0, time.monotonic, spaced=False)
    assert real.ledger is not None
    assert real.ledger.path == ledger_path("https://ledger.api-us1.com", "bulk_imports", 100)
    assert ledger_path("https://other.api-us1.com", "bulk_imports", 100) != real.ledger.path
    assert get_limiter("https://ledger.api-us1.com", "bulk_imports", 100, 60.0, fake_time.clock,
                       spaced=False).ledger is None
    assert get_limiter("https://ledger.api-us1.com", "requests", 5, 1.0, time.monotonic).ledger is None


def test_an_import_interrupted_while_waiting_for_the_requests_budget_frees_its_import_slot(
        hook: ActiveCampaignHook, fake_time: FakeTime, requests_mock: Any) -> None:
    requests_mock.post(BULK, json={"batchId": "b"})
    hook.bulk_import(TWO)
    bulk = hook._bulk_limiter(2)

    def interrupted(seconds: float) -> None:  # the requests budget makes it wait: the task is killed
        raise KeyboardInterrupt

    hook.sleep = interrupted
    with pytest.raises(KeyboardInterrupt):
        hook.bulk_import(TWO)
    assert bulk._in_flight == 0
