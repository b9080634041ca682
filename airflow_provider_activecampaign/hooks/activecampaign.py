"""ActiveCampaign API v3 hook: connection, auth, client-side rate limits, retries, errors, API methods.

Facts this relies on (see the project's research notes): the API answers under ``<API URL>/api/3``,
authenticates with an ``Api-Token`` header, allows 5 requests/second per *account* (429 with
``Retry-After`` in seconds, sometimes 503), and its bulk importer allows 100 multi-contact / 20
single-contact requests per minute, signalling excess as HTTP 400 "Rate limit exceeded.". Error bodies
come in several shapes (JSON:API-ish ``errors[]``, bare ``message``, the importer's ``failureReasons``,
empty bodies, Cloudflare HTML), all parsed by :func:`describe_answer`.
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import json
import math
import random
import re
import threading
import time
import unicodedata
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any
from urllib.parse import urlsplit

import ratelimit
import requests
from airflow.sdk import BaseHook

from airflow_provider_activecampaign import CONNECTION_OPTIONS, __version__
from airflow_provider_activecampaign.audience.batching import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_CONTACTS,
    encode_body,
    split_import_batches,
)
from airflow_provider_activecampaign.audience.records import mask_email
from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignAccountBlockedError,
    ActiveCampaignAuthError,
    ActiveCampaignBulkImportRejectedError,
    ActiveCampaignConfigurationError,
    ActiveCampaignConnectionError,
    ActiveCampaignError,
    ActiveCampaignInsecureURLError,
    ActiveCampaignNotFoundError,
    ActiveCampaignRateLimitError,
    ActiveCampaignServerError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)

JSONDict = dict[str, Any]

API_PREFIX = "/api/3"
CONNECT_TIMEOUT = 10.0
TEST_CONNECTION_TIMEOUT = (5.0, 10.0)
PAGE_SIZE = 100  # the API's maximum `limit`

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0  # a single Retry-After wait is capped here; 30 still means 30 seconds
BULK_RATE_LIMIT_WAIT = 60.0  # the importer's 400 "Rate limit exceeded." says "retry in a minute"
LIMITER_MARGIN = 1.02  # spacing a little wider than 1/rate absorbs network jitter
USER_AGENT = f"airflow-provider-activecampaign/{__version__} (+requests/{requests.__version__})"

_RETRY_SERVER_STATUSES = frozenset({500, 502, 504})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_BULK_IMPORT_ENDPOINT = "import/bulk_import"
_OPTION_DEFAULTS: dict[str, Any] = {
    name: spec.get("schema", {}).get("default") for name, spec in CONNECTION_OPTIONS.items()
}
# Practical local parts only: URL/query punctuation (/ ? = &) must not be swallowed into the match.
_EMAIL_RE = re.compile(r"[A-Za-z0-9._+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ENCODED_EMAIL_RE = re.compile(r"[A-Za-z0-9._+'-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


# --------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------

def mask_emails(text: str) -> str:
    """Mask every email address in free text, including URL-encoded ones (``a%40b.com``)."""
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    return _ENCODED_EMAIL_RE.sub(lambda m: mask_email(m.group(0).replace("%40", "@")).replace("@", "%40"), text)


# --------------------------------------------------------------------------------------------------
# Connection settings
# --------------------------------------------------------------------------------------------------

def _is_loopback(hostname: str) -> bool:
    name = hostname.strip("[]").lower().rstrip(".")
    if name == "localhost":  # not *.localhost: whether those resolve to loopback depends on the resolver
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def normalize_api_url(host: str | None, port: int | None = None) -> str:
    """The connection's host as ``scheme://host[:port][/prefix]``: no trailing slash, no ``/api/3``.

    Accepts the URL exactly as ActiveCampaign shows it, with or without ``/api/3`` and a trailing slash,
    and a bare host name (https assumed). Plain http is refused unless the host is loopback, before any
    request is made: the API key travels in a header and would cross the network unencrypted.
    """
    raw = (host or "").strip()
    if not raw:
        raise ActiveCampaignConfigurationError(
            "The connection has no API URL (host). Copy it from ActiveCampaign: Settings > Developer, "
            "e.g. https://youraccount.api-us1.com"
        )
    if "://" not in raw:
        raw = "https://" + raw.lstrip("/")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    try:
        hostname = parts.hostname
        url_port = parts.port
    except ValueError as exc:  # e.g. a non-numeric port
        raise ActiveCampaignConfigurationError(f"The API URL {raw!r} is malformed: {exc}") from None
    if scheme not in ("http", "https") or not hostname:
        raise ActiveCampaignConfigurationError(
            f"The API URL {raw!r} is not an http(s) URL; expected e.g. https://youraccount.api-us1.com"
        )
    if scheme == "http" and not _is_loopback(hostname):
        raise ActiveCampaignInsecureURLError(
            f"plain http refused for {hostname}: the API key would be sent unencrypted. Use the https:// "
            "API URL shown in ActiveCampaign (plain http is only allowed to loopback addresses such as "
            "127.0.0.1, ::1 or localhost)."
        )
    url_port = url_port or (int(port) if port else None)
    netloc = f"[{hostname}]" if ":" in hostname else hostname
    if url_port and (scheme, url_port) not in (("https", 443), ("http", 80)):
        netloc += f":{url_port}"
    path = parts.path.rstrip("/")
    if path.lower().endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)].rstrip("/")
    return f"{scheme}://{netloc}{path}"


def derive_web_url(api_url: str) -> str:
    """``https://acct.api-us1.com`` -> ``https://acct.activehosted.com`` (ActiveCampaign's web app).

    Anything else (an emulator, a proxy) has no known web app address: the API URL itself is returned.
    """
    parts = urlsplit(api_url)
    match = re.fullmatch(r"([a-z0-9-]+)\.api-[a-z]+\d*\.com", parts.hostname or "")
    if parts.scheme == "https" and match:
        return f"https://{match.group(1)}.activehosted.com"
    return api_url


def _positive_number(extra: Mapping[str, Any], name: str) -> float:
    """Read a numeric option; URI-form connections deliver every extra as a string."""
    value = extra.get(name)
    if value is None:
        value = extra.get(f"extra__activecampaign__{name}")  # prefixed keys from old wtforms forms
    if value is None or (isinstance(value, str) and not value.strip()):
        return float(_OPTION_DEFAULTS[name])
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ActiveCampaignConfigurationError(
            f"Connection option {name!r} must be a number, got {value!r}"
        ) from None
    minimum = CONNECTION_OPTIONS[name].get("schema", {}).get("minimum", 0)
    if not number > 0 or number < minimum or number != number or number == float("inf"):
        raise ActiveCampaignConfigurationError(
            f"Connection option {name!r} must be a number >= {minimum}, got {value!r}"
        )
    return number


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything the hook reads from its Airflow connection, validated and typed."""

    api_url: str
    api_key: str = field(repr=False)
    requests_per_second: float
    bulk_imports_per_minute: float
    single_imports_per_minute: float
    timeout: float
    web_url: str

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        api_url = normalize_api_url(conn.host, getattr(conn, "port", None))
        extra = conn.extra_dejson or {}
        if not isinstance(extra, Mapping):
            raise ActiveCampaignConfigurationError("The connection's extra must be a JSON object")
        web_url = extra.get("web_url") or extra.get("extra__activecampaign__web_url")
        web_url = str(web_url).strip().rstrip("/") if web_url else derive_web_url(api_url)
        return cls(
            api_url=api_url,
            api_key=(conn.password or "").strip(),
            requests_per_second=_positive_number(extra, "requests_per_second"),
            bulk_imports_per_minute=_positive_number(extra, "bulk_imports_per_minute"),
            single_imports_per_minute=_positive_number(extra, "single_imports_per_minute"),
            timeout=_positive_number(extra, "timeout"),
            web_url=web_url,
        )


# --------------------------------------------------------------------------------------------------
# Rate limiting: spacing limiters shared per process
# --------------------------------------------------------------------------------------------------

class SpacingLimiter:
    """Paces requests to one budget, across every thread of the process. Two mechanisms:

    * **spacing**, built on ``ratelimit.limits(calls=1, period=...)``: ratelimit counts in *fixed*
      windows, but ActiveCampaign counts in any *sliding* window; one call per ``period`` (the rate's
      interval plus a 2 % margin) spaces the permits, so no sliding window holds more than the rate;
    * a **sliding-window guard** on *completion* times, because the server counts *arrival* times,
      which jitter: a request delayed 30 ms on its way (a new TCP connection, a busy host) followed by
      an undelayed one five slots later makes six arrivals in one second despite perfect spacing. A
      request arrives before its answer does, so admitting a request only while fewer than
      ``window_calls`` requests are in flight or completed within the last ``window`` seconds keeps
      the server's count within the limit whatever the jitter. With fast answers it costs nothing.

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
        decorator = ratelimit.limits(calls=1, period=period, clock=clock)
        # ratelimit starts its first window at construction; mark it long expired so that the first
        # permit opens the window. Otherwise the second permit could come less than `period` after it.
        # (-inf rather than clock() - period: float rounding could leave that window "just" open.)
        decorator.last_reset = float("-inf")
        self._limited = decorator(lambda: None)
        self._lock = threading.Lock()
        self._paused_until = float("-inf")
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
        try:
            while True:
                try:
                    self._limited()
                    return slept
                except ratelimit.RateLimitException as exc:
                    # At least a microsecond: a float remainder like 5e-14 added to a clock reading
                    # near 1000 is lost to rounding, and the loop would never end.
                    wait = max(float(exc.period_remaining), 1e-6)
                    sleep(wait)
                    slept += wait
        except BaseException:  # interrupted while waiting: give the reserved slot back
            if self.window_calls:
                with self._lock:
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


def get_limiter(api_url: str, kind: str, calls: float, per: float,
                clock: Callable[[], float]) -> SpacingLimiter:
    """The process-wide limiter for one API URL and budget: ``calls`` requests per ``per`` seconds.

    The rate is in the key so connections with different settings don't share; the clock too, since
    times measured on different clocks can't be compared (only tests inject another clock).
    """
    key = (api_url, kind, calls, per, clock)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            # The server's window: int(calls) per `per` seconds; below one call, one per longer window.
            window_calls, window = (int(calls), per) if calls >= 1 else (1, per / calls)
            limiter = _LIMITERS[key] = SpacingLimiter(per / calls * LIMITER_MARGIN, clock,
                                                      window_calls=window_calls, window=window)
        return limiter


# --------------------------------------------------------------------------------------------------
# Answers and errors
# --------------------------------------------------------------------------------------------------

@dataclass
class Answer:
    """What an HTTP answer said, in ActiveCampaign's own words, whatever shape it came in."""

    status: int
    body: Any = None  # parsed JSON, or None
    words: str = ""  # one-line human summary of the API's own words
    is_json: bool = False
    is_html: bool = False
    message: str | None = None  # bare or importer `message`
    code: str | None = None  # first errors[] code
    detail: str | None = None  # first errors[] detail (or title when there's no detail)
    errors: list[Any] = field(default_factory=list)
    failure_reasons: list[Any] = field(default_factory=list)
    location: str | None = None  # redirect target (redirects are never followed)


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_error_item(item: Any) -> str:
    if not isinstance(item, dict):
        return _one_line(str(item))
    title = str(item.get("title") or "").strip()
    detail = str(item.get("detail") or "").strip()
    text = f"{title}: {detail}" if title and detail and detail != title else (title or detail)
    extras = []
    if item.get("code"):
        extras.append(f"code {item['code']}")
    source = item.get("source")
    if isinstance(source, dict):
        pointer = source.get("pointer") or source.get("value") or source.get("parameter")
        if pointer:
            extras.append(f"at {pointer}")
    if extras:
        text = f"{text} ({', '.join(extras)})" if text else ", ".join(extras)
    return text or _one_line(json.dumps(item, ensure_ascii=False))


def _describe_failure_reason(reason: Any) -> str:
    if isinstance(reason, dict):
        who = reason.get("contact")
        why = reason.get("failureReason") or reason.get("reason") or reason.get("message") or ""
        return f"contact {who}: {why}" if who is not None else str(why)
    return str(reason)


def describe_answer(response: requests.Response) -> Answer:
    """Parse an answer in any of the shapes ActiveCampaign uses. JSON is tried whatever the
    Content-Type says (the docs declare some JSON errors as text/plain)."""
    answer = Answer(status=response.status_code, location=response.headers.get("Location"))
    content_type = response.headers.get("Content-Type", "")
    raw = response.content or b""
    if not raw.strip():
        answer.words = "empty body" + ("" if content_type else ", no Content-Type")
        return answer
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", errors="replace")
        if "html" in content_type.lower() or text.lstrip()[:1] == "<":
            answer.is_html = True
            title = _TITLE_RE.search(text)
            answer.words = "HTML page, not an ActiveCampaign API answer" + (
                f" (title: {_one_line(title.group(1), 120)!r})" if title else ""
            )
        else:
            answer.words = f"non-JSON answer: {_one_line(text, 200)!r}"
        return answer
    answer.is_json, answer.body = True, body
    if not isinstance(body, dict):
        answer.words = _one_line(json.dumps(body, ensure_ascii=False))
        return answer
    parts: list[str] = []
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        answer.errors = errors
        first = errors[0] if isinstance(errors[0], dict) else {}
        answer.code = str(first["code"]) if first.get("code") else None
        answer.detail = (str(first.get("detail") or "").strip() or str(first.get("title") or "").strip()
                         or None)
        parts.append("; ".join(_describe_error_item(e) for e in errors[:5])
                     + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""))
    elif isinstance(errors, dict) and errors:  # defensive: {"errors": {"field": "why"}}
        answer.errors = [errors]
        parts.append(_one_line(json.dumps(errors, ensure_ascii=False)))
    if isinstance(body.get("message"), str) and body["message"].strip():
        answer.message = body["message"].strip()
        parts.append(answer.message)
    reasons = body.get("failureReasons")
    if isinstance(reasons, list) and reasons:
        answer.failure_reasons = reasons
        shown = "; ".join(_describe_failure_reason(r) for r in reasons[:3])
        parts.append(shown + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""))
    if not parts:
        parts.append("empty JSON object {}" if not body else _one_line(json.dumps(body, ensure_ascii=False)))
    answer.words = _one_line(" — ".join(parts), 500)
    return answer


def _is_bulk_rate_limited(answer: Answer) -> bool:
    """The importer signals its per-minute limit as HTTP 400, not 429."""
    if answer.message and answer.message.lower().startswith("rate limit exceeded"):
        return True
    return any(
        isinstance(r, str) and ("rate limit" in r.lower() or "requested per minute" in r.lower())
        for r in answer.failure_reasons
    )


def _retry_after_seconds(response: requests.Response, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(when.timestamp() - now(), 0.0)


def endpoint_key(method: str, endpoint: str) -> str:
    """``GET contacts/12/contactLists`` -> ``GET contacts/{id}/contactLists`` (for request_counts)."""
    path = endpoint.split("?", 1)[0].strip("/")
    return f"{method.upper()} " + "/".join("{id}" if s.isdigit() else s for s in path.split("/"))


def _as_id(value: Any) -> Any:
    """Ids come back as strings ("6"); the official client sends ints. Send numeric ids as ints."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-") or "list"


def derive_stringid(name: str) -> str:
    """A slug plus a short hash of the exact name: readable, and distinct for names that slug alike."""
    return f"{_slug(name)}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------

class ActiveCampaignHook(BaseHook):
    """Talk to one ActiveCampaign account through its API v3.

    The connection's ``host`` is the API URL shown under Settings > Developer
    (``https://ACCOUNT.api-us1.com``, with or without ``/api/3``), ``password`` the API key, and the
    optional extras are listed in ``CONNECTION_OPTIONS``.

    :param activecampaign_conn_id: Airflow connection id.
    :param max_attempts: HTTP attempts per request, retries included (at least 1).
    :param sleep: how to wait (injected by tests so nothing really sleeps).
    :param clock: monotonic clock used by the rate limiters (injected by tests with ``sleep``).
    """

    conn_name_attr = "activecampaign_conn_id"
    default_conn_name = "activecampaign_default"
    conn_type = "activecampaign"
    hook_name = "ActiveCampaign"

    def __init__(
        self,
        activecampaign_conn_id: str = default_conn_name,
        *,
        max_attempts: int = 6,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.activecampaign_conn_id = activecampaign_conn_id
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.clock = clock
        # Counts HTTP requests actually sent (retries included): what the account's budget sees.
        self.request_counts: Counter[str] = Counter()
        # The user that the last successful test_connection() saw (no secrets), for the operator's XCom.
        self.last_user: JSONDict | None = None
        self._counts_lock = threading.Lock()
        self._settings: ConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._rng = random.Random()  # jitter source; tests may replace it

    # ---- connection form (Airflow < 3.2; 3.2+ reads get_provider_info()) ---------------------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Same behaviour as the declarative ``ui-field-behaviour`` in ``get_provider_info()``."""
        from airflow_provider_activecampaign import get_provider_info

        (conn_type,) = [c for c in get_provider_info()["connection-types"]
                        if c["connection-type"] == cls.conn_type]
        behaviour = conn_type["ui-field-behaviour"]
        return {
            "hidden_fields": list(behaviour["hidden-fields"]),
            "relabeling": dict(behaviour["relabeling"]),
            "placeholders": dict(behaviour.get("placeholders", {})),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields for the FAB/wtforms form of Airflow < 3.2 (``extra`` itself is hidden there).

        Text fields for numbers too: the hook coerces strings, and rates may be fractional.
        """
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            name: StringField(lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(),
                              description=spec.get("description", ""))
            for name, spec in CONNECTION_OPTIONS.items()
        }

    # ---- settings and session ----------------------------------------------------------------------

    @property
    def settings(self) -> ConnectionSettings:
        """The connection, read once and validated (raises before any request for plain http)."""
        if self._settings is None:
            conn = self.get_connection(self.activecampaign_conn_id)
            self._settings = ConnectionSettings.from_connection(conn)
        return self._settings

    @property
    def api_url(self) -> str:
        """Normalized API URL, e.g. ``https://acct.api-us1.com`` (no trailing slash, no ``/api/3``)."""
        return self.settings.api_url

    @property
    def web_url(self) -> str:
        """Base address of the account's web app, for links (option ``web_url`` or derived)."""
        return self.settings.web_url

    @property
    def host(self) -> str:
        return urlsplit(self.api_url).netloc

    def get_conn(self) -> requests.Session:
        """One ``requests.Session`` per hook (connection pooling), carrying the auth headers."""
        if self._session is None:
            settings = self.settings
            if not settings.api_key:
                raise ActiveCampaignConfigurationError(
                    f"The connection {self.activecampaign_conn_id!r} has no API key (password). Copy it "
                    "from ActiveCampaign: Settings > Developer."
                )
            session = requests.Session()
            session.headers.update({
                "Api-Token": settings.api_key,
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            })
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    # ---- requests ----------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Remove the API key (defence in depth: it is never put in messages) and mask emails."""
        key = self._settings.api_key if self._settings else ""
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return mask_emails(text)

    def _scrub_key(self, value: Any) -> Any:
        """Remove the API key from structured API data kept on exceptions (code, detail, errors …)."""
        key = self._settings.api_key if self._settings else ""
        if not key or len(key) < 4:
            return value
        if isinstance(value, str):
            return value.replace(key, "***")
        if isinstance(value, list):
            return [self._scrub_key(v) for v in value]
        if isinstance(value, dict):
            return {k: self._scrub_key(v) for k, v in value.items()}
        return value

    def _display_path(self, endpoint: str, params: Mapping[str, Any] | None) -> str:
        """Path plus query for messages and logs, with every email masked."""
        path = endpoint.strip("/")
        if params:
            query = "&".join(f"{k}={v}" for k, v in params.items() if v is not None)
            if query:
                path += "?" + query
        return mask_emails(path)

    def _general_limiter(self) -> SpacingLimiter:
        return get_limiter(self.api_url, "requests", self.settings.requests_per_second, 1.0, self.clock)

    def _bulk_limiter(self, contacts: int) -> SpacingLimiter:
        if contacts == 1:
            return get_limiter(self.api_url, "single_imports", self.settings.single_imports_per_minute,
                               60.0, self.clock)
        return get_limiter(self.api_url, "bulk_imports", self.settings.bulk_imports_per_minute, 60.0,
                           self.clock)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with full jitter (attempt 1 -> up to 1 s, then 2, 4 … 30)."""
        return self._rng.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> JSONDict:
        """Send one API call (endpoint relative to ``/api/3``, e.g. ``"lists"``) and return its JSON.

        Rate limited, retried per the module's policy, and mapped onto the exception hierarchy.
        """
        body = None if json is None else encode_body(json)
        return self._request(method, endpoint, params=params, data=body)

    def _request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        max_attempts: int | None = None,
        timeout: tuple[float, float] | None = None,
        bulk_limiter: SpacingLimiter | None = None,
    ) -> JSONDict:
        method = method.upper()
        endpoint = endpoint.strip().strip("/")
        if endpoint.lower().startswith("api/3/"):
            endpoint = endpoint[len("api/3/"):]
        session = self.get_conn()  # validates the URL (plain http refused) before anything is sent
        url = f"{self.api_url}{API_PREFIX}/{endpoint}"
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        shown = self._display_path(endpoint, clean_params)
        count_key = endpoint_key(method, endpoint)
        attempts = max_attempts or self.max_attempts
        timeouts: tuple[float, float] = timeout or (CONNECT_TIMEOUT, self.settings.timeout)
        general = self._general_limiter()

        wait: float | None
        for attempt in range(1, attempts + 1):
            held = [general] if bulk_limiter is None else [bulk_limiter, general]
            for limiter in held:
                limiter.acquire(self.sleep)
            with self._counts_lock:
                self.request_counts[count_key] += 1
            try:
                try:
                    response = session.request(method, url, params=clean_params or None, data=data,
                                               timeout=timeouts, allow_redirects=False)
                finally:
                    for limiter in held:
                        limiter.release()
            except requests.exceptions.SSLError as exc:  # a certificate problem won't fix itself
                raise self._connection_error(method, shown, exc, attempt, timeouts) from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                if attempt >= attempts:
                    raise self._connection_error(method, shown, exc, attempt, timeouts) from None
                wait = self._backoff(attempt)
                self._log_retry(method, shown, type(exc).__name__, wait, attempt, attempts)
                self.sleep(wait)
                continue

            status = response.status_code
            if 200 <= status < 300:
                return self._success_body(method, shown, response)
            answer = describe_answer(response)

            wait = None
            if status in _RETRY_AFTER_STATUSES:
                retry_after = _retry_after_seconds(response)
                wait = self._backoff(attempt) if retry_after is None else min(retry_after, RETRY_AFTER_CAP)
                if attempt < attempts:
                    general.pause(wait)  # the budget is per account: hold every thread back
            elif status in _RETRY_SERVER_STATUSES:
                wait = self._backoff(attempt)
            elif status == 400 and bulk_limiter is not None and _is_bulk_rate_limited(answer):
                retry_after = _retry_after_seconds(response)
                wait = min(retry_after, RETRY_AFTER_CAP) if retry_after is not None else BULK_RATE_LIMIT_WAIT
                if attempt < attempts:
                    bulk_limiter.pause(wait)
            if wait is None or attempt >= attempts:
                raise self._error_for(method, shown, answer, attempt=attempt,
                                      exhausted=wait is not None, bulk=bulk_limiter is not None)
            self._log_retry(method, shown, f"HTTP {status}", wait, attempt, attempts)
            self.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _log_retry(self, method: str, shown: str, what: str, wait: float, attempt: int,
                   attempts: int) -> None:
        self.log.warning("ActiveCampaign %s %s: %s; retrying in %.1f s (attempt %d of %d)",
                         method, shown, what, wait, attempt + 1, attempts)

    def _success_body(self, method: str, shown: str, response: requests.Response) -> JSONDict:
        if not (response.content or b"").strip():
            return {}  # e.g. DELETE answers, or the empty 200s seen in the wild
        answer = describe_answer(response)
        if isinstance(answer.body, dict):
            return answer.body
        raise ActiveCampaignUnexpectedAnswerError(
            self._scrub(f"ActiveCampaign {method} {API_PREFIX}/{shown} answered HTTP {answer.status} with "
                        f"{'JSON that is not an object: ' if answer.is_json else ''}{answer.words}"
                        f" — is {self.api_url} the API URL from Settings > Developer?"),
            method=method, path=shown, status=answer.status, api_message=self._scrub(answer.words),
        )

    def _connection_error(self, method: str, shown: str, exc: Exception, attempts: int,
                          timeout: tuple[float, float]) -> ActiveCampaignError:
        host = self.host
        text = str(exc).lower()
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            reason = f"timed out connecting (after {timeout[0]:g} s)"
        elif isinstance(exc, requests.exceptions.Timeout):
            reason = f"timed out: no answer within {timeout[1]:g} s"
        elif isinstance(exc, requests.exceptions.SSLError):
            reason = "TLS/SSL handshake failed (certificate or protocol problem)"
        elif any(s in text for s in ("name or service not known", "nodename nor servname", "name resolution",
                                     "getaddrinfo", "no address associated", "temporary failure in name")):
            reason = "DNS lookup failed (is the host name right?)"
        elif "refused" in text:
            reason = "connection refused"
        elif "reset" in text or "aborted" in text or "remotedisconnected" in text.replace(" ", ""):
            reason = "connection reset by the server"
        else:
            reason = f"connection failed ({type(exc).__name__})"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ActiveCampaignConnectionError(
            self._scrub(f"ActiveCampaign {method} {API_PREFIX}/{shown}: cannot reach host {host}{tries}: "
                        f"{reason}"),
            method=method, path=shown,
        )

    def _error_for(self, method: str, shown: str, answer: Answer, *, attempt: int, exhausted: bool,
                   bulk: bool) -> ActiveCampaignError:
        """Map an error answer onto the hierarchy; the message carries the API's own words."""
        status = answer.status
        words = self._scrub(answer.words)
        where = f"ActiveCampaign {method} {API_PREFIX}/{shown}"
        after = f" after {attempt} attempts" if exhausted and attempt > 1 else ""
        common: dict[str, Any] = {"method": method, "path": shown, "status": status,
                                  "api_message": self._scrub(answer.message or answer.detail or answer.words)}
        if status in (401, 403):
            if answer.message and answer.message.lower().startswith("no result found"):
                return ActiveCampaignNotFoundError(f"{where} -> HTTP {status} (not found): {words}", **common)
            return ActiveCampaignAuthError(
                f"{where} -> HTTP {status}: API key rejected, or its user lacks the permission: {words}",
                **common)
        if status == 402:
            return ActiveCampaignAccountBlockedError(
                f"{where} -> HTTP 402: account blocked (usually a payment issue): {words}", **common)
        if status == 404:
            return ActiveCampaignNotFoundError(f"{where} -> HTTP 404 (not found): {words}", **common)
        if status == 429 or (status == 400 and exhausted and bulk):
            return ActiveCampaignRateLimitError(
                f"{where} -> HTTP {status}: still rate limited{after}: {words}", **common)
        if status >= 500:
            return ActiveCampaignServerError(f"{where} -> HTTP {status}: ActiveCampaign server error{after}: "
                                             f"{words}", **common)
        if 300 <= status < 400:
            location = self._scrub(answer.location or "")
            return ActiveCampaignUnexpectedAnswerError(
                f"{where} -> HTTP {status}: redirected{' to ' + location if location else ''}; not followed "
                f"(the API key would go along). Set the API URL exactly as Settings > Developer shows it.",
                **common)
        if 400 <= status < 500:
            validation = {"code": self._scrub_key(answer.code), "detail": self._scrub_key(answer.detail),
                          "errors": self._scrub_key(answer.errors)}
            if bulk and any(isinstance(r, dict) for r in answer.failure_reasons):
                return ActiveCampaignBulkImportRejectedError(
                    f"{where} -> HTTP {status}: import refused, nothing queued: {words}",
                    failure_reasons=self._scrub_key(answer.failure_reasons), **validation, **common)
            return ActiveCampaignValidationError(f"{where} -> HTTP {status} (request refused): {words}",
                                                 **validation, **common)
        return ActiveCampaignError(f"{where} -> HTTP {status}: {words}", **common)

    # ---- connection test ---------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Exactly one ``GET users/me``, no retries, short timeout. Never raises."""
        try:
            api_url = self.api_url
        except ActiveCampaignError as exc:
            return False, str(exc)
        except Exception as exc:  # e.g. the connection id doesn't exist
            return False, (f"Cannot read the connection {self.activecampaign_conn_id!r}: "
                           f"{self._scrub(str(exc))}")
        not_an_api = (f"the URL {api_url} does not answer like an ActiveCampaign API; copy the API URL "
                      "from Settings > Developer")
        try:
            body = self._request("GET", "users/me", max_attempts=1, timeout=TEST_CONNECTION_TIMEOUT)
        except ActiveCampaignAccountBlockedError as exc:
            return False, f"account blocked: ActiveCampaign answered HTTP 402 ({exc.api_message})"
        except ActiveCampaignAuthError as exc:
            return False, (f"API key rejected by {api_url} (HTTP {exc.status}); check the key under "
                           f"Settings > Developer ({exc.api_message})")
        except (ActiveCampaignNotFoundError, ActiveCampaignUnexpectedAnswerError) as exc:
            return False, f"{not_an_api} (HTTP {exc.status}: {exc.api_message})"
        except ActiveCampaignConnectionError as exc:
            return False, str(exc).split(": ", 1)[-1]  # "cannot reach host …: reason"
        except ActiveCampaignRateLimitError as exc:
            return False, f"rate limited by ActiveCampaign (HTTP {exc.status}); try again in a minute"
        except ActiveCampaignServerError as exc:
            return False, f"ActiveCampaign server error at {api_url} (HTTP {exc.status}: {exc.api_message})"
        except ActiveCampaignError as exc:
            return False, str(exc)
        except Exception as exc:  # never raise from a connection test
            return False, f"unexpected error: {self._scrub(str(exc))}"
        user = body.get("user")
        if not isinstance(user, dict):
            return False, f"{not_an_api} (GET /api/3/users/me answered without a user)"
        who = str(user.get("username") or "").strip()
        address = str(user.get("email") or "").strip()
        # The user's own login is fine to show, but the message also lands in logs: mask the email.
        masked = mask_email(address) if address else ""
        shown = f"{who} ({masked})" if who and masked else (who or masked or f"user id {user.get('id')}")
        message = f"Connected to {api_url} as {shown}"
        self.log.info("%s", message)
        self.last_user = {"id": user.get("id"), "username": who or None}
        return True, message

    # ---- API methods -------------------------------------------------------------------------------

    def get_current_user(self) -> JSONDict:
        """``GET users/me`` -> the ``user`` object."""
        return self.request("GET", "users/me").get("user") or {}

    def iter_collection(self, endpoint: str, key: str, params: Mapping[str, Any] | None = None, *,
                        page_size: int = PAGE_SIZE) -> Iterator[JSONDict]:
        """Every item of an offset-paged collection.

        Stops on a short page or once ``meta.total`` items were read; raises if the server hands back
        the same page again (an ignored ``offset`` would otherwise loop forever).
        """
        page_size = max(1, min(int(page_size), PAGE_SIZE))
        offset = 0
        previous_ids: list[Any] | None = None
        while True:
            query = {**(params or {}), "limit": page_size, "offset": offset}
            body = self.request("GET", endpoint, params=query)
            items = body.get(key) or []
            ids = [item.get("id") for item in items if isinstance(item, dict)]
            if previous_ids is not None and items and ids == previous_ids:
                raise ActiveCampaignUnexpectedAnswerError(
                    f"ActiveCampaign GET {API_PREFIX}/{self._display_path(endpoint, query)} returned the "
                    "same page again: the server ignored `offset`; stopped to avoid an endless loop",
                    method="GET", path=endpoint)
            previous_ids = ids
            yield from items
            offset += len(items)
            total = _int_or_none((body.get("meta") or {}).get("total"))
            if len(items) < page_size or (total is not None and offset >= total):
                return

    def iter_contacts(self, params: Mapping[str, Any] | None = None, *,
                      page_size: int = PAGE_SIZE) -> Iterator[JSONDict]:
        """Every contact matching ``params``, paged by id (``orders[id]=ASC`` + ``id_greater``).

        The docs recommend this over ``offset`` for big accounts. Raises if the cursor doesn't advance.
        """
        page_size = max(1, min(int(page_size), PAGE_SIZE))
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if k not in ("offset", "limit")}
        last_id = _int_or_none(query.pop("id_greater", None))
        while True:
            page = {**query, "orders[id]": "ASC", "limit": page_size}
            if last_id is not None:
                page["id_greater"] = last_id
            body = self.request("GET", "contacts", params=page)
            contacts = body.get("contacts") or []
            ids = [_int_or_none(c.get("id")) for c in contacts]
            if any(i is None for i in ids) or (last_id is not None and ids and min(ids) <= last_id):
                raise ActiveCampaignUnexpectedAnswerError(
                    f"ActiveCampaign GET {API_PREFIX}/contacts paging by id did not advance past id "
                    f"{last_id} (the server ignored `id_greater` or returned contacts without ids); stopped",
                    method="GET", path="contacts")
            yield from contacts
            total = _int_or_none((body.get("meta") or {}).get("total"))
            if len(contacts) < page_size or (total is not None and total <= len(contacts)):
                return
            last_id = max(ids)

    def iter_list_contacts(self, list_id: Any, status: int | None = 1) -> Iterator[JSONDict]:
        """Contacts of a list with a given status (1 active, 2 unsubscribed, …; None for any)."""
        return self.iter_contacts({"listid": list_id, "status": status})

    def find_list_by_name(self, name: str) -> JSONDict | None:
        """The list named exactly ``name`` (``filters[name]`` may match partially; compared here)."""
        for item in self.iter_collection("lists", "lists", {"filters[name]": name}):
            if item.get("name") == name:
                return item
        return None

    def create_list(self, name: str, *, sender_url: str, sender_reminder: str, stringid: str | None = None,
                    **fields: Any) -> JSONDict:
        """``POST lists``. If refused (4xx), look the name up again: an earlier, lost attempt or a
        concurrent run may have created it."""
        payload = {"name": name, "stringid": stringid or derive_stringid(name), "sender_url": sender_url,
                   "sender_reminder": sender_reminder, **fields}
        try:
            return self.request("POST", "lists", json={"list": payload})["list"]
        except ActiveCampaignError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            try:
                existing = self.find_list_by_name(name)
            except ActiveCampaignError:
                existing = None
            if existing is None:
                raise
            self.log.info("Creating list %r was refused (HTTP %s) but it exists (id %s); using it.",
                          name, exc.status, existing.get("id"))
            return existing

    def find_user_group(self, name: str) -> JSONDict | None:
        """The user group titled exactly ``name``."""
        for group in self.iter_collection("groups", "groups"):
            if group.get("title") == name:
                return group
        return None

    def add_list_to_group(self, list_id: Any, group_id: Any) -> JSONDict:
        """``POST listGroups``: lists created through the API need a group to show in the UI."""
        body = self.request("POST", "listGroups",
                            json={"listGroup": {"listid": _as_id(list_id), "groupid": _as_id(group_id)}})
        return body.get("listGroup") or body

    def find_contact_by_email(self, email: str) -> JSONDict | None:
        """``GET contacts?email=``, verified: the API silently ignores filters it doesn't apply."""
        wanted = email.strip().lower()
        body = self.request("GET", "contacts", params={"email": email.strip()})
        for contact in body.get("contacts") or []:
            if str(contact.get("email") or "").strip().lower() == wanted:
                return contact
        return None

    def sync_contact(self, contact: Mapping[str, Any]) -> JSONDict:
        """``POST contact/sync`` (upsert by email) -> the ``contact`` object."""
        return self.request("POST", "contact/sync", json={"contact": dict(contact)})["contact"]

    def set_list_status(self, contact_id: Any, list_id: Any, status: Any, *,
                        sourceid: Any = None) -> JSONDict:
        """``POST contactLists`` (status 1 subscribes, 2 unsubscribes) -> the ``contactList`` object."""
        payload: dict[str, Any] = {"list": _as_id(list_id), "contact": _as_id(contact_id),
                                   "status": _as_id(str(status))}
        if sourceid is not None:
            payload["sourceid"] = _as_id(str(sourceid))
        body = self.request("POST", "contactLists", json={"contactList": payload})
        return body.get("contactList") or body

    def get_contact_lists(self, contact_id: Any) -> list[JSONDict]:
        """``GET contacts/{id}/contactLists``: one contact's memberships."""
        return list(self.request("GET", f"contacts/{contact_id}/contactLists").get("contactLists") or [])

    def get_custom_fields(self) -> dict[str, JSONDict]:
        """Every contact custom field, keyed by upper-cased perstag."""
        return {str(f.get("perstag") or "").upper(): f for f in self.iter_collection("fields", "fields")}

    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text") -> JSONDict:
        """``POST fields`` then ``POST fieldRels`` with relid 0 (else the field is hidden in the UI)."""
        body = self.request("POST", "fields", json={
            "field": {"type": field_type, "title": title, "perstag": perstag, "visible": 1}})
        created = body.get("field")
        if not isinstance(created, dict):  # the docs' example answers with a `fields` list
            candidates = [f for f in body.get("fields") or [] if isinstance(f, dict)]
            matching = [f for f in candidates if str(f.get("perstag") or "").upper() == perstag.upper()
                        or f.get("title") == title]
            created = (matching or candidates or [None])[0]
        if not isinstance(created, dict) or created.get("id") is None:
            raise ActiveCampaignUnexpectedAnswerError(
                f"ActiveCampaign POST {API_PREFIX}/fields answered without the created field", method="POST",
                path="fields", status=200)
        self.request("POST", "fieldRels", json={"fieldRel": {"field": _as_id(created["id"]), "relid": 0}})
        return created

    def find_tag(self, name: str) -> JSONDict | None:
        """The tag named ``name``, case-insensitively (tag names are unique that way; ``search`` is a
        contains match)."""
        wanted = name.strip().casefold()
        for tag in self.iter_collection("tags", "tags", {"search": name.strip()}):
            if str(tag.get("tag") or "").strip().casefold() == wanted:
                return tag
        return None

    def create_tag(self, name: str) -> JSONDict:
        """``POST tags`` (a contact tag). A refusal because it exists falls back to the existing tag."""
        try:
            return self.request("POST", "tags", json={"tag": {"tag": name, "tagType": "contact",
                                                              "description": ""}})["tag"]
        except ActiveCampaignValidationError:
            existing = self.find_tag(name)
            if existing is None:
                raise
            return existing

    def bulk_import(self, contacts: list[dict[str, Any]], *,
                    callback: Mapping[str, Any] | None = None) -> JSONDict:
        """ONE ``POST import/bulk_import``; returns its answer (``batchId``, ``queued_contacts`` …).

        Refuses locally (ValueError) what the API would refuse for size. Paced by the multi-contact or
        single-contact importer limiter on top of the general one.
        """
        contacts = list(contacts)
        if not contacts:
            raise ValueError("bulk_import needs at least one contact")
        if len(contacts) > MAX_IMPORT_CONTACTS:
            raise ValueError(f"bulk_import takes at most {MAX_IMPORT_CONTACTS} contacts per request, "
                             f"got {len(contacts)}; use bulk_import_all()")
        payload: dict[str, Any] = {"contacts": contacts}
        if callback:
            payload["callback"] = dict(callback)
        data = encode_body(payload)
        if len(data) > MAX_IMPORT_BYTES:
            raise ValueError(f"bulk_import body is {len(data)} bytes; ActiveCampaign accepts at most "
                             f"{MAX_IMPORT_BYTES}. Use bulk_import_all(), which splits by size")
        answer = self._request("POST", _BULK_IMPORT_ENDPOINT, data=data,
                               bulk_limiter=self._bulk_limiter(len(contacts)))
        if not (answer.get("batchId") or answer.get("batchid")):
            raise ActiveCampaignUnexpectedAnswerError(
                self._scrub(f"ActiveCampaign POST {API_PREFIX}/{_BULK_IMPORT_ENDPOINT} answered without a "
                            f"batchId: {_one_line(json.dumps(answer, ensure_ascii=False))}"),
                method="POST", path=_BULK_IMPORT_ENDPOINT, status=200,
                api_message=self._scrub(str(answer.get("message") or "")))
        return answer

    def bulk_import_all(self, contacts: Iterable[dict[str, Any]], *,
                        callback: Mapping[str, Any] | None = None) -> list[JSONDict]:
        """Split into requests of at most 250 contacts / 399,999 bytes and import each."""
        extra = {"callback": dict(callback)} if callback else None
        return [self.bulk_import(batch, callback=callback)
                for batch in split_import_batches(contacts, extra=extra)]

    def get_import_status(self, batch_id: str) -> JSONDict:
        """``GET import/info?batchId=``: ``status`` (false right after the import, then waiting …
        completed), ``success`` (new contact ids) and ``failure`` (emails)."""
        return self.request("GET", "import/info", params={"batchId": batch_id})


__all__ = [
    "ActiveCampaignHook",
    "Answer",
    "ConnectionSettings",
    "SpacingLimiter",
    "derive_stringid",
    "derive_web_url",
    "describe_answer",
    "endpoint_key",
    "get_limiter",
    "mask_email",
    "mask_emails",
    "normalize_api_url",
]
