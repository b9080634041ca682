"""ListStatus: ActiveCampaign's membership statuses, parsed from what the API sends."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_activecampaign.statuses import ListStatus


def test_values_are_activecampaigns_codes() -> None:
    assert [(s.name, int(s)) for s in ListStatus] == [
        ("UNCONFIRMED", 0), ("ACTIVE", 1), ("UNSUBSCRIBED", 2), ("BOUNCED", 3)]


@pytest.mark.parametrize(("value", "expected"), [
    ("1", ListStatus.ACTIVE), (1, ListStatus.ACTIVE), (" 2 ", ListStatus.UNSUBSCRIBED), ("0", ListStatus.UNCONFIRMED),
    (3, ListStatus.BOUNCED), (ListStatus.UNSUBSCRIBED, ListStatus.UNSUBSCRIBED),
    ("91", None), (91, None), (-1, None), ("", None), (None, None), ("x", None), ("1.0", None), (1.0, None),
    (True, None), ("²", None),
])
def test_parse(value: Any, expected: ListStatus | None) -> None:
    assert ListStatus.parse(value) is expected


def test_compares_with_the_int_the_api_means() -> None:
    assert ListStatus.parse("2") == 2
    assert str(int(ListStatus.ACTIVE)) == "1"  # what POST contactLists sends
