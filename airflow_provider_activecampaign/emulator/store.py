"""Compatibility names: the account now lives in ``account.py`` and its concerns in their own modules
(``records``, ``rules``, ``errors``, ``limits``, ``base``, ``catalog``, ``contacts``, ``memberships``,
``imports``). Import from the package (``airflow_provider_activecampaign.emulator``) instead."""

from __future__ import annotations

from airflow_provider_activecampaign.emulator.account import Account
from airflow_provider_activecampaign.emulator.errors import ApiError, field_missing, not_found, unprocessable
from airflow_provider_activecampaign.emulator.limits import (
    EmulatorConfig,
    SlidingWindow,
    max_in_sliding_window,
    window_params,
)
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
from airflow_provider_activecampaign.emulator.rules import email_format_problem, normalize_email, perstag_for

__all__ = [
    "ACTIVE",
    "Account",
    "ApiError",
    "BOUNCED",
    "BY_ADMIN",
    "BY_BOUNCE",
    "BY_CONTACT",
    "BY_CONTACT_LISTS",
    "BY_FORM",
    "BY_SEED",
    "Contact",
    "EmulatorConfig",
    "Exclusion",
    "ImportBatch",
    "MailingList",
    "Membership",
    "MembershipChange",
    "RequestRecord",
    "SlidingWindow",
    "UNCONFIRMED",
    "UNSUBSCRIBED",
    "by_automation",
    "by_import",
    "email_format_problem",
    "field_missing",
    "max_in_sliding_window",
    "normalize_email",
    "not_found",
    "perstag_for",
    "unprocessable",
    "window_params",
]
