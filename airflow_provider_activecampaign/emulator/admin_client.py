"""A client for the ``/_emulator`` admin API, for processes that do not hold the ``Account`` (Celery
workers, the demo, a DAG under a real scheduler): the same events by the same names, over HTTP.

    admin = EmulatorAdmin("http://127.0.0.1:8025")
    admin.unsubscribe_by_contact("a@example.com", list_id, reason="too many emails")
    assert admin.membership("a@example.com", list_id)["changed_by"] == "contact"

Standard library only, so it needs nothing the emulator does not.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from airflow_provider_activecampaign.emulator.admin_routes import ADMIN_EVENTS
from airflow_provider_activecampaign.emulator.wire import ADMIN_PREFIX

__all__ = ["EmulatorAdmin", "EmulatorAdminError"]


class EmulatorAdminError(RuntimeError):
    """The admin API refused a call (``status`` and the answer's ``error``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class EmulatorAdmin:
    """Drives an emulator at ``url`` (its base URL, without ``/api/3``) through ``/_emulator``."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.base = url.rstrip("/").removesuffix("/api/3") + ADMIN_PREFIX
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **query: Any) -> Any:
        url = f"{self.base}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (loopback only)
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = str(json.loads(raw).get("error") or raw.decode())
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise EmulatorAdminError(exc.code, message) from None

    def _record(self, answer: dict[str, Any], key: str) -> dict[str, Any]:
        found = answer.get(key)
        if not isinstance(found, dict):
            raise EmulatorAdminError(200, f"the answer has no {key!r} object")
        return found

    def event(self, name: str, **arguments: Any) -> dict[str, Any]:
        """Run one of the account events (see ``ADMIN_EVENTS``) with keyword ``arguments``."""
        if name not in ADMIN_EVENTS:
            raise ValueError(f"unknown emulator event {name!r}; known: {', '.join(sorted(ADMIN_EVENTS))}")
        return self._object(self._call("POST", name, {k: v for k, v in arguments.items() if v is not None}))

    # The events, by the names and arguments of the Account methods.
    def _membership_event(self, name: str, email: str, list_id: object, **arguments: Any) -> dict[str, Any]:
        return self._record(self.event(name, email=email, list_id=str(list_id), **arguments), "contactList")

    def signup_by_form(self, email: str, list_id: object, *, confirmed: bool = True) -> dict[str, Any]:
        return self._membership_event("signup_by_form", email, list_id, confirmed=confirmed)

    def unsubscribe_by_contact(
        self, email: str, list_id: object, reason: str = "", *, campaign_id: object = None, message_id: object = None
    ) -> dict[str, Any]:
        return self._membership_event(
            "unsubscribe_by_contact", email, list_id, reason=reason, campaign_id=campaign_id, message_id=message_id
        )

    def unsubscribe_by_admin(self, email: str, list_id: object) -> dict[str, Any]:
        return self._membership_event("unsubscribe_by_admin", email, list_id)

    def unsubscribe_by_automation(self, email: str, list_id: object, automation_id: object) -> dict[str, Any]:
        return self._membership_event("unsubscribe_by_automation", email, list_id, automation_id=str(automation_id))

    def bounce(self, email: str, list_id: object) -> dict[str, Any]:
        return self._membership_event("bounce", email, list_id)

    def add_by_hand(self, email: str, list_id: object) -> dict[str, Any]:
        return self._membership_event("add_by_hand", email, list_id)

    def delete_list(self, list_id: object) -> None:
        self.event("delete_list", list_id=str(list_id))

    def delete_contact(self, email: str) -> None:
        self.event("delete_contact", email=email)

    def exclude(self, email: str) -> dict[str, Any]:
        return self._record(self.event("exclude", email=email), "exclusion")

    def lift_exclusion(self, email: str) -> int:
        return int(self.event("lift_exclusion", email=email)["count"])

    def set_group_limit(self, group_title: str, limit_contact: int) -> dict[str, Any]:
        answer = self.event("set_group_limit", group_title=group_title, limit_contact=limit_contact)
        return self._record(answer, "groupLimit")

    # Reading the account.
    def membership(self, email: str, list_id: object) -> dict[str, Any]:
        """The membership record with ``changed_by`` and ``history`` (who made each change)."""
        return self._record(self._call("GET", "membership", email=email, list_id=str(list_id)), "contactList")

    def list_members(self, list_id: object, status: int = 1) -> set[str]:
        return set(self._call("GET", f"lists/{list_id}/members", status=status)["emails"])

    def state(self, *, contacts: bool = False) -> dict[str, Any]:
        return self._object(self._call("GET", "state", contacts=int(contacts)))

    def configure(self, **changes: Any) -> dict[str, Any]:
        return self._object(self._call("PATCH", "config", changes))

    def reset(self) -> None:
        self._call("POST", "reset", {})

    @staticmethod
    def _object(answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise EmulatorAdminError(200, "the answer is not a JSON object")
        return answer
