"""The emulator's HTTP plumbing shared by its routes: path prefixes, JSON answers and request parsing."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.records import Contact

API_PREFIX = "/api/3"

ADMIN_PREFIX = "/_emulator"


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Compact JSON; ``payload`` None means an empty body without Content-Type."""
    if payload is None:
        return Response(status_code=status, headers=headers)
    return Response(json_bytes(payload), status_code=status, media_type="application/json", headers=headers)


async def json_body(request: Request) -> Any:
    """The parsed JSON body; a malformed one gets ActiveCampaign's usual bare 400 ``{}``."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, {}) from None


async def wrapped(request: Request, key: str) -> dict[str, Any]:
    """The object under the singular wrapper key (``{"contact": {...}}``)."""
    body = await json_body(request)
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


def int_param(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


def page_params(request: Request, default: int, maximum: int = 100) -> tuple[int, int]:
    """(limit, offset): a missing or non-positive limit is the default; above ``maximum`` it is clamped."""
    limit = int_param(request.query_params.get("limit"), default)
    if limit <= 0:
        limit = default
    return min(limit, maximum), max(0, int_param(request.query_params.get("offset"), 0))


def filter_param(request: Request, attribute: str) -> tuple[str | None, str]:
    """``filters[attr]=v`` or ``filters[attr][op]=v`` -> (value, op); op defaults to "contains"."""
    pattern = re.compile(rf"filters\[{re.escape(attribute)}\](?:\[(\w+)\])?")
    for key, value in request.query_params.multi_items():
        match = pattern.fullmatch(key)
        if match:
            return value, (match.group(1) or "contains").lower()
    return None, "contains"


def collection(key: str, items: list[dict[str, Any]], total: int, **extra: Any) -> dict[str, Any]:
    return {key: items, **extra, "meta": {"total": str(total)}}


def contact_detail(contact: Contact) -> dict[str, Any]:
    return {
        "contactLists": [m.to_json() for m in contact.memberships.values()],
        "fieldValues": [fv.to_json() for fv in contact.field_values.values()],
        "contact": contact.to_json(),
    }
