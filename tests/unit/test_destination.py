"""Finding or creating the destination list and group: the requests ActiveCampaign receives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_activecampaign.audience.destination import (
    DestinationError,
    find_or_create_list,
    resolve_group,
)

API = "https://acct.api-us1.com/api/3"


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook

    monkeypatch.setenv("AIRFLOW_CONN_AC_DEST", json.dumps(
        {"conn_type": "activecampaign", "host": "https://acct.api-us1.com", "password": "k" * 20}))
    return ActiveCampaignHook("ac_dest", sleep=lambda _s: None)


def _groups(requests_mock: Any, *titles: str) -> None:
    groups = [{"id": str(i + 1), "title": t} for i, t in enumerate(titles)]
    requests_mock.get(f"{API}/groups", json={"groups": groups, "meta": {"total": str(len(groups))}})


def _lists(requests_mock: Any, *names: str) -> None:
    lists = [{"id": str(i + 7), "name": n} for i, n in enumerate(names)]
    requests_mock.get(f"{API}/lists", json={"lists": lists, "meta": {"total": str(len(lists))}})


def test_a_missing_group_is_refused_naming_it(hook: Any, requests_mock: Any) -> None:
    _groups(requests_mock, "Admin")
    assert resolve_group(hook, "Admin") == {"id": "1", "title": "Admin"}
    assert resolve_group(hook, None) is None and resolve_group(hook, "") is None
    with pytest.raises(DestinationError, match="Invalid group name 'Admins'"):
        resolve_group(hook, "Admins")


def test_an_existing_list_is_returned_untouched(hook: Any, requests_mock: Any) -> None:
    _lists(requests_mock, "VIP customers")
    found, created = find_or_create_list(hook, "VIP customers", group={"id": "1"}, create=True,
                                         sender_url="https://x.example", sender_reminder="r")
    assert (found["id"], created) == ("7", False)
    assert [r.method for r in requests_mock.request_history] == ["GET"]


def test_a_missing_list_is_created_with_its_sender_fields_and_tied_to_the_group(hook: Any,
                                                                                 requests_mock: Any) -> None:
    _lists(requests_mock)
    post = requests_mock.post(f"{API}/lists", json={"list": {"id": "12", "name": "New"}})
    tie = requests_mock.post(f"{API}/listGroups", json={"listGroup": {"listid": "12", "groupid": "1"}})
    found, created = find_or_create_list(hook, "New", group={"id": "1"}, create=True,
                                         sender_url="https://x.example", sender_reminder="You asked for it")
    assert (found["id"], created) == ("12", True)
    sent = post.last_request.json()["list"]
    assert sent["name"] == "New" and sent["sender_url"] == "https://x.example"
    assert sent["sender_reminder"] == "You asked for it"
    assert tie.last_request.json() == {"listGroup": {"listid": 12, "groupid": 1}}


def test_a_missing_list_is_not_created_unless_asked(hook: Any, requests_mock: Any) -> None:
    _lists(requests_mock)
    with pytest.raises(DestinationError, match="does not exist and create_list=False"):
        find_or_create_list(hook, "New", group=None, create=False, sender_url="u", sender_reminder="r")
    assert all(r.method == "GET" for r in requests_mock.request_history)
