"""The list's lock, as a lease: its holder renews it while running, a dead holder loses it quickly.

A run writes ``lock.json`` (run id, host, pid, token, ``heartbeat_at``) next to the state and a daemon
thread renews ``heartbeat_at`` every ``lease_seconds / 5``. Another run may take the lock over:

* at once when the holder is on the same host and its process is gone (``os.kill(pid, 0)`` fails);
* at once when it is an earlier attempt of the same run id (an Airflow retry);
* after ``lease_seconds`` (default 5 minutes) without renewal, whoever and wherever the holder is.

Object stores offer no atomic create-if-absent, so taking the lock is write, pause
``settle_seconds``, read back: two runs starting within the same instant are told apart by the token.
The primary guard stays Airflow's (``max_active_runs=1``, a pool per account).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["DEFAULT_LEASE_SECONDS", "Lease", "LeaseLock", "StateLockedError"]

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 300.0


class StateLockedError(Exception):
    """Another run holds the list's lock."""

    def __init__(self, message: str, *, holder: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = dict(holder or {})
        self.run_id = self.holder.get("run_id")
        self.acquired_at = self.holder.get("acquired_at")
        self.host = self.holder.get("host")
        self.pid = self.holder.get("pid")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def process_alive(pid: Any) -> bool:
    """Whether a process with this pid runs on this host (permission errors count as alive)."""
    try:
        number = int(pid)
    except (TypeError, ValueError):
        return True  # unknown: do not assume it is dead
    if number <= 0:
        return True
    try:
        os.kill(number, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def lease_age(holder: Mapping[str, Any]) -> float | None:
    """Seconds since the holder last renewed (or took) the lease; None when it carries no time."""
    times = []
    for key in ("acquired_at", "heartbeat_at"):
        try:
            moment = _dt.datetime.fromisoformat(str(holder[key]))
        except (KeyError, ValueError):
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.timezone.utc)
        times.append(moment)
    if not times:
        return None
    return (_now() - max(times)).total_seconds()


def describe_holder(holder: Mapping[str, Any]) -> str:
    return (f"run {holder.get('run_id')!r} on host {holder.get('host')!r} (pid {holder.get('pid')}), "
            f"since {holder.get('acquired_at')}, last renewed {holder.get('heartbeat_at')}")


class LeaseLock:
    """The lock file of one list's state folder. ``path`` is any path-like (local or object store)."""

    def __init__(self, path: Any, *, settle_seconds: float = 0.5,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS) -> None:
        self.path = path
        self.settle_seconds = settle_seconds
        self.lease_seconds = lease_seconds

    def read(self) -> dict[str, Any] | None:
        """The current holder, or None when the list is not locked."""
        try:
            if not self.path.exists():
                return None
            with self.path.open("rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(data)
            if not isinstance(holder, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            raise StateLockedError(
                f"The lock {self.path} is unreadable ({error}). If no run is working on this list, delete it."
            ) from error
        return holder

    def write(self, body: Mapping[str, Any]) -> None:
        with self.path.open("wb") as stream:
            stream.write(json.dumps(body).encode("utf-8"))

    def takeover_reason(self, holder: Mapping[str, Any], run_id: str, lease_seconds: float) -> str | None:
        """Why ``holder`` may be displaced by ``run_id``, or None when it must be respected."""
        if holder.get("run_id") == run_id:
            return "an earlier attempt of the same run"
        if holder.get("host") == socket.gethostname() and not process_alive(holder.get("pid")):
            return "its process is gone"
        age = lease_age(holder)
        if age is None or age > lease_seconds:
            return f"not renewed for {age:.0f} s" if age is not None else "it carries no time"
        return None

    def acquire(self, run_id: str, *, lease_seconds: float | None = None, heartbeat: bool = True) -> Lease:
        """Take the lock, or raise :class:`StateLockedError` naming the live holder."""
        lease_seconds = self.lease_seconds if lease_seconds is None else lease_seconds
        holder = self.read()
        if holder is not None:
            reason = self.takeover_reason(holder, run_id, lease_seconds)
            if reason is None:
                raise StateLockedError(
                    f"Another run holds the lock {self.path}: {describe_holder(holder)}. Two runs on the "
                    f"same list would corrupt its state. Its holder renews it while running; a holder "
                    f"that stops renewing for {lease_seconds:.0f} s (or whose process on this host is "
                    f"gone) is taken over.",
                    holder=holder,
                )
            log.warning("Taking over the lock of %s: %s.", describe_holder(holder), reason)
        now = _now().isoformat()
        body = {"run_id": run_id, "acquired_at": now, "heartbeat_at": now, "host": socket.gethostname(),
                "pid": os.getpid(), "token": uuid.uuid4().hex, "lease_seconds": lease_seconds}
        self.write(body)
        if self.settle_seconds:
            time.sleep(self.settle_seconds)
        confirmed = self.read()
        if confirmed is None or confirmed.get("token") != body["token"]:
            raise StateLockedError(
                f"Lost the race for the lock {self.path} to "
                f"{describe_holder(confirmed) if confirmed else 'a run that already released it'}.",
                holder=confirmed,
            )
        lease = Lease(self, body)
        if heartbeat:
            lease.start_renewing(max(0.05, lease_seconds / 5))
        return lease

    @contextlib.contextmanager
    def hold(self, run_id: str, *, lease_seconds: float | None = None) -> Iterator[Lease]:
        lease = self.acquire(run_id, lease_seconds=lease_seconds)
        try:
            yield lease
        finally:
            lease.release()


class Lease:
    """A held lock; renewed by a daemon thread until :meth:`release`."""

    def __init__(self, lock: LeaseLock, body: dict[str, Any]) -> None:
        self.lock = lock
        self.body = body
        self.released = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._write_lock = threading.Lock()

    @property
    def run_id(self) -> str:
        return str(self.body["run_id"])

    def is_ours(self) -> bool:
        try:
            current = self.lock.read()
        except StateLockedError:
            return False
        return current is not None and current.get("token") == self.body["token"]

    def heartbeat(self) -> bool:
        """Renew ``heartbeat_at``; False (and nothing written) once the lock was taken over."""
        with self._write_lock:
            if self.released or not self.is_ours():
                return False
            self.body["heartbeat_at"] = _now().isoformat()
            self.lock.write(self.body)
            return True

    def start_renewing(self, every: float) -> None:
        def renew() -> None:
            while not self._stop.wait(every):
                try:
                    if not self.heartbeat():
                        log.warning("The lock %s was taken over by another run; stopped renewing.",
                                    self.lock.path)
                        return
                except Exception as error:  # a transient store error must not kill the run; retry later
                    log.warning("Could not renew the lock %s: %s", self.lock.path, error)

        self._thread = threading.Thread(target=renew, name="activecampaign-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and delete the lock if it is still ours; leave another run's lock alone."""
        if self.released:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._write_lock:
            self.released = True
            if self.is_ours():
                with contextlib.suppress(FileNotFoundError):
                    self.lock.path.unlink()
            else:
                log.warning("The lock %s was taken over by another run; leaving it in place.", self.lock.path)
