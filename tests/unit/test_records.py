"""Warehouse rows -> contacts, fingerprints, request bodies and log masking (no Airflow needed)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_activecampaign.audience import records
from airflow_provider_activecampaign.audience.records import (
    AudienceContact,
    InvalidRow,
    RowMapper,
    fingerprint,
    mask_email,
    parse_tags,
    perstag_for,
    to_import_contact,
    to_sync_contact,
    to_text,
)

COLUMNS = ["Email", "first_name", "LAST_NAME", "phone", "customer_acct_name", "tags", "plan", "signup date"]


def row(**overrides):
    values = {
        "Email": " Ann.Lee@Example.com ",
        "first_name": "Ann",
        "LAST_NAME": "Lee",
        "phone": "+1 555 0100",
        "customer_acct_name": "Acme",
        "tags": "vip, newsletter",
        "plan": "gold",
        "signup date": dt.date(2024, 3, 1),
    }
    values.update(overrides)
    return tuple(values[c] for c in COLUMNS)


# ------------------------------------------------------------------------------------- column roles
def test_column_roles_are_matched_case_insensitively():
    mapper = RowMapper(COLUMNS)
    assert mapper.roles == {
        "Email": "email",
        "first_name": "first_name",
        "LAST_NAME": "last_name",
        "phone": "phone",
        "customer_acct_name": "customer_acct_name",
        "tags": "tags",
        "plan": "field:PLAN",
        "signup date": "field:SIGNUP_DATE",
    }
    assert mapper.custom_field_tags == ["PLAN", "SIGNUP_DATE"]


def test_full_row_maps_to_a_contact():
    contact = RowMapper(COLUMNS).map(row(), 1)
    assert contact == AudienceContact(
        email="ann.lee@example.com",
        first_name="Ann",
        last_name="Lee",
        phone="+1 555 0100",
        customer_acct_name="Acme",
        tags=("vip", "newsletter"),
        fields=(("PLAN", "gold"), ("SIGNUP_DATE", "2024-03-01")),
    )


def test_dict_rows_map_like_tuple_rows():
    mapper = RowMapper(COLUMNS)
    assert mapper.map(dict(zip(COLUMNS, row(), strict=True)), 1) == mapper.map(row(), 1)
    # a key missing from a dict row counts as NULL
    partial = {"Email": "bob@example.com", "plan": "free"}
    assert mapper.map(partial, 2) == AudienceContact("bob@example.com", fields=(("PLAN", "free"),))


def test_renamed_email_column():
    mapper = RowMapper(["contact_email", "first_name"], email_column="CONTACT_EMAIL")
    assert mapper.map(("x@example.com", "X"), 1) == AudienceContact("x@example.com", first_name="X")
    assert mapper.custom_field_tags == []


def test_missing_email_column_names_the_columns_that_exist():
    with pytest.raises(ValueError) as error:
        RowMapper(["mail", "first_name"])
    message = str(error.value)
    assert "'email'" in message and "'mail'" in message and "'first_name'" in message
    assert "email_column" in message


def test_columns_clashing_after_case_folding_are_refused():
    with pytest.raises(ValueError, match="case-insensitively"):
        RowMapper(["email", "EMAIL"])
    with pytest.raises(ValueError, match="both become the custom field PLAN_TIER"):
        RowMapper(["email", "plan tier", "plan-tier"])


def test_custom_column_named_like_a_standard_field_gets_a_hint():
    with pytest.raises(ValueError, match="rename it to 'first_name'"):
        RowMapper(["email", "First Name"])
    with pytest.raises(ValueError, match="standard field"):
        RowMapper(["contact_email", "email"], email_column="contact_email")


@pytest.mark.parametrize(
    ("column", "tag"),
    [("plan", "PLAN"), ("Plan Tier", "PLAN_TIER"), ("ltv$usd", "LTV_USD"), ("straße", "STRASSE"),
     ("a.b-c", "A_B_C"), ("score_2", "SCORE_2")],
)
def test_perstag_for(column, tag):
    assert perstag_for(column) == tag


def test_tags_column_can_be_disabled_or_renamed():
    renamed = RowMapper(["email", "segments"], tags_column="segments")
    assert renamed.map(("a@b.co", "x,y"), 1).tags == ("x", "y")
    mapper = RowMapper(["email", "tags"], tags_column=None)
    assert mapper.custom_field_tags == ["TAGS"]


# ------------------------------------------------------------------------------------- invalid rows
@pytest.mark.parametrize(
    ("email", "expected"),
    [
        (None, InvalidRow(7, None, "missing email")),
        ("   ", InvalidRow(7, None, "missing email")),
        ("Not An Email", InvalidRow(7, "not an email", "contains a space")),
        ("ann@example", InvalidRow(7, "ann@example", "no domain dot with a 2+ letter ending")),
    ],
)
def test_invalid_rows_carry_row_number_email_and_reason(email, expected):
    assert RowMapper(COLUMNS).map(row(Email=email), 7) == expected


def test_wrong_row_width_is_a_programming_error():
    with pytest.raises(ValueError, match="has 2 values but the query has 8 columns"):
        RowMapper(COLUMNS).map(("a@b.co", "x"), 3)


# ------------------------------------------------------------------------------------------ values
def test_nulls_and_blanks_are_left_out():
    contact = RowMapper(COLUMNS).map(
        row(first_name=None, LAST_NAME="  ", phone="", customer_acct_name=None, tags=None, plan=None,
            **{"signup date": None}),
        1,
    )
    assert contact == AudienceContact("ann.lee@example.com")
    body = to_import_contact(contact, field_ids={})
    assert body == {"email": "ann.lee@example.com", "exclude_automations": True}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("  gold ", "gold"),
        ("", None),
        (None, None),
        (True, "true"),
        (False, "false"),
        (42, "42"),
        (-7, "-7"),
        (3.0, "3"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e-05, "0.00001"),
        (1e16, "10000000000000000"),
        (float("nan"), None),
        (Decimal("12.50"), "12.50"),
        (Decimal("1E+2"), "100"),
        (Decimal("NaN"), None),
        (dt.date(2024, 3, 1), "2024-03-01"),
        (dt.datetime(2024, 3, 1, 9, 30, 5, 123456), "2024-03-01T09:30:05"),
        (dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone.utc), "2024-03-01T09:30:00+00:00"),
        (dt.time(9, 30), "09:30:00"),
        (["a", "b", None, ""], "||a||b||"),  # ActiveCampaign's multi-value format
        ([], None),
        (b"bytes ", "bytes"),
        ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'),
    ],
)
def test_value_conversion(value, text):
    assert to_text(value) == text


def test_subclasses_convert_like_their_base():
    class MyStr(str):
        pass

    class MyDate(dt.date):
        pass

    assert to_text(MyStr(" x ")) == "x"
    assert to_text(MyDate(2024, 1, 2)) == "2024-01-02"


def test_non_text_standard_fields_are_converted():
    contact = RowMapper(["email", "phone", "score"]).map(("a@b.co", 15550100, 9.0), 1)
    assert contact.phone == "15550100"
    assert contact.fields == (("SCORE", "9"),)


@pytest.mark.parametrize(
    ("cell", "tags"),
    [
        ("vip, newsletter", ("vip", "newsletter")),
        (" vip ,, ,newsletter,", ("vip", "newsletter")),
        ("VIP, vip, Newsletter, vip ", ("VIP", "Newsletter")),  # case-insensitive de-duplication
        (["b", "a", "B", None, " "], ("b", "a")),
        (("x",), ("x",)),
        ('["vip", "news, letter"]', ("vip", "news, letter")),  # JSON array text (Snowflake ARRAY)
        ("[not json", ("[not json",)),
        ("", ()),
        (None, ()),
    ],
)
def test_tags_parsing(cell, tags):
    assert parse_tags(cell) == tags


# ------------------------------------------------------------------------------------- fingerprints
def test_fingerprint_is_short_and_stable_across_processes():
    contact = RowMapper(COLUMNS).map(row(), 1)
    value = fingerprint(contact)
    assert len(value) == 12 and int(value, 16) >= 0
    code = (
        "from airflow_provider_activecampaign.audience.records import AudienceContact, fingerprint;"
        f"print(fingerprint({contact!r}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
    )
    assert other.stdout.strip() == value


@pytest.mark.parametrize(
    "change",
    [
        {"first_name": "Anne"},
        {"LAST_NAME": None},
        {"phone": "+1 555 0199"},
        {"customer_acct_name": "Acme Inc"},
        {"tags": "vip"},
        {"plan": "silver"},
        {"plan": None},
        {"signup date": dt.date(2024, 3, 2)},
    ],
)
def test_fingerprint_changes_with_anything_sent(change):
    mapper = RowMapper(COLUMNS)
    assert fingerprint(mapper.map(row(**change), 1)) != fingerprint(mapper.map(row(), 1))


def test_fingerprint_ignores_what_is_not_sent_differently():
    mapper = RowMapper(COLUMNS)
    base = fingerprint(mapper.map(row(), 1))
    assert fingerprint(mapper.map(row(Email="ANN.LEE@example.com  ", first_name=" Ann "), 2)) == base
    assert fingerprint(mapper.map(row(tags="Newsletter, VIP"), 3)) == base  # tags are a set
    assert fingerprint(mapper.map(dict(zip(COLUMNS, row(), strict=True)), 4)) == base


def test_fingerprint_distinguishes_a_value_moving_between_fields():
    a = AudienceContact("x@y.co", first_name="Lee", last_name=None)
    b = AudienceContact("x@y.co", first_name=None, last_name="Lee")
    assert fingerprint(a) != fingerprint(b)


# ------------------------------------------------------------------------------------------ payloads
CONTACT = AudienceContact(
    email="ann@example.com", first_name="Ann", last_name="Lee", phone="555", customer_acct_name="Acme",
    tags=("vip",), fields=(("PLAN", "gold"), ("SIGNUP_DATE", "2024-03-01")),
)


def test_bulk_import_body():
    body = to_import_contact(CONTACT, field_ids={"PLAN": "3", "SIGNUP_DATE": 7}, subscribe_list_id="12")
    assert body == {
        "email": "ann@example.com",
        "first_name": "Ann",
        "last_name": "Lee",
        "phone": "555",
        "customer_acct_name": "Acme",
        "tags": ["vip"],
        "fields": [{"id": 3, "value": "gold"}, {"id": 7, "value": "2024-03-01"}],
        "subscribe": [{"listid": 12}],
        "exclude_automations": True,
    }
    json.dumps(body)  # plain JSON types only


def test_bulk_import_body_for_removal_and_automations():
    contact = AudienceContact("bob@example.com")
    body = to_import_contact(contact, field_ids={}, unsubscribe_list_id=4, exclude_automations=False)
    assert body == {"email": "bob@example.com", "unsubscribe": [{"listid": 4}], "exclude_automations": False}


def test_missing_field_id_names_the_personalization_tag():
    with pytest.raises(KeyError, match="SIGNUP_DATE"):
        to_import_contact(CONTACT, field_ids={"PLAN": 3})
    with pytest.raises(KeyError, match="SIGNUP_DATE"):
        to_sync_contact(CONTACT, field_ids={"PLAN": 3})


def test_contact_sync_body():
    assert to_sync_contact(CONTACT, field_ids={"PLAN": 3, "SIGNUP_DATE": "7"}) == {
        "email": "ann@example.com",
        "firstName": "Ann",
        "lastName": "Lee",
        "phone": "555",
        "fieldValues": [{"field": "3", "value": "gold"}, {"field": "7", "value": "2024-03-01"}],
    }
    assert to_sync_contact(AudienceContact("bob@example.com"), field_ids={}) == {"email": "bob@example.com"}


# ------------------------------------------------------------------------------------------- masking
@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("john.doe@example.com", "j***@e***.com"),
        ("ann@mail.example.co.uk", "a***@m***.uk"),
        ("x@y.io", "x***@y***.io"),
        ("john@localhost", "j***@l***"),
        ("johnexample.com", "j***"),
        ("@example.com", "***@e***.com"),
        ("john@", "j***@***"),
        ("a@b@example.com", "a***@e***.com"),
        ("john@example.not-a-tld-at-all-really", "j***@e***"),
        (None, "<no email>"),
        ("", "<no email>"),
    ],
)
def test_mask_email(email, masked):
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    "email",
    ["john.doe@example.com", "ab@cd.com", "secret-person@private-domain.org", "no-at-sign-here",
     "weird@@dom.ain@x", "ünïcode@bücher.de", "  spaced@example.com  "],
)
def test_mask_never_reveals_the_address(email):
    masked = mask_email(email)
    local, _, domain = email.strip().rpartition("@")
    assert email.strip() not in masked
    for part in (local, domain.rpartition(".")[0] or domain):
        if len(part) > 1:
            assert part not in masked


# ------------------------------------------------------------------------ fast paths vs their reference
_TEXT = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["", " ", "-", "|", "1:", "a|b", "Ä", "ß"]))
_TAG_LISTS = st.lists(st.sampled_from(["vip", "VIP", "Vip", "news", "Straße", "STRASSE", "a|b", "1:x", ""]),
                      max_size=5).map(lambda tags: tuple(t for t in tags if t))
_FIELDS = st.lists(st.tuples(st.sampled_from(["PLAN", "SCORE", "X_1"]), st.text(min_size=1, max_size=5)),
                   max_size=3, unique_by=lambda item: item[0]).map(lambda items: tuple(sorted(items)))


@settings(max_examples=500, deadline=None)
@given(_TEXT, _TEXT, _TEXT, _TEXT, _TAG_LISTS, _FIELDS)
def test_fingerprint_keeps_its_stored_values(first, last, phone, acct, tags, fields):
    """Fingerprints are stored in every state: the faster build must give exactly the reference's."""
    contact = AudienceContact("a@b.co", first, last, phone, acct, tags, fields)
    assert fingerprint(contact) == records._reference_fingerprint(contact)
    assert fingerprint(tuple(getattr(contact, name) for name in contact.__slots__)) == fingerprint(contact)


def test_fingerprint_values_do_not_change_between_versions():
    """Known values from v0.1 states: a change here would resend every contact after an upgrade."""
    assert fingerprint(AudienceContact("a@b.co")) == "3ae2288ba84f"
    assert fingerprint(RowMapper(COLUMNS).map(row(), 1)) == "9eef043ee65d"


@pytest.mark.parametrize("columns", [COLUMNS, ["email"], ["EMAIL", "tags"], ["email", "plan", "first_name"]])
def test_map_record_is_map_as_a_tuple(columns):
    mapper = RowMapper(columns)
    samples = [row(), row(Email="BAD@@x.com"), row(Email=None), row(Email=" José@Exämple.DE "),
               row(tags=None, plan=None), row(Email="\ufeffann@example.com"), row(first_name=3.0)]
    for number, values in enumerate(samples, start=1):
        full = {name.lower(): value for name, value in zip(COLUMNS, values, strict=True)}
        picked = tuple(full[c.lower()] for c in columns)
        contact, record = mapper.map(picked, number), mapper.map_record(picked, number)
        if isinstance(contact, InvalidRow):
            assert record == contact
        else:
            assert AudienceContact(*record) == contact
            assert fingerprint(record) == fingerprint(contact)
