"""The API methods by resource (lists, groups, contacts, memberships, fields, tags), over one transport.

:class:`ActiveCampaignResources` is a mixin of :class:`~.activecampaign.ActiveCampaignHook`: it only
calls ``self.request`` (rate limited, retried, errors mapped), so each method reads as the API call it
makes. Shapes follow the API v3 reference; ids come back as strings and are sent as ints.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignError,
    ActiveCampaignNotFoundError,
    ActiveCampaignUnexpectedAnswerError,
    ActiveCampaignValidationError,
)
from airflow_provider_activecampaign.hooks.settings import API_PREFIX
from airflow_provider_activecampaign.masking import mask_emails

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

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


def _object(body: JSONDict, key: str, method: str, endpoint: str) -> JSONDict:
    """``body[key]`` when it is the object the docs promise; a clear error when it is not."""
    found = body.get(key)
    if not isinstance(found, dict):
        raise ActiveCampaignUnexpectedAnswerError(
            f"ActiveCampaign {method} {API_PREFIX}/{endpoint} answered without a {key!r} object",
            method=method, path=endpoint, status=200)
    return found


class ActiveCampaignResources:
    """API methods; the class they are mixed into provides ``request``, ``log`` and ``_display_path``."""

    if TYPE_CHECKING:
        @property
        def log(self) -> Logger: ...  # LoggingMixin's, through the hook

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
        for body in self._iter_contact_pages(params, page_size=page_size):
            yield from body.get("contacts") or []

    def _iter_contact_pages(self, params: Mapping[str, Any] | None = None, *,
                            page_size: int = PAGE_SIZE) -> Iterator[JSONDict]:
        """The answers of ``GET contacts`` paged by id, whole (side-loaded records included)."""
        page_size = max(1, min(int(page_size), PAGE_SIZE))
        query: dict[str, Any] = {k: v for k, v in (params or {}).items() if k not in ("offset", "limit")}
        last_id = _int_or_none(query.pop("id_greater", None))
        while True:
            page = {**query, "orders[id]": "ASC", "limit": page_size}
            if last_id is not None:
                page["id_greater"] = last_id
            body = self.request("GET", "contacts", params=page)
            contacts = body.get("contacts") or []
            maybe_ids = [_int_or_none(c.get("id")) for c in contacts]
            ids = [i for i in maybe_ids if i is not None]
            if len(ids) < len(maybe_ids) or (last_id is not None and ids and min(ids) <= last_id):
                raise ActiveCampaignUnexpectedAnswerError(
                    f"ActiveCampaign GET {API_PREFIX}/contacts paging by id did not advance past id "
                    f"{last_id} (the server ignored `id_greater` or returned contacts without ids); stopped",
                    method="GET", path="contacts")
            yield body
            total = _int_or_none((body.get("meta") or {}).get("total"))
            if len(contacts) < page_size or (total is not None and total <= len(contacts)):
                return
            last_id = max(ids)

    def iter_list_contacts(self, list_id: Any, status: int | None = 1) -> Iterator[JSONDict]:
        """Contacts of a list with a given status (1 active, 2 unsubscribed, …; None for any)."""
        return self.iter_contacts({"listid": list_id, "status": status})

    def iter_list_memberships(self, list_id: Any, *, status: int | None = None,
                              page_size: int = PAGE_SIZE) -> Iterator[tuple[JSONDict, JSONDict | None]]:
        """Every contact of a list with its membership of THIS list: ``(contact, contactList or None)``.

        ``GET contacts?listid=ID[&status=S]&include=contactLists``, paged by id. The side-load carries
        each contact's memberships of every list; only the record for ``list_id`` is paired (None when
        the answer has none for a contact, e.g. a server that ignores ``include``).
        """
        wanted = str(list_id)
        params: dict[str, Any] = {"listid": list_id, "include": "contactLists"}
        if status is not None:
            params["status"] = int(status)
        for body in self._iter_contact_pages(params, page_size=page_size):
            memberships: dict[str, JSONDict] = {}
            records = [r for r in body.get("contactLists") or [] if isinstance(r, dict)]
            for contact in body.get("contacts") or []:  # some answers embed the records in the contact
                records.extend(r for r in contact.get("contactLists") or [] if isinstance(r, dict))
            for record in records:
                if str(record.get("list")) == wanted and record.get("contact") is not None:
                    memberships.setdefault(str(record["contact"]), record)
            for contact in body.get("contacts") or []:
                yield contact, memberships.get(str(contact.get("id")))

    def count_list_contacts(self, list_id: Any, status: int) -> int:
        """How many contacts of a list have ``status``, in ONE request: ``limit=1`` and ``meta.total``.

        Raises when the answer has no readable total, or its ``page_input`` shows the list filter was not
        applied: a drift check must never count the wrong thing.
        """
        params = {"listid": list_id, "status": int(status), "limit": 1}
        body = self.request("GET", "contacts", params=params)
        meta = body.get("meta") or {}
        total = _int_or_none(meta.get("total"))
        applied = (meta.get("page_input") or {}).get("listid") if isinstance(meta, dict) else None
        if total is None or (applied is not None and str(applied) != str(list_id)):
            raise ActiveCampaignUnexpectedAnswerError(
                f"ActiveCampaign GET {API_PREFIX}/{self._display_path('contacts', params)} answered without "
                f"a usable count (meta.total {meta.get('total')!r}, list filter applied: {applied!r})",
                method="GET", path="contacts", status=200)
        return total

    def get_contact_membership(self, contact_id: Any, list_id: Any) -> JSONDict | None:
        """The contact's ``contactList`` record for ``list_id`` (status, sdate, udate, unsubreason …), or
        None when they have none, or the contact no longer exists."""
        try:
            memberships = self.get_contact_lists(contact_id)
        except ActiveCampaignNotFoundError:
            return None
        wanted = str(list_id)
        return next((m for m in memberships if str(m.get("list")) == wanted), None)

    def get_list(self, list_id: Any) -> JSONDict | None:
        """``GET lists/{id}`` -> the list, or None when there is no list with that id (404, or the 403
        "No Result found" the API sometimes answers for a missing id)."""
        try:
            body = self.request("GET", f"lists/{list_id}")
        except ActiveCampaignNotFoundError:
            return None
        found = body.get("list")
        return found if isinstance(found, dict) else None

    def delete_list(self, list_id: Any) -> None:
        """``DELETE lists/{id}`` (its memberships go with it; the contacts stay)."""
        self.request("DELETE", f"lists/{list_id}")

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
            return _object(self.request("POST", "lists", json={"list": payload}), "list", "POST", "lists")
        except ActiveCampaignError as exc:
            if exc.status is None or not 400 <= exc.status < 500:
                raise
            try:
                existing = self.find_list_by_name(name)
            except ActiveCampaignError:
                existing = None
            if existing is None:
                raise
            self.log.info("Creating list %s was refused (HTTP %s) but it exists (id %s); using it.",
                          mask_emails(repr(name)), exc.status, existing.get("id"))
            return existing

    def get_group_limits(self) -> list[JSONDict]:
        """``GET groupLimits``: each user group's ``limitContact``, ``limitList`` … ("0" means none)."""
        return list(self.iter_collection("groupLimits", "groupLimits"))

    def iter_exclusions(self) -> Iterator[JSONDict]:
        """The account's exclusion list (``GET lists/exclusions``): ``matchPhrase``, ``matchType``
        (exact, begin, end), ``channel``, ``lists``. Matching emails are never subscribed."""
        return self.iter_collection("lists/exclusions", "exclusions")

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
            if isinstance(contact, dict) and str(contact.get("email") or "").strip().lower() == wanted:
                return contact
        return None

    def sync_contact(self, contact: Mapping[str, Any]) -> JSONDict:
        """``POST contact/sync`` (upsert by email) -> the ``contact`` object."""
        body = self.request("POST", "contact/sync", json={"contact": dict(contact)})
        return _object(body, "contact", "POST", "contact/sync")

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

    def create_custom_field(self, title: str, *, perstag: str, field_type: str = "text",
                            options: Iterable[str] = ()) -> JSONDict:
        """``POST fields`` then ``POST fieldRels`` with relid 0 (else the field is hidden in the UI), then
        the ``options`` of a dropdown, radio, checkbox or listbox field (``POST fieldOption/bulk``)."""
        body = self.request("POST", "fields", json={
            "field": {"type": field_type, "title": title, "perstag": perstag, "visible": 1}})
        created = body.get("field")
        if not isinstance(created, dict):  # the docs' example answers with a `fields` list
            candidates = [f for f in body.get("fields") or [] if isinstance(f, dict)]
            matching = [f for f in candidates if str(f.get("perstag") or "").upper() == perstag.upper()
                        or f.get("title") == title]
            created = next(iter(matching or candidates), None)
        if not isinstance(created, dict) or created.get("id") is None:
            raise ActiveCampaignUnexpectedAnswerError(
                f"ActiveCampaign POST {API_PREFIX}/fields answered without the created field", method="POST",
                path="fields", status=200)
        self.request("POST", "fieldRels", json={"fieldRel": {"field": _as_id(created["id"]), "relid": 0}})
        options = list(options)
        if options:
            self.create_field_options(created["id"], options, first_order=1)  # a new field has none
        return created

    def get_field_options(self, field_id: Any) -> list[JSONDict]:
        """The options of a custom field (``GET fields/{id}`` side-loads them as ``fieldOptions``)."""
        body = self.request("GET", f"fields/{field_id}")
        wanted = str(field_id)
        return [o for o in body.get("fieldOptions") or []
                if isinstance(o, dict) and str(o.get("field", wanted)) == wanted]

    def create_field_options(self, field_id: Any, options: list[str], *,
                             first_order: int | None = None) -> list[JSONDict]:
        """``POST fieldOption/bulk``: one option per value (label = value), shown after the field's
        existing options (``first_order`` None reads them to continue their order: one more request)."""
        if not options:
            return []
        if first_order is None:
            existing = [_int_or_none(o.get("orderid")) for o in self.get_field_options(field_id)]
            first_order = max([o for o in existing if o is not None], default=0) + 1
        body = self.request("POST", "fieldOption/bulk", json={"fieldOptions": [
            {"field": _as_id(field_id), "value": value, "label": value, "orderid": order, "isdefault": False}
            for order, value in enumerate(options, start=first_order)]})
        return [o for o in body.get("fieldOptions") or [] if isinstance(o, dict)]

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
            body = self.request("POST", "tags", json={"tag": {"tag": name, "tagType": "contact",
                                                              "description": ""}})
            return _object(body, "tag", "POST", "tags")
        except ActiveCampaignValidationError:
            existing = self.find_tag(name)
            if existing is None:
                raise
            return existing
