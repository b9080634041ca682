"""ActiveCampaign's rules as the emulator applies them: email format, how emails match, personalization
tags, field types, exclusion match types, and how request values are read.

The emulator keeps its own copy of these rules: it is the check the product is held against.
"""

from __future__ import annotations

import re
import time
from datetime import date, datetime
from typing import Any

FIELD_TYPES = frozenset(
    {"dropdown", "hidden", "checkbox", "date", "text", "datetime", "textarea", "listbox", "radio", "number"}
)
# Types whose values must be options created with POST fieldOption/bulk.
SINGLE_OPTION_TYPES = frozenset({"dropdown", "radio"})
MULTI_OPTION_TYPES = frozenset({"checkbox", "listbox"})
OPTION_TYPES = SINGLE_OPTION_TYPES | MULTI_OPTION_TYPES

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# ISO 8601 with a UTC offset (or Z): "2024-05-06T07:08:09-05:00", seconds and fractions optional.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})")


def multi_values(value: str) -> list[str] | None:
    """The options in ActiveCampaign's multi-value form ``||a||b||`` (also ``||a||``), or None."""
    if len(value) < 5 or not value.startswith("||") or not value.endswith("||"):
        return None
    parts = value[2:-2].split("||")
    return parts if all(parts) else None


def field_value_problem(field_type: str, value: str, options: set[str] | frozenset[str] = frozenset()) -> str | None:
    """Why ``value`` is not a valid value of a field of ``field_type`` with ``options``, or None.

    ActiveCampaign's formats: date ``YYYY-MM-DD``; datetime ISO 8601 with an offset; dropdown and
    radio one existing option; checkbox and listbox ``||a||b||`` of existing options. An empty value
    clears the field and is always accepted; other types take any text.
    """
    if value == "":
        return None
    if field_type == "date":
        if not _DATE.fullmatch(value) or not _valid_date(value):
            return f"{value!r} is not a date in the format YYYY-MM-DD"
    elif field_type == "datetime":
        if not _DATETIME.fullmatch(value) or not _valid_date(value[:10]):
            return f"{value!r} is not an ISO 8601 date and time with an offset"
    elif field_type in SINGLE_OPTION_TYPES:
        if value not in options:
            return f"{value!r} is not an option of this {field_type} field"
    elif field_type in MULTI_OPTION_TYPES:
        chosen = multi_values(value)
        if chosen is None:
            return f"{value!r} is not in the multi-value format ||a||b||"
        unknown = [v for v in chosen if v not in options]
        if unknown:
            return f"{unknown[0]!r} is not an option of this {field_type} field"
    return None


def parse_moment(text: str | None) -> float | None:
    """A date filter's value as epoch seconds: ``YYYY-MM-DD`` (midnight) or an ISO 8601 date and
    time; without an offset it is in the account's (the machine's) time zone. None if unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo else moment.astimezone().timestamp()


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


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


_iso_cache: tuple[int, str] = (0, "")


def now_iso() -> str:
    """Timestamp in ActiveCampaign's style ("2019-02-27T19:06:23-05:00"), formatted once a second
    (imports stamp tens of thousands of records)."""
    global _iso_cache
    second = int(time.time())
    if _iso_cache[0] != second:
        _iso_cache = (second, datetime.fromtimestamp(second).astimezone().isoformat(timespec="seconds"))
    return _iso_cache[1]


def db_stamp(epoch: float) -> str:
    """``created_timestamp`` style ("2019-02-27 19:06:23", account time zone)."""
    return datetime.fromtimestamp(int(epoch)).strftime("%Y-%m-%d %H:%M:%S") if epoch else ""


def as_text(value: Any) -> str:
    """Request values arrive as strings or numbers; ActiveCampaign treats them as text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def opt_text(value: Any) -> str | None:
    return None if value is None else as_text(value)


def list_ids(entries: Any) -> list[str]:
    """``[{"listid": 3}, ...]`` (or bare ids) to list id strings."""
    out: list[str] = []
    for entry in entries or []:
        value = entry.get("listid") if isinstance(entry, dict) else entry
        if value is not None and str(value) != "":
            out.append(str(value))
    return out
