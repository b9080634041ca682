"""Offline ActiveCampaign API v3 emulator (FastAPI + uvicorn) for tests, the demo and users' own DAG tests.

    from airflow_provider_activecampaign.emulator import EmulatorServer

    with EmulatorServer(api_key="k", requests_per_second=5, import_delay=0.2) as ac:
        ...  # point a connection at ac.url with password "k"
        assert ac.account.list_members("1") == {"a@example.com"}

Command line: ``python -m airflow_provider_activecampaign.emulator --port 8025 --api-key K``.
Needs the ``emulator`` extra (fastapi, uvicorn).
"""

from __future__ import annotations

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.admin_client import EmulatorAdmin, EmulatorAdminError
from airflow_provider_activecampaign.emulator.app import create_app
from airflow_provider_activecampaign.emulator.errors import ApiError
from airflow_provider_activecampaign.emulator.faults import Fault, FaultInjector
from airflow_provider_activecampaign.emulator.limits import EmulatorConfig
from airflow_provider_activecampaign.emulator.records import (
    ACTIVE,
    BOUNCED,
    BY_ADMIN,
    BY_BOUNCE,
    BY_CONTACT,
    BY_CONTACT_LISTS,
    BY_FORM,
    BY_SEED,
    UNCONFIRMED,
    UNSUBSCRIBED,
    Contact,
    Exclusion,
    ImportBatch,
    MailingList,
    Membership,
    MembershipChange,
    RequestRecord,
    by_automation,
    by_import,
)
from airflow_provider_activecampaign.emulator.rules import email_format_problem
from airflow_provider_activecampaign.emulator.server import EmulatorServer, loopback_address

__all__ = [
    "ACTIVE",
    "BOUNCED",
    "BY_ADMIN",
    "BY_BOUNCE",
    "BY_CONTACT",
    "BY_CONTACT_LISTS",
    "BY_FORM",
    "BY_SEED",
    "UNCONFIRMED",
    "UNSUBSCRIBED",
    "Account",
    "ApiError",
    "Contact",
    "EmulatorAdmin",
    "EmulatorAdminError",
    "EmulatorConfig",
    "EmulatorServer",
    "Exclusion",
    "Fault",
    "FaultInjector",
    "ImportBatch",
    "MailingList",
    "Membership",
    "MembershipChange",
    "RequestRecord",
    "by_automation",
    "by_import",
    "create_app",
    "email_format_problem",
    "loopback_address",
]
