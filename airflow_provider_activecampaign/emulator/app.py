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
   (lazily, by the clock: see ``imports.py``).

Paths outside /api/3 answer a 404 HTML page, so a wrong base URL does not look like the API.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.admin_routes import admin_router
from airflow_provider_activecampaign.emulator.api_routes import api_router
from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.gateway import Gateway
from airflow_provider_activecampaign.emulator.wire import (
    ADMIN_PREFIX,
    API_PREFIX,
    json_response,
)

_NOT_FOUND_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>404 Not Found</title></head>
<body><h1>Not Found</h1><p>The requested URL was not found on this server.</p>
<p>This is the ActiveCampaign emulator; the API lives under <code>/api/3</code>.</p></body></html>
"""


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

    app.include_router(api_router(account))
    app.include_router(admin_router(account))
    app.add_middleware(Gateway, account=account)
    return app
