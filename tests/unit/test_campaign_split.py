"""A campaign's audience split into treatment and control groups."""

from __future__ import annotations

import pytest

from airflow_provider_activecampaign.audience.campaign import list_name_for, split_campaign

COLUMNS = ["email", "first_name", "Treatment_Group"]


def test_rows_are_split_by_group_and_control_is_only_counted() -> None:
    rows = [
        ("a@x.com", "Ann", "A"),
        ("b@x.com", "Bob", "B"),
        ("c@x.com", "Cy", "control"),
        (" A@X.com ", "Ann again", "a"),  # same contact, same group (case-insensitive): kept for the engine
        ("d@x.com", "Di", "A"),
        ("C@x.com", "Cy", "B"),  # in control first: rejected from B
        ("e@x.com", "Ed", None),
        ("not an email", "Zed", "B"),  # left to the engine's email checks
    ]
    split = split_campaign(COLUMNS, rows, group_column="treatment_group")
    assert split.columns == ["email", "first_name"]
    assert split.groups == {
        "A": [("a@x.com", "Ann"), (" A@X.com ", "Ann again"), ("d@x.com", "Di")],
        "B": [("b@x.com", "Bob"), ("not an email", "Zed")],
    }
    assert split.contacts == {"A": 2, "B": 1}  # the invalid email is not a contact
    assert split.control == {"control": 1}
    assert split.rejects == [
        ("c@x.com", "in two groups: 'control' (first row, kept) and 'B'"),
        ("e@x.com", "no group: the 'treatment_group' column is empty"),
    ]
    assert split.in_two_groups == 1 and split.rows_read == 8


def test_combined_mode_keeps_the_group_column_and_first_row_wins() -> None:
    rows = [{"email": "a@x.com", "Treatment_Group": "A", "first_name": None},
            {"email": "a@x.com", "Treatment_Group": "B", "first_name": None}]
    split = split_campaign(COLUMNS, rows, keep_group_column=True, control_groups=["Holdout"])
    assert split.groups == {"A": [("a@x.com", None, "A")]}
    assert split.rejects == [("a@x.com", "in two groups: 'A' (first row, kept) and 'B'")]


def test_a_missing_group_column_is_named() -> None:
    with pytest.raises(ValueError, match="group column 'segment' is not among the query's columns"):
        split_campaign(COLUMNS, [], group_column="segment")


def test_list_names() -> None:
    assert list_name_for("{campaign} - {group}", campaign="Spring", group="A") == "Spring - A"
    with pytest.raises(ValueError, match="only {campaign} and {group}"):
        list_name_for("{campaign} {variant}", campaign="Spring", group="A")
