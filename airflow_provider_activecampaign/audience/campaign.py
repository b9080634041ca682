"""A campaign's audience split into treatment groups and control groups. Plain Python, no Airflow imports.

One pass over the rows: each row's group comes from the group column. A contact (by normalized email)
belongs to the group of its first row; a later row putting them in another group is rejected with the
reason, as the audience send does for duplicates. Control rows are counted, never sent. Rows without a
group are rejected. Group names are matched ignoring case and surrounding spaces, and keep the spelling
of their first row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_activecampaign.audience.emails import email_problem, normalize_email
from airflow_provider_activecampaign.audience.records import to_text

__all__ = ["CampaignSplit", "list_name_for", "split_campaign"]


@dataclass
class CampaignSplit:
    """The rows of each treatment group (in first-seen order), what was counted and what was rejected."""

    columns: list[str]  # the columns of the rows in ``groups`` (without the group column when dropped)
    groups: dict[str, list[tuple]] = field(default_factory=dict)  # group -> rows
    contacts: Counter = field(default_factory=Counter)  # group -> distinct valid contacts (treatment groups)
    control: Counter = field(default_factory=Counter)  # control group -> distinct valid contacts
    rejects: list[tuple[str, str]] = field(default_factory=list)  # (email, reason)
    rows_read: int = 0

    @property
    def in_two_groups(self) -> int:
        return sum(1 for _, reason in self.rejects if reason.startswith("in two groups"))


def _column_index(columns: Sequence[str], name: str, role: str) -> int:
    found = [i for i, column in enumerate(columns) if column.strip().lower() == name.strip().lower()]
    if not found:
        raise ValueError(f"The {role} column {name!r} is not among the query's columns "
                         f"({', '.join(repr(c) for c in columns)}).")
    return found[0]


def split_campaign(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    *,
    group_column: str = "treatment_group",
    control_groups: Iterable[str] = ("control",),
    email_column: str = "email",
    keep_group_column: bool = False,
) -> CampaignSplit:
    """Split ``rows`` by group. ``keep_group_column`` keeps the group in the rows (combined mode: it
    becomes a custom field); otherwise it is dropped (split mode: the list says the group)."""
    names = [str(c) for c in columns]
    group_index = _column_index(names, group_column, "group")
    email_index = _column_index(names, email_column, "email")
    controls = {str(c).strip().casefold() for c in control_groups}
    kept = names if keep_group_column else [c for i, c in enumerate(names) if i != group_index]
    split = CampaignSplit(columns=kept)
    spelling: dict[str, str] = {}  # casefolded group -> first spelling
    owner: dict[str, str] = {}  # email -> its group (treatment or control)
    for split.rows_read, row in enumerate(rows, start=1):  # noqa: B007 - the count is the point
        values = tuple(row.get(c) for c in names) if isinstance(row, Mapping) else tuple(row)
        email = normalize_email(values[email_index]) or ""
        raw_group = values[group_index]
        group_text = None if raw_group is None else to_text(raw_group)
        if not group_text:
            split.rejects.append((email, f"no group: the {group_column!r} column is empty"))
            continue
        key = group_text.strip().casefold()
        group = spelling.setdefault(key, group_text.strip())
        if email:
            first = owner.setdefault(email, group)
            if first != group:
                split.rejects.append((email, f"in two groups: {first!r} (first row, kept) and {group!r}"))
                continue
        if key in controls:
            continue  # counted below, never sent
        bucket = split.groups.setdefault(group, [])
        bucket.append(values if keep_group_column else values[:group_index] + values[group_index + 1:])
    # Distinct valid contacts per group (duplicate rows count once; invalid emails the engine rejects).
    for email, group in owner.items():
        if email_problem(email) is not None:
            continue
        if group.strip().casefold() in controls:
            split.control[group] += 1
        else:
            split.contacts[group] += 1
    return split


def list_name_for(template: str, *, campaign: str, group: str) -> str:
    """The list of one treatment group: ``template`` with ``{campaign}`` and ``{group}`` filled in."""
    try:
        return template.format(campaign=campaign, group=group).strip()
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(f"list_name_template {template!r} may use only {{campaign}} and {{group}}: {error}") \
            from None
