"""Email normalization and the bulk importer's address rules (no Airflow needed)."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_activecampaign.audience import emails
from airflow_provider_activecampaign.audience.emails import email_problem, normalize_email


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("john.doe@example.com", "john.doe@example.com"),
        ("  John.Doe@Example.COM \n", "john.doe@example.com"),
        ("ANN@EXAMPLE.COM\t", "ann@example.com"),
        ("\ufeffann@example.com\u200b", "ann@example.com"),  # BOM / zero-width space from spreadsheets
        ("\u00a0ann@example.com\u00a0", "ann@example.com"),  # non-breaking spaces
        ("José@Exämple.DE", "josé@exämple.de"),
        (None, None),
        ("", None),
        ("   ", None),
        ("\u200b", None),
        (123, "123"),
        (b"Ann@Example.com", "ann@example.com"),
    ],
)
def test_normalize_email(value, expected):
    assert normalize_email(value) == expected


def test_duplicates_differing_in_case_or_spaces_normalize_alike():
    variants = ["Ann@Example.com", "ann@example.com ", " ANN@EXAMPLE.COM"]
    assert {normalize_email(v) for v in variants} == {"ann@example.com"}


VALID = [
    "a@b.co",
    "john.doe@example.com",
    "john+newsletter@gmail.com",
    "o'brien@example.ie",
    "first_last-1@sub.mail.example.co.uk",
    "x@a-b.io",
    "123@456.com",
    "a!#$%&*+/=?^_`{|}~-@example.org",  # RFC atext characters are not on the documented list
    "josé@example.com",  # internationalized name before @
    "a@bücher.de",  # internationalized domain, Unicode form
    "a@xn--bcher-kva.de",  # ... and punycode
    "a@пример.рф",
    "a@example.xn--p1ai",  # punycode ending
    "a@例え.テスト",
    "a@कॉम.भारत",  # scripts with combining marks
    "UPPER@EXAMPLE.COM",  # accepted, though normalize_email lower-cases first
    "x" * 64 + "@example.com",
    "a@" + ("b" * 60 + ".") * 4 + "com",  # 249 characters
]


@pytest.mark.parametrize("email", VALID)
def test_valid_addresses(email):
    assert email_problem(email) is None


INVALID = [
    # documented: the username before @ has at least one character
    ("@example.com", "nothing before @"),
    # documented: @ is required (and only one)
    ("john.example.com", "missing @"),
    ("john@@example.com", "more than one @"),
    ("a@b@example.com", "more than one @"),
    # documented: no special characters " ( ) , : ; < > @ [ \ ]
    ('"john"@example.com', "special character '\"' not allowed"),
    ("jo(hn@example.com", "special character '(' not allowed"),
    ("jo)hn@example.com", "special character ')' not allowed"),
    ("john,doe@example.com", "special character ',' not allowed"),
    ("john:doe@example.com", "special character ':' not allowed"),
    ("john;doe@example.com", "special character ';' not allowed"),
    ("<john@example.com>", "special character '<' not allowed"),
    ("john@[192.168.0.1]", "special character '[' not allowed"),
    ("jo\\hn@example.com", "special character '\\\\' not allowed"),
    ("john@example.com,", "special character ',' not allowed"),
    # documented: the domain has a dot followed by at least two letters
    ("john@localhost", "no domain dot with a 2+ letter ending"),
    ("john@example.c", "no domain dot with a 2+ letter ending"),
    ("john@example.c0m", "no domain dot with a 2+ letter ending"),
    ("john@example.123", "no domain dot with a 2+ letter ending"),
    ("john@", "nothing after @"),
    # whitespace, control and invisible characters
    ("john doe@example.com", "contains a space"),
    ("john@exa mple.com", "contains a space"),
    ("john@example.com\u00a0", "contains whitespace or an invisible character (U+00A0)"),
    ("jo\u200bhn@example.com", "contains whitespace or an invisible character (U+200B)"),
    ("john@example.com\n", "contains a control character (U+000A)"),
    ("jo\x00hn@example.com", "contains a control character (U+0000)"),
    # empty dot-separated parts
    ("john..doe@example.com", "empty part before @ (leading, trailing or double '.')"),
    (".john@example.com", "empty part before @ (leading, trailing or double '.')"),
    ("john.@example.com", "empty part before @ (leading, trailing or double '.')"),
    ("john@example..com", "empty part in the domain (leading, trailing or double '.')"),
    ("john@.example.com", "empty part in the domain (leading, trailing or double '.')"),
    ("john@example.com.", "empty part in the domain (leading, trailing or double '.')"),
    # domain characters and parts
    ("john@exa_mple.com", "character '_' not allowed in the domain"),
    ("john@exam!ple.com", "character '!' not allowed in the domain"),
    ("john@ex☃mple.com", "character '☃' not allowed in the domain"),
    ("john@-example.com", "domain part '-example' starts or ends with '-'"),
    ("john@example-.com", "domain part 'example-' starts or ends with '-'"),
    ("john@" + "b" * 64 + ".com", "domain part longer than 63 characters"),
    # lengths
    ("x" * 65 + "@example.com", "more than 64 characters before @"),
    ("a@" + ("b" * 60 + ".") * 5 + "com", "longer than 254 characters"),
    ("", "empty address"),
]


@pytest.mark.parametrize(("email", "reason"), INVALID)
def test_invalid_addresses_say_why(email, reason):
    assert email_problem(email) == reason


def test_trailing_spaces_are_fine_once_normalized():
    raw = " Ann.Lee@Example.com  "
    assert email_problem(raw) == "contains a space"
    assert email_problem(normalize_email(raw)) is None


def _random_address(rng: random.Random) -> str:
    alphabet = "ab.-_@@()\"', ;:<>[]\\1é☃\u00a0\u200bx-" + "aaaaaaaaa"
    local = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
    domain = "".join(rng.choice(alphabet + "...") for _ in range(rng.randint(0, 8)))
    ending = rng.choice(["com", "c", "co", "", "рф", "xn--p1ai", "1a", "co-"])
    return f"{local}@{domain}.{ending}" if rng.random() < 0.8 else local + domain


def test_fast_check_agrees_with_the_rule_by_rule_explanation():
    """The precompiled fast path and the explaining walk must never disagree about validity."""
    rng = random.Random(20261127)
    samples = [_random_address(rng) for _ in range(20_000)] + VALID + [e for e, _ in INVALID]
    valid_seen = 0
    for email in samples:
        fast = email_problem(email)
        slow = emails._diagnose(email)
        assert (fast is None) == (slow is None), (email, fast, slow)
        valid_seen += fast is None
    assert valid_seen > 100  # the sample really exercises both outcomes


# ------------------------------------------------------------------ plain ASCII path vs the full rules
TRICKY = [
    "a@b.co", "A@b.co", "a@B.co", "a@b.CO", "a.b.c@d.e.fg", "a..b@c.de", ".a@b.co", "a.@b.co", "a@b..co",
    "a@.b.co", "a@b.co.", "a@b", "a@b.c", "a@b.c1", "a@1.co", "a@b-.co", "a@-b.co", "a@b-c.co", "a@b_c.co",
    "a@xn--p1ai", "a@b.xn--p1ai", "a@b.xn--", "a@b.xn--a", "a@b.xn--a-", "a@b.xn-a", "a@b.x-n", "a b@c.de",
    "a\tb@c.de", "a@b.co\n", "\na@b.co", "a\x7f@b.co", "a~!#$%&'*+/=?^_`{|}-@b.co", 'a"@b.co', "a(@b.co",
    "a)@b.co", "a,@b.co", "a:@b.co", "a;@b.co", "a<@b.co", "a>@b.co", "a[@b.co", "a]@b.co", "a\\@b.co",
    "@b.co", "a@", "a@@b.co", "a@b@c.co", "ab.co", "", "@", ".", "a@b.co\u200b", "\ufeffa@b.co", "é@b.co",
    "a@é.co", "a@b.рф", "a@b.c\u0301o", "K@b.co", "\u212a@b.co", "a@\u212a.co", "ſ@b.co", "a@ſ.co",
    "x" * 64 + "@b.co", "x" * 65 + "@b.co", "a@" + "b" * 63 + ".co", "a@" + "b" * 64 + ".co",
    "a@b." + "c" * 63, "a@b." + "c" * 64, "a@" + ("b" * 61 + ".") * 4 + "co", "a@" + ("b" * 62 + ".") * 4 + "co",
    "a@" + ("b" * 60 + ".") * 4 + "com", "a@" + ("b" * 60 + ".") * 4 + "comm", "a@" + ("b" * 60 + ".") * 4 + "co",
    "x" * 64 + "@" + ("b" * 60 + ".") * 3 + "c" * 3,
]


def _agree(raw: object) -> None:
    """The shortcut and the full rules give the same verdict, and check_email = normalize + verdict."""
    text = raw if isinstance(raw, str) else str(raw)
    assert email_problem(text) == emails._full_rules_problem(text), text
    if emails.plain_ascii_email(text):
        assert emails._full_rules_problem(text) is None, text
        assert emails._diagnose(text) is None, text
    normalized = normalize_email(raw)
    expected = (None, "missing email") if normalized is None else (normalized, email_problem(normalized))
    assert emails.check_email(raw) == expected, raw


@pytest.mark.parametrize("email", TRICKY + VALID + [e for e, _ in INVALID])
def test_plain_ascii_path_agrees_with_the_full_rules(email):
    _agree(email)
    _agree(email.upper())
    _agree(f"  {email}\t")


def test_plain_ascii_path_takes_the_common_addresses():
    """What the shortcut is for: ordinary addresses never reach the slower rules."""
    for email in ("john.doe@example.com", "o'brien+news@mail.example.co.uk", "a@xn--bcher-kva.de"):
        assert emails.plain_ascii_email(email)
    assert emails.check_email(" John.Doe@Example.COM ") == ("john.doe@example.com", None)
    assert emails.check_email(None) == (None, "missing email")
    assert emails.check_email("José@Exämple.DE") == ("josé@exämple.de", None)
    assert emails.check_email("jo(hn@example.com") == ("jo(hn@example.com", "special character '(' not allowed")


_PIECES = st.sampled_from(["a", "z", "0", "-", "_", ".", "..", "@", "+", "'", "xn--", "co", "com", "é", "рф",
                           " ", "\u200b", "(", '"', "\\", "K", "\u212a", "ſ", "\x7f", "\n", "A", "~"])


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_plain_ascii_path_agrees_on_generated_addresses(text):
    _agree(text)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z0-9.+'_-]{1,70}@[a-z0-9.-]{1,70}\.(?:[a-z]{1,4}|xn--[a-z0-9-]{0,5})", fullmatch=True))
def test_plain_ascii_path_agrees_on_address_shaped_text(text):
    _agree(text)
