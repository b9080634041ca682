"""Warehouse rows -> ActiveCampaign contacts, and the JSON bodies that carry them.

Column roles (names matched case-insensitively):

* the email column (``email`` unless renamed with ``email_column``) is required;
* ``first_name``, ``last_name``, ``phone`` and ``customer_acct_name`` fill the standard contact fields;
* the optional tags column (``tags``) holds tag names: a comma-separated string, a list (database array)
  or a JSON array string (how some warehouses return arrays). Names are trimmed, empty ones dropped and
  duplicates differing only in case merged, keeping the first spelling and the original order;
* every other column is a custom field whose personalization tag is the column name upper-cased, with
  any character outside ``A-Z 0-9 _`` replaced by ``_`` (``plan`` -> ``PLAN``,
  ``Plan tier`` -> ``PLAN_TIER``).

Values: NULL (``None``), NaN and blank strings are not sent at all (the field is left out, so an existing
value in ActiveCampaign is kept, never blanked). Everything else becomes text:

==========================  =====================================================
str                         trimmed
bool                        ``"true"`` / ``"false"``
int, Decimal                digits, no exponent (``Decimal("1E+2")`` -> ``"100"``)
float                       ``3.0`` -> ``"3"``, ``0.5`` -> ``"0.5"``, no exponent
datetime.date               ``"YYYY-MM-DD"``
datetime.datetime           ISO 8601 to the second, with the offset when aware
datetime.time               ``"HH:MM:SS"``
list / tuple / set          ActiveCampaign's multi-value form ``"||a||b||"``
bytes                       decoded as UTF-8
anything else               ``str(value)``, trimmed
==========================  =====================================================

Booleans become ``"true"``/``"false"`` rather than ``"1"``/``"0"`` because that is what a marketer reads in
the contact record and types into a segment condition on a text field.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from hashlib import blake2b
from typing import Any

from airflow_provider_activecampaign.audience.emails import check_email, plain_ascii_email
from airflow_provider_activecampaign.masking import mask_email  # re-exported: engine code imports it here

__all__ = [
    "STANDARD_FIELDS",
    "AudienceContact",
    "ContactRecord",
    "InvalidRow",
    "RowMapper",
    "fingerprint",
    "mask_email",
    "perstag_for",
    "to_import_contact",
    "to_sync_contact",
    "to_text",
]

STANDARD_FIELDS = ("first_name", "last_name", "phone", "customer_acct_name")

# Personalization tags of ActiveCampaign's own contact fields: a custom field column must not take one.
RESERVED_PERSTAGS = {
    "EMAIL": "email",
    "FIRSTNAME": "first_name",
    "LASTNAME": "last_name",
    "FULLNAME": "first_name and last_name",
    "PHONE": "phone",
    "FIRST_NAME": "first_name",
    "LAST_NAME": "last_name",
    "CUSTOMER_ACCT_NAME": "customer_acct_name",
}

_NOT_PERSTAG = re.compile(r"[^A-Z0-9_]")


@dataclass(frozen=True, slots=True)
class AudienceContact:
    """One valid audience row, in the form that is compared, fingerprinted and sent."""

    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    customer_acct_name: str | None = None
    tags: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()  # (PERSTAG, value), sorted by perstag


# An AudienceContact's fields as a plain tuple, in the same order: (email, first_name, last_name, phone,
# customer_acct_name, tags, fields). What the engine's hot loop handles and spools; AudienceContact(*record).
ContactRecord = tuple[str, "str | None", "str | None", "str | None", "str | None", tuple[str, ...],
                      tuple[tuple[str, str], ...]]


class FieldValueError(ValueError):
    """One value cannot be written in its custom field's format; the row goes to the rejects report."""


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A row that cannot be sent; ``email`` is the normalized address when there was one."""

    row_number: int
    email: str | None
    reason: str


def perstag_for(column: str) -> str:
    """The personalization tag of a custom field column: upper-cased, other characters -> ``_``."""
    return _NOT_PERSTAG.sub("_", column.strip().upper())


# ------------------------------------------------------------------------------------------- values
def to_text(value: Any) -> str | None:
    """A column value as the text ActiveCampaign stores, or ``None`` when nothing should be sent."""
    if value is None:
        return None
    convert = _CONVERTERS.get(type(value))
    if convert is not None:
        return convert(value)
    return _other_text(value)


def _float_text(value: float) -> str | None:
    if math.isnan(value):
        return None  # pandas and friends use NaN for NULL
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def _other_text(value: Any) -> str | None:
    if type(value).__name__ in ("NAType", "NaTType"):  # pandas' NULLs
        return None
    if isinstance(value, str):
        return str(value).strip() or None
    if isinstance(value, bool):
        return _bool_text(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _float_text(float(value))
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, (_dt.datetime, _dt.time)):
        return _datetime_text(value)
    if isinstance(value, _dt.date):
        return _dt.date.isoformat(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace").strip() or None
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [to_text(item) for item in value]
        if isinstance(value, (set, frozenset)):
            items.sort(key=lambda item: item or "")
        texts = [item for item in items if item]
        return "||" + "||".join(texts) + "||" if texts else None
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():  # numpy scalars
        return to_text(item())
    try:  # numpy scalars and similar
        if value != value:  # NaN-like
            return None
    except Exception:  # noqa: BLE001 - comparison of an exotic type; just fall through
        pass
    return str(value).strip() or None


def _str_text(value: str) -> str | None:
    return value.strip() or None


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


def _decimal_text(value: Decimal) -> str | None:
    if value.is_nan():
        return None
    if value.is_infinite():
        return "inf" if value > 0 else "-inf"
    return format(value, "f")


def _datetime_text(value: _dt.datetime | _dt.time) -> str:
    return value.isoformat(timespec="seconds")


# Exact types, looked up before the isinstance() chain of _other_text (subclasses go through it).
_CONVERTERS: dict[type, Any] = {
    str: _str_text,
    bool: _bool_text,
    int: str,
    float: _float_text,
    Decimal: _decimal_text,
    _dt.date: _dt.date.isoformat,
    _dt.datetime: _datetime_text,
    _dt.time: _datetime_text,
}


def parse_tags(value: Any) -> tuple[str, ...]:
    """Tag names from a tags cell: comma-separated text, a list, or a JSON array string."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if "," not in text and not text.startswith("["):  # one tag (or none): nothing to split or merge
            return (text,) if text else ()
        items: Any = None
        if text.startswith("[") and text.endswith("]"):
            try:
                items = json.loads(text)
            except ValueError:
                items = None
            if not isinstance(items, list):
                items = None
        if items is None:
            items = text.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
    else:
        items = str(value).split(",")
    seen: set[str] = set()
    tags: list[str] = []
    for item in items:
        tag = item.strip() if type(item) is str else to_text(item)
        if tag:
            key = tag.casefold()
            if key not in seen:
                seen.add(key)
                tags.append(tag)
    return tuple(tags)


# ------------------------------------------------------------------------------------------- mapper
class RowMapper:
    """Turns warehouse rows into :class:`AudienceContact` (or :class:`InvalidRow`) at full speed.

    The column roles are worked out once here; :meth:`map` then only walks precomputed indexes.
    """

    def __init__(self, columns: Sequence[str], *, email_column: str = "email", tags_column: str = "tags",
                 formatters: Mapping[str, Callable[[Any], str | None]] | None = None):
        self.columns: tuple[str, ...] = tuple(str(c) for c in columns)
        # Custom field perstag -> the function writing its values in the field's format (typed fields,
        # see field_types.py); a FieldValueError it raises rejects the row with the reason.
        self.formatters: dict[str, Callable[[Any], str | None]] = dict(formatters or {})
        if not self.columns:
            raise ValueError("The query returned no columns; an email column is required.")
        by_name: dict[str, list[int]] = {}
        for index, name in enumerate(self.columns):
            by_name.setdefault(name.strip().lower(), []).append(index)
        listed = ", ".join(repr(c) for c in self.columns)

        def find(name: str, *, required: bool) -> int | None:
            found = by_name.get(name.strip().lower(), [])
            if len(found) > 1:
                raise ValueError(
                    f"Columns {', '.join(repr(self.columns[i]) for i in found)} both map to {name!r} "
                    f"(column names are matched case-insensitively); keep only one. Columns: {listed}."
                )
            if not found:
                if required:
                    raise ValueError(
                        f"The email column {name!r} is not among the query's columns ({listed}). "
                        f"Select or alias a column as {name!r}, or set email_column to the right name."
                    )
                return None
            return found[0]

        email_index = find(email_column, required=True)
        assert email_index is not None
        self.email_index: int = email_index
        self.email_column = self.columns[email_index]
        used = {email_index}
        standard: list[tuple[int, int]] = []  # (column index, position in STANDARD_FIELDS)
        for slot, attr in enumerate(STANDARD_FIELDS):
            column = find(attr, required=False)
            if column is not None and column not in used:
                standard.append((column, slot))
                used.add(column)
        self._standard = tuple(standard)
        tags_index = find(tags_column, required=False) if tags_column else None
        if tags_index in used:
            tags_index = None
        if tags_index is not None:
            used.add(tags_index)
        self.tags_index: int | None = tags_index

        custom: dict[str, int] = {}
        for index, name in enumerate(self.columns):
            if index in used:
                continue
            if not name.strip():
                raise ValueError(f"Column {index + 1} has no name; alias it. Columns: {listed}.")
            tag = perstag_for(name)
            if tag in RESERVED_PERSTAGS:
                raise ValueError(
                    f"Column {name!r} would become the custom field {tag}, which is an ActiveCampaign "
                    f"standard field; rename it to {RESERVED_PERSTAGS[tag]!r} or drop it."
                )
            if tag in custom:
                raise ValueError(
                    f"Columns {self.columns[custom[tag]]!r} and {name!r} both become the custom field "
                    f"{tag}; rename one of them."
                )
            custom[tag] = index
        self._custom = tuple(sorted(((index, tag) for tag, index in custom.items()), key=lambda it: it[1]))
        self._width = len(self.columns)
        self.map = self._compile()  # type: ignore[method-assign]  # the generated body of map()

    @property
    def custom_field_tags(self) -> list[str]:
        """Personalization tags of the custom field columns, sorted."""
        return [tag for _, tag in self._custom]

    @property
    def roles(self) -> dict[str, str]:
        """Column name -> what it fills (``email``, a standard field, ``tags`` or ``field:PERSTAG``)."""
        roles = {self.email_column: "email"}
        roles.update({self.columns[i]: STANDARD_FIELDS[slot] for i, slot in self._standard})
        if self.tags_index is not None:
            roles[self.columns[self.tags_index]] = "tags"
        roles.update({self.columns[i]: f"field:{tag}" for i, tag in self._custom})
        return roles

    def map(self, values: Sequence[Any] | Mapping[str, Any], row_number: int) -> AudienceContact | InvalidRow:
        """One row (a tuple in ``columns`` order, or a mapping keyed by column name) -> contact or reason.

        Replaced per instance by the code :meth:`_compile` generates for the columns.
        """
        raise NotImplementedError  # pragma: no cover

    def map_record(self, values: Sequence[Any] | Mapping[str, Any], row_number: int) -> ContactRecord | InvalidRow:
        """Like :meth:`map`, but a valid row gives a plain :data:`ContactRecord` tuple (the fields of
        :class:`AudienceContact` in order): the engine's hot loop needs no object per row.

        Replaced per instance by the code :meth:`_compile` generates for the columns.
        """
        raise NotImplementedError  # pragma: no cover

    def _compile(self) -> Any:
        """Build ``map`` and ``map_record`` for these columns: straight-line code, no per-row loops over
        column roles. The generated source only holds integer indexes; names and tags are constants.
        """
        std_slots = dict((slot, index) for index, slot in self._standard)
        lines = [
            "def _record(values, row_number):",
            "    kind = type(values)",
            "    if kind is not tuple and kind is not list and isinstance(values, Mapping):",
            "        get = values.get",
            "        values = [get(name) for name in COLUMNS]",
            f"    elif len(values) != {self._width}:",
            "        raise ValueError(f'Row {row_number} has {len(values)} values but the query has "
            f"{self._width} columns.')",
            f"    email = values[{self.email_index}]",
            # Plain ASCII addresses: normalized and checked by one expression (see emails.check_email).
            "    if type(email) is not str or plain_ascii(email := email.strip().lower()) is None:",
            f"        email, problem = check_email(values[{self.email_index}])",
            "        if problem is not None:",
            "            return InvalidRow(row_number, email, problem)",
        ]
        for slot in range(len(STANDARD_FIELDS)):
            if slot in std_slots:
                lines += [
                    f"    v = values[{std_slots[slot]}]",
                    f"    s{slot} = None if v is None else "
                    "(v.strip() or None) if type(v) is str else to_text(v)",
                ]
            else:
                lines.append(f"    s{slot} = None")
        if not self._custom:
            lines.append("    fields = ()")
        else:
            lines.append("    fields = []")
            for number, (index, tag) in enumerate(self._custom):
                if tag in self.formatters:
                    lines += [
                        f"    v = values[{index}]",
                        "    if v is not None:",
                        "        try:",
                        f"            v = FORMAT[{number}](v)",
                        "        except FieldValueError as error:",
                        f"            return InvalidRow(row_number, email, f'column {{NAMES[{number}]!r}}: {{error}}')",
                        "        if v:",
                        f"            fields.append((TAGS[{number}], v))",
                    ]
                    continue
                lines += [
                    f"    v = values[{index}]",
                    "    if v is not None:",
                    "        v = v.strip() if type(v) is str else to_text(v)",
                    "        if v:",
                    f"            fields.append((TAGS[{number}], v))",
                ]
            lines.append("    fields = tuple(fields)")
        if self.tags_index is None:
            lines.append("    tags = ()")
        else:
            lines += [f"    v = values[{self.tags_index}]", "    tags = () if v is None else parse_tags(v)"]
        lines += [
            "    return (email, s0, s1, s2, s3, tags, fields)",
            "",
            "def _map(values, row_number):",
            "    record = _record(values, row_number)",
            "    if type(record) is InvalidRow:",
            "        return record",
            "    return AudienceContact(*record)",
        ]
        namespace: dict[str, Any] = {
            "Mapping": Mapping, "COLUMNS": self.columns, "TAGS": tuple(tag for _, tag in self._custom),
            "plain_ascii": plain_ascii_email, "check_email": check_email, "to_text": to_text,
            "parse_tags": parse_tags, "InvalidRow": InvalidRow, "AudienceContact": AudienceContact,
            "FieldValueError": FieldValueError, "NAMES": tuple(self.columns[i] for i, _ in self._custom),
            "FORMAT": tuple(self.formatters.get(tag) for _, tag in self._custom),
        }
        exec(compile("\n".join(lines), f"<RowMapper {len(self.columns)} columns>", "exec"), namespace)
        self.map_record = namespace["_record"]  # type: ignore[method-assign]
        return namespace["_map"]


# ------------------------------------------------------------------------------------ fingerprints
def fingerprint(contact: AudienceContact | ContactRecord) -> str:
    """12 hex digits that change whenever anything sent for ``contact`` changes, list membership aside.

    Takes an :class:`AudienceContact` or its :data:`ContactRecord` tuple. Stable across processes and
    Python versions (length-prefixed text + BLAKE2b, never ``hash()``). Tags are compared as a set,
    ignoring order and case, because that is how ActiveCampaign applies them.

    The email itself is left out: a fingerprint is always stored and compared under its email, so
    including it would add nothing, and leaving it out lets contacts with the same attributes (an
    email-only audience, say) share one fingerprint, which the state store then shares in memory.
    48 bits make a change that goes unnoticed (old and new attributes hashing alike) a 1 in 2.8e14 event.

    The canonical text is ``v2|`` + the parts joined by ``|``, each ``-`` for none or ``len:text``: the
    four standard fields, the tag count, the sorted case-folded tags, the field count, then each field's
    personalization tag and value (see :func:`_reference_fingerprint`, the plain statement of it). Every
    stored state holds these values, so the text must never change; this version only builds it faster.
    """
    if type(contact) is not tuple:
        contact = (contact.email, contact.first_name, contact.last_name, contact.phone,  # type: ignore[union-attr]
                   contact.customer_acct_name, contact.tags, contact.fields)  # type: ignore[union-attr]
    _email, first, last, phone, acct, tags, fields = contact
    text = (f"v2|{'-' if first is None else f'{len(first)}:{first}'}"
            f"|{'-' if last is None else f'{len(last)}:{last}'}"
            f"|{'-' if phone is None else f'{len(phone)}:{phone}'}"
            f"|{'-' if acct is None else f'{len(acct)}:{acct}'}")
    if not tags:
        text += "|1:0"
    elif len(tags) == 1:
        tag = tags[0].casefold()
        text += f"|1:1|{len(tag)}:{tag}"
    else:
        folded = sorted({tag.casefold() for tag in tags})
        count = str(len(folded))
        text += f"|{len(count)}:{count}|" + "|".join([f"{len(tag)}:{tag}" for tag in folded])
    if not fields:
        text += "|1:0"
    elif len(fields) == 1:  # the common shapes spelled out: a comprehension costs more than the hash
        (tag, value), = fields
        text += f"|1:1|{len(tag)}:{tag}|{len(value)}:{value}"
    else:
        count = str(len(fields))
        text += f"|{len(count)}:{count}|" + "|".join([f"{len(tag)}:{tag}|{len(value)}:{value}"
                                                      for tag, value in fields])
    return blake2b(text.encode("utf-8"), digest_size=6).hexdigest()


def _reference_fingerprint(contact: AudienceContact) -> str:
    """The canonical text of :func:`fingerprint`, stated plainly (tests check that the two agree)."""
    tags = sorted({tag.casefold() for tag in contact.tags}) if contact.tags else ()
    parts = [contact.first_name, contact.last_name, contact.phone, contact.customer_acct_name,
             str(len(tags)), *tags, str(len(contact.fields))]
    for tag, value in contact.fields:
        parts += (tag, value)
    canonical = "v2|" + "|".join("-" if p is None else f"{len(p)}:{p}" for p in parts)
    return hashlib.blake2b(canonical.encode("utf-8"), digest_size=6).hexdigest()


# ------------------------------------------------------------------------------------------ payloads
def _field_id(field_ids: Mapping[str, str | int], tag: str) -> int:
    try:
        return int(field_ids[tag])
    except KeyError:
        raise KeyError(
            f"custom field {tag!r} has no id in field_ids (known: {', '.join(sorted(field_ids)) or 'none'})"
        ) from None


def to_import_contact(
    contact: AudienceContact,
    *,
    field_ids: Mapping[str, str | int],
    subscribe_list_id: str | int | None = None,
    unsubscribe_list_id: str | int | None = None,
    exclude_automations: bool = True,
) -> dict[str, Any]:
    """The ``import/bulk_import`` JSON object for one contact (empty parts left out)."""
    body: dict[str, Any] = {"email": contact.email}
    if contact.first_name:
        body["first_name"] = contact.first_name
    if contact.last_name:
        body["last_name"] = contact.last_name
    if contact.phone:
        body["phone"] = contact.phone
    if contact.customer_acct_name:
        body["customer_acct_name"] = contact.customer_acct_name
    if contact.tags:
        body["tags"] = list(contact.tags)
    if contact.fields:
        body["fields"] = [{"id": _field_id(field_ids, tag), "value": value} for tag, value in contact.fields]
    if subscribe_list_id is not None:
        body["subscribe"] = [{"listid": int(subscribe_list_id)}]
    if unsubscribe_list_id is not None:
        body["unsubscribe"] = [{"listid": int(unsubscribe_list_id)}]
    body["exclude_automations"] = bool(exclude_automations)
    return body


def to_sync_contact(contact: AudienceContact, *, field_ids: Mapping[str, str | int]) -> dict[str, Any]:
    """The ``contact/sync`` JSON object (the value of ``"contact"``) for one contact.

    ``customer_acct_name`` and tags have no place in this body and are left out.
    """
    body: dict[str, Any] = {"email": contact.email}
    if contact.first_name:
        body["firstName"] = contact.first_name
    if contact.last_name:
        body["lastName"] = contact.last_name
    if contact.phone:
        body["phone"] = contact.phone
    if contact.fields:
        body["fieldValues"] = [
            {"field": str(_field_id(field_ids, tag)), "value": value} for tag, value in contact.fields
        ]
    return body
