"""The account's limits (``EmulatorConfig``) and the sliding windows that enforce them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EmulatorConfig:
    """Account limits and behaviour. Defaults equal ActiveCampaign's documented limits.

    Mutable at run time (``account.configure(...)`` or ``PATCH /_emulator/config``); limiter windows
    pick up new values on the next request.
    """

    api_key: str = "emulator-api-key"
    user: str = "emulator"
    # users/me's id: the same across resets, so a run can tell this account from another at the
    # same URL (give each emulated account its own). A real account's first user is "1".
    user_id: str = "1"
    # General limit: at most int(requests_per_second) requests in any sliding window of
    # ``rate_window`` seconds (1 s, as ActiveCampaign; tests may shorten it). None or 0 disables it.
    requests_per_second: float | None = 5
    rate_window: float = 1.0
    retry_after: float = 1  # seconds sent in Retry-After with the 429
    # Bulk importer limits (HTTP 400 "Rate limit exceeded." beyond them). None or 0 disables.
    bulk_imports_per_minute: int | None = 100
    single_imports_per_minute: int | None = 20
    bulk_window: float = 60.0
    max_contacts_per_import: int = 250
    max_import_bytes: int = 400_000  # a body of this many bytes or more is refused
    import_delay: float = 0.5  # seconds from queueing until a batch is processed
    request_log_limit: int = 1_000_000  # oldest request records are dropped beyond this

    def to_json(self) -> dict[str, Any]:
        """Config as JSON, without the API key (the admin API is unauthenticated)."""
        data = asdict(self)
        data.pop("api_key")
        return data


class SlidingWindow:
    """At most ``limit`` acquisitions in any window of ``window`` seconds (a log of timestamps).

    Only successful acquisitions are recorded, so refused attempts never extend the wait.
    """

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def _expire(self, now: float, window: float) -> None:
        times = self._times
        while times and times[0] <= now - window:
            times.popleft()

    def try_acquire(self, now: float, limit: int, window: float) -> bool:
        """Record one use at ``now`` if the window has room; False (nothing recorded) if it is full."""
        self._expire(now, window)
        if len(self._times) >= limit:
            return False
        self._times.append(now)
        return True

    def in_window(self, now: float, window: float) -> int:
        """How many uses fall in the window ending at ``now``."""
        self._expire(now, window)
        return len(self._times)

    def clear(self) -> None:
        self._times.clear()


def window_params(per_second: float, window: float = 1.0) -> tuple[int, float]:
    """(capacity, window seconds) for a rate: ``int(per_second)`` per ``window`` seconds; below 1,
    one request per proportionally longer window (0.5 rps -> 1 per 2 s)."""
    if per_second >= 1:
        return int(per_second), window
    return 1, window / per_second


def max_in_sliding_window(times: Iterable[float], window: float) -> int:
    """The most events found in any half-open interval [t, t + window): how rate limits are counted."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
