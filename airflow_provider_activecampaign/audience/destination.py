"""The destination of an audience: the user group and the list, found or created the one way.

Plain Python, no Airflow: the engine, the list-preparing operator and the list sensor share it, so a
list is always created the same way (with the sender fields ActiveCampaign requires) and tied to its
group, which a list created through the API needs to show in the web app.
"""

from __future__ import annotations

from typing import Any, Protocol

from airflow_provider_activecampaign.audience.plan import AudienceSyncError

__all__ = ["DestinationClient", "DestinationError", "find_or_create_list", "resolve_group"]


class DestinationError(AudienceSyncError):
    """The group or list cannot be used as asked: the user must act (create it, fix the name)."""


class DestinationClient(Protocol):
    """The part of ActiveCampaignHook this module uses."""

    @property
    def api_url(self) -> str: ...

    def find_user_group(self, name: str) -> dict[str, Any] | None: ...
    def find_list_by_name(self, name: str) -> dict[str, Any] | None: ...
    def create_list(self, name: str, *, sender_url: str, sender_reminder: str) -> dict[str, Any]: ...
    def add_list_to_group(self, list_id: str, group_id: str) -> Any: ...


def resolve_group(client: DestinationClient, name: str | None) -> dict[str, Any] | None:
    """The user group titled ``name``; None when no name is given. The group must already exist."""
    if not name:
        return None
    group = client.find_user_group(name)
    if group is None:
        raise DestinationError(
            f"Invalid group name {name!r}: no such user group in ActiveCampaign ({client.api_url}). "
            "Create it under Settings > Users, or fix group_name."
        )
    return group


def find_or_create_list(
    client: DestinationClient,
    name: str,
    *,
    group: dict[str, Any] | None,
    create: bool,
    sender_url: str,
    sender_reminder: str,
) -> tuple[dict[str, Any], bool]:
    """The list named exactly ``name`` and whether this call created it.

    A missing list is created only when ``create`` is true, then tied to ``group`` (when given); an
    existing list is returned as it is (its groups are the account's business).
    """
    found = client.find_list_by_name(name)
    if found is not None:
        return found, False
    if not create:
        raise DestinationError(f"List {name!r} does not exist and create_list=False.")
    created = client.create_list(name, sender_url=sender_url, sender_reminder=sender_reminder)
    if group is not None:
        client.add_list_to_group(str(created["id"]), str(group["id"]))
    return created, True
