"""mask_emails(): no email address survives in any form it takes in a log line, an error or a repr.

Property-style: addresses in many scripts are written every way a log can carry them (plain, in a
query string, fully percent-encoded, double-encoded, in a bytes repr, as ASCII JSON, inside an
exception's repr, quoted, bracketed) inside surrounding text; the output must hold no form of the
address, nor of its local part beyond the first character, and the surrounding text must survive.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_activecampaign.masking import EmailMaskingFilter, mask_email, mask_emails

# Letters of several scripts, with decomposed accents and Devanagari vowel signs (combining marks).
LETTERS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
           "öäüéèçñßøå" "o\u0308e\u0301" "ивантестпример" "用户例子公司测试" "उपयोगकर्ता" "αβγδ" "مستخدم")
LOCAL_PUNCTUATION = ".+_-'"
TLDS = ["com", "de", "co.uk", "io", "公司", "рф", "xn--p1ai", "museum"]

first_letter = st.sampled_from(LETTERS)
local_parts = st.builds(lambda head, tail: head + tail, first_letter,
                        st.text(alphabet=LETTERS + LOCAL_PUNCTUATION, min_size=3, max_size=20))
labels = st.text(alphabet=LETTERS, min_size=1, max_size=12).map(str.strip)
domains = st.builds(lambda names, tld: ".".join([*names, tld]), st.lists(labels, min_size=1, max_size=2),
                    st.sampled_from(TLDS))

FORMS: dict[str, Callable[[str], str]] = {
    "plain": lambda e: e,
    "query": lambda e: "GET /api/3/contacts?email=" + quote(e, safe=""),
    "query-at-kept": lambda e: "contacts?email=" + quote(e, safe="@+"),
    "double-encoded": lambda e: quote(quote(e, safe=""), safe=""),
    "bytes-repr": lambda e: repr(e.encode("utf-8")),
    "ascii-json": lambda e: json.dumps({"email": e}),
    "exception-repr": lambda e: repr(ValueError(f"row 3: {e!r} has no list")),
    "angle-brackets": lambda e: f"Jane <{e}>",
    "unicode-escape": lambda e: e.encode("unicode_escape").decode("ascii"),
}
PREFIXES = ["", "Error: ", "(", "'", '"', "\n", "email=", "«", "，", "to:"]
SUFFIXES = ["", " failed", ")", "'", ".", ",", "&list=3", "»", "。", "\n"]


def every_form(text: str) -> set[str]:
    """The ways `text` itself could appear in the output."""
    forms = {text, quote(text, safe=""), quote(text, safe="@+"), quote(quote(text, safe=""), safe=""),
             json.dumps(text)[1:-1], text.encode("unicode_escape").decode("ascii"),
             repr(text.encode("utf-8"))[2:-1]}
    return {f for f in forms if f}


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(local=local_parts, domain=domains, form=st.sampled_from(sorted(FORMS)),
       prefix=st.sampled_from(PREFIXES), suffix=st.sampled_from(SUFFIXES))
def test_no_form_of_an_address_survives(local: str, domain: str, form: str, prefix: str, suffix: str) -> None:
    email = f"{local}@{domain}"
    written = FORMS[form](email)
    text = f"{prefix}{written}{suffix}"
    secret = local[1:].strip(".'")
    assume(len(secret) >= 3)
    out = mask_emails(text)

    assert "***" in out
    assert out.startswith(prefix) and out.endswith(suffix)
    # Only what replaced the address is checked: the surrounding text may hold the same letters
    # (prefix "Error: " and local part "aErr").
    masked = out[len(prefix):len(out) - len(suffix)]
    for shown in every_form(email):
        assert shown not in masked, (form, text, out)
    for shown in every_form(secret):
        assert shown not in masked, (form, text, out)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(emails=st.lists(st.builds(lambda lo, do: f"{lo}@{do}", local_parts, domains), min_size=2, max_size=5),
       separator=st.sampled_from([", ", "; ", " ", "\n", "|"]))
def test_every_address_of_a_list_is_masked(emails: list[str], separator: str) -> None:
    out = mask_emails("refused: " + separator.join(emails))
    assert out.startswith("refused: ")
    assert out.count("***@") == len(emails)
    for email in emails:
        assert email not in out


@pytest.mark.parametrize(("text", "expected"), [
    ("jöhn@exämple.com", "j***@e***.com"),
    ("用户@例子.公司", "用***@例***"),
    ("j%40x.com", "j***%40x***.com"),
    ("j%2Bk%40x.com", "j***%40x***.com"),
    ("GET /api/3/contacts?email=jane%40example.com x", "GET /api/3/contacts?email=j***%40e***.com x"),
    (quote("用户@例子.公司", safe=""), quote("用***", safe="*") + "%40" + quote("例***", safe="*")),
    ("jane%2540example.com", "j***%2540e***.com"),
    ('ValueError("bad \'jane.doe@example.com\'")', 'ValueError("bad \'j***@e***.com\'")'),
    ('{"email": "j\\u00f6hn@ex\\u00e4mple.com"}', '{"email": "j***@e***.com"}'),
    ("<o'brien@example.ie>", "<o***@e***.ie>"),
    ("mailto:a@b.com.", "mailto:a***@b***.com."),
    ("«jane@example.fr»", "«j***@e***.fr»"),
    ("Иван@пример.рф", "И***@п***"),
    ("jo\u0308hn@example.com", "j***@e***.com"),  # decomposed ö: the mark is part of the address
    ("user@[192.0.2.1]", "u***@[***"),
    ("a b@c.io and X.Y+z@d.co.uk", "a b***@c***.io and X***@d***.uk"),
])
def test_examples(text: str, expected: str) -> None:
    assert mask_emails(text) == expected


@pytest.mark.parametrize("text", ["no email @ here", "@here", "price: 5 @ 3.50", "user@localhost", "", "a@b"])
def test_text_without_an_address_is_left_alone(text: str) -> None:
    assert mask_emails(text) == text


def test_mask_email_keeps_the_first_characters_only() -> None:
    assert mask_email("jane.doe@example.com") == "j***@e***.com"
    assert mask_email(None) == mask_email("  ") == "<no email>"
    assert mask_email("not-an-email") == "n***"


def test_long_text_without_addresses_is_fast_enough_to_scan() -> None:
    text = ("a@" * 50_000) + ("x" * 200_000) + "@example.com"
    assert mask_emails(text).endswith("x***@e***.com")  # only the last is an address


def test_the_logging_filter_masks_urllib3_request_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.masking.urllib3-like")
    logger.addFilter(EmailMaskingFilter())
    with caplog.at_level(logging.DEBUG, logger=logger.name):
        logger.debug('%s://%s:%s "%s %s HTTP/1.1" %s', "https", "acct.api-us1.com", 443, "GET",
                     "/api/3/contacts?email=j%C3%B6hn%40ex%C3%A4mple.com", 200)
    assert "j%C3%B6hn" not in caplog.text and "/api/3/contacts?email=j***%40e***.com" in caplog.text
