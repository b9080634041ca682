"""In-memory ActiveCampaign account: the state behind the emulator's HTTP API.

Everything an ActiveCampaign account holds that the provider touches lives here (lists, contacts,
list memberships, custom fields, tags, user groups, bulk import batches), plus the request log and
the rate limiters. The HTTP layer (``app.py``) only parses requests and renders answers; the rules
(validation, limits, import semantics) are here so tests can drive them without HTTP too.

Thread safety: one re-entrant lock guards all state. The server's event loop thread and the test
thread both go through the public methods, which take the lock. Objects returned to callers are the
live records: read them, do not mutate them (use the methods instead).

Bulk imports are processed lazily: a batch becomes due ``import_delay`` seconds after it was queued,
and due batches are applied (in queue order) by the next call that looks at state, whether that call
comes from an HTTP request or from a test. That keeps the emulator deterministic and thread-free.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from airflow_provider_activecampaign.emulator.faults import FaultInjector

# Who changed a list membership, recorded on every change so tests can tell a person's own
# unsubscribe from one made through the API.
BY_CONTACT = "contact"  # the person unsubscribed themselves (account.unsubscribe_by_contact)
BY_CONTACT_LISTS = "api:contactLists"  # POST /api/3/contactLists
BY_SEED = "seed"  # test set-up helpers (account.subscribe)
BY_FORM = "contact:form"  # the person (re-)subscribed through a subscription form
BY_ADMIN = "admin"  # a user of the account, by hand in the web app
BY_BOUNCE = "system:bounce"  # ActiveCampaign marked the address bounced


def by_import(batch_id: str) -> str:
    """Membership change marker for a bulk import batch."""
    return f"import:{batch_id}"


def by_automation(automation_id: object) -> str:
    """Membership change marker for an automation's "unsubscribe" step."""
    return f"automation:{automation_id}"


UNCONFIRMED = 0
ACTIVE = 1
UNSUBSCRIBED = 2
BOUNCED = 3
# sourceid values: ActiveCampaign documents only 4 ("set to 4 when re-subscribing"); the others are
# the emulator's own labels for how a membership came to be.
SOURCE_UNKNOWN = "0"
SOURCE_FORM = "1"
SOURCE_ADMIN = "2"
SOURCE_API = "3"
SOURCE_RESUBSCRIBED = "4"
STATUS_NAMES = {0: "unconfirmed", 1: "active", 2: "unsubscribed", 3: "bounced"}

FIELD_TYPES = frozenset(
    {"dropdown", "hidden", "checkbox", "date", "text", "datetime", "textarea", "listbox", "radio", "number"}
)


_iso_cache: tuple[int, str] = (0, "")


def now_iso() -> str:
    """Timestamp in ActiveCampaign's style ("2019-02-27T19:06:23-05:00"), formatted once a second
    (imports stamp tens of thousands of records)."""
    global _iso_cache
    second = int(time.time())
    if _iso_cache[0] != second:
        _iso_cache = (second, datetime.fromtimestamp(second).astimezone().isoformat(timespec="seconds"))
    return _iso_cache[1]


def _db_stamp(epoch: float) -> str:
    """``created_timestamp`` style ("2019-02-27 19:06:23", account time zone)."""
    return datetime.fromtimestamp(int(epoch)).strftime("%Y-%m-%d %H:%M:%S") if epoch else ""


class ApiError(Exception):
    """An answer other than success, raised by the store and rendered as-is by the HTTP layer."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {payload!r}")
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def not_found(entity: str, ident: object) -> ApiError:
    """ActiveCampaign's bare-message 404 ("No Result found for _List with id 7")."""
    return ApiError(404, {"message": f"No Result found for {entity} with id {ident}"})


def field_missing(name: str, title: str | None = None) -> dict[str, Any]:
    """One ``errors[]`` item for a required attribute that was not sent."""
    return {
        "title": title or f"The {name} was not provided.",
        "detail": "",
        "code": "field_missing",
        "source": {"pointer": f"/data/attributes/{name}"},
    }


def unprocessable(*errors: dict[str, Any]) -> ApiError:
    """422 with the JSON:API-like ``errors[]`` envelope used by most create endpoints."""
    return ApiError(422, {"errors": list(errors)})


# --------------------------------------------------------------------------------------------------
# Email format: ActiveCampaign's documented bulk-import rules ("Why Bulk Imports Fail")
# --------------------------------------------------------------------------------------------------

_EMAIL_SPECIALS = frozenset('"(),:;<>@[\\]')
_DOT_TWO_LETTERS = re.compile(r"\.[A-Za-z]{2,}")


def email_format_problem(email: object) -> str | None:
    """Why ``email`` breaks ActiveCampaign's import format rules, or None if it passes.

    The documented rules: a local part of at least one character; none of ``" ( ) , : ; < > @ [ \\ ]``
    besides the single ``@``; ``@`` required; the domain contains a ``.`` followed by at least two
    letters and no special characters. Whitespace anywhere is refused too. Read literally ("contains"),
    so ``a@b.co1`` passes like it would for ActiveCampaign's check as documented.
    """
    if not isinstance(email, str) or not email:
        return "missing"
    if any(ch.isspace() for ch in email):
        return "contains whitespace"
    local, at, domain = email.partition("@")
    if not at:
        return "no @"
    if not local:
        return "empty local part"
    if "@" in domain:
        return "more than one @"
    if any(ch in _EMAIL_SPECIALS for ch in local):
        return "special character in local part"
    if any(ch in _EMAIL_SPECIALS for ch in domain):
        return "special character in domain"
    if not _DOT_TWO_LETTERS.search(domain):
        return "domain lacks a '.' followed by two letters"
    return None


def normalize_email(email: str) -> str:
    """Key used to index contacts: emails match case-insensitively, surrounding spaces ignored."""
    return email.strip().lower()


def perstag_for(text: str) -> str:
    """Personalization tag as ActiveCampaign derives it: upper case, non-alphanumerics to ``_``."""
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")


# --------------------------------------------------------------------------------------------------
# Configuration and rate limiting
# --------------------------------------------------------------------------------------------------


@dataclass
class EmulatorConfig:
    """Account limits and behaviour. Defaults equal ActiveCampaign's documented limits.

    Mutable at run time (``account.configure(...)`` or ``PATCH /_emulator/config``); limiter windows
    pick up new values on the next request.
    """

    api_key: str = "emulator-api-key"
    user: str = "emulator"
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


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class User:
    id: str
    username: str
    first_name: str
    last_name: str
    email: str

    def to_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "phone": "",
            "signature": None,
            "id": self.id,
        }


@dataclass
class MailingList:
    id: str
    name: str
    stringid: str
    sender_url: str
    sender_reminder: str
    cdate: str
    udate: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stringid": self.stringid,
            "userid": "1",
            "name": self.name,
            "cdate": self.cdate,
            "udate": self.udate,
            "sender_url": self.sender_url,
            "sender_reminder": self.sender_reminder,
            "send_last_broadcast": "0",
            "carboncopy": "",
            "subscription_notify": "",
            "unsubscription_notify": "",
            "channel": "email",
            "user": "1",
        }
        data.update({k: v if isinstance(v, str) or v is None else str(v) for k, v in self.extra.items()})
        data["id"] = self.id
        return data


@dataclass
class MembershipChange:
    """One status change of a membership: the new status, who made it, when, and why."""

    status: int
    by: str
    at: str
    unsubreason: str = ""
    campaign: str | None = None
    message: str | None = None
    unsubscribe_automation: str | None = None
    sourceid: str = SOURCE_UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "by": self.by,
            "at": self.at,
            "unsubreason": self.unsubreason,
            "campaign": self.campaign,
            "message": self.message,
            "unsubscribeAutomation": self.unsubscribe_automation,
            "sourceid": self.sourceid,
        }


@dataclass
class Membership:
    """A contact's status on one list, with who changed it (``changed_by``) and the full history.

    ``sdate`` is when the contact was (last) subscribed, ``udate`` the last status change. The
    unsubscribe fields (``unsubreason``, ``campaign``, ``message``, ``unsubscribe_automation``)
    describe the change that made the current status and are cleared when the contact is
    subscribed again.
    """

    id: str
    contact_id: str
    list_id: str
    status: int
    sdate: str
    udate: str
    sourceid: str
    changed_by: str
    history: list[MembershipChange] = field(default_factory=list)
    unsubreason: str = ""
    campaign: str | None = None
    message: str | None = None
    automation: str | None = None  # the automation that subscribed them, if one did
    unsubscribe_automation: str | None = None
    form: str | None = None
    created: float = 0.0  # epoch seconds, for created_timestamp
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "contact": self.contact_id,
            "list": self.list_id,
            "form": self.form,
            "seriesid": "0",
            "sdate": self.sdate,
            "udate": self.udate,
            "status": str(self.status),
            "responder": "1",
            "sync": "0",
            "unsubreason": self.unsubreason,
            "campaign": self.campaign,
            "message": self.message,
            "first_name": "",
            "last_name": "",
            "ip4Sub": "0",
            "sourceid": self.sourceid,
            "autosyncLog": None,
            "ip4_last": "0",
            "ip4Unsub": "0",
            "unsubscribeAutomation": self.unsubscribe_automation,
            "automation": self.automation,
            "created_timestamp": _db_stamp(self.created),
            "updated_timestamp": _db_stamp(self.updated),
            "created_by": None,
            "updated_by": None,
            "links": {
                "automation": "",
                "list": f"/api/3/contactLists/{self.id}/list",
                "contact": f"/api/3/contactLists/{self.id}/contact",
                "form": "",
                "autosyncLog": "",
                "campaign": "",
                "unsubscribeAutomation": "",
                "message": "",
            },
            "id": self.id,
        }

    def history_json(self) -> dict[str, Any]:
        """The record plus who made each change (emulator extra, for the admin API)."""
        return {**self.to_json(), "changed_by": self.changed_by, "history": [h.to_json() for h in self.history]}


@dataclass
class FieldValue:
    id: str
    contact_id: str
    field_id: str
    value: str
    cdate: str
    udate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "contact": self.contact_id,
            "field": self.field_id,
            "value": self.value,
            "cdate": self.cdate,
            "udate": self.udate,
            "owner": self.contact_id,
            "id": self.id,
        }


@dataclass
class Contact:
    id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    orgname: str
    cdate: str
    udate: str
    field_values: dict[str, FieldValue] = field(default_factory=dict)  # by field id
    memberships: dict[str, Membership] = field(default_factory=dict)  # by list id
    tag_ids: set[str] = field(default_factory=set)
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "cdate": self.cdate,
            "email": self.email,
            "phone": self.phone,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "orgid": "0",
            "orgname": self.orgname,
            "segmentio_id": "",
            "bounced_hard": "0",
            "bounced_soft": "0",
            "ip": "0",
            "hash": self.hash,
            "deleted": "0",
            "udate": self.udate,
            "email_empty": False,
            "fieldValues": [fv.id for fv in self.field_values.values()],
            "id": self.id,
        }


@dataclass
class CustomField:
    id: str
    title: str
    type: str
    perstag: str
    descript: str
    defval: str
    visible: str
    ordernum: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "descript": self.descript,
            "type": self.type,
            "isrequired": "0",
            "perstag": self.perstag,
            "defval": self.defval,
            "show_in_list": "0",
            "rows": "0",
            "cols": "0",
            "visible": self.visible,
            "service": "",
            "ordernum": self.ordernum,
            "cdate": self.cdate,
            "udate": self.cdate,
            "id": self.id,
        }


@dataclass
class FieldRel:
    id: str
    field_id: str
    relid: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field_id,
            "relid": self.relid,
            "dorder": "0",
            "cdate": self.cdate,
            "id": self.id,
        }


@dataclass
class Tag:
    id: str
    tag: str
    tag_type: str
    description: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "tagType": self.tag_type,
            "tag": self.tag,
            "description": self.description,
            "cdate": self.cdate,
            "subscriber_count": "0",
            "id": self.id,
        }


@dataclass
class ContactTag:
    id: str
    contact_id: str
    tag_id: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {"contact": self.contact_id, "tag": self.tag_id, "cdate": self.cdate, "id": self.id}


@dataclass
class Group:
    """A user group (permissions), not a contact group: lists need one to show in the UI."""

    id: str
    title: str
    descript: str

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "descript": self.descript, "unsubscribelink": "0", "id": self.id}


@dataclass
class ListGroup:
    id: str
    list_id: str
    group_id: str

    def to_json(self) -> dict[str, Any]:
        return {"listid": self.list_id, "groupid": self.group_id, "id": self.id}


MATCH_TYPES = {
    "exact": "exact",
    "begin": "begin",
    "begins": "begin",
    "begins with": "begin",
    "begins_with": "begin",
    "starts_with": "begin",
    "end": "end",
    "ends": "end",
    "ends with": "end",
    "ends_with": "end",
}
EXCLUSION_CHANNELS = frozenset({"all", "allEmail", "allSms", "several"})


@dataclass
class Exclusion:
    """An exclusion list entry: ``match_type`` is "exact", "begin" or "end" (case-insensitive)."""

    id: str
    match_phrase: str
    match_type: str
    channel: str  # all | allEmail | allSms | several (then only ``lists``)
    lists: list[str]
    cdate: str

    def matches(self, email: str) -> bool:
        value, phrase = normalize_email(email), self.match_phrase.lower()
        if self.match_type == "begin":
            return value.startswith(phrase)
        if self.match_type == "end":
            return value.endswith(phrase)
        return value == phrase

    def covers(self, list_ids: set[str]) -> bool:
        """Whether this entry applies to an email subscription to any of ``list_ids``."""
        if self.channel == "allSms":
            return False
        if self.channel == "several":
            return bool(list_ids & set(self.lists))
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchPhrase": self.match_phrase,
            "matchType": self.match_type,
            "channel": self.channel,
            "hidden": False,
            "lists": list(self.lists),
        }


@dataclass
class ImportBatch:
    """One accepted bulk import request and, once processed, its outcome."""

    batch_id: str
    contacts: list[dict[str, Any]]
    queued_at: float  # account clock (monotonic)
    ready_at: float
    queued_wall: str
    callback: dict[str, Any] | None = None
    status: str = "waiting"  # "waiting" until processed, then "completed"
    success: list[str] = field(default_factory=list)  # ids of contacts the batch created
    failure: list[str] = field(default_factory=list)  # emails that failed, as sent
    failure_reasons: dict[str, str] = field(default_factory=dict)  # email -> why (emulator extra)
    warnings: list[str] = field(default_factory=list)
    processed_at: float | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "status": self.status,
            "queued_contacts": len(self.contacts),
            "queued": self.queued_wall,
            "success": list(self.success),
            "failure": list(self.failure),
            "failureReasons": dict(self.failure_reasons),
            "warnings": list(self.warnings),
        }


_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


@dataclass
class RequestRecord:
    """One request seen by the emulator (admin ``/_emulator`` calls are not logged).

    ``time`` is ``time.monotonic()`` (the same clock as the test process on one machine) when the
    request reached the API: its arrival, or the end of an injected delay. The rate limiter uses
    exactly this time, so ``peak_rate`` over admitted requests never exceeds the limit. ``status`` is
    0 until answered and stays 0 when the connection was dropped on purpose.
    """

    method: str
    path: str
    query: str
    time: float
    status: int = 0
    fault: str | None = None  # the injected fault that answered it, if any

    @property
    def endpoint(self) -> str:
        """Method and path relative to /api/3 with numeric ids collapsed ("GET contacts/{id}/contactLists").

        The same keys as the hook's ``request_counts``.
        """
        path = self.path[len("/api/3/") :] if self.path.startswith("/api/3/") else self.path
        return f"{self.method} {_ID_SEGMENT.sub('/{id}', '/' + path)[1:]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "time": self.time,
            "status": self.status,
            "fault": self.fault,
            "endpoint": self.endpoint,
        }


# --------------------------------------------------------------------------------------------------
# The account
# --------------------------------------------------------------------------------------------------


class Account:
    """All state of one emulated ActiveCampaign account. See the module docstring for thread safety."""

    def __init__(self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.lock = threading.RLock()
        # Faults live with the account so reset() clears them and the admin API reaches them.
        self.faults = FaultInjector()
        self._reset_state()

    # ---- lifecycle ------------------------------------------------------------------------------

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
        name = self.config.user
        self.user = User(
            id="1", username=name, first_name="Emulator", last_name="User", email=f"{name}@example.com"
        )
        self._ids["users"] = 1
        # Every ActiveCampaign account has the user group "Admin".
        self.add_group("Admin", "Seeded administrators group")

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
            return self.config

    def _new_id(self, collection: str) -> str:
        self._ids[collection] += 1
        return str(self._ids[collection])

    # ---- request gate (called by the HTTP layer) ------------------------------------------------

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

    # ---- users and groups -----------------------------------------------------------------------

    def add_group(self, title: str, descript: str = "") -> Group:
        """Create a user group (permissions group); ActiveCampaign has no API to create these."""
        with self.lock:
            group = Group(id=self._new_id("groups"), title=title, descript=descript)
            self._groups[group.id] = group
            return group

    @property
    def groups(self) -> dict[str, Group]:
        with self.lock:
            return dict(self._groups)

    def group_by_title(self, title: str) -> Group | None:
        with self.lock:
            return next((g for g in self._groups.values() if g.title == title), None)

    def add_list_group(self, list_id: object, group_id: object) -> ListGroup:
        """POST listGroups: give a user group access to a list (makes the list visible in the UI)."""
        with self.lock:
            lid, gid = str(list_id), str(group_id)
            if lid not in self._lists:
                raise not_found("_List", lid)
            if gid not in self._groups:
                raise not_found("Group", gid)
            if any(lg.list_id == lid and lg.group_id == gid for lg in self._list_groups.values()):
                raise unprocessable(
                    {
                        "title": "Duplicate entry",
                        "detail": f"List {lid} is already assigned to group {gid}",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/groupid"},
                    }
                )
            lg = ListGroup(id=self._new_id("listGroups"), list_id=lid, group_id=gid)
            self._list_groups[lg.id] = lg
            return lg

    @property
    def list_groups(self) -> dict[str, ListGroup]:
        with self.lock:
            return dict(self._list_groups)

    def list_group_ids(self, list_id: object) -> set[str]:
        """Ids of the user groups that can see ``list_id``."""
        with self.lock:
            return {lg.group_id for lg in self._list_groups.values() if lg.list_id == str(list_id)}

    # ---- lists ----------------------------------------------------------------------------------

    def create_list(self, data: dict[str, Any]) -> MailingList:
        """POST lists: name, stringid, sender_url and sender_reminder are required; stringid unique."""
        with self.lock:
            missing = [
                k for k in ("name", "stringid", "sender_url", "sender_reminder") if not _text(data.get(k))
            ]
            if missing:
                raise unprocessable(*(field_missing(k, f"The list {k} was not provided.") for k in missing))
            stringid = _text(data["stringid"])
            if any(lst.stringid == stringid for lst in self._lists.values()):
                raise unprocessable(
                    {
                        "title": "The list stringid is already in use",
                        "detail": f"A list with stringid '{stringid}' already exists",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/stringid"},
                    }
                )
            stamp = now_iso()
            known = {"name", "stringid", "sender_url", "sender_reminder"}
            lst = MailingList(
                id=self._new_id("lists"),
                name=_text(data["name"]),
                stringid=stringid,
                sender_url=_text(data["sender_url"]),
                sender_reminder=_text(data["sender_reminder"]),
                cdate=stamp,
                udate=stamp,
                extra={k: v for k, v in data.items() if k not in known and not isinstance(v, dict | list)},
            )
            self._lists[lst.id] = lst
            self._list_members[lst.id] = []
            return lst

    def add_list(self, name: str, stringid: str | None = None, **data: Any) -> MailingList:
        """Test helper: create a list with sensible sender fields."""
        return self.create_list(
            {
                "name": name,
                "stringid": stringid or perstag_for(name).lower().replace("_", "-") or "list",
                "sender_url": data.pop("sender_url", "https://example.com"),
                "sender_reminder": data.pop("sender_reminder", "You signed up on example.com."),
                **data,
            }
        )

    def get_list(self, list_id: object) -> MailingList:
        with self.lock:
            lst = self._lists.get(str(list_id))
            if lst is None:
                raise not_found("_List", list_id)
            return lst

    @property
    def lists(self) -> dict[str, MailingList]:
        with self.lock:
            return dict(self._lists)

    def list_by_name(self, name: str) -> MailingList | None:
        """First list whose name equals ``name`` exactly (names need not be unique)."""
        with self.lock:
            return next((lst for lst in self._lists.values() if lst.name == name), None)

    def find_lists(self, name: str | None = None, op: str = "contains") -> list[MailingList]:
        """GET lists filter: ``filters[name]`` is a case-insensitive contains match (like it may be)."""
        with self.lock:
            lists = list(self._lists.values())
        if name is None:
            return lists
        needle = name.lower()
        tests: dict[str, Callable[[str], bool]] = {
            "contains": lambda v: needle in v,
            "eq": lambda v: v == needle,
            "neq": lambda v: v != needle,
            "starts_with": lambda v: v.startswith(needle),
            "lt": lambda v: v < needle,
            "lte": lambda v: v <= needle,
            "gt": lambda v: v > needle,
            "gte": lambda v: v >= needle,
        }
        test = tests.get(op, tests["contains"])
        return [lst for lst in lists if test(lst.name.lower())]

    # ---- contacts -------------------------------------------------------------------------------

    def contact(self, email: str) -> Contact | None:
        """The contact with this email (case-insensitive), or None."""
        with self.lock:
            self.process_imports()
            return self._by_email.get(normalize_email(email))

    def contact_by_id(self, contact_id: object) -> Contact | None:
        with self.lock:
            self.process_imports()
            return self._contact_by_id(contact_id)

    def _contact_by_id(self, contact_id: object) -> Contact | None:
        try:
            return self._contacts.get(int(str(contact_id)))
        except ValueError:
            return None

    def get_contact(self, contact_id: object) -> Contact:
        with self.lock:
            contact = self.contact_by_id(contact_id)
            if contact is None:
                raise not_found("Subscriber", contact_id)
            return contact

    @property
    def contacts(self) -> dict[str, Contact]:
        """All contacts by (lower-cased) email."""
        with self.lock:
            self.process_imports()
            return dict(self._by_email)

    def _upsert(self, email: str, **attrs: str | None) -> tuple[Contact, bool]:
        """Create or update a contact; attributes given as None are left alone. Never deletes."""
        key = normalize_email(email)
        stamp = now_iso()
        contact = self._by_email.get(key)
        created = contact is None
        if contact is None:
            contact = Contact(
                id=self._new_id("contacts"),
                email=key,
                first_name="",
                last_name="",
                phone="",
                orgname="",
                cdate=stamp,
                udate=stamp,
                hash=uuid.uuid4().hex,
            )
            self._contacts[int(contact.id)] = contact
            self._contact_ids.append(int(contact.id))
            self._by_email[key] = contact
        for name, value in attrs.items():
            if value is not None:
                setattr(contact, name, value)
        contact.udate = stamp
        return contact, created

    def add_contact(
        self, email: str, first_name: str = "", last_name: str = "", phone: str = "", **fields: str
    ) -> Contact:
        """Test helper: create or update a contact; ``fields`` are custom field values by perstag."""
        with self.lock:
            contact, _ = self._upsert(email, first_name=first_name, last_name=last_name, phone=phone)
            for perstag, value in fields.items():
                fld = self.field_by_perstag(perstag)
                if fld is None:
                    raise KeyError(f"no custom field with perstag {perstag!r}")
                self._set_field_value(contact, fld.id, str(value))
            return contact

    def sync_contact(self, data: dict[str, Any]) -> tuple[Contact, bool, list[FieldValue]]:
        """POST contact/sync: upsert by email. Returns (contact, created, field values written)."""
        with self.lock:
            email = data.get("email")
            if not _text(email):
                raise unprocessable(field_missing("email", "Email address is required."))
            if email_format_problem(_text(email).strip()):
                raise unprocessable(
                    {
                        "title": "Contact Email Address is not valid.",
                        "detail": "",
                        "code": "email_invalid",
                        "error": "must_be_valid_email_address",
                        "source": {"pointer": "/data/attributes/email"},
                    }
                )
            values = data.get("fieldValues") or []
            if not isinstance(values, list):
                raise unprocessable(_invalid("fieldValues", "fieldValues must be a list"))
            for item in values:
                if not isinstance(item, dict) or str(item.get("field")) not in self._fields:
                    ref = item.get("field") if isinstance(item, dict) else item
                    raise unprocessable(
                        {
                            "title": f"Custom field with id {ref} was not found",
                            "detail": "",
                            "code": "related_missing",
                            "source": {"pointer": "/data/attributes/fieldValues"},
                        }
                    )
            contact, created = self._upsert(
                _text(email),
                first_name=_opt_text(data.get("firstName")),
                last_name=_opt_text(data.get("lastName")),
                phone=_opt_text(data.get("phone")),
            )
            written = [
                self._set_field_value(contact, str(item["field"]), _text(item.get("value")))
                for item in values
            ]
            return contact, created, written

    def _set_field_value(self, contact: Contact, field_id: str, value: str) -> FieldValue:
        stamp = now_iso()
        fv = contact.field_values.get(field_id)
        if fv is None:
            fv = FieldValue(
                id=self._new_id("fieldValues"),
                contact_id=contact.id,
                field_id=field_id,
                value=value,
                cdate=stamp,
                udate=stamp,
            )
            contact.field_values[field_id] = fv
        else:
            fv.value, fv.udate = value, stamp
        return fv

    def field_values(self, email: str) -> dict[str, str]:
        """A contact's custom field values by perstag (tests read these)."""
        with self.lock:
            contact = self.contact(email)
            if contact is None:
                return {}
            return {self._fields[fid].perstag: fv.value for fid, fv in contact.field_values.items()}

    def query_contacts(
        self,
        *,
        email: str | None = None,
        email_like: str | None = None,
        list_id: str | None = None,
        status: int = -1,
        id_greater: int | None = None,
        descending: bool = False,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[list[Contact], int]:
        """GET contacts: one page of matching contacts and the total number matching.

        Cheap on big accounts: ``email`` is an index lookup; ``listid`` (+ ``status``) and the
        unfiltered listing slice id-sorted indexes after a bisect for ``id_greater``, so a page costs
        O(log n + limit). Only ``email_like`` and ``status`` without ``listid`` scan.
        """
        with self.lock:
            self.process_imports()
            if email is None and email_like is None and (list_id is not None or status == -1):
                if list_id is None:
                    ids = self._contact_ids
                elif status == -1:
                    ids = self._list_members.get(list_id, [])
                else:
                    ids = self._list_by_status.get((list_id, status), [])
                start = bisect.bisect_right(ids, id_greater) if id_greater is not None else 0
                total = len(ids) - start
                if descending:
                    end = len(ids) - offset
                    chosen = list(reversed(ids[max(start, end - limit) : end])) if end > start else []
                else:
                    chosen = list(ids[start + offset : start + offset + limit])
                return [self._contacts[i] for i in chosen], total
            candidates: Iterable[Contact]
            if email is not None:
                found = self._by_email.get(normalize_email(email))
                candidates = [found] if found else []
            elif list_id is not None:
                ids = self._list_members.get(list_id, [])
                start = bisect.bisect_right(ids, id_greater) if id_greater is not None else 0
                seq = ids[start:]
                candidates = (self._contacts[i] for i in (reversed(seq) if descending else seq))
            else:
                all_ids = self._contact_ids
                start = bisect.bisect_right(all_ids, id_greater) if id_greater is not None else 0
                seq = all_ids[start:]
                candidates = (self._contacts[i] for i in (reversed(seq) if descending else seq))

            def keep(contact: Contact) -> bool:
                if id_greater is not None and int(contact.id) <= id_greater:
                    return False
                if email_like is not None and email_like.lower() not in contact.email:
                    return False
                if list_id is not None:
                    m = contact.memberships.get(list_id)
                    return m is not None and (status == -1 or m.status == status)
                if status != -1:
                    return any(m.status == status for m in contact.memberships.values())
                return True

            page: list[Contact] = []
            total = 0
            for contact in candidates:
                if not keep(contact):
                    continue
                if offset <= total < offset + limit:
                    page.append(contact)
                total += 1
            return page, total

    # ---- list memberships -----------------------------------------------------------------------

    def _set_status(
        self,
        contact: Contact,
        list_id: str,
        status: int,
        by: str,
        sourceid: str | None = None,
        *,
        unsubreason: str = "",
        campaign: str | None = None,
        message: str | None = None,
        unsubscribe_automation: str | None = None,
        form: str | None = None,
    ) -> Membership:
        """Change (or create) a membership; a change to the same status is no change at all.

        Every real change stamps ``udate``, records who made it in ``changed_by`` and the history,
        and replaces the unsubscribe fields with this change's (a subscription clears them).
        """
        stamp, wall = now_iso(), time.time()
        m = contact.memberships.get(list_id)
        cid = int(contact.id)
        if m is None:
            m = Membership(
                id=self._new_id("contactLists"),
                contact_id=contact.id,
                list_id=list_id,
                status=status,
                sdate=stamp,
                udate=stamp,
                sourceid=sourceid or SOURCE_UNKNOWN,
                changed_by=by,
                created=wall,
            )
            contact.memberships[list_id] = m
            bisect.insort(self._list_members[list_id], cid)
            bisect.insort(self._list_by_status.setdefault((list_id, status), []), cid)
        elif m.status == status:
            return m  # no change, no history entry
        else:
            old = self._list_by_status[(list_id, m.status)]
            del old[bisect.bisect_left(old, cid)]
            bisect.insort(self._list_by_status.setdefault((list_id, status), []), cid)
            m.status, m.udate, m.changed_by = status, stamp, by
            if sourceid is not None:
                m.sourceid = sourceid
            if status in (ACTIVE, UNCONFIRMED):
                m.sdate = stamp
        m.updated = wall
        if status in (ACTIVE, UNCONFIRMED):
            m.unsubreason, m.campaign, m.message, m.unsubscribe_automation = "", None, None, None
            if form is not None:
                m.form = form
        else:
            m.unsubreason, m.campaign, m.message = unsubreason, campaign, message
            m.unsubscribe_automation = unsubscribe_automation
        m.history.append(
            MembershipChange(
                status=status,
                by=by,
                at=stamp,
                unsubreason=m.unsubreason,
                campaign=m.campaign,
                message=m.message,
                unsubscribe_automation=m.unsubscribe_automation,
                sourceid=m.sourceid,
            )
        )
        return m

    def set_list_status(self, data: dict[str, Any]) -> tuple[Membership, Contact]:
        """POST contactLists: status 1 subscribes, even someone who unsubscribed themselves (as
        ActiveCampaign documents); status 2 unsubscribes. A re-subscription (from 2 or 3 to 1) is
        recorded with sourceid 4 unless the caller sent another."""
        with self.lock:
            self.process_imports()
            missing = [k for k in ("list", "contact", "status") if _text(data.get(k)) == ""]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            try:
                status = int(str(data["status"]))
            except ValueError:
                status = -99
            if status not in (ACTIVE, UNSUBSCRIBED):
                raise unprocessable(_invalid("status", "status must be 1 (active) or 2 (unsubscribed)"))
            contact = self._contact_by_id(data["contact"])
            if contact is None:
                raise not_found("Subscriber", data["contact"])
            list_id = str(data["list"])
            if list_id not in self._lists:
                raise not_found("_List", list_id)
            sourceid = _opt_text(data.get("sourceid")) or None
            current = contact.memberships.get(list_id)
            if sourceid is None:
                resubscribe = status == ACTIVE and current is not None and current.status in (UNSUBSCRIBED, BOUNCED)
                sourceid = SOURCE_RESUBSCRIBED if resubscribe else (SOURCE_API if current is None else None)
            return self._set_status(contact, list_id, status, BY_CONTACT_LISTS, sourceid), contact

    # ---- membership events (what people, users and automations do outside the API) ------------

    def _event_contact(self, email: str, list_id: object, *, create: bool = False) -> tuple[Contact, str]:
        self.process_imports()
        lid = self.get_list(list_id).id
        if create:
            return self._upsert(email)[0], lid
        contact = self._by_email.get(normalize_email(email))
        if contact is None:
            raise KeyError(f"no contact with email {email!r}")
        return contact, lid

    def subscribe(self, email: str, list_id: object) -> Membership:
        """Test helper: make ``email`` (created if needed) an active member of ``list_id``."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            return self._set_status(contact, lid, ACTIVE, BY_SEED)

    def signup_by_form(
        self, email: str, list_id: object, *, confirmed: bool = True, form_id: str = "1"
    ) -> Membership:
        """The person subscribes (or re-subscribes) themselves through a form: status 1 (0 while a
        double opt-in is not ``confirmed``). Creates the contact if needed."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            status = ACTIVE if confirmed else UNCONFIRMED
            return self._set_status(contact, lid, status, BY_FORM, SOURCE_FORM, form=str(form_id))

    def unsubscribe_by_contact(
        self,
        email: str,
        list_id: object,
        reason: str = "",
        *,
        campaign_id: object = None,
        message_id: object = None,
    ) -> Membership:
        """The person unsubscribes themselves (the link in an email, or the preferences page):
        status 2 with their ``reason`` (may be empty) and, from an email's link, its campaign and
        message. Bulk imports then refuse to re-subscribe them to that list."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(
                contact,
                lid,
                UNSUBSCRIBED,
                BY_CONTACT,
                unsubreason=reason,
                campaign=None if campaign_id is None else str(campaign_id),
                message=None if message_id is None else str(message_id),
            )

    def unsubscribe_by_admin(self, email: str, list_id: object) -> Membership:
        """A user of the account unsubscribes the contact by hand in the web app."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(contact, lid, UNSUBSCRIBED, BY_ADMIN)

    def unsubscribe_by_automation(self, email: str, list_id: object, automation_id: object) -> Membership:
        """An automation's "unsubscribe" step: status 2 with ``unsubscribeAutomation`` set."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(
                contact, lid, UNSUBSCRIBED, by_automation(automation_id), unsubscribe_automation=str(automation_id)
            )

    def bounce(self, email: str, list_id: object) -> Membership:
        """The address bounced: status 3 on ``list_id``."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id)
            return self._set_status(contact, lid, BOUNCED, BY_BOUNCE)

    def add_by_hand(self, email: str, list_id: object) -> Membership:
        """A user adds the contact (created if needed) to the list by hand: status 1, by "admin"."""
        with self.lock:
            contact, lid = self._event_contact(email, list_id, create=True)
            return self._set_status(contact, lid, ACTIVE, BY_ADMIN, SOURCE_ADMIN)

    def delete_list(self, list_id: object) -> None:
        """DELETE lists/{id} (and the same by hand): the list, its memberships, its user-group and
        field ties go. Contacts stay. A missing list is ActiveCampaign's 403 "No Result found"."""
        with self.lock:
            self.process_imports()
            lid = str(list_id)
            if lid not in self._lists:
                raise ApiError(403, {"message": f"No Result found for _List with id {lid}"})
            for cid in self._list_members.pop(lid):
                self._contacts[cid].memberships.pop(lid, None)
            for key in [k for k in self._list_by_status if k[0] == lid]:
                del self._list_by_status[key]
            self._list_groups = {k: v for k, v in self._list_groups.items() if v.list_id != lid}
            self._field_rels = {k: v for k, v in self._field_rels.items() if v.relid != lid}
            for exclusion in self._exclusions.values():
                if lid in exclusion.lists:
                    exclusion.lists.remove(lid)
            del self._lists[lid]

    def delete_contact(self, email: str) -> None:
        """Delete the contact with this email (and its memberships, field values and tags)."""
        with self.lock:
            self.process_imports()
            contact = self._by_email.get(normalize_email(email))
            if contact is None:
                raise KeyError(f"no contact with email {email!r}")
            self._delete_contact(contact)

    def delete_contact_by_id(self, contact_id: object) -> None:
        """DELETE contacts/{id}: 404 "No result found for contact with id N" when missing."""
        with self.lock:
            self.process_imports()
            contact = self._contact_by_id(contact_id)
            if contact is None:
                raise ApiError(404, {"message": f"No result found for contact with id {contact_id}"})
            self._delete_contact(contact)

    def _delete_contact(self, contact: Contact) -> None:
        cid = int(contact.id)
        for lid, m in contact.memberships.items():
            for ids in (self._list_members[lid], self._list_by_status[(lid, m.status)]):
                del ids[bisect.bisect_left(ids, cid)]
        for tag_id in contact.tag_ids:
            self._contact_tags.pop((contact.id, tag_id), None)
        del self._contacts[cid]
        del self._contact_ids[bisect.bisect_left(self._contact_ids, cid)]
        del self._by_email[contact.email]

    def membership(self, email: str, list_id: object) -> Membership | None:
        with self.lock:
            contact = self.contact(email)
            return contact.memberships.get(str(list_id)) if contact else None

    def contact_lists(self, contact_id: object) -> list[Membership]:
        """GET contacts/{id}/contactLists."""
        with self.lock:
            return list(self.get_contact(contact_id).memberships.values())

    def list_members(self, list_id: object, status: int | None = ACTIVE) -> set[str]:
        """Emails on ``list_id`` with ``status`` (1 active, 2 unsubscribed; None or -1: any)."""
        with self.lock:
            self.process_imports()
            lid = str(list_id)
            if status is None or status == -1:
                ids = self._list_members.get(lid, [])
            else:
                ids = self._list_by_status.get((lid, status), [])
            return {self._contacts[cid].email for cid in ids}

    # ---- custom fields --------------------------------------------------------------------------

    def create_field(self, data: dict[str, Any]) -> CustomField:
        """POST fields: title and type required; a duplicate title (or perstag) is refused."""
        with self.lock:
            missing = [k for k in ("title", "type") if not _text(data.get(k))]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            title, ftype = _text(data["title"]), _text(data["type"])
            if ftype not in FIELD_TYPES:
                raise unprocessable(_invalid("type", f"Unknown field type '{ftype}'"))
            if any(f.title.lower() == title.lower() for f in self._fields.values()):
                raise unprocessable(
                    {
                        "title": "There is already a field with this title",
                        "detail": f"There is already a field named '{title}' -- choose another name",
                        "code": "duplicate",
                    }
                )
            perstag = perstag_for(_text(data.get("perstag")) or title)
            if any(f.perstag == perstag for f in self._fields.values()):
                raise unprocessable(
                    {
                        "title": "There is already a field with this personalization tag",
                        "detail": f"There is already a field with the tag '%{perstag}%'",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/perstag"},
                    }
                )
            fld = CustomField(
                id=self._new_id("fields"),
                title=title,
                type=ftype,
                perstag=perstag,
                descript=_text(data.get("descript")),
                defval=_text(data.get("defval")),
                visible=_text(data.get("visible", "1")),
                ordernum=_text(data.get("ordernum", "1")),
                cdate=now_iso(),
            )
            self._fields[fld.id] = fld
            return fld

    def add_field(self, title: str, perstag: str | None = None, field_type: str = "text") -> CustomField:
        """Test helper: create a custom field (and its fieldRel to all lists)."""
        with self.lock:
            fld = self.create_field({"title": title, "type": field_type, "perstag": perstag or ""})
            self.create_field_rel({"field": fld.id, "relid": 0})
            return fld

    @property
    def fields(self) -> dict[str, CustomField]:
        with self.lock:
            return dict(self._fields)

    def field_by_perstag(self, perstag: str) -> CustomField | None:
        with self.lock:
            tag = perstag.strip("%").upper()
            return next((f for f in self._fields.values() if f.perstag == tag), None)

    def create_field_rel(self, data: dict[str, Any]) -> FieldRel:
        """POST fieldRels: attach a field to a list (relid 0: all lists; needed for UI visibility)."""
        with self.lock:
            missing = [k for k in ("field", "relid") if _text(data.get(k)) == ""]
            if missing:
                raise unprocessable(*(field_missing(k) for k in missing))
            fid, relid = str(data["field"]), str(data["relid"])
            if fid not in self._fields:
                raise not_found("Field", fid)
            if relid != "0" and relid not in self._lists:
                raise not_found("_List", relid)
            rel = FieldRel(id=self._new_id("fieldRels"), field_id=fid, relid=relid, cdate=now_iso())
            self._field_rels[rel.id] = rel
            return rel

    @property
    def field_rels(self) -> dict[str, FieldRel]:
        with self.lock:
            return dict(self._field_rels)

    # ---- tags -----------------------------------------------------------------------------------

    def create_tag(self, data: dict[str, Any]) -> Tag:
        """POST tags: names are unique case-insensitively."""
        with self.lock:
            name = _text(data.get("tag")).strip()
            if not name:
                raise unprocessable(field_missing("tag"))
            if name.lower() in self._tags_by_name:
                raise unprocessable(
                    {
                        "title": "Duplicate entry",
                        "detail": f"A tag named '{name}' already exists",
                        "code": "duplicate",
                        "source": {"pointer": "/data/attributes/tag"},
                    }
                )
            return self._make_tag(
                name, _text(data.get("tagType")) or "contact", _text(data.get("description"))
            )

    def _make_tag(self, name: str, tag_type: str = "contact", description: str = "") -> Tag:
        tag = Tag(
            id=self._new_id("tags"), tag=name, tag_type=tag_type, description=description, cdate=now_iso()
        )
        self._tags[tag.id] = tag
        self._tags_by_name[name.lower()] = tag
        return tag

    @property
    def tags(self) -> dict[str, Tag]:
        with self.lock:
            return dict(self._tags)

    def tag_by_name(self, name: str) -> Tag | None:
        with self.lock:
            return self._tags_by_name.get(name.strip().lower())

    def find_tags(self, search: str | None) -> list[Tag]:
        """GET tags?search=: case-insensitive contains."""
        with self.lock:
            tags = list(self._tags.values())
        if not search:
            return tags
        needle = search.lower()
        return [t for t in tags if needle in t.tag.lower()]

    def add_contact_tag(self, data: dict[str, Any]) -> ContactTag:
        """POST contactTags: idempotent (tagging twice returns the existing record)."""
        with self.lock:
            self.process_imports()
            missing = [k for k in ("contact", "tag") if _text(data.get(k)) == ""]
            if missing:
                raise unprocessable(
                    *(
                        {
                            "status": 422,
                            "title": "Missing attribute",
                            "source": {"pointer": f"/data/attributes/{k}"},
                        }
                        for k in missing
                    )
                )
            contact = self._contact_by_id(data["contact"])
            if contact is None:
                raise ApiError(
                    404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Contact not found"}]}
                )
            tag_id = str(data["tag"])
            if tag_id not in self._tags:
                raise ApiError(
                    404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Tag not found"}]}
                )
            return self._tag_contact(contact, tag_id)

    def _tag_contact(self, contact: Contact, tag_id: str) -> ContactTag:
        key = (contact.id, tag_id)
        existing = self._contact_tags.get(key)
        if existing is not None:
            return existing
        ct = ContactTag(id=self._new_id("contactTags"), contact_id=contact.id, tag_id=tag_id, cdate=now_iso())
        self._contact_tags[key] = ct
        contact.tag_ids.add(tag_id)
        return ct

    def contact_tags(self, email: str) -> set[str]:
        """Names of the tags on a contact."""
        with self.lock:
            contact = self.contact(email)
            return {self._tags[t].tag for t in contact.tag_ids} if contact else set()

    # ---- exclusion list -------------------------------------------------------------------------

    def add_exclusion(
        self, match_phrase: str, match_type: str = "exact", channel: str = "all", lists: Iterable[object] = ()
    ) -> Exclusion:
        """POST lists/exclusions: emails matching ``match_phrase`` (exact, begin, end) are never
        subscribed to the lists the exclusion covers (every list unless ``channel`` is "several")."""
        with self.lock:
            phrase = _text(match_phrase).strip()
            if not phrase:
                raise unprocessable(field_missing("matchPhrase"))
            kind = MATCH_TYPES.get(_text(match_type).strip().lower())
            if kind is None:
                raise unprocessable(
                    _invalid("matchType", f"Invalid matchType: {match_type!r}. Allowed: exact, begin, end")
                )
            chan = _text(channel) or "all"
            if chan not in EXCLUSION_CHANNELS:
                raise unprocessable(_invalid("channel", f"Invalid channel: {chan!r}"))
            list_ids = [str(x) for x in lists]
            if list_ids and chan != "several":
                raise unprocessable(_invalid("lists", f'List IDs must be empty for channel "{chan}"'))
            missing = [x for x in list_ids if x not in self._lists]
            if missing:
                raise not_found("_List", missing[0])
            exclusion = Exclusion(
                id=self._new_id("exclusions"),
                match_phrase=phrase,
                match_type=kind,
                channel=chan,
                lists=list_ids,
                cdate=now_iso(),
            )
            self._exclusions[exclusion.id] = exclusion
            return exclusion

    def get_exclusion(self, exclusion_id: object) -> Exclusion:
        with self.lock:
            found = self._exclusions.get(str(exclusion_id))
            if found is None:
                raise ApiError(404, {"message": f"Exclusion not found [id={exclusion_id}]"})
            return found

    def delete_exclusion(self, exclusion_id: object) -> None:
        """DELETE lists/exclusions/{id}."""
        with self.lock:
            self.get_exclusion(exclusion_id)
            del self._exclusions[str(exclusion_id)]

    def exclude(self, email: str) -> Exclusion:
        """Put ``email`` on the account's exclusion list (an exact entry for every list)."""
        with self.lock:
            key = normalize_email(email)
            for exclusion in self._exclusions.values():
                if exclusion.match_type == "exact" and exclusion.match_phrase.lower() == key:
                    return exclusion
            return self.add_exclusion(key, "exact")

    def lift_exclusion(self, email: str) -> int:
        """Remove every exact exclusion entry for ``email``; returns how many went."""
        with self.lock:
            key = normalize_email(email)
            gone = [
                x.id
                for x in self._exclusions.values()
                if x.match_type == "exact" and x.match_phrase.lower() == key
            ]
            for ident in gone:
                del self._exclusions[ident]
            return len(gone)

    @property
    def exclusions(self) -> set[str]:
        """The exact emails on the exclusion list (patterns: ``exclusion_entries``)."""
        with self.lock:
            return {x.match_phrase.lower() for x in self._exclusions.values() if x.match_type == "exact"}

    @property
    def exclusion_entries(self) -> list[Exclusion]:
        with self.lock:
            return list(self._exclusions.values())

    def excluded_by(self, email: str, list_ids: Iterable[str] = ()) -> Exclusion | None:
        """The first exclusion that keeps ``email`` off any of ``list_ids`` (or off every list)."""
        with self.lock:
            wanted = set(list_ids)
            for exclusion in self._exclusions.values():
                if exclusion.matches(email) and exclusion.covers(wanted):
                    return exclusion
            return None

    # ---- bulk import ----------------------------------------------------------------------------

    def queue_import(self, payload: Any, size: int) -> ImportBatch:
        """POST import/bulk_import: check limits and every email, then queue the batch.

        Order of checks: payload size and contact count (cheap, consume no quota), then the bulk
        importer quota, then per-contact validation. Any invalid contact rejects the whole batch
        (nothing queued) and lists every offender by 0-based index.
        """
        cfg = self.config
        if size >= cfg.max_import_bytes:
            raise _bulk_error(
                f"Payload too large: {size} bytes. A bulk import request must be less than "
                f"{cfg.max_import_bytes} bytes ({cfg.max_import_bytes - 1:,} bytes or less)."
            )
        contacts = payload.get("contacts") if isinstance(payload, dict) else None
        if not isinstance(contacts, list) or not contacts:
            raise _bulk_error("'contacts' is a required field and must be a non-empty list.")
        if len(contacts) > cfg.max_contacts_per_import:
            raise _bulk_error(
                f"Too many contacts: {len(contacts)}. Contacts can be imported in batches of up to "
                f"{cfg.max_contacts_per_import} items."
            )
        with self.lock:
            self._admit_bulk(single=len(contacts) == 1)
            reasons: list[dict[str, Any]] = []
            for index, item in enumerate(contacts):
                email = item.get("email") if isinstance(item, dict) else None
                if email is None or email == "":
                    reasons.append({"contact": index, "failureReason": "Field' email' is required"})
                elif email_format_problem(email):
                    reasons.append({"contact": index, "failureReason": "Field' email' incorrect format"})
            if reasons:
                raise ApiError(
                    400,
                    {
                        "success": 0,
                        "message": "JSON payload did not pass validation. Please fix failure Reasons and "
                        "retry. The import was not queued for processing.",
                        "failureReasons": reasons,
                    },
                )
            now = self.clock()
            callback = payload.get("callback")
            batch = ImportBatch(
                batch_id=str(uuid.uuid4()),
                contacts=contacts,
                queued_at=now,
                ready_at=now + max(0.0, float(cfg.import_delay)),
                queued_wall=now_iso(),
                callback=callback if isinstance(callback, dict) else None,
            )
            self._imports[batch.batch_id] = batch
            self._pending.append(batch)
            return batch

    def import_status(self, batch_id: str) -> dict[str, Any]:
        """GET import/info: ``status`` is false during the first half of the delay, then "waiting",
        then "completed" with created contact ids in ``success`` and failed emails in ``failure``."""
        with self.lock:
            self.process_imports()
            batch = self._imports.get(batch_id)
            if batch is None:
                raise not_found("Import", batch_id)
            if batch.completed:
                return {"status": "completed", "success": list(batch.success), "failure": list(batch.failure)}
            early = self.clock() < batch.queued_at + (batch.ready_at - batch.queued_at) / 2
            return {"status": False if early else "waiting", "success": [], "failure": []}

    def import_summary(self) -> dict[str, Any]:
        """GET import/bulk_import: daily aggregate of outstanding and completed batches."""
        with self.lock:
            self.process_imports()
            day = datetime.now().date().isoformat()
            out = [b for b in self._imports.values() if not b.completed]
            done = [b for b in self._imports.values() if b.completed]

            def agg(batches: list[ImportBatch]) -> list[dict[str, str]]:
                if not batches:
                    return []
                return [
                    {
                        "forDate": day,
                        "batches": str(len(batches)),
                        "contacts": str(sum(len(b.contacts) for b in batches)),
                    }
                ]

            return {"outstanding": agg(out), "recentlyCompleted": agg(done)}

    @property
    def imports(self) -> dict[str, ImportBatch]:
        with self.lock:
            self.process_imports()
            return dict(self._imports)

    def import_batch(self, batch_id: str) -> ImportBatch | None:
        with self.lock:
            self.process_imports()
            return self._imports.get(batch_id)

    def process_imports(self, *, force: bool = False) -> int:
        """Apply every queued batch that is due (all of them with ``force``); returns how many."""
        with self.lock:
            pending = self._pending
            if not pending:
                return 0
            now = self.clock()
            done = 0
            while pending and (force or pending[0].ready_at <= now):
                self._apply_batch(pending.popleft(), now)
                done += 1
            return done

    def _apply_batch(self, batch: ImportBatch, now: float) -> None:
        for item in batch.contacts:
            problem = self._apply_import_contact(batch, item)
            if problem is not None:
                email = str(item.get("email"))
                batch.failure.append(email)
                batch.failure_reasons[email] = problem
        batch.status = "completed"
        batch.processed_at = now

    def _apply_import_contact(self, batch: ImportBatch, item: dict[str, Any]) -> str | None:
        """Apply one imported contact; returns why it failed (then nothing at all is changed)."""
        key = normalize_email(str(item["email"]))
        subscribe = _list_ids(item.get("subscribe"))
        unsubscribe = _list_ids(item.get("unsubscribe"))
        exclusion = self.excluded_by(key, subscribe)
        if exclusion is not None:
            return f"email is on the exclusion list ({exclusion.match_type} {exclusion.match_phrase!r})"
        for lid in subscribe + unsubscribe:
            if lid not in self._lists:
                return f"list {lid} does not exist"
        existing = self._by_email.get(key)
        if existing is not None:
            for lid in subscribe:
                m = existing.memberships.get(lid)
                if m is not None and m.status == UNSUBSCRIBED:
                    return f"contact unsubscribed from list {lid}; imports do not re-subscribe"
                if m is not None and m.status == BOUNCED:
                    return f"contact bounced on list {lid}"
        contact, created = self._upsert(
            str(item["email"]),
            first_name=_opt_text(item.get("first_name")),
            last_name=_opt_text(item.get("last_name")),
            phone=_opt_text(item.get("phone")),
            orgname=_opt_text(item.get("customer_acct_name")),
        )
        if created:
            batch.success.append(contact.id)
        for fv in item.get("fields") or []:
            fid = str(fv.get("id")) if isinstance(fv, dict) else ""
            if fid not in self._fields:
                batch.warnings.append(f"{key}: unknown custom field id {fid!r} ignored")
                continue
            self._set_field_value(contact, fid, _text(fv.get("value")))
        tags = item.get("tags") or []
        for raw in [tags] if isinstance(tags, str) else tags:
            name = str(raw).strip()
            if name:
                tag = self._tags_by_name.get(name.lower()) or self._make_tag(name)
                self._tag_contact(contact, tag.id)
        marker = by_import(batch.batch_id)
        for lid in subscribe:
            self._set_status(contact, lid, ACTIVE, marker)
        for lid in unsubscribe:
            self._set_status(contact, lid, UNSUBSCRIBED, marker)
        return None

    # ---- request log ----------------------------------------------------------------------------

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

    # ---- snapshot -------------------------------------------------------------------------------

    def snapshot(self, *, include_contacts: bool = True, include_requests: bool = False) -> dict[str, Any]:
        """Everything as JSON-ready data, for ``GET /_emulator/state`` and for debugging tests."""
        with self.lock:
            self.process_imports()
            memberships: Counter[str] = Counter()
            for (_, status), ids in self._list_by_status.items():
                memberships[STATUS_NAMES.get(status, str(status))] += len(ids)
            data: dict[str, Any] = {
                "summary": {
                    "lists": len(self._lists),
                    "contacts": len(self._contacts),
                    "memberships": {k: v for k, v in sorted(memberships.items()) if v},
                    "fields": len(self._fields),
                    "tags": len(self._tags),
                    "imports": len(self._imports),
                    "imports_pending": len(self._pending),
                    "requests": len(self._requests),
                },
                "config": self.config.to_json(),
                "blocked": self.blocked,
                "user": self.user.to_json(),
                "groups": [g.to_json() for g in self._groups.values()],
                "listGroups": [lg.to_json() for lg in self._list_groups.values()],
                "lists": [
                    {
                        **lst.to_json(),
                        "active": len(self._list_by_status.get((lst.id, ACTIVE), [])),
                        "members": len(self._list_members[lst.id]),
                    }
                    for lst in self._lists.values()
                ],
                "fields": [f.to_json() for f in self._fields.values()],
                "fieldRels": [r.to_json() for r in self._field_rels.values()],
                "tags": [t.to_json() for t in self._tags.values()],
                "exclusions": [x.to_json() for x in self._exclusions.values()],
                "imports": [b.to_json() for b in self._imports.values()],
                "contact_count": len(self._contacts),
                "faults": [f.to_json() for f in self.faults.pending()],
                "requests": {
                    "total": len(self._requests),
                    "by_endpoint": dict(Counter(r.endpoint for r in self._requests)),
                    "by_status": {str(k): v for k, v in Counter(r.status for r in self._requests).items()},
                },
            }
            if include_contacts:
                data["contacts"] = [
                    {
                        "id": c.id,
                        "email": c.email,
                        "firstName": c.first_name,
                        "lastName": c.last_name,
                        "phone": c.phone,
                        "orgname": c.orgname,
                        "fields": {self._fields[f].perstag: v.value for f, v in c.field_values.items()},
                        "tags": sorted(self._tags[t].tag for t in c.tag_ids),
                        "lists": {
                            lid: {"status": m.status, "changed_by": m.changed_by, "udate": m.udate}
                            for lid, m in c.memberships.items()
                        },
                    }
                    for c in self._contacts.values()
                ]
            if include_requests:
                data["requests"]["log"] = [r.to_json() for r in self._requests]
            return data

    def iter_contacts(self) -> Iterator[Contact]:
        """All contacts in id order (a snapshot)."""
        with self.lock:
            self.process_imports()
            return iter(list(self._contacts.values()))


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Request values arrive as strings or numbers; ActiveCampaign treats them as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _opt_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _invalid(name: str, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "detail": "",
        "code": "field_invalid",
        "source": {"pointer": f"/data/attributes/{name}"},
    }


def _bulk_error(message: str) -> ApiError:
    return ApiError(400, {"success": 0, "message": message, "failureReasons": [message]})


def _list_ids(entries: Any) -> list[str]:
    """``[{"listid": 3}, ...]`` (or bare ids) to list id strings."""
    out: list[str] = []
    for entry in entries or []:
        value = entry.get("listid") if isinstance(entry, dict) else entry
        if value is not None and str(value) != "":
            out.append(str(value))
    return out


def max_in_sliding_window(times: Iterable[float], window: float) -> int:
    """The most events found in any half-open interval [t, t + window): how rate limits are counted."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
