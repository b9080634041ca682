"""Client-side rate limits, one limiter per API URL and budget, shared by every hook and thread of the
process (ActiveCampaign counts per account, so two tasks in one worker share one budget), and kept for
the life of the process, so a task run that starts right after another inherits its last minute.

Two budgets, two shapes:

* **requests per second** (5): permits are *spaced* 1/rate apart, plus the sliding-window guard below;
* **bulk imports per minute** (100 multi-contact, 20 single-contact): a pure *sliding window*, no
  spacing. ActiveCampaign's rule is "up to 100 imports per minute", which any 60 s holding at most 100
  imports meets; so the first 100 imports go as fast as the requests budget lets them, and only the
  101st waits, until the first has left the window.

The importer's windows are also shared by the processes of one host through a small file, an
:class:`ImportLedger` (Airflow runs each task in its own process: a run that starts right after another
must not draw a 400 "Rate limit exceeded." and a minute's wait). Requests in flight in another process
are not seen until they complete; accounts used by concurrent tasks share the budget through a pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no ledger, each process keeps its own window
    fcntl = None  # type: ignore[assignment]

__all__ = ["LIMITER_MARGIN", "ImportLedger", "SpacingLimiter", "get_limiter"]

LIMITER_MARGIN = 1.02  # spacing a little wider than 1/rate, and windows a little longer, absorb jitter


class ImportLedger:
    """Completion times of imports, shared by the processes of one host in an append-only file.

    Each line is ``<owner> <time>`` on ``time.monotonic()``, which is one clock for every process of a
    host. A limiter counts the other owners' recent lines in its window as its own. Any file error
    turns the ledger off (the process then keeps only its own window): it must never fail a request.
    """

    _PRUNE_BYTES = 16_384  # rewrite the file, keeping only recent lines, once it grows past this

    def __init__(self, path: Path, *, owner: str | None = None, horizon: float = 120.0) -> None:
        self.path = path
        self.owner = owner or str(os.getpid())
        self.horizon = horizon  # lines older than this are dropped when the file is pruned
        self.enabled = fcntl is not None

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[IO[str]]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.path, "a+", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                handle.seek(0)
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _parse(text: str) -> list[tuple[str, float]]:
        entries = []
        for line in text.splitlines():
            owner, _, when = line.partition(" ")
            try:
                entries.append((owner, float(when)))
            except ValueError:
                continue  # a torn or foreign line
        return entries

    def others(self, since: float) -> list[float]:
        """Times after ``since`` recorded by other owners."""
        if not self.enabled:
            return []
        try:
            with self._locked(exclusive=False) as handle:
                entries = self._parse(handle.read())
        except OSError:
            self.enabled = False
            return []
        return sorted(t for owner, t in entries if owner != self.owner and t > since)

    def record(self, when: float) -> None:
        if not self.enabled:
            return
        try:
            with self._locked(exclusive=True) as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() > self._PRUNE_BYTES:
                    handle.seek(0)
                    keep = [(o, t) for o, t in self._parse(handle.read()) if t > when - self.horizon]
                    handle.seek(0)
                    handle.truncate()
                    handle.writelines(f"{o} {t!r}\n" for o, t in keep)
                handle.write(f"{self.owner} {when!r}\n")
        except OSError:
            self.enabled = False


def ledger_path(api_url: str, kind: str, calls: float) -> Path:
    """Where the processes of this host record one account's imports (one file per API URL and budget)."""
    digest = hashlib.sha256(f"{api_url}|{kind}|{calls}".encode()).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / "airflow-provider-activecampaign" / f"{kind}-{digest}.ledger"


class SpacingLimiter:
    """Paces requests to one budget, across every thread of the process. Two mechanisms:

    * **spacing** (``period`` > 0): permits are handed out at least ``period`` apart, in the order they
      were asked for (each caller reserves the next free instant, then sleeps until it);
    * a **sliding-window guard** (``window_calls`` per ``window``) on *completion* times, because the
      server counts *arrival* times, which jitter: a request delayed 30 ms on its way (a new TCP
      connection, a busy host) followed by an undelayed one five slots later makes six arrivals in one
      second despite perfect spacing. A request arrives before its answer does, so admitting a request
      only while fewer than ``window_calls`` requests are in flight or completed within the last
      ``window`` seconds keeps the server's count within the limit whatever the jitter (the in-flight
      margin). With fast answers it costs nothing.

    ``pause(seconds)`` holds every user of the limiter back, e.g. after a 429 asked the account to wait.
    Waiting goes through the caller's ``sleep`` and the limiter's ``clock`` so tests never really sleep.
    """

    _POLL = 0.05  # wait when every slot of the window is held by a request still in flight

    def __init__(self, period: float, clock: Callable[[], float], *, window_calls: int | None = None,
                 window: float = 1.0, ledger: ImportLedger | None = None) -> None:
        self.period = period
        self.ledger = ledger  # other processes' completions, counted in the window too
        self.clock = clock
        self.window_calls = window_calls
        self.window = window
        self._lock = threading.Lock()
        self._paused_until = float("-inf")
        self._next_permit = float("-inf")  # the first permit is immediate and opens the spacing
        self._in_flight = 0
        self._completed: deque[float] = deque()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def acquire(self, sleep: Callable[[float], Any]) -> float:
        """Block (through ``sleep``) until the request may go; returns the seconds slept.

        Every ``acquire`` must be followed by one ``release`` once the request is answered or failed.
        """
        slept = 0.0
        with self._lock:
            paused = self._paused_until - self.clock()
        if paused > 0:  # checked once: a no-op test `sleep` must not spin here
            sleep(paused)
            slept += paused
        slept += self._reserve(sleep)
        at = None
        try:
            if self.period > 0:
                with self._lock:
                    now = self.clock()
                    at = max(now, self._next_permit)
                    self._next_permit = at + self.period
                if at > now:
                    sleep(at - now)
                    slept += at - now
            return slept
        except BaseException:  # interrupted while waiting: give the reserved slots back
            with self._lock:
                if at is not None and self._next_permit == at + self.period:
                    self._next_permit = at  # nobody queued behind: the instant is free again
                if self.window_calls:
                    self._in_flight -= 1
            raise

    def _reserve(self, sleep: Callable[[float], Any]) -> float:
        if not self.window_calls:
            return 0.0
        slept = 0.0
        while True:
            with self._lock:
                now = self.clock()
                completed = self._completed
                while completed and completed[0] <= now - self.window:
                    completed.popleft()
                elsewhere = self.ledger.others(now - self.window) if self.ledger else []
                if self._in_flight + len(completed) + len(elsewhere) < self.window_calls:
                    self._in_flight += 1
                    return slept
                candidates = ([completed[0]] if completed else []) + elsewhere[:1]
                oldest = min(candidates) if candidates else None
                wait = oldest + self.window - now if oldest is not None else self._POLL
            # At least a microsecond: a float remainder like 5e-14 added to a clock reading near 1000
            # is lost to rounding, and the loop would never end.
            wait = max(wait, 1e-6)
            sleep(wait)
            slept += wait

    def release(self) -> None:
        """The request was answered (or failed): it now counts by its completion time."""
        if not self.window_calls:
            return
        with self._lock:
            self._in_flight = max(self._in_flight - 1, 0)
            now = self.clock()
            self._completed.append(now)
            if self.ledger:
                self.ledger.record(now)


_LIMITERS: dict[tuple[Any, ...], SpacingLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def get_limiter(api_url: str, kind: str, calls: float, per: float, clock: Callable[[], float], *,
                spaced: bool = True) -> SpacingLimiter:
    """The process-wide limiter for one API URL and budget: ``calls`` requests per ``per`` seconds.

    ``spaced=True`` spaces permits ``per / calls`` apart (the requests budget); ``spaced=False`` is a
    pure sliding window of ``calls`` per ``per`` seconds, widened by :data:`LIMITER_MARGIN` (the bulk
    importer's per-minute budgets), shared with the host's other processes through an
    :class:`ImportLedger` when the clock is the real monotonic one. The rate is in the key so
    connections with different settings don't share; the clock too, since times measured on different
    clocks can't be compared (only tests inject another clock).
    """
    key = (api_url, kind, calls, per, clock, spaced)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            # The server's window: int(calls) per `per` seconds; below one call, one per longer window.
            window_calls, window = (int(calls), per) if calls >= 1 else (1, per / calls)
            if spaced:
                limiter = SpacingLimiter(per / calls * LIMITER_MARGIN, clock, window_calls=window_calls,
                                         window=window)
            else:
                ledger = ImportLedger(ledger_path(api_url, kind, calls)) if clock is time.monotonic else None
                limiter = SpacingLimiter(0.0, clock, window_calls=window_calls, window=window * LIMITER_MARGIN,
                                         ledger=ledger)
            _LIMITERS[key] = limiter
        return limiter
