"""The unauthenticated ``/_emulator`` admin API: state, config, faults, and the account events other
processes (Celery workers, the demo) drive over HTTP. Not rate limited, not logged."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.faults import Fault
from airflow_provider_activecampaign.emulator.records import Exclusion, Group, Membership
from airflow_provider_activecampaign.emulator.wire import (
    ADMIN_PREFIX,
    contact_detail,
    int_param,
    json_body,
    json_response,
)

# Account methods the admin API runs as ``POST /_emulator/<name>``, with the arguments they take.
ADMIN_EVENTS: dict[str, tuple[str, ...]] = {
    "signup_by_form": ("email", "list_id", "confirmed", "form_id"),
    "unsubscribe_by_contact": ("email", "list_id", "reason", "campaign_id", "message_id"),
    "unsubscribe_by_admin": ("email", "list_id"),
    "unsubscribe_by_automation": ("email", "list_id", "automation_id"),
    "bounce": ("email", "list_id"),
    "add_by_hand": ("email", "list_id"),
    "delete_list": ("list_id",),
    "delete_contact": ("email",),
    "exclude": ("email",),
    "lift_exclusion": ("email",),
    "set_group_limit": ("group_title", "limit_contact", "limit_list"),
}


def _event_answer(result: object) -> dict[str, Any]:
    if isinstance(result, Membership):
        return {"contactList": result.history_json()}
    if isinstance(result, Exclusion):
        return {"exclusion": result.to_json()}
    if isinstance(result, Group):
        return {"groupLimit": result.limits_json()}
    if isinstance(result, int) and not isinstance(result, bool):
        return {"ok": True, "count": result}
    return {"ok": True}


def admin_router(account: Account) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX)

    async def body(request: Request) -> dict[str, Any]:
        data = await json_body(request)
        if not isinstance(data, dict):
            raise ApiError(400, {"error": "expected a JSON object"})
        return data

    def required(data: dict[str, Any], *keys: str) -> list[Any]:
        missing = [k for k in keys if data.get(k) in (None, "")]
        if missing:
            raise ApiError(400, {"error": f"missing {', '.join(missing)}"})
        return [data[k] for k in keys]

    @router.get("/health")
    async def health() -> Response:
        return json_response(200, {"ok": True})

    @router.get("/state")
    async def state(request: Request) -> Response:
        qp = request.query_params
        snapshot = account.snapshot(
            include_contacts=qp.get("contacts", "1") not in ("0", "false"),
            include_requests=qp.get("requests", "0") in ("1", "true"),
        )
        return json_response(200, snapshot)

    @router.post("/reset")
    async def reset() -> Response:
        account.reset()
        return json_response(200, {"ok": True})

    @router.get("/config")
    async def get_config() -> Response:
        return json_response(200, account.config.to_json())

    @router.patch("/config")
    async def patch_config(request: Request) -> Response:
        try:
            cfg = account.configure(**await body(request))
        except ValueError as exc:
            raise ApiError(400, {"error": str(exc)}) from None
        return json_response(200, cfg.to_json())

    @router.get("/faults")
    async def get_faults() -> Response:
        return json_response(200, {"faults": [f.to_json() for f in account.faults.pending()]})

    @router.post("/faults")
    async def post_faults(request: Request) -> Response:
        data = await body(request)
        allowed = {"kind", "count", "status", "path", "method", "retry_after", "delay"}
        unknown = set(data) - allowed
        if unknown:
            raise ApiError(400, {"error": f"unknown fault option(s): {', '.join(sorted(unknown))}"})
        try:
            fault = account.faults.add(Fault(**data))
        except (TypeError, ValueError) as exc:
            raise ApiError(400, {"error": str(exc)}) from None
        return json_response(201, {"fault": fault.to_json()})

    @router.delete("/faults")
    async def clear_faults() -> Response:
        account.faults.clear()
        return json_response(200, {"ok": True})

    @router.delete("/faults/{fault_id}")
    async def delete_fault(fault_id: int) -> Response:
        if not account.faults.remove(fault_id):
            raise ApiError(404, {"error": f"no fault {fault_id}"})
        return json_response(200, {"ok": True})

    @router.post("/blocked")
    async def set_blocked(request: Request) -> Response:
        account.blocked = bool((await body(request)).get("blocked", True))
        return json_response(200, {"blocked": account.blocked})

    @router.post("/groups")
    async def add_group(request: Request) -> Response:
        data = await body(request)
        (title,) = required(data, "title")
        return json_response(201, {"group": account.add_group(str(title), str(data.get("descript", ""))).to_json()})

    @router.post("/lists")
    async def add_list(request: Request) -> Response:
        data = await body(request)
        (name,) = required(data, "name")
        extra = {k: v for k, v in data.items() if k != "name"}
        return json_response(201, {"list": account.add_list(str(name), **extra).to_json()})

    @router.post("/subscribe")
    async def subscribe(request: Request) -> Response:
        email, list_id = required(await body(request), "email", "list")
        membership = account.subscribe(str(email), list_id)
        return json_response(200, {"contactList": membership.to_json()})

    @router.post("/unsubscribe")
    async def unsubscribe(request: Request) -> Response:
        """Simulate the person unsubscribing themselves (imports then cannot re-subscribe them)."""
        email, list_id = required(await body(request), "email", "list")
        try:
            membership = account.unsubscribe_by_contact(str(email), list_id)
        except KeyError as exc:
            raise ApiError(404, {"error": str(exc)}) from None
        return json_response(200, {"contactList": membership.to_json()})

    @router.post("/exclusions")
    async def exclude(request: Request) -> Response:
        (email,) = required(await body(request), "email")
        account.exclude(str(email))
        return json_response(200, {"exclusions": sorted(account.exclusions)})

    @router.post("/{event}")
    async def membership_event(event: str, request: Request) -> Response:
        """The account events of ``ADMIN_EVENTS``: the JSON body holds the method's arguments."""
        names = ADMIN_EVENTS.get(event)
        if names is None:
            raise ApiError(404, {"error": f"no admin event {event!r}; known: {', '.join(sorted(ADMIN_EVENTS))}"})
        data = await body(request)
        if "list" in data and "list_id" in names and "list_id" not in data:
            data["list_id"] = data.pop("list")  # the older admin routes' spelling
        unknown = set(data) - set(names)
        if unknown:
            raise ApiError(400, {"error": f"unknown argument(s) for {event}: {', '.join(sorted(unknown))}"})
        try:
            result = getattr(account, event)(**data)
        except KeyError as exc:
            raise ApiError(404, {"error": str(exc.args[0] if exc.args else exc)}) from None
        except TypeError as exc:
            raise ApiError(400, {"error": str(exc)}) from None
        return json_response(200, _event_answer(result))

    @router.get("/membership")
    async def membership(request: Request) -> Response:
        """One membership with ``changed_by`` and its history: ?email=...&list_id=..."""
        qp = request.query_params
        email, list_id = qp.get("email"), qp.get("list_id") or qp.get("list")
        if not email or not list_id:
            raise ApiError(400, {"error": "missing email or list_id"})
        found = account.membership(email, list_id)
        if found is None:
            raise ApiError(404, {"error": f"no membership of {email} on list {list_id}"})
        return json_response(200, {"contactList": found.history_json()})

    @router.post("/imports/process")
    async def process_imports(request: Request) -> Response:
        force = bool((await body(request)).get("force", True))
        return json_response(200, {"processed": account.process_imports(force=force)})

    @router.get("/lists/{list_id}/members")
    async def list_members(list_id: str, request: Request) -> Response:
        account.get_list(list_id)
        status = int_param(request.query_params.get("status"), 1)
        return json_response(200, {"emails": sorted(account.list_members(list_id, status))})

    @router.get("/contacts/{email}")
    async def contact(email: str) -> Response:
        found = account.contact(email)
        if found is None:
            raise ApiError(404, {"error": f"no contact {email}"})
        return json_response(200, {**contact_detail(found), "tags": sorted(account.contact_tags(email))})

    @router.get("/requests")
    async def requests_log(request: Request) -> Response:
        qp = request.query_params
        since = qp.get("since")
        records = account.requests(
            method=qp.get("method"),
            endpoint=qp.get("endpoint"),
            since=float(since) if since else None,
        )
        return json_response(
            200,
            {
                "requests": [r.to_json() for r in records],
                "counts": dict(account.request_counts()),
                "peak_rate": account.peak_rate(1.0, records),
            },
        )

    @router.delete("/requests")
    async def clear_requests() -> Response:
        account.clear_requests()
        return json_response(200, {"ok": True})

    return router
