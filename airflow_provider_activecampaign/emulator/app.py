"""HTTP layer of the emulator: ActiveCampaign's /api/3 surface plus an unauthenticated /_emulator admin API.

Request path through the app (the ``Gateway`` middleware, then the routes):

1. every request except ``/_emulator/*`` is logged (method, path, arrival time, final status);
2. an armed fault matching the request answers it, drops it, or delays it (see ``faults.py``);
3. ``/api/3`` requests need ``Api-Token`` equal to the key: otherwise 403 with an empty body and no
   Content-Type, as ActiveCampaign does;
4. a blocked account answers 402;
5. the general sliding-window limit answers 429 with ``Retry-After``. Only admitted requests count:
   403s, 402s, 429s and injected ``status``/``drop`` faults use no slot of the window;
6. the route runs. Routes that touch contacts first apply the bulk import batches that are due
   (lazily, by the clock: see ``store.py``).

Paths outside /api/3 answer a 404 HTML page, so a wrong base URL does not look like the API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_activecampaign.emulator.faults import Fault, relative_path
from airflow_provider_activecampaign.emulator.store import (
    Account,
    ApiError,
    Contact,
    Exclusion,
    Membership,
)

API_PREFIX = "/api/3"
ADMIN_PREFIX = "/_emulator"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REASONS = {
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway time-out",
}

_NOT_FOUND_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>
<p>This is the ActiveCampaign emulator; the API lives under <code>/api/3</code>.</p></body></html>
"""


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON; ``payload`` None means an empty body without Content-Type."""
    if payload is None:
        return Response(status_code=status, headers=headers)
    return Response(_json_bytes(payload), status_code=status, media_type="application/json", headers=headers)


def format_seconds(value: float) -> str:
    """Retry-After value: whole seconds as an integer; fractions kept so tests can stay fast."""
    return str(int(value)) if float(value).is_integer() else str(value)


def cloudflare_page(status: int) -> bytes:
    """An HTML error page like the ones Cloudflare serves in front of ActiveCampaign."""
    reason = _REASONS.get(status, "Error")
    return (
        "<!DOCTYPE html>\n"
        '<!--[if lt IE 7]> <html class="no-js ie6 oldie" lang="en-US"> <![endif]-->\n'
        '<!--[if gt IE 8]><!--> <html class="no-js" lang="en-US"> <!--<![endif]-->\n'
        f"<head><title>emulator.api-us1.com | {status}: {reason}</title>"
        '<meta charset="UTF-8" /></head>\n'
        f'<body><div id="cf-wrapper"><h1><span class="cf-error-type">Error</span> '
        f'<span class="cf-error-code">{status}</span></h1>'
        f"<h2>{reason}</h2><p>Cloudflare Ray ID: 7f0e3c1a2b3d4e5f &bull; Performance &amp; security by "
        "Cloudflare (emulated)</p></div></body></html>\n"
    ).encode()


# --------------------------------------------------------------------------------------------------
# Gateway middleware: logging, faults, auth, blocking, rate limit
# --------------------------------------------------------------------------------------------------


async def _send_raw(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drop_connection(receive: Receive) -> None:
    """Close the client's connection without an HTTP answer.

    ASGI has no "drop" message, so reach uvicorn's transport through its ``receive`` (a bound method
    of the request cycle, both for the httptools and h11 protocols) and abort it. Then yield until
    uvicorn notices the disconnect, so it does not try to send a 500 of its own.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:  # not served by uvicorn: the best we can do is fail loudly
        raise RuntimeError("cannot drop the connection: the server's transport is not reachable")
    transport.abort()
    for _ in range(20):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Gateway:
    """Pure ASGI middleware in front of every route (see the module docstring for the order)."""

    def __init__(self, app: ASGIApp, account: Account) -> None:
        self.app = app
        self.account = account

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        account = self.account
        method: str = scope["method"]
        path: str = scope["path"]
        record = account.log_request(method, path, scope.get("query_string", b"").decode("latin-1"))
        extra_headers: list[tuple[bytes, bytes]] = []

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                if extra_headers:
                    message = {**message, "headers": [*message.get("headers", []), *extra_headers]}
            await send(message)

        fault = account.faults.take(method, relative_path(path))
        if fault is not None:
            record.fault = fault.kind
            if fault.kind == "status":
                await self._fault_response(send_logged, fault)
                return
            if fault.kind == "drop":
                await _drop_connection(receive)
                return
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
                record.time = account.clock()  # it reaches the API (and its rate window) only now

        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            cfg = account.config
            if _header(scope, b"api-token") != cfg.api_key:
                await _send_raw(send_logged, 403, b"", [])
                return
            if account.blocked:
                body = _json_bytes(
                    {"message": "The request could not be processed due to account payment issues."}
                )
                await _send_raw(send_logged, 402, body, [(b"content-type", b"application/json")])
                return
            admitted, limit, remaining = account.admit(record.time)
            if not admitted:
                await self._throttle(send_logged, limit, cfg.retry_after)
                return
            if limit:
                extra_headers += [
                    (b"ratelimit-limit", str(limit).encode()),
                    (b"ratelimit-remaining", str(remaining).encode()),
                ]

        if fault is not None and fault.kind == "drop_after":

            async def swallow(message: Message) -> None:
                return None

            await self.app(scope, receive, swallow)
            record.status = 0
            await _drop_connection(receive)
            return
        await self.app(scope, receive, send_logged)

    async def _throttle(self, send: Send, limit: int, retry_after: float) -> None:
        body = _json_bytes({"message": "Too Many Requests"})
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", format_seconds(retry_after).encode()),
            (b"ratelimit-limit", str(limit).encode()),
            (b"ratelimit-remaining", b"0"),
        ]
        await _send_raw(send, 429, body, headers)

    async def _fault_response(self, send: Send, fault: Fault) -> None:
        status = int(fault.status)
        retry_after = fault.retry_after
        if status == 429:
            rps = self.account.config.requests_per_second
            limit = int(rps) if rps and rps >= 1 else 1
            await self._throttle(
                send, limit, retry_after if retry_after is not None else self.account.config.retry_after
            )
            return
        headers: list[tuple[bytes, bytes]] = []
        if retry_after is not None:
            headers.append((b"retry-after", format_seconds(retry_after).encode()))
        if status == 403:
            await _send_raw(send, 403, b"", headers)
        elif status >= 500:
            headers.append((b"content-type", b"text/html; charset=UTF-8"))
            await _send_raw(send, status, cloudflare_page(status), headers)
        else:
            headers.append((b"content-type", b"application/json"))
            await _send_raw(send, status, _json_bytes({"message": _REASONS.get(status, "Error")}), headers)


# --------------------------------------------------------------------------------------------------
# Request parsing helpers
# --------------------------------------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    """The parsed JSON body; a malformed one gets ActiveCampaign's usual bare 400 ``{}``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, {}) from None


async def _wrapped(request: Request, key: str) -> dict[str, Any]:
    """The object under the singular wrapper key (``{"contact": {...}}``)."""
    body = await _json_body(request)
    inner = body.get(key) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise ApiError(
            422,
            {
                "errors": [
                    {
                        "title": f"The request body must contain a '{key}' object",
                        "detail": "",
                        "code": "field_missing",
                        "source": {"pointer": f"/data/{key}"},
                    }
                ]
            },
        )
    return inner


def _int(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


def _page(request: Request, default: int, maximum: int = 100) -> tuple[int, int]:
    """(limit, offset): a missing or non-positive limit is the default; above ``maximum`` it is clamped."""
    limit = _int(request.query_params.get("limit"), default)
    if limit <= 0:
        limit = default
    return min(limit, maximum), max(0, _int(request.query_params.get("offset"), 0))


def _filter(request: Request, attribute: str) -> tuple[str | None, str]:
    """``filters[attr]=v`` or ``filters[attr][op]=v`` -> (value, op); op defaults to "contains"."""
    pattern = re.compile(rf"filters\[{re.escape(attribute)}\](?:\[(\w+)\])?")
    for key, value in request.query_params.multi_items():
        match = pattern.fullmatch(key)
        if match:
            return value, (match.group(1) or "contains").lower()
    return None, "contains"


def _collection(key: str, items: list[dict[str, Any]], total: int, **extra: Any) -> dict[str, Any]:
    return {key: items, **extra, "meta": {"total": str(total)}}


# --------------------------------------------------------------------------------------------------
# /api/3 routes
# --------------------------------------------------------------------------------------------------


def _api_router(account: Account) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)

    @router.get("/users/me")
    async def users_me() -> Response:
        return json_response(200, {"user": account.user.to_json()})

    # ---- lists ----
    @router.get("/lists")
    async def get_lists(request: Request) -> Response:
        limit, offset = _page(request, 20)
        name, op = _filter(request, "name")
        found = account.find_lists(name, op)
        return json_response(
            200, _collection("lists", [x.to_json() for x in found[offset : offset + limit]], len(found))
        )

    @router.post("/lists")
    async def post_lists(request: Request) -> Response:
        # ActiveCampaign's docs show 200 (not 201) for list creation.
        return json_response(200, {"list": account.create_list(await _wrapped(request, "list")).to_json()})

    # The exclusion routes come before lists/{list_id} so "exclusions" is not taken for an id.
    @router.get("/lists/exclusions")
    async def get_exclusions(request: Request) -> Response:
        limit, offset = _page(request, 20)
        phrase, _ = _filter(request, "matchPhrase")
        entries = account.exclusion_entries
        if phrase is not None:
            entries = [x for x in entries if phrase.lower() in x.match_phrase.lower()]
        items = [x.to_json() for x in entries[offset : offset + limit]]
        # meta.total is a number in the documented example of this endpoint.
        return json_response(200, {"exclusions": items, "meta": {"total": len(entries)}})

    @router.post("/lists/exclusions")
    async def post_exclusion(request: Request) -> Response:
        data = await _wrapped(request, "exclusion")
        lists = data.get("lists") or []
        if not isinstance(lists, list):
            raise ApiError(422, {"errors": [{"status": 422, "title": "Invalid attribute",
                                             "detail": "Lists must be an array of string-quoted integers",
                                             "source": {"pointer": "/data/attributes/lists"}}]})
        exclusion = account.add_exclusion(
            data.get("matchPhrase", ""), data.get("matchType") or "exact", data.get("channel") or "all", lists
        )
        return json_response(201, {"exclusion": exclusion.to_json()})

    @router.get("/lists/exclusions/{exclusion_id}")
    async def get_exclusion(exclusion_id: str) -> Response:
        return json_response(200, account.get_exclusion(exclusion_id).to_json())

    @router.delete("/lists/exclusions/{exclusion_id}")
    async def delete_exclusion(exclusion_id: str) -> Response:
        account.delete_exclusion(exclusion_id)
        return json_response(200, {})

    @router.get("/lists/{list_id}")
    async def get_list(list_id: str) -> Response:
        return json_response(200, {"list": account.get_list(list_id).to_json()})

    @router.delete("/lists/{list_id}")
    async def delete_list(list_id: str) -> Response:
        account.delete_list(list_id)
        return json_response(200, {})

    # ---- user groups ----
    @router.get("/groups")
    async def get_groups(request: Request) -> Response:
        limit, offset = _page(request, 20)
        groups = list(account.groups.values())
        items = [g.to_json() for g in groups[offset : offset + limit]]
        return json_response(200, _collection("groups", items, len(groups)))

    @router.post("/listGroups")
    async def post_list_groups(request: Request) -> Response:
        data = await _wrapped(request, "listGroup")
        return json_response(
            201, {"listGroup": account.add_list_group(data.get("listid"), data.get("groupid")).to_json()}
        )

    # ---- contacts ----
    @router.get("/contacts")
    async def get_contacts(request: Request) -> Response:
        qp = request.query_params
        limit, offset = _page(request, 20)
        email = qp.get("email")
        email_like = qp.get("email_like") or None
        list_id = qp.get("listid") or None
        status = _int(qp.get("status"), -1)
        id_greater = _int(qp.get("id_greater"), -1)
        id_greater_opt = id_greater if id_greater >= 0 else None
        direction = (qp.get("orders[id]") or "ASC").upper()
        page, total = account.query_contacts(
            email=email,
            email_like=email_like,
            list_id=list_id,
            status=status,
            id_greater=id_greater_opt,
            descending=direction == "DESC",
            offset=offset,
            limit=limit,
        )
        page_input: dict[str, Any] = {
            "segmentid": None,
            "formid": 0,
            "listid": _int(list_id, 0) if list_id else 0,
            "tagid": 0,
            "limit": limit,
            "offset": offset,
            "search": None,
            "sort": "id" if "orders[id]" in qp else None,
            "seriesid": 0,
            "waitid": 0,
            "status": status,
            "forceQuery": 0,
            "cacheid": hashlib.md5(str(request.url.query).encode(), usedforsecurity=False).hexdigest(),
        }
        if email is not None:
            page_input["email"] = email
        if email_like is not None:
            page_input["email_like"] = email_like
        if id_greater_opt is not None:
            page_input["id_greater"] = id_greater_opt
        if "orders[id]" in qp:
            page_input["orders"] = {"id": direction}
        answer: dict[str, Any] = {"scoreValues": [], "contacts": [c.to_json() for c in page]}
        includes = {x.strip() for x in (qp.get("include") or "").split(",") if x.strip()}
        if "contactLists" in includes:
            # Side-loaded like ActiveCampaign: every membership of the page's contacts at the top
            # level, and each contact names its membership ids.
            memberships = {c.id: list(c.memberships.values()) for c in page}
            for item in answer["contacts"]:
                item["contactLists"] = [m.id for m in memberships[item["id"]]]
            answer["contactLists"] = [m.to_json() for ms in memberships.values() for m in ms]
        answer["meta"] = {"total": str(total), "page_input": page_input}
        return json_response(200, answer)

    @router.get("/contacts/{contact_id}")
    async def get_contact(contact_id: str) -> Response:
        contact = account.get_contact(contact_id)
        return json_response(200, _contact_detail(contact))

    @router.delete("/contacts/{contact_id}")
    async def delete_contact(contact_id: str) -> Response:
        account.delete_contact_by_id(contact_id)
        return json_response(200, {})

    @router.get("/contacts/{contact_id}/contactLists")
    async def get_contact_lists(contact_id: str) -> Response:
        return json_response(200, {"contactLists": [m.to_json() for m in account.contact_lists(contact_id)]})

    @router.post("/contact/sync")
    async def post_contact_sync(request: Request) -> Response:
        contact, created, written = account.sync_contact(await _wrapped(request, "contact"))
        # 201 when the contact was created, 200 when an existing one was updated.
        return json_response(
            201 if created else 200,
            {"fieldValues": [fv.to_json() for fv in written], "contact": contact.to_json()},
        )

    @router.post("/contactLists")
    async def post_contact_lists(request: Request) -> Response:
        membership, contact = account.set_list_status(await _wrapped(request, "contactList"))
        # The documented answer echoes status as a number here (it is a string in GET contactLists).
        return json_response(
            200,
            {
                "contacts": [contact.to_json()],
                "contactList": {**membership.to_json(), "status": membership.status},
            },
        )

    # ---- custom fields ----
    @router.get("/fields")
    async def get_fields(request: Request) -> Response:
        limit, offset = _page(request, 100)
        perstag, _ = _filter(request, "perstag")
        fields = list(account.fields.values())
        if perstag is not None:
            wanted = perstag.strip("%").upper()
            fields = [f for f in fields if f.perstag == wanted]
        page = fields[offset : offset + limit]
        ids = {f.id for f in page}
        rels = [r.to_json() for r in account.field_rels.values() if r.field_id in ids]
        return json_response(
            200,
            {
                "fieldOptions": [],
                "fieldRels": rels,
                "fields": [f.to_json() for f in page],
                "meta": {"total": str(len(fields))},
            },
        )

    @router.post("/fields")
    async def post_fields(request: Request) -> Response:
        return json_response(201, {"field": account.create_field(await _wrapped(request, "field")).to_json()})

    @router.post("/fieldRels")
    async def post_field_rels(request: Request) -> Response:
        return json_response(
            201, {"fieldRel": account.create_field_rel(await _wrapped(request, "fieldRel")).to_json()}
        )

    # ---- tags ----
    @router.get("/tags")
    async def get_tags(request: Request) -> Response:
        limit, offset = _page(request, 20)
        search = request.query_params.get("search")
        if search is None:
            search, _ = _filter(request, "search")
        tags = account.find_tags(search)
        return json_response(
            200, _collection("tags", [t.to_json() for t in tags[offset : offset + limit]], len(tags))
        )

    @router.post("/tags")
    async def post_tags(request: Request) -> Response:
        return json_response(201, {"tag": account.create_tag(await _wrapped(request, "tag")).to_json()})

    @router.post("/contactTags")
    async def post_contact_tags(request: Request) -> Response:
        return json_response(
            201, {"contactTag": account.add_contact_tag(await _wrapped(request, "contactTag")).to_json()}
        )

    # ---- bulk import ----
    @router.post("/import/bulk_import")
    async def post_bulk_import(request: Request) -> Response:
        raw = await request.body()
        payload: Any = None
        if len(raw) < account.config.max_import_bytes:  # the size check comes first either way
            try:
                payload = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise ApiError(
                    400,
                    {
                        "success": 0,
                        "message": "Invalid JSON payload.",
                        "failureReasons": ["Invalid JSON payload."],
                    },
                ) from None
        batch = account.queue_import(payload, len(raw))
        return json_response(
            200,
            {
                "success": 1,
                "queued_contacts": len(batch.contacts),
                "batchId": batch.batch_id,
                "message": "Contact import queued",
            },
        )

    @router.get("/import/bulk_import")
    async def get_bulk_import() -> Response:
        return json_response(200, account.import_summary())

    @router.get("/import/info")
    async def get_import_info(request: Request) -> Response:
        batch_id = request.query_params.get("batchId")
        if not batch_id:
            raise ApiError(400, {"success": 0, "message": "'batchId' is a required field."})
        return json_response(200, account.import_status(batch_id))

    return router


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
}


def _event_answer(result: object) -> dict[str, Any]:
    if isinstance(result, Membership):
        return {"contactList": result.history_json()}
    if isinstance(result, Exclusion):
        return {"exclusion": result.to_json()}
    if isinstance(result, int) and not isinstance(result, bool):
        return {"ok": True, "count": result}
    return {"ok": True}


def _contact_detail(contact: Contact) -> dict[str, Any]:
    return {
        "contactLists": [m.to_json() for m in contact.memberships.values()],
        "fieldValues": [fv.to_json() for fv in contact.field_values.values()],
        "contact": contact.to_json(),
    }


# --------------------------------------------------------------------------------------------------
# /_emulator admin routes (no auth, not rate limited, not logged)
# --------------------------------------------------------------------------------------------------


def _admin_router(account: Account) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX)

    async def body(request: Request) -> dict[str, Any]:
        data = await _json_body(request)
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
        return json_response(
            201, {"group": account.add_group(str(title), str(data.get("descript", ""))).to_json()}
        )

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
        status = _int(request.query_params.get("status"), 1)
        return json_response(200, {"emails": sorted(account.list_members(list_id, status))})

    @router.get("/contacts/{email}")
    async def contact(email: str) -> Response:
        found = account.contact(email)
        if found is None:
            raise ApiError(404, {"error": f"no contact {email}"})
        return json_response(200, {**_contact_detail(found), "tags": sorted(account.contact_tags(email))})

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


# --------------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------------


def create_app(account: Account | None = None) -> FastAPI:
    """The emulator's ASGI application for ``account`` (a fresh default account if None)."""
    account = account or Account()
    app = FastAPI(
        title="ActiveCampaign emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.account = account

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return json_response(exc.status, exc.payload, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        path = request.url.path
        if path.startswith(API_PREFIX) or path.startswith(ADMIN_PREFIX):
            if exc.status_code == 404:
                return json_response(404, {"message": "No Result found"})
            return json_response(exc.status_code, {"message": str(exc.detail)})
        return Response(_NOT_FOUND_HTML, status_code=exc.status_code, media_type="text/html")

    app.include_router(_api_router(account))
    app.include_router(_admin_router(account))
    app.add_middleware(Gateway, account=account)
    return app
