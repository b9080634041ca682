"""The API methods by resource (lists, groups, contacts, memberships, fields, tags), over one transport.

:class:`ActiveCampaignResources` is a mixin of :class:`~.activecampaign.ActiveCampaignHook`: it only
calls ``self.request`` (rate limited, retried, errors mapped), so each method reads as the API call it
makes. Shapes follow the API v3 reference; ids come back as strings and are sent as ints.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)
from airflow_provider_activecampaign.hooks.settings import API_PREFIX

__all__ = ["PAGE_SIZE", "ActiveCampaignResources", "derive_stringid"]

JSONDict = dict[str, Any]

PAGE_SIZE = 100  # the API's maximum `limit`


def _as_id(value: Any) -> Any:
    """Ids come back as strings ("6"); the official client sends ints. Send numeric ids as ints."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:40].strip("-") or "list"


def derive_stringid(name: str) -> str:
    """A slug plus a short hash of the exact name: readable, and distinct for names that slug alike."""
    return f"{_slug(name)}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class ActiveCampaignResources:
    """API methods; the class they are mixed into provides ``request``, ``log`` and ``_display_path``."""

    log: logging.Logger | Any

    def request(self, method: str, endpoint: str, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> JSONDict:
        raise NotImplementedError  # provided by the hook

    def _display_path(self, endpoint: str, params: Mapping[str, Any] | None) -> str:
        raise NotImplementedError  # provided by the hook

    def get_current_user(self) -> JSONDict:
        """``GET users/me`` -> the ``user`` object."""
        return self.request("GET", "users/me").get("user") or {}

    def iter_collection(self, endpoint: str, key: str, params: Mapping[str, Any] | None = None, *,
                        page_size: int = PAGE_SIZE) -> Iterator[JSONDict]:
        """Every item of an offset-paged collection.

        Stops on a short page or once ``meta.total`` items were read; raises if the server hands back
        the same page again (an ignored ``offset`` would otherwise loop forever).
        """
        page_size = max(1, min(int(page_size), PAGE_SIZE))
        offset = 0
        previous_ids: list[Any] | None = None
        while True:
            query = {**(params or {}), "limit": page_size, "offset": offset}
            body = self.request("GET", endpoint, params=query)
            items = body.get(key) or []
            ids = [item.get("id") for item in items if isinstance(item, dict)]
            if previous_ids is not None and items and ids == previous_ids:
                raise ActiveCampaignUnexpectedAnswerError(
                    f"ActiveCampaign GET {API_PREFIX}/{self._display_path(endpoint, query)} returned the "
                    "same page again: the server ignored `offset`; stopped to avoid an endless loop",
                    method="GET", path=endpoint)
            previous_ids = ids
            yield from items
            offset += len(items)
            total = _int_or_none((body.get("meta") or {}).get("total"))
            if len(items) < page_size or (total is not None and offset >= total):
                return

    def iter_contacts(self, params: Mapping[str, Any] | None = None, *,
                      page_size: int = PAGE_SIZE) -> Iterator[JSONDict]:
        """Every contact matching ``params``, paged by id (``orders[id]=ASC`` + ``id_greater``).

        The docs recommend this over ``offset`` for big accounts. Raises if the cursor doesn't advance.
        """
        page_size = max(1, min(int(page_size), PAGE_SIZE))
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if k not in ("offset", "limit")}
        last_id = _int_or_none(query.pop("id_greater", None))
        while True:
            page = {**query, "orders[id]": "ASC", "limit": page_size}
            if last_id is not None:
                page["id_greater"] = last_id
            body = self.request("GET", "contacts", params=page)
            contacts = body.get("contacts") or []
            ids = [_int_or_none(c.get("id")) for c in contacts]
            if any(i is None for i in ids) or (last_id is not None and ids and min(ids) <= last_id):
                raise ActiveCampaignUnexpectedAnswerError(
                    f"ActiveCampaign GET {API_PREFIX}/contacts paging by id did not advance past id "
                    f"{last_id} (the server ignored `id_greater` or returned contacts without ids); stopped",
                    method="GET", path="contacts")
            yield from contacts
            total = _int_or_none((body.get("meta") or {}).get("total"))
            if len(contacts) < page_size or (total is not None and total <= len(contacts)):
                return
            last_id = max(ids)

    def iter_list_contacts(self, list_id: Any, status: int | None = 1) -> Iterator[JSONDict]:
        """Contacts of a list with a given status (1 active, 2 unsubscribed, …; None for any)."""
        return self.iter_contacts({"listid": list_id, "status": status})

    def find_list_by_name(self, name: str) -> JSONDict | None:
        """The list named exactly ``name`` (``filters[name]`` may match partially; compared here)."""
        for item in self.iter_collection("lists", "lists", {"filters[name]": name}):
            if item.get("name") == name:
                return item
        return None

    def create_list(self, name: str, *, sender_url: str, sender_reminder: str, stringid: str | None = None,
                    **fields: Any) -> JSONDict:
        """``POST lists``. If refused (4xx), look the name up again: an earlier, lost attempt or a
        concurrent run may have created it."""
        payload = {"name": name, "stringid": stringid or derive_stringid(name), "sender_url": sender_url,
                   "sender_reminder": sender_reminder, **fields}
        try:
            return self.request("POST", "lists", json={"list": payload})["list"]
        except ActiveCampaignError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            try:
                existing = self.find_list_by_name(name)
            except ActiveCampaignError:
                existing = None
            if existing is None:
                raise
            self.log.info("Creating list %r was refused (HTTP %s) but it exists (id %s); using it.",
                          name, exc.status, existing.get("id"))
            return existing

    def find_user_group(self, name: str) -> JSONDict | None:
        """The user group titled exactly ``name``."""
        for group in self.iter_collection("groups", "groups"):
            if group.get("title") == name:
                return group
        return None

    def add_list_to_group(self, list_id: Any, group_id: Any) -> JSONDict:
        """``POST listGroups``: lists created through the API need a group to show in the UI."""
        body = self.request("POST", "listGroups",
                            json={"listGroup": {"listid": _as_id(list_id), "groupid": _as_id(group_id)}})
        return body.get("listGroup") or body

    def find_contact_by_email(self, email: str) -> JSONDict | None:
        """``GET contacts?email=``, verified: the API silently ignores filters it doesn't apply."""
        wanted = email.strip().lower()
        body = self.request("GET", "contacts", params={"email": email.strip()})
        for contact in body.get("contacts") or []:
            if str(contact.get("email") or "").strip().lower() == wanted:
                return contact
        return None

    def sync_contact(self, contact: Mapping[str, Any]) -> JSONDict:
        """``POST contact/sync`` (upsert by email) -> the ``contact`` object."""
        return self.request("POST", "contact/sync", json={"contact": dict(contact)})["contact"]

    def set_list_status(self, contact_id: Any, list_id: Any, status: Any, *,
                        sourceid: Any = None) -> JSONDict:
        """``POST contactLists`` (status 1 subscribes, 2 unsubscribes) -> the ``contactList`` object."""
        payload: dict[str, Any] = {"list": _as_id(list_id), "contact": _as_id(contact_id),
                                   "status": _as_id(str(status))}
        if sourceid is not None:
            payload["sourceid"] = _as_id(str(sourceid))
        body = self.request("POST", "contactLists", json={"contactList": payload})
        return body.get("contactList") or body

    def get_contact_lists(self, contact_id: Any) -> list[JSONDict]:
        """``GET contacts/{id}/contactLists``: one contact's memberships."""
        return list(self.request("GET", f"contacts/{contact_id}/contactLists").get("contactLists") or [])

    def get_custom_fields(self) -> dict[str, JSONDict]:
        """Every contact custom field, keyed by upper-cased perstag."""
        return {str(f.get("perstag") or "").upper(): f for f in self.iter_collection("fields", "fields")}

    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text") -> JSONDict:
        """``POST fields`` then ``POST fieldRels`` with relid 0 (else the field is hidden in the UI)."""
        body = self.request("POST", "fields", json={
            "field": {"type": field_type, "title": title, "perstag": perstag, "visible": 1}})
        created = body.get("field")
        if not isinstance(created, dict):  # the docs' example answers with a `fields` list
            candidates = [f for f in body.get("fields") or [] if isinstance(f, dict)]
            matching = [f for f in candidates if str(f.get("perstag") or "").upper() == perstag.upper()
                        or f.get("title") == title]
            created = (matching or candidates or [None])[0]
        if not isinstance(created, dict) or created.get("id") is None:
            raise ActiveCampaignUnexpectedAnswerError(
                f"ActiveCampaign POST {API_PREFIX}/fields answered without the created field", method="POST",
                path="fields", status=200)
        self.request("POST", "fieldRels", json={"fieldRel": {"field": _as_id(created["id"]), "relid": 0}})
        return created

    def find_tag(self, name: str) -> JSONDict | None:
        """The tag named ``name``, case-insensitively (tag names are unique that way; ``search`` is a
        contains match)."""
        wanted = name.strip().casefold()
        for tag in self.iter_collection("tags", "tags", {"search": name.strip()}):
            if str(tag.get("tag") or "").strip().casefold() == wanted:
                return tag
        return None

    def create_tag(self, name: str) -> JSONDict:
        """``POST tags`` (a contact tag). A refusal because it exists falls back to the existing tag."""
        try:
            return self.request("POST", "tags", json={"tag": {"tag": name, "tagType": "contact",
                                                              "description": ""}})["tag"]
        except ActiveCampaignValidationError:
            existing = self.find_tag(name)
            if existing is None:
                raise
            return existing
