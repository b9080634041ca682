"""Client-side rate limits, one limiter per API URL and budget, shared by every hook and thread of the
process (ActiveCampaign counts per account, so two tasks in one worker share one budget), and kept for
the life of the process, so a task run that starts right after another inherits its last minute.

Two budgets, two shapes:

* **requests per second** (5): permits are *spaced* 1/rate apart, plus the sliding-window guard below;
* **bulk imports per minute** (100 multi-contact, 20 single-contact): a pure *sliding window*, no
  spacing. ActiveCampaign's rule is "up to 100 imports per minute", which any 60 s holding at most 100
  imports meets; so the first 100 imports go as fast as the requests budget lets them, and only the
  101st waits, until the first has left the window.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["LIMITER_MARGIN", "SpacingLimiter", "get_limiter"]

LIMITER_MARGIN = 1.02  # spacing a little wider than 1/rate, and windows a little longer, absorb jitter


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
                 window: float = 1.0) -> None:
        self.period = period
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
                if self._in_flight + len(completed) < self.window_calls:
                    self._in_flight += 1
                    return slept
                wait = completed[0] + self.window - now if completed else self._POLL
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
            self._completed.append(self.clock())


_LIMITERS: dict[tuple[Any, ...], SpacingLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def get_limiter(api_url: str, kind: str, calls: float, per: float, clock: Callable[[], float], *,
                spaced: bool = True) -> SpacingLimiter:
    """The process-wide limiter for one API URL and budget: ``calls`` requests per ``per`` seconds.

    ``spaced=True`` spaces permits ``per / calls`` apart (the requests budget); ``spaced=False`` is a
    pure sliding window of ``calls`` per ``per`` seconds, widened by :data:`LIMITER_MARGIN` (the bulk
    importer's per-minute budgets). The rate is in the key so connections with different settings
    don't share; the clock too, since times measured on different clocks can't be compared (only tests
    inject another clock).
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
                limiter = SpacingLimiter(0.0, clock, window_calls=window_calls, window=window * LIMITER_MARGIN)
            _LIMITERS[key] = limiter
        return limiter
