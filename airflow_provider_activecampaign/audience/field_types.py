"""Typed custom fields: which ActiveCampaign field type a column gets, and its values in that type's format.

Plain Python, no Airflow imports. ActiveCampaign's formats (research/lifecycle.md section 4):

==================  ==========================================================================
text, textarea,     the value as text (see :func:`records.to_text`)
hidden
date                ``YYYY-MM-DD``
datetime            ISO 8601 to the second with the offset (``2026-12-01T09:30:00+00:00``);
                    a naive datetime is taken as UTC, the usual convention of warehouses
dropdown, radio     the option's value: exactly one value
checkbox, listbox   ``||a||b||``, also for a single value (``||a||``)
==================  ==========================================================================

A column's type comes from, in order: the ``field_types`` mapping (column name -> type); the type of
the field that already exists in ActiveCampaign; or, for a field still to be created, the column's
Python values (``date`` -> date, ``datetime`` -> datetime, list/tuple/set -> listbox, anything else
-> text). A field that exists with another type than the mapping asks for is reported before any write
(:func:`type_conflicts`): ActiveCampaign cannot change a field's type, and writing one format into
another type's field loses data silently.

Multi-value cells may be a Python list/tuple/set (database arrays), a JSON array string (how SQLite's
``json_group_array`` or some warehouses return arrays), or text already in ``||a||b||`` form. Any other
text is one value: option values may contain commas.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_activecampaign.audience.records import FieldValueError, perstag_for, to_text

__all__ = [
    "FIELD_TYPES",
    "MAX_OPTIONS",
    "OPTION_TYPES",
    "FieldTypeError",
    "FieldValueError",
    "TypedColumn",
    "format_value",
    "infer_field_type",
    "normalize_field_types",
    "split_multi_value",
    "type_conflicts",
]

FIELD_TYPES = ("text", "textarea", "date", "datetime", "dropdown", "radio", "checkbox", "listbox", "hidden")
TEXT_TYPES = frozenset({"text", "textarea", "hidden"})
MULTI_VALUE_TYPES = frozenset({"checkbox", "listbox"})
SINGLE_OPTION_TYPES = frozenset({"dropdown", "radio"})
OPTION_TYPES = MULTI_VALUE_TYPES | SINGLE_OPTION_TYPES
# A column of unique values sent by mistake as a dropdown would create an option per row: stop first.
MAX_OPTIONS = 1000

_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class FieldTypeError(ValueError):
    """The field types asked for cannot work (unknown type, or a field of another type exists)."""


def normalize_field_types(field_types: Mapping[str, str] | None) -> dict[str, str]:
    """``field_types`` (column name -> type) keyed by personalization tag, types validated and lower-cased."""
    result: dict[str, str] = {}
    for column, kind in (field_types or {}).items():
        wanted = str(kind).strip().lower()
        if wanted not in FIELD_TYPES:
            raise FieldTypeError(
                f"field_types[{column!r}] is {kind!r}; use one of {', '.join(FIELD_TYPES)}."
            )
        result[perstag_for(str(column))] = wanted
    return result


def infer_field_type(value: Any) -> str:
    """The field type a column's (non-NULL) Python value asks for when nothing else says."""
    if isinstance(value, _dt.datetime):
        return "datetime"
    if isinstance(value, _dt.date):
        return "date"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "listbox"
    return "text"


# ------------------------------------------------------------------------------------------- values
def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    if type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, str) and not value.strip()


def _parse_datetime_text(text: str) -> _dt.datetime | _dt.date:
    """ISO 8601 text -> datetime (or date for ``YYYY-MM-DD``); Python 3.10's parser lacks ``Z``."""
    if _DATE_TEXT.fullmatch(text):
        return _dt.date.fromisoformat(text)
    candidate = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    return _dt.datetime.fromisoformat(candidate)


def _as_date(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        return value.date().isoformat()  # the date where the timestamp was taken
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = _parse_datetime_text(text)
        except ValueError:
            raise FieldValueError(f"{_short(text)!r} is not a date (YYYY-MM-DD)") from None
        return _as_date(parsed)
    raise FieldValueError(f"a {type(value).__name__} is not a date")


def _as_datetime(value: Any) -> str:
    if isinstance(value, _dt.datetime):
        aware = value if value.tzinfo is not None and value.utcoffset() is not None else value.replace(
            tzinfo=_dt.timezone.utc)
        return aware.isoformat(timespec="seconds")
    if isinstance(value, _dt.date):
        return _as_datetime(_dt.datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = _parse_datetime_text(text)
        except ValueError:
            raise FieldValueError(f"{_short(text)!r} is not an ISO 8601 date and time") from None
        return _as_datetime(parsed)
    raise FieldValueError(f"a {type(value).__name__} is not a date and time")


def split_multi_value(value: Any) -> list[str]:
    """The values of a multi-value cell, in order, blanks and repeats dropped (see the module doc)."""
    items: Iterable[Any]
    if isinstance(value, (set, frozenset)):
        items = sorted(value, key=str)  # a set has no order: sort so the fingerprint is stable
    elif isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("||") and text.endswith("||"):
            items = text.split("||")
        elif text.startswith("[") and text.endswith("]"):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            items = parsed if isinstance(parsed, list) else [text]
        else:
            items = [text]
    else:
        items = [value]
    seen: set[str] = set()
    result: list[str] = []
    for item in items:
        entry = None if _is_null(item) else to_text(item)
        if entry and entry not in seen:
            if "||" in entry:
                raise FieldValueError(f"the value {_short(entry)!r} contains '||', ActiveCampaign's separator")
            seen.add(entry)
            result.append(entry)
    return result


def format_value(field_type: str, value: Any) -> str | None:
    """``value`` in the format of a ``field_type`` field, or ``None`` when nothing should be sent.

    Raises :class:`FieldValueError` for a value that does not fit (the row is rejected with the reason).
    """
    if _is_null(value):
        return None
    if field_type == "date":
        return _as_date(value)
    if field_type == "datetime":
        return _as_datetime(value)
    if field_type in MULTI_VALUE_TYPES:
        items = split_multi_value(value)
        return "||" + "||".join(items) + "||" if items else None
    if field_type in SINGLE_OPTION_TYPES:
        raw = split_multi_value(value) if isinstance(value, (list, tuple, set, frozenset)) else [to_text(value)]
        items = [item for item in raw if item]
        if len(items) > 1:
            raise FieldValueError(f"a {field_type} field takes one value, not {len(items)}")
        return items[0] if items else None
    return to_text(value)


def option_values(field_type: str, formatted: str) -> list[str]:
    """The options a formatted value needs (none for types without options)."""
    if field_type in MULTI_VALUE_TYPES:
        return [item for item in formatted.split("||") if item]
    if field_type in SINGLE_OPTION_TYPES:
        return [formatted]
    return []


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------ columns
@dataclass
class TypedColumn:
    """One custom field column during a run: its type (fixed, or inferred from its first value), the
    formatter the row mapper calls for each value, and the options its values need.

    ``field_type`` is ``None`` until a value decides it (only for a field still to be created without
    an entry in ``field_types``).
    """

    perstag: str
    column: str
    field_type: str | None = None
    explicit: bool = False
    existing_options: frozenset[str] = frozenset()
    needed_options: dict[str, None] = field(default_factory=dict)  # insertion-ordered set

    def format(self, value: Any) -> str | None:
        if _is_null(value):
            return None
        if self.field_type is None:
            self.field_type = infer_field_type(value)
        formatted = format_value(self.field_type, value)
        if formatted is not None and self.field_type in OPTION_TYPES:
            for option in option_values(self.field_type, formatted):
                if option not in self.existing_options and option not in self.needed_options:
                    if len(self.needed_options) + len(self.existing_options) >= MAX_OPTIONS:
                        raise FieldTypeError(
                            f"Column {self.column!r} ({self.field_type} field {self.perstag}) has more than "
                            f"{MAX_OPTIONS} distinct values; a {self.field_type} needs a short list of options. "
                            f"Use a text field (field_types={{{self.column!r}: 'text'}})."
                        )
                    self.needed_options[option] = None
        return formatted

    @property
    def formatter(self) -> Callable[[Any], str | None]:
        return self.format

    @property
    def missing_options(self) -> list[str]:
        """Options the run's values need that the field does not have yet, in first-seen order."""
        return list(self.needed_options)


def plan_columns(
    columns_by_perstag: Mapping[str, str],
    field_types: Mapping[str, str],
    existing_fields: Mapping[str, Mapping[str, Any]],
    existing_options: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, TypedColumn]:
    """The typed columns of a run: every column that has a type other than plain text to honour.

    ``columns_by_perstag``: perstag -> column name; ``field_types``: perstag -> type (normalized);
    ``existing_fields``: perstag -> the field as ActiveCampaign returns it (``type`` key);
    ``existing_options``: perstag -> option values the field has. Columns left out keep the plain
    text conversion (so existing text fields behave exactly as before).
    """
    typed: dict[str, TypedColumn] = {}
    options = existing_options or {}
    for perstag, column in columns_by_perstag.items():
        existing = existing_fields.get(perstag)
        if perstag in field_types:
            kind: str | None = field_types[perstag]
            explicit = True
        elif existing is not None:
            kind = str(existing.get("type") or "text").lower()
            explicit = False
            if kind not in FIELD_TYPES or kind in TEXT_TYPES:
                continue  # text-like (or e.g. "number"): the plain conversion, as before
        else:
            kind, explicit = None, False  # decided by the first value
        typed[perstag] = TypedColumn(perstag, column, kind, explicit,
                                     frozenset(str(o) for o in options.get(perstag, ())))
    return typed


def type_conflicts(field_types: Mapping[str, str], existing_fields: Mapping[str, Mapping[str, Any]],
                   columns_by_perstag: Mapping[str, str] | None = None) -> list[str]:
    """One sentence per field that exists in ActiveCampaign with another type than ``field_types`` asks."""
    problems = []
    for perstag, wanted in sorted(field_types.items()):
        existing = existing_fields.get(perstag)
        if existing is None:
            continue
        actual = str(existing.get("type") or "text").lower()
        if actual != wanted:
            column = (columns_by_perstag or {}).get(perstag, perstag)
            problems.append(
                f"column {column!r}: field_types asks for a {wanted} field, but the custom field {perstag} "
                f"(id {existing.get('id')}) already exists as {actual}"
            )
    return problems


# ------------------------------------------------------------------------------------- one run's fields
class FieldPlan:
    """The typed custom fields of one run, between the engine and the client.

    ``resolve`` (plan time, no writes) decides each column's type, reads the options of existing option
    fields and refuses a field that exists with another type than ``field_types`` asks. ``formatters``
    go to the row mapper. At write time ``create_field`` creates a missing field with its type and the
    options the run's values need, and ``create_missing_options`` adds those an existing field lacks.
    """

    def __init__(self, typed: dict[str, TypedColumn]) -> None:
        self.typed = typed

    @classmethod
    def resolve(cls, client: Any, columns_by_perstag: Mapping[str, str], field_types: Mapping[str, str] | None,
                existing_fields: Mapping[str, Mapping[str, Any]]) -> FieldPlan:
        wanted = normalize_field_types(field_types)
        unknown = sorted(set(wanted) - set(columns_by_perstag))
        if unknown:
            raise FieldTypeError(f"field_types names columns the query does not have as custom fields: "
                                 f"{', '.join(unknown)} (columns: {', '.join(columns_by_perstag.values())}).")
        problems = type_conflicts(wanted, existing_fields, columns_by_perstag)
        if problems:
            raise FieldTypeError("A custom field exists with another type; ActiveCampaign cannot change a field's "
                                 "type, so nothing was sent: " + "; ".join(problems) + ". Rename the column, or "
                                 "drop its field_types entry to write in the existing field's format.")
        options: dict[str, list[str]] = {}
        for perstag in columns_by_perstag:
            existing = existing_fields.get(perstag)
            kind = wanted.get(perstag) or str((existing or {}).get("type") or "").lower()
            if existing is not None and kind in OPTION_TYPES:
                options[perstag] = [str(o.get("value")) for o in client.get_field_options(existing["id"])
                                    if o.get("value") is not None]
        return cls(plan_columns(columns_by_perstag, wanted, existing_fields, options))

    @property
    def formatters(self) -> dict[str, Callable[[Any], str | None]]:
        return {perstag: column.format for perstag, column in self.typed.items()}

    def field_type(self, perstag: str) -> str:
        column = self.typed.get(perstag)
        return (column.field_type if column is not None else None) or "text"

    def describe(self) -> dict[str, str]:
        """perstag -> type, for the plan and the summary."""
        return {perstag: self.field_type(perstag) for perstag in sorted(self.typed)}

    def create_field(self, client: Any, perstag: str, title: str) -> dict[str, Any]:
        """Create a missing field with its type and the options the run needs."""
        column = self.typed.get(perstag)
        kind = self.field_type(perstag)
        options = column.missing_options if column is not None and kind in OPTION_TYPES else []
        # options only when there are some: clients written before typed fields take no such argument
        extra = {"options": options} if options else {}
        created: dict[str, Any] = client.create_custom_field(title, perstag=perstag, field_type=kind, **extra)
        if column is not None:
            column.existing_options = column.existing_options | frozenset(options)
            column.needed_options.clear()
        return created

    def create_missing_options(self, client: Any, field_ids: Mapping[str, str]) -> dict[str, list[str]]:
        """Add to existing option fields the options the run's values need; returns what was created."""
        created: dict[str, list[str]] = {}
        for perstag, column in self.typed.items():
            if column.field_type in OPTION_TYPES and column.missing_options and perstag in field_ids:
                client.create_field_options(field_ids[perstag], column.missing_options)
                created[perstag] = column.missing_options
                column.existing_options = column.existing_options | frozenset(column.missing_options)
                column.needed_options.clear()
        return created
