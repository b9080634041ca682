"""Apache Airflow provider for ActiveCampaign audience lists."""

from __future__ import annotations

from typing import Any

__all__ = ["CONNECTION_OPTIONS", "__version__", "get_provider_info"]

__version__ = "0.1.0"

# Options a connection may carry in its extra JSON. Defaults equal ActiveCampaign's documented limits
# (developers.activecampaign.com/reference/rate-limits and /reference/bulk-import-contacts).
CONNECTION_OPTIONS: dict[str, dict[str, Any]] = {
    "requests_per_second": {
        "label": "Requests per second",
        "description": "Account-wide API budget shared by every task in this process. ActiveCampaign allows 5.",
        "schema": {"type": ["number", "null"], "default": 5, "minimum": 0.1},
    },
    "bulk_imports_per_minute": {
        "label": "Bulk imports per minute",
        "description": "Multi-contact bulk import requests per minute. ActiveCampaign allows 100.",
        "schema": {"type": ["number", "null"], "default": 100, "minimum": 1},
    },
    "single_imports_per_minute": {
        "label": "Single-contact imports per minute",
        "description": "Bulk import requests carrying one contact, per minute. ActiveCampaign allows 20.",
        "schema": {"type": ["number", "null"], "default": 20, "minimum": 1},
    },
    "timeout": {
        "label": "Read timeout (s)",
        "description": "Seconds to wait for an answer before retrying.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 1},
    },
    "web_url": {
        "label": "Web app URL",
        "description": "Address of the ActiveCampaign web app, for links to lists (default: derived from the API URL).",
        "schema": {"type": ["string", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow. Kept free of imports: it runs in every Airflow process."""
    return {
        "package-name": "airflow-provider-activecampaign",
        "name": "ActiveCampaign",
        "description": "`ActiveCampaign <https://www.activecampaign.com/>`__: send warehouse audiences to lists.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "ActiveCampaign",
                "external-doc-url": "https://developers.activecampaign.com/reference/overview",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "ActiveCampaign",
                "python-modules": ["airflow_provider_activecampaign.hooks.activecampaign"],
            }
        ],
        "operators": [
            {
                "integration-name": "ActiveCampaign",
                "python-modules": [
                    "airflow_provider_activecampaign.operators.connection",
                    "airflow_provider_activecampaign.operators.audience",
                    "airflow_provider_activecampaign.operators.list_sync",
                    "airflow_provider_activecampaign.operators.campaign",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "ActiveCampaign",
                "python-modules": ["airflow_provider_activecampaign.sensors.list"],
            }
        ],
        "triggers": [
            {
                "integration-name": "ActiveCampaign",
                "python-modules": ["airflow_provider_activecampaign.triggers.list"],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "ActiveCampaign",
                "target-integration-name": "Common SQL",
                "python-module": "airflow_provider_activecampaign.operators.unsubscribes",
            }
        ],
        "connection-types": [
            {
                "connection-type": "activecampaign",
                "hook-class-name": "airflow_provider_activecampaign.hooks.activecampaign.ActiveCampaignHook",
                "hook-name": "ActiveCampaign",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "API URL", "password": "API key"},
                    "placeholders": {
                        "host": "https://youraccount.api-us1.com",
                        "password": "Settings > Developer > API Access key",
                    },
                },
                "conn-fields": CONNECTION_OPTIONS,
            }
        ],
        "extra-links": ["airflow_provider_activecampaign.links.ActiveCampaignListLink"],
    }
