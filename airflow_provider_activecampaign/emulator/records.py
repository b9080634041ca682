"""The records an account holds (lists, contacts, memberships, fields, tags, groups, exclusions,
import batches, logged requests), each rendered in ActiveCampaign's JSON by ``to_json``, and the
markers saying who changed a membership.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_activecampaign.emulator.rules import (
    db_stamp,
    normalize_email,
)

# Who changed a list membership, recorded on every change so tests can tell a person's own
# unsubscribe from one made through the API.
BY_CONTACT = "contact"  # the person unsubscribed themselves (account.unsubscribe_by_contact)

BY_CONTACT_LISTS = "api:contactLists"  # POST /api/3/contactLists

BY_SEED = "seed"  # test set-up helpers (account.subscribe)

BY_FORM = "contact:form"  # the person (re-)subscribed through a subscription form

BY_ADMIN = "admin"  # a user of the account, by hand in the web app

BY_BOUNCE = "system:bounce"  # ActiveCampaign marked the address bounced


def by_import(batch_id: str) -> str:
    """Membership change marker for a bulk import batch."""
    return f"import:{batch_id}"


def by_automation(automation_id: object) -> str:
    """Membership change marker for an automation's "unsubscribe" step."""
    return f"automation:{automation_id}"


UNCONFIRMED = 0

ACTIVE = 1

UNSUBSCRIBED = 2

BOUNCED = 3

# sourceid values: ActiveCampaign documents only 4 ("set to 4 when re-subscribing"); the others are
# the emulator's own labels for how a membership came to be.
SOURCE_UNKNOWN = "0"

SOURCE_FORM = "1"

SOURCE_ADMIN = "2"

SOURCE_API = "3"

SOURCE_RESUBSCRIBED = "4"

STATUS_NAMES = {0: "unconfirmed", 1: "active", 2: "unsubscribed", 3: "bounced"}


@dataclass
class User:
    id: str
    username: str
    first_name: str
    last_name: str
    email: str

    def to_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "phone": "",
            "signature": None,
            "id": self.id,
        }


@dataclass
class MailingList:
    id: str
    name: str
    stringid: str
    sender_url: str
    sender_reminder: str
    cdate: str
    udate: str
    user_id: str = "1"  # the user who created it
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stringid": self.stringid,
            "userid": self.user_id,
            "name": self.name,
            "cdate": self.cdate,
            "udate": self.udate,
            "sender_url": self.sender_url,
            "sender_reminder": self.sender_reminder,
            "send_last_broadcast": "0",
            "carboncopy": "",
            "subscription_notify": "",
            "unsubscription_notify": "",
            "channel": "email",
            "user": self.user_id,
        }
        data.update({k: v if isinstance(v, str) or v is None else str(v) for k, v in self.extra.items()})
        data["id"] = self.id
        return data


@dataclass
class MembershipChange:
    """One status change of a membership: the new status, who made it, when, and why."""

    status: int
    by: str
    at: str
    unsubreason: str = ""
    campaign: str | None = None
    message: str | None = None
    unsubscribe_automation: str | None = None
    sourceid: str = SOURCE_UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "by": self.by,
            "at": self.at,
            "unsubreason": self.unsubreason,
            "campaign": self.campaign,
            "message": self.message,
            "unsubscribeAutomation": self.unsubscribe_automation,
            "sourceid": self.sourceid,
        }


@dataclass
class Membership:
    """A contact's status on one list, with who changed it (``changed_by``) and the full history.

    ``sdate`` is when the contact was (last) subscribed, ``udate`` the last status change. The
    unsubscribe fields (``unsubreason``, ``campaign``, ``message``, ``unsubscribe_automation``)
    describe the change that made the current status and are cleared when the contact is
    subscribed again.
    """

    id: str
    contact_id: str
    list_id: str
    status: int
    sdate: str
    udate: str
    sourceid: str
    changed_by: str
    history: list[MembershipChange] = field(default_factory=list)
    unsubreason: str = ""
    campaign: str | None = None
    message: str | None = None
    automation: str | None = None  # the automation that subscribed them, if one did
    unsubscribe_automation: str | None = None
    form: str | None = None
    created: float = 0.0  # epoch seconds, for created_timestamp
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "contact": self.contact_id,
            "list": self.list_id,
            "form": self.form,
            "seriesid": "0",
            "sdate": self.sdate,
            "udate": self.udate,
            "status": str(self.status),
            "responder": "1",
            "sync": "0",
            "unsubreason": self.unsubreason,
            "campaign": self.campaign,
            "message": self.message,
            "first_name": "",
            "last_name": "",
            "ip4Sub": "0",
            "sourceid": self.sourceid,
            "autosyncLog": None,
            "ip4_last": "0",
            "ip4Unsub": "0",
            "unsubscribeAutomation": self.unsubscribe_automation,
            "automation": self.automation,
            "created_timestamp": db_stamp(self.created),
            "updated_timestamp": db_stamp(self.updated),
            "created_by": None,
            "updated_by": None,
            "links": {
                "automation": "",
                "list": f"/api/3/contactLists/{self.id}/list",
                "contact": f"/api/3/contactLists/{self.id}/contact",
                "form": "",
                "autosyncLog": "",
                "campaign": "",
                "unsubscribeAutomation": "",
                "message": "",
            },
            "id": self.id,
        }

    def history_json(self) -> dict[str, Any]:
        """The record plus who made each change (emulator extra, for the admin API)."""
        return {**self.to_json(), "changed_by": self.changed_by, "history": [h.to_json() for h in self.history]}


@dataclass
class FieldValue:
    id: str
    contact_id: str
    field_id: str
    value: str
    cdate: str
    udate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "contact": self.contact_id,
            "field": self.field_id,
            "value": self.value,
            "cdate": self.cdate,
            "udate": self.udate,
            "owner": self.contact_id,
            "id": self.id,
        }


@dataclass
class Contact:
    id: str
    email: str
    first_name: str
    last_name: str
    phone: str
    orgname: str
    cdate: str
    udate: str
    field_values: dict[str, FieldValue] = field(default_factory=dict)  # by field id
    memberships: dict[str, Membership] = field(default_factory=dict)  # by list id
    tag_ids: set[str] = field(default_factory=set)
    hash: str = ""
    created: float = 0.0  # epoch seconds of cdate / udate, for the date filters of GET contacts
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "cdate": self.cdate,
            "email": self.email,
            "phone": self.phone,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "orgid": "0",
            "orgname": self.orgname,
            "segmentio_id": "",
            "bounced_hard": "0",
            "bounced_soft": "0",
            "ip": "0",
            "hash": self.hash,
            "deleted": "0",
            "udate": self.udate,
            "email_empty": not self.email,
            "fieldValues": [fv.id for fv in self.field_values.values()],
            "id": self.id,
        }


@dataclass
class CustomField:
    id: str
    title: str
    type: str
    perstag: str
    descript: str
    defval: str
    visible: str
    ordernum: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "descript": self.descript,
            "type": self.type,
            "isrequired": "0",
            "perstag": self.perstag,
            "defval": self.defval,
            "show_in_list": "0",
            "rows": "0",
            "cols": "0",
            "visible": self.visible,
            "service": "",
            "ordernum": self.ordernum,
            "cdate": self.cdate,
            "udate": self.cdate,
            "id": self.id,
        }


@dataclass
class FieldOption:
    """One option of a dropdown, radio, checkbox or listbox field."""

    id: str
    field_id: str
    value: str
    label: str
    orderid: int
    isdefault: bool
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "orderid": self.orderid,
            "value": self.value,
            "label": self.label,
            "isdefault": int(self.isdefault),
            "field": self.field_id,
            "cdate": self.cdate,
            "udate": self.cdate,
            "links": {"field": f"/api/3/fieldOptions/{self.id}/field"},
            "id": self.id,
        }


@dataclass
class FieldRel:
    id: str
    field_id: str
    relid: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field_id,
            "relid": self.relid,
            "dorder": "0",
            "cdate": self.cdate,
            "id": self.id,
        }


@dataclass
class Tag:
    id: str
    tag: str
    tag_type: str
    description: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {
            "tagType": self.tag_type,
            "tag": self.tag,
            "description": self.description,
            "cdate": self.cdate,
            "subscriber_count": "0",
            "id": self.id,
        }


@dataclass
class ContactTag:
    id: str
    contact_id: str
    tag_id: str
    cdate: str

    def to_json(self) -> dict[str, Any]:
        return {"contact": self.contact_id, "tag": self.tag_id, "cdate": self.cdate, "id": self.id}


@dataclass
class Group:
    """A user group (permissions), not a contact group: lists need one to show in the UI.

    ``limit_contact`` and ``limit_list`` are the group's limits (GET groupLimits); 0 is no limit.
    """

    id: str
    title: str
    descript: str
    limit_contact: int = 0
    limit_list: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "descript": self.descript, "unsubscribelink": "0", "id": self.id}

    def limits_json(self) -> dict[str, Any]:
        """The group's record in GET groupLimits (same id as the group, as in the documented example)."""
        return {
            "groupid": self.id,
            "limitMail": "0",
            "limitMailType": "month",
            "limitContact": str(self.limit_contact),
            "limitList": str(self.limit_list),
            "limitCampaign": "0",
            "limitCampaignType": "month",
            "limitAttachment": "-1",
            "limitUser": "0",
            "abuseRatio": "4",
            "forceSenderInfo": "0",
            "links": {"group": f"/api/3/groupLimits/{self.id}/group"},
            "id": self.id,
            "group": self.id,
        }


@dataclass
class ListGroup:
    id: str
    list_id: str
    group_id: str

    def to_json(self) -> dict[str, Any]:
        return {"listid": self.list_id, "groupid": self.group_id, "id": self.id}


@dataclass
class Exclusion:
    """An exclusion list entry: ``match_type`` is "exact", "begin" or "end" (case-insensitive)."""

    id: str
    match_phrase: str
    match_type: str
    channel: str  # all | allEmail | allSms | several (then only ``lists``)
    lists: list[str]
    cdate: str

    def matches(self, email: str) -> bool:
        value, phrase = normalize_email(email), self.match_phrase.lower()
        if self.match_type == "begin":
            return value.startswith(phrase)
        if self.match_type == "end":
            return value.endswith(phrase)
        return value == phrase

    def covers(self, list_ids: set[str]) -> bool:
        """Whether this entry applies to an email subscription to any of ``list_ids``."""
        if self.channel == "allSms":
            return False
        if self.channel == "several":
            return bool(list_ids & set(self.lists))
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchPhrase": self.match_phrase,
            "matchType": self.match_type,
            "channel": self.channel,
            "hidden": False,
            "lists": list(self.lists),
        }


@dataclass
class ImportBatch:
    """One accepted bulk import request and, once processed, its outcome."""

    batch_id: str
    contacts: list[dict[str, Any]]
    queued_at: float  # account clock (monotonic)
    ready_at: float
    queued_wall: str
    callback: dict[str, Any] | None = None
    status: str = "waiting"  # "waiting" until processed, then "completed"
    success: list[str] = field(default_factory=list)  # ids of contacts the batch created
    failure: list[str] = field(default_factory=list)  # emails that failed, as sent
    failure_reasons: dict[str, str] = field(default_factory=dict)  # email -> why (emulator extra)
    warnings: list[str] = field(default_factory=list)
    processed_at: float | None = None

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    def to_json(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id,
            "status": self.status,
            "queued_contacts": len(self.contacts),
            "queued": self.queued_wall,
            "success": list(self.success),
            "failure": list(self.failure),
            "failureReasons": dict(self.failure_reasons),
            "warnings": list(self.warnings),
        }


_ID_SEGMENT = re.compile(r"/\d+(?=/|$)")


@dataclass
class RequestRecord:
    """One request seen by the emulator (admin ``/_emulator`` calls are not logged).

    ``time`` is ``time.monotonic()`` (the same clock as the test process on one machine) when the
    request reached the API: its arrival, or the end of an injected delay. The rate limiter uses
    exactly this time, so ``peak_rate`` over admitted requests never exceeds the limit. ``status`` is
    0 until answered and stays 0 when the connection was dropped on purpose.
    """

    method: str
    path: str
    query: str
    time: float
    status: int = 0
    fault: str | None = None  # the injected fault that answered it, if any

    @property
    def endpoint(self) -> str:
        """Method and path relative to /api/3 with numeric ids collapsed ("GET contacts/{id}/contactLists").

        The same keys as the hook's ``request_counts``.
        """
        path = self.path[len("/api/3/") :] if self.path.startswith("/api/3/") else self.path
        return f"{self.method} {_ID_SEGMENT.sub('/{id}', '/' + path)[1:]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "time": self.time,
            "status": self.status,
            "fault": self.fault,
            "endpoint": self.endpoint,
        }
