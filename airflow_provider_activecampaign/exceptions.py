"""Errors raised by the ActiveCampaign client.

Plain Python (no Airflow imports) so the audience logic can catch them. Every message names the HTTP
method, the API path, the status and ActiveCampaign's own words; none ever contains the API key.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ActiveCampaignAccountBlockedError",
    "ActiveCampaignAuthError",
    "ActiveCampaignBulkImportRejectedError",
    "ActiveCampaignConfigurationError",
    "ActiveCampaignConnectionError",
    "ActiveCampaignError",
    "ActiveCampaignInsecureURLError",
    "ActiveCampaignNotFoundError",
    "ActiveCampaignRateLimitError",
    "ActiveCampaignServerError",
    "ActiveCampaignUnexpectedAnswerError",
    "ActiveCampaignValidationError",
]


class ActiveCampaignError(Exception):
    """Base class for every error talking to ActiveCampaign."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        api_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.api_message = api_message


class ActiveCampaignConfigurationError(ActiveCampaignError):
    """The connection cannot be used as configured (no API URL or key, a malformed URL or option)."""


class ActiveCampaignInsecureURLError(ActiveCampaignError):
    """The API URL uses plain http to a host that is not loopback; the key would travel in clear."""


class ActiveCampaignConnectionError(ActiveCampaignError):
    """The host could not be reached (DNS, refused, reset) or did not answer in time."""


class ActiveCampaignAuthError(ActiveCampaignError):
    """The API key was rejected (ActiveCampaign answers 403, often with an empty body) or lacks a permission."""


class ActiveCampaignAccountBlockedError(ActiveCampaignAuthError):
    """HTTP 402: the account is blocked, usually for payment issues."""


class ActiveCampaignNotFoundError(ActiveCampaignError):
    """The resource, or the API itself at this URL, does not exist (404; 403 "No Result found")."""


class ActiveCampaignValidationError(ActiveCampaignError):
    """The request was refused as invalid (400/422). ``code``/``detail`` carry the API's own words."""

    def __init__(self, message: str, *, code: str | None = None, detail: str | None = None,
                 errors: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code
        self.detail = detail
        self.errors = errors or []


class ActiveCampaignBulkImportRejectedError(ActiveCampaignValidationError):
    """A bulk import was refused whole (HTTP 400, nothing queued); ``failure_reasons`` names the contacts."""

    def __init__(self, message: str, *, failure_reasons: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.failure_reasons = failure_reasons or []


class ActiveCampaignUnexpectedAnswerError(ActiveCampaignError):
    """The URL answered, but not like the ActiveCampaign API: an HTML page, non-JSON text, a redirect."""


class ActiveCampaignRateLimitError(ActiveCampaignError):
    """Still rate limited (429, or the bulk importer's "Rate limit exceeded.") after every retry."""


class ActiveCampaignServerError(ActiveCampaignError):
    """ActiveCampaign kept failing with 5xx after every retry."""
