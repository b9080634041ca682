"""Typed custom fields: ActiveCampaign's value formats, type choice and the checks made before writing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_activecampaign.audience.field_types import (
    MAX_OPTIONS,
    FieldTypeError,
    FieldValueError,
    TypedColumn,
    format_value,
    infer_field_type,
    normalize_field_types,
    plan_columns,
    split_multi_value,
    type_conflicts,
)

UTC = dt.timezone.utc
PARIS_WINTER = dt.timezone(dt.timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.date(2026, 3, 7), "2026-03-07"),
        (dt.datetime(2026, 3, 7, 23, 30, tzinfo=PARIS_WINTER), "2026-03-07"),
        ("2026-03-07", "2026-03-07"),
        (" 2026-03-07T10:00:00Z ", "2026-03-07"),
        ("2026-03-07 10:00:00", "2026-03-07"),
    ],
)
def test_date_fields_get_yyyy_mm_dd(value: object, expected: str) -> None:
    assert format_value("date", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2026, 3, 7, 9, 5, 1, 999, tzinfo=PARIS_WINTER), "2026-03-07T09:05:01+01:00"),
        (dt.datetime(2026, 3, 7, 9, 5, 1), "2026-03-07T09:05:01+00:00"),  # naive = UTC
        (dt.date(2026, 3, 7), "2026-03-07T00:00:00+00:00"),
        ("2026-03-07T09:05:01Z", "2026-03-07T09:05:01+00:00"),
        ("2026-03-07T09:05:01-05:00", "2026-03-07T09:05:01-05:00"),
        ("2026-03-07", "2026-03-07T00:00:00+00:00"),
    ],
)
def test_datetime_fields_get_iso_8601_with_an_offset(value: object, expected: str) -> None:
    assert format_value("datetime", value) == expected


@pytest.mark.parametrize("value", ["next tuesday", "07/03/2026", "2026-13-01", 12345])
def test_values_that_are_no_date_are_refused_with_a_reason(value: object) -> None:
    with pytest.raises(FieldValueError, match="not a date"):
        format_value("date", value)
    with pytest.raises(FieldValueError, match="not a(n ISO 8601)? date and time"):
        format_value("datetime", value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["a", "b"], "||a||b||"),
        (("gold",), "||gold||"),
        ("gold", "||gold||"),  # one value is still wrapped
        ({"b", "a"}, "||a||b||"),  # sets are sorted: stable fingerprints
        ('["red", "blue", "red"]', "||red||blue||"),  # JSON arrays (SQLite json_group_array), repeats dropped
        ("||x||y||", "||x||y||"),
        ("Paris, France", "||Paris, France||"),  # commas are not separators: options may hold them
        ([1, Decimal("2.50"), None, " "], "||1||2.50||"),
    ],
)
def test_multi_value_fields_get_double_pipes(value: object, expected: str) -> None:
    assert format_value("listbox", value) == expected
    assert format_value("checkbox", value) == expected


def test_empty_and_null_values_are_not_sent() -> None:
    for kind in ("text", "date", "datetime", "dropdown", "listbox"):
        assert format_value(kind, None) is None
        assert format_value(kind, "  ") is None
        assert format_value(kind, float("nan")) is None
    assert format_value("listbox", []) is None
    assert format_value("listbox", "[]") is None


def test_a_value_holding_the_separator_is_refused() -> None:
    with pytest.raises(FieldValueError, match="'\\|\\|'"):
        format_value("listbox", ["a||b"])


def test_dropdown_and_radio_take_exactly_one_value() -> None:
    assert format_value("dropdown", "Gold") == "Gold"
    assert format_value("radio", ["Gold"]) == "Gold"
    assert format_value("dropdown", 3) == "3"
    with pytest.raises(FieldValueError, match="one value, not 2"):
        format_value("radio", ["Gold", "Silver"])


def test_text_fields_keep_the_plain_conversion() -> None:
    assert format_value("text", " hi ") == "hi"
    assert format_value("textarea", True) == "true"
    assert format_value("hidden", dt.date(2026, 1, 2)) == "2026-01-02"


def test_types_are_inferred_from_python_values() -> None:
    assert infer_field_type(dt.date(2026, 1, 1)) == "date"
    assert infer_field_type(dt.datetime(2026, 1, 1, 1)) == "datetime"  # a datetime is also a date
    assert infer_field_type(["a"]) == "listbox"
    assert infer_field_type(("a",)) == "listbox"
    assert infer_field_type({"a"}) == "listbox"
    assert infer_field_type("2026-01-01") == "text"  # text stays text unless field_types says otherwise
    assert infer_field_type(5) == "text"


def test_field_types_mapping_is_keyed_by_perstag_and_checked() -> None:
    assert normalize_field_types({"Signup date": "DATE", "interests": "listbox"}) == {
        "SIGNUP_DATE": "date", "INTERESTS": "listbox"}
    with pytest.raises(FieldTypeError, match="'multiselect'; use one of text, textarea, date"):
        normalize_field_types({"interests": "multiselect"})


def test_a_field_of_another_type_is_reported() -> None:
    existing = {"SIGNUP": {"id": "7", "type": "text"}, "TIER": {"id": "8", "type": "dropdown"}}
    problems = type_conflicts({"SIGNUP": "date", "TIER": "dropdown", "NEW": "listbox"}, existing,
                              {"SIGNUP": "signup"})
    assert problems == [
        "column 'signup': field_types asks for a date field, but the custom field SIGNUP (id 7) already exists as text"
    ]


def test_typed_columns_follow_the_mapping_then_the_existing_field_then_the_values() -> None:
    columns = {"A": "a", "B": "b", "C": "c", "D": "d"}
    existing = {"A": {"type": "text"}, "B": {"type": "date"}, "C": {"type": "textarea"}}
    typed = plan_columns(columns, {"A": "dropdown"}, existing, {"A": ["x"]})
    assert typed["A"].field_type == "dropdown" and typed["A"].explicit
    assert typed["B"].field_type == "date" and not typed["B"].explicit
    assert "C" not in typed  # an existing text-like field keeps the plain conversion
    assert typed["D"].field_type is None  # decided by the first value
    assert typed["D"].format(None) is None and typed["D"].field_type is None
    assert typed["D"].format([" p ", "q"]) == "||p||q||"
    assert typed["D"].field_type == "listbox"
    assert typed["D"].format("r") == "||r||"


def test_a_run_collects_the_options_its_values_need() -> None:
    column = TypedColumn("TIER", "tier", "dropdown", existing_options=frozenset({"Gold"}))
    for value in ["Gold", "Silver", "Bronze", "Silver", None]:
        column.format(value)
    assert column.missing_options == ["Silver", "Bronze"]
    multi = TypedColumn("INTERESTS", "interests", "listbox")
    multi.format(["golf", "chess"])
    multi.format('["chess", "go"]')
    assert multi.missing_options == ["golf", "chess", "go"]
    dates = TypedColumn("SIGNUP", "signup", "date")
    dates.format(dt.date(2026, 1, 1))
    assert dates.missing_options == []


def test_a_column_of_unique_values_is_no_dropdown() -> None:
    column = TypedColumn("ID", "customer_id", "dropdown")
    with pytest.raises(FieldTypeError, match=f"more than {MAX_OPTIONS} distinct values"):
        for number in range(MAX_OPTIONS + 1):
            column.format(number)


def test_split_multi_value_keeps_order() -> None:
    assert split_multi_value(["b", "a", "b"]) == ["b", "a"]
    assert split_multi_value("[not json") == ["[not json"]


def test_the_row_mapper_writes_typed_columns_in_their_format_and_rejects_bad_values() -> None:
    from airflow_provider_activecampaign.audience.records import AudienceContact, InvalidRow, RowMapper

    typed = plan_columns({"SIGNUP": "signup", "INTERESTS": "interests"}, {"SIGNUP": "date"}, {})
    mapper = RowMapper(["email", "signup", "interests", "plan"],
                       formatters={tag: column.format for tag, column in typed.items()})
    contact = mapper.map(("a@x.com", dt.datetime(2026, 3, 7, 9, 0), ["golf", "go"], "pro"), 1)
    assert isinstance(contact, AudienceContact)
    assert contact.fields == (("INTERESTS", "||golf||go||"), ("PLAN", "pro"), ("SIGNUP", "2026-03-07"))
    assert typed["INTERESTS"].field_type == "listbox" and typed["INTERESTS"].missing_options == ["golf", "go"]
    bad = mapper.map(("b@x.com", "soon", None, None), 2)
    assert bad == InvalidRow(2, "b@x.com", "column 'signup': 'soon' is not a date (YYYY-MM-DD)")
    # Untyped columns keep the plain conversion.
    assert RowMapper(["email", "signup"]).map(("c@x.com", dt.date(2026, 1, 2)), 3).fields == (
        ("SIGNUP", "2026-01-02"),)


class FakeClient:
    def __init__(self, options: dict[str, list[str]]) -> None:
        self.options = options
        self.calls: list[tuple] = []

    def get_field_options(self, field_id: str) -> list[dict]:
        return [{"field": field_id, "value": value} for value in self.options.get(field_id, [])]

    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text", options: list = ()) -> dict:
        self.calls.append(("field", title, perstag, field_type, list(options)))
        return {"id": "99", "perstag": perstag, "type": field_type}

    def create_field_options(self, field_id: str, options: list[str]) -> list[dict]:
        self.calls.append(("options", field_id, list(options)))
        return []


def test_a_run_creates_typed_fields_and_the_options_it_needs() -> None:
    from airflow_provider_activecampaign.audience.field_types import FieldPlan

    client = FakeClient({"7": ["Gold"]})
    existing = {"TIER": {"id": "7", "type": "dropdown"}, "NOTE": {"id": "8", "type": "text"}}
    columns = {"TIER": "tier", "NOTE": "note", "SIGNUP": "signup", "INTERESTS": "interests"}
    plan = FieldPlan.resolve(client, columns, {"signup": "date"}, existing)
    for tag, value in [("TIER", "Gold"), ("TIER", "Silver"), ("SIGNUP", "2026-01-01"), ("INTERESTS", ["a", "b"])]:
        plan.formatters[tag](value)
    assert plan.describe() == {"INTERESTS": "listbox", "SIGNUP": "date", "TIER": "dropdown"}
    plan.create_field(client, "SIGNUP", "Signup")
    plan.create_field(client, "INTERESTS", "Interests")
    assert plan.create_missing_options(client, {"TIER": "7", "NOTE": "8"}) == {"TIER": ["Silver"]}
    assert client.calls == [("field", "Signup", "SIGNUP", "date", []),  # no options argument at all
                            ("field", "Interests", "INTERESTS", "listbox", ["a", "b"]),
                            ("options", "7", ["Silver"])]
    assert plan.create_missing_options(client, {"TIER": "7"}) == {}  # nothing twice


def test_a_field_of_another_type_stops_the_run_before_any_write() -> None:
    from airflow_provider_activecampaign.audience.field_types import FieldPlan

    client = FakeClient({})
    with pytest.raises(FieldTypeError, match="SIGNUP \\(id 3\\) already exists as text"):
        FieldPlan.resolve(client, {"SIGNUP": "signup"}, {"signup": "date"}, {"SIGNUP": {"id": "3", "type": "text"}})
    with pytest.raises(FieldTypeError, match="does not have as custom fields: BIRTHDAY"):
        FieldPlan.resolve(client, {"SIGNUP": "signup"}, {"birthday": "date"}, {})
    assert client.calls == []
