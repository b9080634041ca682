"""The hook's connection settings: the API URL as ActiveCampaign shows it, the key, and the options.

Plain http is refused here, before any request is made, unless the host is loopback (the emulator).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_activecampaign import CONNECTION_OPTIONS
from airflow_provider_activecampaign.exceptions import (
    ActiveCampaignConfigurationError,
    ActiveCampaignInsecureURLError,
)

__all__ = ["API_PREFIX", "ConnectionSettings", "derive_web_url", "normalize_api_url"]

API_PREFIX = "/api/3"

_OPTION_DEFAULTS: dict[str, Any] = {
    name: spec.get("schema", {}).get("default") for name, spec in CONNECTION_OPTIONS.items()
}


def _is_loopback(hostname: str) -> bool:
    name = hostname.strip("[]").lower().rstrip(".")
    if name == "localhost":  # not *.localhost: whether those resolve to loopback depends on the resolver
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def normalize_api_url(host: str | None, port: int | None = None) -> str:
    """The connection's host as ``scheme://host[:port][/prefix]``: no trailing slash, no ``/api/3``.

    Accepts the URL exactly as ActiveCampaign shows it, with or without ``/api/3`` and a trailing slash,
    and a bare host name (https assumed). Plain http is refused unless the host is loopback, before any
    request is made: the API key travels in a header and would cross the network unencrypted.
    """
    raw = (host or "").strip()
    if not raw:
        raise ActiveCampaignConfigurationError(
            "The connection has no API URL (host). Copy it from ActiveCampaign: Settings > Developer, "
            "e.g. https://youraccount.api-us1.com"
        )
    if "://" not in raw:
        raw = "https://" + raw.lstrip("/")
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    try:
        hostname = parts.hostname
        url_port = parts.port
    except ValueError as exc:  # e.g. a non-numeric port
        raise ActiveCampaignConfigurationError(f"The API URL {raw!r} is malformed: {exc}") from None
    if scheme not in ("http", "https") or not hostname:
        raise ActiveCampaignConfigurationError(
            f"The API URL {raw!r} is not an http(s) URL; expected e.g. https://youraccount.api-us1.com"
        )
    if scheme == "http" and not _is_loopback(hostname):
        raise ActiveCampaignInsecureURLError(
            f"plain http refused for {hostname}: the API key would be sent unencrypted. Use the https:// "
            "API URL shown in ActiveCampaign (plain http is only allowed to loopback addresses such as "
            "127.0.0.1, ::1 or localhost)."
        )
    url_port = url_port or (int(port) if port else None)
    netloc = f"[{hostname}]" if ":" in hostname else hostname
    if url_port and (scheme, url_port) not in (("https", 443), ("http", 80)):
        netloc += f":{url_port}"
    path = parts.path.rstrip("/")
    if path.lower().endswith(API_PREFIX):
        path = path[: -len(API_PREFIX)].rstrip("/")
    return f"{scheme}://{netloc}{path}"


def derive_web_url(api_url: str) -> str:
    """``https://acct.api-us1.com`` -> ``https://acct.activehosted.com`` (ActiveCampaign's web app).

    Anything else (an emulator, a proxy) has no known web app address: the API URL itself is returned.
    """
    parts = urlsplit(api_url)
    match = re.fullmatch(r"([a-z0-9-]+)\.api-[a-z]+\d*\.com", parts.hostname or "")
    if parts.scheme == "https" and match:
        return f"https://{match.group(1)}.activehosted.com"
    return api_url


def _positive_number(extra: Mapping[str, Any], name: str) -> float:
    """Read a numeric option; URI-form connections deliver every extra as a string."""
    value = extra.get(name)
    if value is None:
        value = extra.get(f"extra__activecampaign__{name}")  # prefixed keys from old wtforms forms
    if value is None or (isinstance(value, str) and not value.strip()):
        return float(_OPTION_DEFAULTS[name])
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ActiveCampaignConfigurationError(
            f"Connection option {name!r} must be a number, got {value!r}"
        ) from None
    minimum = CONNECTION_OPTIONS[name].get("schema", {}).get("minimum", 0)
    if not number > 0 or number < minimum or number != number or number == float("inf"):
        raise ActiveCampaignConfigurationError(
            f"Connection option {name!r} must be a number >= {minimum}, got {value!r}"
        )
    return number


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything the hook reads from its Airflow connection, validated and typed."""

    api_url: str
    api_key: str = field(repr=False)
    requests_per_second: float
    bulk_imports_per_minute: float
    single_imports_per_minute: float
    timeout: float
    web_url: str

    @classmethod
    def from_connection(cls, conn: Any) -> ConnectionSettings:
        api_url = normalize_api_url(conn.host, getattr(conn, "port", None))
        extra = conn.extra_dejson or {}
        if not isinstance(extra, Mapping):
            raise ActiveCampaignConfigurationError("The connection's extra must be a JSON object")
        web_url = extra.get("web_url") or extra.get("extra__activecampaign__web_url")
        web_url = str(web_url).strip().rstrip("/") if web_url else derive_web_url(api_url)
        return cls(
            api_url=api_url,
            api_key=(conn.password or "").strip(),
            requests_per_second=_positive_number(extra, "requests_per_second"),
            bulk_imports_per_minute=_positive_number(extra, "bulk_imports_per_minute"),
            single_imports_per_minute=_positive_number(extra, "single_imports_per_minute"),
            timeout=_positive_number(extra, "timeout"),
            web_url=web_url,
        )
