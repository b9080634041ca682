"""A tiny requests client for the emulator tests."""

from __future__ import annotations

import time
from typing import Any

import requests

API_KEY = "test-key"


class Api:
    """requests.Session bound to the emulator's /api/3 base URL and key."""

    def __init__(self, base: str, key: str = API_KEY) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Api-Token"] = key

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=5, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", timeout=5, **kwargs)


def wait_completed(api: Api, batch_id: str, timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get("import/info", params={"batchId": batch_id}).json()
        if body["status"] == "completed" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def make_list(api: Api, name: str = "Audience", stringid: str | None = None) -> str:
    body = {
        "name": name,
        "stringid": stringid or name.lower(),
        "sender_url": "https://x.io",
        "sender_reminder": "r",
    }
    resp = api.post("lists", json={"list": body})
    assert resp.status_code == 200, resp.text
    return resp.json()["list"]["id"]


def people(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [{"email": f"person{i}@example.com", "first_name": f"P{i}", **extra} for i in range(start, start + n)]
