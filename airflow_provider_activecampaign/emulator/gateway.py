"""The ``Gateway`` middleware in front of every route: logging, faults, auth, a blocked account and
the general rate limit (the order is in ``app.py``'s docstring)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.faults import Fault, relative_path
from airflow_provider_activecampaign.emulator.wire import (
    ADMIN_PREFIX,
    API_PREFIX,
    json_bytes,
)

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
            return bytes(value).decode("latin-1")
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
                body = json_bytes({"message": "The request could not be processed due to account payment issues."})
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
        body = json_bytes({"message": "Too Many Requests"})
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
            await _send_raw(send, status, json_bytes({"message": _REASONS.get(status, "Error")}), headers)
