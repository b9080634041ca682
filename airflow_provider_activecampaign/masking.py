"""Email masking for logs, errors and XCom: no full address ever leaves the process in text.

Plain Python, no Airflow imports: the hook and the audience engine both use it.

:func:`mask_emails` finds an address in every form it takes in a log line or an exception text:
ASCII or not (``jöhn@exämple.com``, ``用户@例子.公司``, decomposed accents), URL-encoded in a query
string (``j%2Bk%40x.com``, fully percent-encoded UTF-8, double-encoded ``%2540``), escaped in a repr
or in JSON (``j\\xc3\\xb6hn@…``, ``\\u00f6``), quoted or in angle brackets. It looks for the ``@`` (or
its encodings) first, then takes the address around it, so text without one costs a single scan.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, unquote

__all__ = ["EmailMaskingFilter", "mask_email", "mask_emails"]

_TLD_SHAPE = re.compile(r"[a-z]{2,10}|xn--[a-z0-9-]{1,20}", re.IGNORECASE)

# "@" and the ways it is written in URLs (%40, double-encoded %2540), reprs and JSON (\x40, \u0040),
# and the full-width form.
_AT = r"(?:@|\uff20|%(?:25)?40|\\x40|\\u0040)"
_AT_RE = re.compile(_AT, re.IGNORECASE)
# An escape that stands for one character or byte (never an "@": those are at-signs).
_ESCAPE = r"(?:%(?!(?:25)?40)[0-9A-Fa-f]{2}|\\(?!x40|u0040)(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}))"
# Characters that end an address: whitespace, ASCII punctuation (kept: - _ and, in local parts,
# . + ' ! # $ * ^ ~), Latin-1 symbols (« » ¿ …), the General Punctuation block (quotes, dashes,
# zero-width spaces), CJK and full-width punctuation. Everything else, any script with its combining
# marks, is part of an address.
_STOP = (r"\s!-,./:-@\[-^`{-~"
         r"\u00a0-\u00a9\u00ab-\u00b4\u00b6-\u00b9\u00bb-\u00bf\u00d7\u00f7"
         r"\u2000-\u206f\u3000-\u303f\ufe30-\ufe4f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65")
_LOCAL_RUN = re.compile(rf"(?:[^{_STOP}]|[.+'!#$*^~]|{_ESCAPE})+", re.IGNORECASE)
# Labels separated by dots (also encoded, and the ideographic full stops IDNA accepts); at least two.
_LABEL_ESCAPE = _ESCAPE.replace("(?!(?:25)?40)", "(?!(?:25)?40|2[eE])")  # %2E separates labels
_LABEL = rf"(?:[^{_STOP}]|{_LABEL_ESCAPE})+"
_DOT = r"(?:\.|%2[eE]|\u3002|\uff0e|\uff61)"
_DOMAIN_RE = re.compile(rf"{_LABEL}(?:{_DOT}{_LABEL})+|\[[0-9A-Fa-f:.]+\]", re.IGNORECASE)  # or [127.0.0.1]
_LOCAL_WINDOW = 1_000  # an address's local part is at most 64 octets: 12 characters each, escaped
_BACKSLASH_ESCAPES = re.compile(r"(?:\\x[0-9A-Fa-f]{2})+|\\u[0-9A-Fa-f]{4}|\\U[0-9A-Fa-f]{8}")


def mask_email(email: str | None) -> str:
    """An address fit for logs: ``"j***@e***.com"``. Never returns the address itself.

    Keeps the first character before the ``@``, the first character of the domain and a plausible
    ending (``.com``); anything malformed is masked harder.
    """
    if email is None:
        return "<no email>"
    text = str(email).strip()
    if not text:
        return "<no email>"
    local, at, domain = text.rpartition("@")
    if not at:
        return f"{text[0]}***"
    head = f"{local[0]}***" if local else "***"
    if not domain:
        return f"{head}@***"
    name, dot, ending = domain.rpartition(".")
    if dot and name and _TLD_SHAPE.fullmatch(ending):
        return f"{head}@{name[0]}***.{ending}"
    return f"{head}@{domain[0]}***"


def _unescape_backslashes(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token[1] == "x":  # a run of \xNN: the bytes of a UTF-8 repr
            raw = bytes(int(token[i + 2:i + 4], 16) for i in range(0, len(token), 4))
            return raw.decode("utf-8", errors="replace")
        return chr(int(token[2:], 16))

    return _BACKSLASH_ESCAPES.sub(one, text)


def _decoded(text: str) -> str:
    """The address an escaped match stands for: backslash escapes, then up to three rounds of %XX."""
    text = _unescape_backslashes(text)
    for _ in range(3):
        if "%" not in text:
            break
        text = unquote(text, errors="replace")
    return text.replace("\uff20", "@").replace("\u3002", ".").replace("\uff0e", ".").replace("\uff61", ".")


def _mask_match(local: str, at: str, domain: str) -> str:
    if at == "@" and not any(c in local or c in domain for c in "%\\"):
        return mask_email(f"{local}@{domain}")  # the common case: nothing to decode
    masked = mask_email(_decoded(local) + "@" + _decoded(domain))
    # Keep the form it was written in, so a URL still reads as a URL (j***%40x***.com).
    if at.startswith("\\"):
        return "".join(c if c.isascii() else f"\\u{ord(c):04x}" for c in masked).replace("@", at)
    if at.startswith("%"):
        return quote(masked, safe="*@.").replace("@", at)
    return masked


def mask_emails(text: str) -> str:
    """Mask every email address in free text, in every form (see the module docstring)."""
    if not text or not _AT_RE.search(text):
        return text
    out: list[str] = []
    done = 0  # text[:done] is already in `out`
    for at_match in _AT_RE.finditer(text):
        at_start, at_end = at_match.span()
        if at_start < done:
            continue  # inside an address already masked
        domain = _DOMAIN_RE.match(text, at_end)
        if domain is None:
            continue
        window_start = max(done, at_start - _LOCAL_WINDOW)
        local = None
        for run in _LOCAL_RUN.finditer(text, window_start, at_start):
            if run.end() == at_start:
                local = run
        if local is None:
            continue
        start = local.start()
        # A quote or dot that opens the run is punctuation around the address, not part of it.
        while start < at_start and text[start] in "'.":
            start += 1
        if start == at_start:
            continue
        out.append(text[done:start])
        out.append(_mask_match(text[start:at_start], at_match.group(0), domain.group(0)))
        done = domain.end()
    out.append(text[done:])
    return "".join(out)


class EmailMaskingFilter(logging.Filter):
    """A logging filter that masks every email in a record's message (e.g. on urllib3's logger, whose
    DEBUG lines carry full request URLs such as ``/api/3/contacts?email=jane%40example.com``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's to report, not ours
            return True
        masked = mask_emails(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
