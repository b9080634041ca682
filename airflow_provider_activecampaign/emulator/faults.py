"""Fault injection: make the next N requests fail the way ActiveCampaign and its edge really fail.

Faults model the infrastructure in front of the API (Cloudflare, load balancers), so they are
checked before authentication and rate limiting, and a faulted request does not use a slot of the
rate window, except ``slow`` and ``drop_after`` whose requests do reach the API.

Kinds:

``status``
    Answer with ``status`` instead. 5xx get a Cloudflare-like HTML page, 429 gets the API's
    rate-limit answer, 403 an empty body; ``retry_after`` adds a ``Retry-After`` header.
``drop``
    Close the connection without answering; the request is not processed. ``requests`` raises
    ``ConnectionError``.
``drop_after``
    Process the request (state changes happen), then close the connection without answering: the
    "did my write land?" case a client must handle idempotently.
``slow``
    Wait ``delay`` seconds, then process and answer normally (client read timeouts).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

KINDS = ("status", "drop", "drop_after", "slow")


def relative_path(path: str) -> str:
    """Path relative to /api/3 without slashes at either end ("/api/3/lists/1" -> "lists/1")."""
    path = path.strip("/")
    if path == "api/3":
        return ""
    return path[len("api/3/") :] if path.startswith("api/3/") else path


@dataclass
class Fault:
    """One armed fault. ``count`` None means until cleared; ``path`` is a prefix relative to /api/3
    ("import/" matches "import/bulk_import" and "import/info"); ``method`` None matches any."""

    kind: str
    count: int | None = 1
    status: int = 503
    path: str | None = None
    method: str | None = None
    retry_after: float | None = None
    delay: float = 0.0
    id: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        if self.kind == "status" and not 400 <= int(self.status) <= 599:
            raise ValueError(f"fault status must be 4xx or 5xx, got {self.status}")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1 (or None for 'until cleared')")
        if self.path is not None:
            self.path = relative_path(self.path)
        if self.method is not None:
            self.method = self.method.upper()

    def matches(self, method: str, rel_path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or rel_path.startswith(self.path))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultInjector:
    """Armed faults in arming order; each request consumes one use of the first that matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 0

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._next_id += 1
            fault.id = self._next_id
            self._faults.append(fault)
            return fault

    def fail_next(
        self,
        count: int | None = 1,
        status: int = 500,
        *,
        path: str | None = None,
        method: str | None = None,
        retry_after: float | None = None,
    ) -> Fault:
        """The next ``count`` matching requests get ``status`` (HTML body for 5xx)."""
        return self.add(Fault("status", count=count, status=status, path=path, method=method, retry_after=retry_after))

    def throttle_next(
        self,
        count: int | None = 1,
        *,
        retry_after: float = 1,
        path: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """The next ``count`` matching requests get 429 with ``Retry-After`` (a burst of throttling)."""
        return self.fail_next(count, 429, path=path, method=method, retry_after=retry_after)

    def drop_next(
        self,
        count: int | None = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        after_processing: bool = False,
    ) -> Fault:
        """Close the connection without an answer, before (default) or after processing."""
        kind = "drop_after" if after_processing else "drop"
        return self.add(Fault(kind, count=count, path=path, method=method))

    def slow_next(
        self, count: int | None = 1, delay: float = 1.0, *, path: str | None = None, method: str | None = None
    ) -> Fault:
        """Wait ``delay`` seconds before processing and answering the next ``count`` requests."""
        return self.add(Fault("slow", count=count, delay=delay, path=path, method=method))

    def take(self, method: str, rel_path: str) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, rel_path):
                    fault.hits += 1
                    if fault.count is not None:
                        fault.count -= 1
                        if fault.count <= 0:
                            self._faults.remove(fault)
                    return fault
            return None

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Faults still armed (with their remaining counts)."""
        with self._lock:
            return list(self._faults)
