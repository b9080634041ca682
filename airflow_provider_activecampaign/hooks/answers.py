"""What ActiveCampaign answered, and what it means: answer parsing, error mapping, retry timing.

Error bodies come in several shapes (JSON:API-ish ``errors[]``, bare ``message``, the importer's
``failureReasons``, empty bodies, Cloudflare HTML), all parsed by :func:`describe_answer`. Every text
that goes into an exception passes a :class:`Scrubber` (no API key, no email address).
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from typing import Any

import requests

from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignAccountBlockedError,
    ActiveCampaignAuthError,
    ActiveCampaignBulkImportRejectedError,
    ActiveCampaignConnectionError,
    ActiveCampaignError,
    ActiveCampaignNotFoundError,
    ActiveCampaignRateLimitError,
    ActiveCampaignServerError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)
from airflow_provider_activecampaign.hooks.settings import API_PREFIX
from airflow_provider_activecampaign.masking import mask_emails

__all__ = [
    "Answer",
    "Scrubber",
    "connection_error",
    "describe_answer",
    "error_for",
    "is_bulk_rate_limited",
    "one_line",
    "retry_after_seconds",
]

_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


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


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe_error_item(item: Any) -> str:
    if not isinstance(item, dict):
        return one_line(str(item))
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
    return text or one_line(json.dumps(item, ensure_ascii=False))


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
                f" (title: {one_line(title.group(1), 120)!r})" if title else ""
            )
        else:
            answer.words = f"non-JSON answer: {one_line(text, 200)!r}"
        return answer
    answer.is_json, answer.body = True, body
    if not isinstance(body, dict):
        answer.words = one_line(json.dumps(body, ensure_ascii=False))
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
        parts.append(one_line(json.dumps(errors, ensure_ascii=False)))
    if isinstance(body.get("message"), str) and body["message"].strip():
        answer.message = body["message"].strip()
        parts.append(answer.message)
    reasons = body.get("failureReasons")
    if isinstance(reasons, list) and reasons:
        answer.failure_reasons = reasons
        shown = "; ".join(_describe_failure_reason(r) for r in reasons[:3])
        parts.append(shown + (f" (+{len(reasons) - 3} more)" if len(reasons) > 3 else ""))
    if not parts:
        parts.append("empty JSON object {}" if not body else one_line(json.dumps(body, ensure_ascii=False)))
    answer.words = one_line(" — ".join(parts), 500)
    return answer


def is_bulk_rate_limited(answer: Answer) -> bool:
    """The importer signals its per-minute limit as HTTP 400, not 429."""
    if answer.message and answer.message.lower().startswith("rate limit exceeded"):
        return True
    return any(
        isinstance(r, str) and ("rate limit" in r.lower() or "requested per minute" in r.lower())
        for r in answer.failure_reasons
    )


def retry_after_seconds(response: requests.Response, now: Callable[[], float] = time.time) -> float | None:
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


class Scrubber:
    """Takes the API key (defence in depth: it is never put in messages) and every email out of text."""

    def __init__(self, api_key: str = "") -> None:
        # A key shorter than 4 characters would blank out ordinary words; real keys are 72 characters.
        self._key = api_key if len(api_key) >= 4 else ""

    def text(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return mask_emails(text)

    def data(self, value: Any) -> Any:
        """Structured API data kept on exceptions (code, detail, errors …) with the key removed. Emails
        stay: the engine reads them to know which contact was refused; messages never include them."""
        if not self._key:
            return value
        if isinstance(value, str):
            return value.replace(self._key, "***")
        if isinstance(value, list):
            return [self.data(v) for v in value]
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        return value


def connection_error(method: str, shown: str, exc: Exception, *, host: str, attempts: int,
                     timeout: tuple[float, float], scrub: Scrubber) -> ActiveCampaignError:
    """A dropped connection, timeout or DNS failure, in words a user can act on."""
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
        scrub.text(f"ActiveCampaign {method} {API_PREFIX}/{shown}: cannot reach host {host}{tries}: {reason}"),
        method=method, path=shown,
    )


def error_for(method: str, shown: str, answer: Answer, *, attempt: int, exhausted: bool, bulk: bool,
              scrub: Scrubber) -> ActiveCampaignError:
    """Map an error answer onto the hierarchy; the message carries the API's own words."""
    status = answer.status
    words = scrub.text(answer.words)
    where = f"ActiveCampaign {method} {API_PREFIX}/{shown}"
    after = f" after {attempt} attempts" if exhausted and attempt > 1 else ""
    common: dict[str, Any] = {"method": method, "path": shown, "status": status,
                              "api_message": scrub.text(answer.message or answer.detail or answer.words)}
    if status in (401, 403):
        if answer.message and answer.message.lower().startswith("no result found"):
            return ActiveCampaignNotFoundError(f"{where} -> HTTP {status} (not found): {words}", **common)
        return ActiveCampaignAuthError(
            f"{where} -> HTTP {status}: API key rejected, or its user lacks the permission: {words}", **common)
    if status == 402:
        return ActiveCampaignAccountBlockedError(
            f"{where} -> HTTP 402: account blocked (usually a payment issue): {words}", **common)
    if status == 404:
        return ActiveCampaignNotFoundError(f"{where} -> HTTP 404 (not found): {words}", **common)
    if status == 429 or (status == 400 and exhausted and bulk):
        return ActiveCampaignRateLimitError(f"{where} -> HTTP {status}: still rate limited{after}: {words}",
                                            **common)
    if status >= 500:
        return ActiveCampaignServerError(
            f"{where} -> HTTP {status}: ActiveCampaign server error{after}: {words}", **common)
    if 300 <= status < 400:
        location = scrub.text(answer.location or "")
        return ActiveCampaignUnexpectedAnswerError(
            f"{where} -> HTTP {status}: redirected{' to ' + location if location else ''}; not followed "
            f"(the API key would go along). Set the API URL exactly as Settings > Developer shows it.",
            **common)
    if 400 <= status < 500:
        # code and detail are display text: masked. errors/failureReasons stay structured (key removed):
        # the engine reads which contact was refused from them, and never puts them in a message.
        validation = {"code": scrub.text(answer.code) if answer.code else None,
                      "detail": scrub.text(answer.detail) if answer.detail else None,
                      "errors": scrub.data(answer.errors)}
        if bulk and any(isinstance(r, dict) for r in answer.failure_reasons):
            return ActiveCampaignBulkImportRejectedError(
                f"{where} -> HTTP {status}: import refused, nothing queued: {words}",
                failure_reasons=scrub.data(answer.failure_reasons), **validation, **common)
        return ActiveCampaignValidationError(f"{where} -> HTTP {status} (request refused): {words}",
                                             **validation, **common)
    return ActiveCampaignError(f"{where} -> HTTP {status}: {words}", **common)
