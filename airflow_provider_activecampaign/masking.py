"""Email masking for logs, errors and XCom: no full address ever leaves the process in text.

Plain Python, no Airflow imports: the hook and the audience engine both use it.
"""

from __future__ import annotations

import re

__all__ = ["mask_email", "mask_emails"]

_TLD_SHAPE = re.compile(r"[a-z]{2,10}|xn--[a-z0-9-]{1,20}", re.IGNORECASE)
# Practical local parts only: URL/query punctuation (/ ? = &) must not be swallowed into the match.
_EMAIL_RE = re.compile(r"[A-Za-z0-9._+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_ENCODED_EMAIL_RE = re.compile(r"[A-Za-z0-9._+'-]+%40[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


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


def mask_emails(text: str) -> str:
    """Mask every email address in free text, including URL-encoded ones (``a%40b.com``)."""
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    return _ENCODED_EMAIL_RE.sub(lambda m: mask_email(m.group(0).replace("%40", "@")).replace("@", "%40"), text)
