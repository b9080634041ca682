"""ActiveCampaign's ``/api/3`` surface: each route parses the request and renders the account's answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.rules import parse_moment
from airflow_provider_activecampaign.emulator.wire import (
    API_PREFIX,
    collection,
    contact_detail,
    filter_param,
    int_param,
    json_body,
    json_response,
    page_params,
    wrapped,
)


def api_router(account: Account) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)

    @router.get("/users/me")
    async def users_me() -> Response:
        return json_response(200, {"user": account.user.to_json()})

    # ---- lists ----
    @router.get("/lists")
    async def get_lists(request: Request) -> Response:
        limit, offset = page_params(request, 20)
        name, op = filter_param(request, "name")
        found = account.find_lists(name, op)
        return json_response(
            200, collection("lists", [x.to_json() for x in found[offset : offset + limit]], len(found))
        )

    @router.post("/lists")
    async def post_lists(request: Request) -> Response:
        # ActiveCampaign's docs show 200 (not 201) for list creation.
        return json_response(200, {"list": account.create_list(await wrapped(request, "list")).to_json()})

    # The exclusion routes come before lists/{list_id} so "exclusions" is not taken for an id.
    @router.get("/lists/exclusions")
    async def get_exclusions(request: Request) -> Response:
        limit, offset = page_params(request, 20)
        phrase, _ = filter_param(request, "matchPhrase")
        entries = account.exclusion_entries
        if phrase is not None:
            entries = [x for x in entries if phrase.lower() in x.match_phrase.lower()]
        items = [x.to_json() for x in entries[offset : offset + limit]]
        # meta.total is a number in the documented example of this endpoint.
        return json_response(200, {"exclusions": items, "meta": {"total": len(entries)}})

    @router.post("/lists/exclusions")
    async def post_exclusion(request: Request) -> Response:
        data = await wrapped(request, "exclusion")
        lists = data.get("lists") or []
        if not isinstance(lists, list):
            raise ApiError(
                422,
                {
                    "errors": [
                        {
                            "status": 422,
                            "title": "Invalid attribute",
                            "detail": "Lists must be an array of string-quoted integers",
                            "source": {"pointer": "/data/attributes/lists"},
                        }
                    ]
                },
            )
        exclusion = account.add_exclusion(
            data.get("matchPhrase", ""), data.get("matchType") or "exact", data.get("channel") or "all", lists
        )
        return json_response(201, {"exclusion": exclusion.to_json()})

    @router.get("/lists/exclusions/{exclusion_id}")
    async def get_exclusion(exclusion_id: str) -> Response:
        return json_response(200, account.get_exclusion(exclusion_id).to_json())

    @router.put("/lists/exclusions/{exclusion_id}")
    async def put_exclusion(exclusion_id: str, request: Request) -> Response:
        data = await json_body(request)
        data = data.get("exclusion", data) if isinstance(data, dict) else {}
        lists = data.get("lists") or []
        channel = str(data.get("channel") or account.get_exclusion(exclusion_id).channel)
        updated = account.update_exclusion(exclusion_id, channel, lists if isinstance(lists, list) else [])
        return json_response(200, updated.to_json())

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
        limit, offset = page_params(request, 20)
        groups = list(account.groups.values())
        items = [g.to_json() for g in groups[offset : offset + limit]]
        return json_response(200, collection("groups", items, len(groups)))

    @router.get("/groupLimits")
    async def get_group_limits(request: Request) -> Response:
        limit, offset = page_params(request, 20)
        limits = account.group_limits()
        return json_response(200, collection("groupLimits", limits[offset : offset + limit], len(limits)))

    @router.post("/listGroups")
    async def post_list_groups(request: Request) -> Response:
        data = await wrapped(request, "listGroup")
        return json_response(
            201, {"listGroup": account.add_list_group(data.get("listid"), data.get("groupid")).to_json()}
        )

    # ---- contacts ----
    @router.get("/contacts")
    async def get_contacts(request: Request) -> Response:
        qp = request.query_params
        limit, offset = page_params(request, 20)
        email = qp.get("email")
        email_like = qp.get("email_like") or None
        list_id = qp.get("listid") or None
        status = int_param(qp.get("status"), -1)
        id_greater = int_param(qp.get("id_greater"), -1)
        id_greater_opt = id_greater if id_greater >= 0 else None
        direction = (qp.get("orders[id]") or "ASC").upper()
        # Date filters ActiveCampaign could not read are ignored, as it ignores unknown filters;
        # page_input echoes the ones applied.
        dates: dict[str, float] = {}
        for name in ("created_before", "created_after", "updated_before", "updated_after"):
            moment = parse_moment(qp.get(f"filters[{name}]"))
            if moment is not None:
                dates[name] = moment
        page, total = account.query_contacts(
            dates=dates,
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
            "listid": int_param(list_id, 0) if list_id else 0,
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
        if dates:
            page_input["filters"] = {name: qp.get(f"filters[{name}]") for name in dates}
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
        return json_response(200, contact_detail(contact))

    @router.delete("/contacts/{contact_id}")
    async def delete_contact(contact_id: str) -> Response:
        account.delete_contact_by_id(contact_id)
        return json_response(200, {})

    @router.get("/contacts/{contact_id}/contactLists")
    async def get_contact_lists(contact_id: str) -> Response:
        return json_response(200, {"contactLists": [m.to_json() for m in account.contact_lists(contact_id)]})

    @router.post("/contact/sync")
    async def post_contact_sync(request: Request) -> Response:
        contact, created, written = account.sync_contact(await wrapped(request, "contact"))
        # 201 when the contact was created, 200 when an existing one was updated.
        return json_response(
            201 if created else 200,
            {"fieldValues": [fv.to_json() for fv in written], "contact": contact.to_json()},
        )

    @router.post("/contactLists")
    async def post_contact_lists(request: Request) -> Response:
        membership, contact = account.set_list_status(await wrapped(request, "contactList"))
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
        limit, offset = page_params(request, 100)
        perstag, _ = filter_param(request, "perstag")
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
                "fieldOptions": [o.to_json() for f in page for o in account.field_options(f.id)],
                "fieldRels": rels,
                "fields": [account.field_json(f) for f in page],
                "meta": {"total": str(len(fields))},
            },
        )

    @router.get("/fields/{field_id}")
    async def get_field(field_id: str) -> Response:
        fld = account.get_field(field_id)
        rels = [r.to_json() for r in account.field_rels.values() if r.field_id == fld.id]
        return json_response(
            200,
            {
                "fieldOptions": [o.to_json() for o in account.field_options(fld.id)],
                "fieldRels": rels,
                "field": account.field_json(fld),
            },
        )

    @router.get("/fields/{field_id}/options")
    async def get_field_options(field_id: str) -> Response:
        return json_response(200, {"fieldOptions": [o.to_json() for o in account.field_options(field_id)]})

    @router.post("/fieldOption/bulk")
    async def post_field_options(request: Request) -> Response:
        body = await json_body(request)
        items = body.get("fieldOptions") if isinstance(body, dict) else None
        return json_response(201, {"fieldOptions": [o.to_json() for o in account.create_field_options(items)]})

    @router.post("/fields")
    async def post_fields(request: Request) -> Response:
        return json_response(201, {"field": account.create_field(await wrapped(request, "field")).to_json()})

    @router.post("/fieldRels")
    async def post_field_rels(request: Request) -> Response:
        return json_response(201, {"fieldRel": account.create_field_rel(await wrapped(request, "fieldRel")).to_json()})

    # ---- tags ----
    @router.get("/tags")
    async def get_tags(request: Request) -> Response:
        limit, offset = page_params(request, 20)
        search = request.query_params.get("search")
        if search is None:
            search, _ = filter_param(request, "search")
        tags = account.find_tags(search)
        return json_response(200, collection("tags", [t.to_json() for t in tags[offset : offset + limit]], len(tags)))

    @router.post("/tags")
    async def post_tags(request: Request) -> Response:
        return json_response(201, {"tag": account.create_tag(await wrapped(request, "tag")).to_json()})

    @router.post("/contactTags")
    async def post_contact_tags(request: Request) -> Response:
        return json_response(
            201, {"contactTag": account.add_contact_tag(await wrapped(request, "contactTag")).to_json()}
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
