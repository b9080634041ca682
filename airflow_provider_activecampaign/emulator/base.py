"""The base of an emulated account: its state, limits gate and request log."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.faults import FaultInjector
from airflow_provider_activecampaign.emulator.limits import (
    EmulatorConfig,
    SlidingWindow,
    max_in_sliding_window,
    window_params,
)
from airflow_provider_activecampaign.emulator.records import (
    Contact,
    ContactTag,
    CustomField,
    Exclusion,
    FieldOption,
    FieldRel,
    Group,
    ImportBatch,
    ListGroup,
    MailingList,
    RequestRecord,
    Tag,
    User,
)


class AccountBase:
    """State, ids, configuration, the request gate and the request log of one emulated account.

    The account's other concerns build on this class in one line of inheritance (``Catalog``,
    ``Contacts``, ``Memberships``, ``ImportQueue``, then ``Account``), so each lives in its own
    module yet shares the state and the one lock. See ``account.py`` for thread safety.
    """

    # ---- lifecycle ---------------------------------------------------------------------------

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.lock = threading.RLock()
        # Faults live with the account so reset() clears them and the admin API reaches them.
        self.faults = FaultInjector()
        self._reset_state()

    def _reset_state(self) -> None:
        self._ids: Counter[str] = Counter()
        self.blocked = False  # True: every API request gets 402 (account blocked for payment)
        self._lists: dict[str, MailingList] = {}
        # Sorted int contact ids per list (any status) and per (list, status): GET contacts?listid=
        # pages by bisecting these instead of scanning contacts.
        self._list_members: dict[str, list[int]] = {}
        self._list_by_status: dict[tuple[str, int], list[int]] = {}
        # Contacts by int id, and their ids in ascending order (ids only grow; deleted ones leave holes).
        self._contacts: dict[int, Contact] = {}
        self._contact_ids: list[int] = []
        self._by_email: dict[str, Contact] = {}
        self._fields: dict[str, CustomField] = {}
        self._field_rels: dict[str, FieldRel] = {}
        self._field_options: dict[str, FieldOption] = {}
        self._tags: dict[str, Tag] = {}
        self._tags_by_name: dict[str, Tag] = {}  # lower-cased name
        self._contact_tags: dict[tuple[str, str], ContactTag] = {}
        self._groups: dict[str, Group] = {}
        self._list_groups: dict[str, ListGroup] = {}
        self._imports: dict[str, ImportBatch] = {}
        self._pending: deque[ImportBatch] = deque()
        self._exclusions: dict[str, Exclusion] = {}
        self._requests: deque[RequestRecord] = deque(maxlen=self.config.request_log_limit)
        self._api_window = SlidingWindow()
        self._bulk_window = SlidingWindow()
        self._single_window = SlidingWindow()
        self.user = self._make_user()
        self._ids["users"] = 1
        # Every ActiveCampaign account has the user group "Admin".
        admin = Group(id=self._new_id("groups"), title="Admin", descript="Seeded administrators group")
        self._groups[admin.id] = admin

    def _make_user(self) -> User:
        name = self.config.user
        return User(
            id=str(self.config.user_id),
            username=name,
            first_name="Emulator",
            last_name="User",
            email=f"{name}@example.com",
        )

    def reset(self) -> None:
        """Forget everything (data, request log, limiter windows, faults) and re-seed."""
        with self.lock:
            self._reset_state()
            self.faults.clear()

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Change limits at run time, e.g. ``configure(requests_per_second=50)``."""
        with self.lock:
            for key, value in changes.items():
                if not hasattr(self.config, key) or key == "api_key":
                    raise ValueError(f"unknown or read-only emulator option: {key}")
                setattr(self.config, key, value)
            if {"user", "user_id"} & set(changes):
                self.user = self._make_user()
            return self.config

    def _new_id(self, collection: str) -> str:
        self._ids[collection] += 1
        return str(self._ids[collection])

    def process_imports(self, *, force: bool = False) -> int:
        """Apply the bulk import batches that are due (the import queue overrides this)."""
        return 0

    # ---- request gate (called by the HTTP layer) ---------------------------------------------

    def log_request(self, method: str, path: str, query: str) -> RequestRecord:
        """Record a request at arrival; the HTTP layer fills in ``status`` when it answers."""
        record = RequestRecord(method=method, path=path, query=query, time=self.clock())
        with self.lock:
            self._requests.append(record)
        return record

    def admit(self, now: float | None = None) -> tuple[bool, int, int]:
        """Take one slot of the general sliding window: (admitted, limit, remaining).

        Refused requests (answered 429) are not recorded, so a client that keeps retrying does not
        push its own recovery further away; what counts is what the account actually served.
        ``now`` defaults to the clock; the HTTP layer passes the request record's time so the log
        and the limiter agree exactly.
        """
        with self.lock:
            rps = self.config.requests_per_second
            if not rps:
                return True, 0, 0
            limit, window = window_params(rps, self.config.rate_window)
            now = self.clock() if now is None else now
            ok = self._api_window.try_acquire(now, limit, window)
            remaining = max(0, limit - self._api_window.in_window(now, window)) if ok else 0
            return ok, limit, remaining

    def _admit_bulk(self, single: bool) -> None:
        """Bulk importer quota: 100 multi-contact / 20 single-contact requests per sliding minute."""
        cfg = self.config
        limit = cfg.single_imports_per_minute if single else cfg.bulk_imports_per_minute
        if not limit:
            return
        window = self._single_window if single else self._bulk_window
        if not window.try_acquire(self.clock(), int(limit), cfg.bulk_window):
            what = "single-contact imports" if single else "imports"
            raise ApiError(
                400,
                {
                    "success": 0,
                    "message": "Rate limit exceeded.",
                    "failureReasons": [
                        f"Up to {int(limit)} {what} may be requested per minute."
                        "Please batch contacts into larger requests, or retry this request in a minute."
                    ],
                },
            )

    # ---- request log -------------------------------------------------------------------------

    def requests(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
        since: float | None = None,
    ) -> list[RequestRecord]:
        """Logged requests, optionally filtered: ``path`` is a prefix of the full path
        ("/api/3/import"), ``endpoint`` equals ``RequestRecord.endpoint`` ("POST import/bulk_import")."""
        with self.lock:
            records = list(self._requests)
        return [
            r
            for r in records
            if (method is None or r.method == method.upper())
            and (path is None or r.path.startswith(path))
            and (endpoint is None or r.endpoint == endpoint)
            and (status is None or r.status == status)
            and (since is None or r.time >= since)
        ]

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every logged request, oldest first (a snapshot list)."""
        with self.lock:
            return list(self._requests)

    def request_counts(self) -> Counter[str]:
        """Requests per ``endpoint`` ("GET lists", "POST import/bulk_import"), like the hook's counter."""
        return Counter(r.endpoint for r in self.requests())

    def peak_rate(self, window: float = 1.0, records: Iterable[RequestRecord] | None = None) -> int:
        """The most requests that arrived within any ``window`` seconds (default: all logged)."""
        return max_in_sliding_window([r.time for r in (self.requests() if records is None else records)], window)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()
