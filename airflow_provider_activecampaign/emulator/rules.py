"""ActiveCampaign's rules as the emulator applies them: email format, how emails match, personalization
tags, field types, exclusion match types, and how request values are read.

The emulator keeps its own copy of these rules: it is the check the product is held against.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

FIELD_TYPES = frozenset(
    {"dropdown", "hidden", "checkbox", "date", "text", "datetime", "textarea", "listbox", "radio", "number"}
)

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
