"""Email normalization and the bulk importer's address rules, checked before anything is sent.

One address ActiveCampaign's bulk importer refuses makes it refuse the whole request (HTTP 400, up to 250
contacts, nothing queued). So every address is checked here first against the documented rules
("Why Bulk Imports Fail", developers.activecampaign.com/reference/bulk-import-contacts):

* the name before ``@`` has at least one character;
* no special characters ``" ( ) , : ; < > @ [ \\ ]`` (other than the single ``@``);
* ``@`` is required;
* the domain contains a ``.`` followed by at least two letters, with no special characters;

and these, which make an address undeliverable anyway:

* no whitespace, control or invisible (format) characters anywhere;
* no empty dot-separated parts (``a..b``, ``.a``, ``a.``) before or after the ``@``;
* domain parts made of letters, digits and inner hyphens, at most 63 characters each. Internationalized
  domains are accepted in Unicode form (non-ASCII letters, marks and digits) and in punycode
  (``xn--...``, also as the ending);
* at most 64 characters before the ``@`` and 254 in all.

Non-ASCII characters are accepted before the ``@`` (RFC 6531) unless they are whitespace, control or
invisible characters.

Speed: a plain ASCII address takes one precompiled expression that holds every rule, lengths included
(:func:`check_email` also normalizes it in the same step). Anything else (non-ASCII, upper case in the
domain, an invalid address) falls back to the full rules: a broader expression plus a per-character check
for non-ASCII addresses, and the rule-by-rule walk only to explain a failure. Both paths give the same
verdicts (tests/unit/test_emails.py checks that they agree).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["MAX_EMAIL_LENGTH", "check_email", "email_problem", "normalize_email", "plain_ascii_email"]

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_LENGTH = 64
MAX_LABEL_LENGTH = 63

SPECIAL_CHARACTERS = frozenset('"(),:;<>[\\]')  # '@' is handled by counting

# Characters stripped from both ends besides Python whitespace: zero-width space/joiners and the BOM,
# which spreadsheets and exports leave behind and which are invisible in every UI.
_INVISIBLE_EDGES = "\u200b\u200c\u200d\u2060\ufeff"

# Unicode categories never allowed anywhere: controls, format (invisible) characters, surrogates,
# private use, unassigned, and separators (spaces, line and paragraph separators).
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
# Non-ASCII characters allowed in a domain part: letters, marks (needed by many scripts) and digits.
_DOMAIN_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No"})

# ---------------------------------------------------------------------------------------- fast path
# Non-ASCII characters are let through by the expression and checked by _unicode_ok().
_U = "\u0080-\U0010ffff"
_LOCAL_CHAR = r"[^\x00-\x20\x7f\"(),:;<>@\[\\\].]"
_LABEL_CHAR = rf"[a-z0-9{_U}]"
_LABEL = rf"{_LABEL_CHAR}(?:[a-z0-9{_U}-]{{0,61}}{_LABEL_CHAR})?"
_TLD = rf"(?:[a-z{_U}]{{2,63}}|xn--[a-z0-9-]{{0,58}}[a-z0-9])"
_VALID = re.compile(rf"{_LOCAL_CHAR}+(?:\.{_LOCAL_CHAR}+)*@(?:{_LABEL}\.)+{_TLD}", re.IGNORECASE)

# ------------------------------------------------------------------------------- plain ASCII path
# Printable ASCII minus the specials, '@' and '.', i.e. the ASCII part of _LOCAL_CHAR; lower-case domain.
_ASCII_ATEXT = "".join(c for c in map(chr, range(0x21, 0x7F)) if c not in '"(),:;<>@[\\].')
_A_LOCAL = "[" + re.escape(_ASCII_ATEXT) + "]"
_A_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_A_TLD = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{0,58}[a-z0-9])"
# The lookaheads hold the length rules: 1-64 characters before the '@', at most 254 in all.
_PLAIN_ASCII = re.compile(
    rf"(?=[^@]{{1,{MAX_LOCAL_LENGTH}}}@)(?=[^\n]{{1,{MAX_EMAIL_LENGTH}}}\Z)"
    rf"{_A_LOCAL}+(?:\.{_A_LOCAL}+)*@(?:{_A_LABEL}\.)+{_A_TLD}"
)
plain_ascii_email = _PLAIN_ASCII.fullmatch
"""``plain_ascii_email(email)`` is a match (truthy) when ``email`` is a valid, plain ASCII, lower-case-domain
address: then :func:`email_problem` is ``None`` for it. ``None`` means "ask :func:`email_problem`"."""

_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ASCII_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def normalize_email(value: object) -> str | None:
    """The canonical form of an address: text, trimmed, lower-cased; ``None`` when there is none.

    ``None`` and blank values give ``None``. Bytes are decoded as UTF-8, other types converted with
    ``str()``. Whitespace and
    invisible characters (zero-width space, BOM) are trimmed from both ends, and the whole address is
    lower-cased so that duplicates differing only in case merge. The result is not validated: see
    :func:`email_problem`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bytes, bytearray)):
        text = value.decode("utf-8", "replace")
    else:
        text = str(value)
    text = text.strip()
    if text and (text[0] in _INVISIBLE_EDGES or text[-1] in _INVISIBLE_EDGES):
        text = text.strip(_INVISIBLE_EDGES).strip()
    return text.lower() or None


def check_email(value: object) -> tuple[str | None, str | None]:
    """``(normalize_email(value), problem)``, where problem is ``"missing email"`` when there is no address
    and otherwise :func:`email_problem`'s verdict; one expression for a plain ASCII address."""
    if type(value) is str:
        plain = value.strip().lower()
        # A match is all ASCII, so no invisible edge character was left: normalize_email gives the same.
        if _PLAIN_ASCII.fullmatch(plain) is not None:
            return plain, None
    email = normalize_email(value)
    if email is None:
        return None, "missing email"
    return email, email_problem(email)


def email_problem(email: str) -> str | None:
    """``None`` if ActiveCampaign's bulk importer should accept ``email``, else a short reason.

    Pass a normalized address (:func:`normalize_email`); upper-case letters are accepted too.
    """
    if _PLAIN_ASCII.fullmatch(email) is not None:
        return None
    return _full_rules_problem(email)


def _full_rules_problem(email: str) -> str | None:
    """email_problem() without the plain ASCII shortcut (kept apart so tests can compare the two)."""
    if (
        len(email) <= MAX_EMAIL_LENGTH
        and _VALID.fullmatch(email) is not None
        and email.index("@") <= MAX_LOCAL_LENGTH
        and (email.isascii() or _unicode_ok(email))
    ):
        return None
    return _diagnose(email) or "not a valid email address"


def _unicode_ok(email: str) -> bool:
    at = email.index("@")
    for position, char in enumerate(email):
        if char.isascii():
            continue
        category = unicodedata.category(char)
        if category in _BAD_CATEGORIES or (position > at and category not in _DOMAIN_CATEGORIES):
            return False
    return True


def _describe(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"U+{ord(char):04X}"


def _diagnose(email: str) -> str | None:
    """Walk the rules one by one and name the first one broken (``None`` if all pass)."""
    if not email:
        return "empty address"
    for char in email:
        if char.isascii():
            if char == " ":
                return "contains a space"
            if char < " " or char == "\x7f":
                return f"contains a control character ({_describe(char)})"
        elif unicodedata.category(char) in _BAD_CATEGORIES:
            return f"contains whitespace or an invisible character ({_describe(char)})"
    ats = email.count("@")
    if ats == 0:
        return "missing @"
    if ats > 1:
        return "more than one @"
    local, domain = email.split("@")
    if not local:
        return "nothing before @"
    for char in email:
        if char in SPECIAL_CHARACTERS:
            return f"special character {char!r} not allowed"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "empty part before @ (leading, trailing or double '.')"
    if len(local) > MAX_LOCAL_LENGTH:
        return f"more than {MAX_LOCAL_LENGTH} characters before @"
    if not domain:
        return "nothing after @"
    if "." not in domain:
        return "no domain dot with a 2+ letter ending"
    labels = domain.split(".")
    if any(not label for label in labels):
        return "empty part in the domain (leading, trailing or double '.')"
    for char in domain:
        if char in _ASCII_LABEL_CHARS or char == ".":
            continue
        if char.isascii() or unicodedata.category(char) not in _DOMAIN_CATEGORIES:
            return f"character {char!r} not allowed in the domain"
    for label in labels:
        if label.startswith("-") or label.endswith("-"):
            return f"domain part {label!r} starts or ends with '-'"
        if len(label) > MAX_LABEL_LENGTH:
            return f"domain part longer than {MAX_LABEL_LENGTH} characters"
    tld = labels[-1]
    tld_ok = len(tld) >= 2 and all(c in _ASCII_LETTERS or not c.isascii() for c in tld)
    if not tld_ok and not (tld.lower().startswith("xn--") and len(tld) > 4):
        return "no domain dot with a 2+ letter ending"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"longer than {MAX_EMAIL_LENGTH} characters"
    return None
