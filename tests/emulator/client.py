"""A tiny requests client for the emulator tests."""

from __future__ import annotations

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
