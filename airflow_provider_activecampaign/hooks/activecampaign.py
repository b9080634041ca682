"""ActiveCampaign API v3 hook: the session, auth, limits and retries around every call, and the API methods.

Facts this relies on (see the project's research notes): the API answers under ``<API URL>/api/3``,
authenticates with an ``Api-Token`` header, allows 5 requests/second per *account* (429 with
``Retry-After`` in seconds, sometimes 503), and its bulk importer allows 100 multi-contact / 20
single-contact requests per minute, signalling excess as HTTP 400 "Rate limit exceeded.".

The concerns around the hook live next to it: connection settings in :mod:`.settings`, rate limiters in
:mod:`.limits`, answer parsing and error mapping in :mod:`.answers`. Their public names are re-exported
here, where earlier releases defined them.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook

from airflow_provider_activecampaign import CONNECTION_OPTIONS, __version__
from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignAccountBlockedError,
    ActiveCampaignAuthError,
    ActiveCampaignConfigurationError,
    ActiveCampaignConnectionError,
    ActiveCampaignError,
    ActiveCampaignNotFoundError,
    ActiveCampaignRateLimitError,
    ActiveCampaignServerError,
    ActiveCampaignUnexpectedAnswerError,
)
from airflow_provider_activecampaign.hooks.answers import (
    Answer,
    Scrubber,
    connection_error,
    describe_answer,
    error_for,
    is_bulk_rate_limited,
    one_line,
    retry_after_seconds,
)
from airflow_provider_activecampaign.hooks.limits import LIMITER_MARGIN, SpacingLimiter, get_limiter
from airflow_provider_activecampaign.hooks.resources import ActiveCampaignResources, derive_stringid
from airflow_provider_activecampaign.hooks.settings import (
    API_PREFIX,
    ConnectionSettings,
    derive_web_url,
    normalize_api_url,
)
from airflow_provider_activecampaign.importer import (
    MAX_IMPORT_BYTES,
    MAX_IMPORT_CONTACTS,
    encode_body,
    split_import_batches,
)
from airflow_provider_activecampaign.masking import EmailMaskingFilter, mask_email, mask_emails

JSONDict = dict[str, Any]

CONNECT_TIMEOUT = 10.0
TEST_CONNECTION_TIMEOUT = (5.0, 10.0)

BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 60.0  # a single Retry-After wait is capped here; 30 still means 30 seconds
BULK_RATE_LIMIT_WAIT = 60.0  # the importer's 400 "Rate limit exceeded." says "retry in a minute"
USER_AGENT = f"airflow-provider-activecampaign/{__version__} (+requests/{importlib.metadata.version('requests')})"

_RETRY_SERVER_STATUSES = frozenset({500, 502, 504})
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_BULK_IMPORT_ENDPOINT = "import/bulk_import"


_URLLIB3_LOGGER = "urllib3.connectionpool"  # its DEBUG lines carry full URLs, query strings included


def _mask_transport_logs() -> None:
    """Mask emails in urllib3's request lines (``GET /api/3/contacts?email=…``), once per process."""
    logger = logging.getLogger(_URLLIB3_LOGGER)
    if not any(isinstance(f, EmailMaskingFilter) for f in logger.filters):
        logger.addFilter(EmailMaskingFilter())


def endpoint_key(method: str, endpoint: str) -> str:
    """``GET contacts/12/contactLists`` -> ``GET contacts/{id}/contactLists`` (for request_counts)."""
    path = endpoint.split("?", 1)[0].strip("/")
    return f"{method.upper()} " + "/".join("{id}" if s.isdigit() else s for s in path.split("/"))


# --------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------

class ActiveCampaignHook(ActiveCampaignResources, BaseHook):
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
            _mask_transport_logs()
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
        return self._scrubber().text(text)

    def _scrubber(self) -> Scrubber:
        return Scrubber(self._settings.api_key if self._settings else "")

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
        """The importer's per-minute budget: a sliding window (no spacing), single-contact apart."""
        if contacts == 1:
            return get_limiter(self.api_url, "single_imports", self.settings.single_imports_per_minute,
                               60.0, self.clock, spaced=False)
        return get_limiter(self.api_url, "bulk_imports", self.settings.bulk_imports_per_minute, 60.0,
                           self.clock, spaced=False)

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
            held: list[SpacingLimiter] = []
            try:
                for limiter in [general] if bulk_limiter is None else [bulk_limiter, general]:
                    limiter.acquire(self.sleep)
                    held.append(limiter)
            except BaseException:  # interrupted waiting for the second: the first's slot must not leak
                for limiter in held:
                    limiter.release()
                raise
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
                retry_after = retry_after_seconds(response)
                wait = self._backoff(attempt) if retry_after is None else min(retry_after, RETRY_AFTER_CAP)
                if attempt < attempts:
                    general.pause(wait)  # the budget is per account: hold every thread back
            elif status in _RETRY_SERVER_STATUSES:
                wait = self._backoff(attempt)
            elif status == 400 and bulk_limiter is not None and is_bulk_rate_limited(answer):
                retry_after = retry_after_seconds(response)
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
        return connection_error(method, shown, exc, host=self.host, attempts=attempts, timeout=timeout,
                                scrub=self._scrubber())

    def _error_for(self, method: str, shown: str, answer: Answer, *, attempt: int, exhausted: bool,
                   bulk: bool) -> ActiveCampaignError:
        return error_for(method, shown, answer, attempt=attempt, exhausted=exhausted, bulk=bulk,
                         scrub=self._scrubber())

    # ---- connection test ---------------------------------------------------------------------------

    def test_connection(self, *, retry_transient: bool = False) -> tuple[bool, str]:
        """``GET users/me`` and a plain verdict. Never raises.

        :param retry_transient: retry what passes (429/503 with Retry-After, other 5xx, dropped
            connections and timeouts) with the hook's usual bounded policy and timeouts, as any other
            call does; for a task, where a busy shared account must not fail the run. False (the UI's
            Test button, ``airflow connections test``): exactly one request, short timeout, no retry.
        """
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
            body = (self._request("GET", "users/me") if retry_transient
                    else self._request("GET", "users/me", max_attempts=1, timeout=TEST_CONNECTION_TIMEOUT))
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
            tried = " and kept answering so through the retries" if retry_transient else ""
            return False, f"rate limited by ActiveCampaign (HTTP {exc.status}){tried}; try again in a minute"
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
                            f"batchId: {one_line(json.dumps(answer, ensure_ascii=False))}"),
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
    "LIMITER_MARGIN",
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
