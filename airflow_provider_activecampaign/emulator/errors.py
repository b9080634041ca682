"""Answers other than success: ``ApiError`` carries the status and body the HTTP layer renders as-is,
and the builders make ActiveCampaign's error shapes.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An answer other than success, raised by the store and rendered as-is by the HTTP layer."""

    def __init__(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {payload!r}")
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def not_found(entity: str, ident: object) -> ApiError:
    """ActiveCampaign's bare-message 404 ("No Result found for _List with id 7")."""
    return ApiError(404, {"message": f"No Result found for {entity} with id {ident}"})


def field_missing(name: str, title: str | None = None) -> dict[str, Any]:
    """One ``errors[]`` item for a required attribute that was not sent."""
    return {
        "title": title or f"The {name} was not provided.",
        "detail": "",
        "code": "field_missing",
        "source": {"pointer": f"/data/attributes/{name}"},
    }


def unprocessable(*errors: dict[str, Any]) -> ApiError:
    """422 with the JSON:API-like ``errors[]`` envelope used by most create endpoints."""
    return ApiError(422, {"errors": list(errors)})


def invalid(name: str, title: str) -> dict[str, Any]:
    return {
        "title": title,
        "detail": "",
        "code": "field_invalid",
        "source": {"pointer": f"/data/attributes/{name}"},
    }


def bulk_error(message: str) -> ApiError:
    return ApiError(400, {"success": 0, "message": message, "failureReasons": [message]})
