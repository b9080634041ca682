"""The values a run works with: its options, its plan and its summary. Plain data, no behaviour.

``AudiencePlan`` is what ``AudienceSync.plan()`` decided, frozen so it can be printed, tested and
approved before ``execute(plan)`` sends it; ``execute`` refuses a plan made from a state that has
changed since.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = [
    "AudiencePlan",
    "AudienceSyncError",
    "AudienceSyncRetryableError",
    "EmptyAction",
    "Mode",
    "SyncOptions",
    "SyncSummary",
]

Mode = Literal["mirror", "upsert"]
EmptyAction = Literal["fail", "skip", "proceed"]


class AudienceSyncError(Exception):
    """The run was stopped before (or instead of) writing, for a reason the user must act on."""


class AudienceSyncRetryableError(Exception):
    """The run stopped for a passing reason (an import not processed in time); a retry resumes from the
    journal. Operators must let Airflow retry it, never turn it into a final failure."""


@dataclass
class SyncOptions:
    """What one run should do. Defaults are the safe choice."""

    list_name: str
    group_name: str | None = None
    mode: Mode = "mirror"
    create_list: bool = True
    create_custom_fields: bool = True
    max_invalid_ratio: float = 0.05
    max_removal_ratio: float = 0.2
    action_on_empty: EmptyAction = "fail"
    dry_run: bool = False
    full_refresh: bool = False
    exclude_automations: bool = True
    email_column: str = "email"
    sender_url: str = "https://www.example.com"
    sender_reminder: str = "You are receiving this email because you are a customer of ours."
    import_timeout: float = 1800.0
    progress_interval: float = 10.0
    example_count: int = 3
    # A full read-back of the list at least this often, even when the cheap checks find no drift.
    reconcile_every: _dt.timedelta = field(default_factory=lambda: _dt.timedelta(days=7))
    # The state generation published by the last committed run (from Airflow, seen by every worker);
    # a local copy with another generation is stale. None: nothing published (first run, no Airflow).
    published_generation: str | None = None
    # {email key: when} of the sync's own unsubscribes, published with that generation (see
    # membership.unsubscribe_ledger): lets a worker with a stale copy tell them from anyone else's.
    published_unsubscribes: dict[str, int] | None = None
    # Refused contacts are offered again on this many later runs in a row; then only when their data
    # changes or on the next full read-back (see docs/ARCHITECTURE.md).
    max_refusal_attempts: int = 5
    # Column name -> custom field type (field_types.FIELD_TYPES); other columns: the existing field's
    # type, or inferred from the values for a field to create.
    field_types: dict[str, str] | None = None


@dataclass(frozen=True)
class AudiencePlan:
    """What a run will do, decided from one state generation. Print it, test it, approve it."""

    list_name: str
    list_id: str | None  # None: the list will be created
    mode: str
    field_ids: tuple[tuple[str, str], ...]  # (PERSTAG, field id) of existing fields
    missing_fields: tuple[str, ...]  # perstags to create
    to_add: int
    to_update: int
    to_resubscribe: int  # members this sync removed who are back (contactLists; may start automations)
    to_unsubscribe: int
    unchanged: int
    invalid: int
    duplicates: int
    skipped_unsubscribed: int
    removals: tuple[str, ...]  # emails to unsubscribe (never printed whole: see __str__)
    spool: str  # where the contacts to send wait (a temporary file)
    state_generation: str | None  # the state generation this plan was made from
    membership_source: str  # "state", "activecampaign" or "new list"
    membership_reason: str
    dry_run: bool = False
    field_types: tuple[tuple[str, str], ...] = ()  # (PERSTAG, type) of the typed custom fields

    def __str__(self) -> str:
        return (f"AudiencePlan(list {self.list_name!r} id {self.list_id or '(to create)'}, {self.mode}: "
                f"add {self.to_add}, update {self.to_update}, re-subscribe {self.to_resubscribe}, "
                f"unsubscribe {self.to_unsubscribe}, unchanged {self.unchanged}, invalid {self.invalid}, "
                f"skipped (unsubscribed elsewhere) {self.skipped_unsubscribed}; membership from "
                f"{self.membership_source} ({self.membership_reason}); state generation "
                f"{self.state_generation or '-'}; fields to create {list(self.missing_fields)}"
                f"{'; typed fields ' + str(dict(self.field_types)) if self.field_types else ''})")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form without any email address (safe for logs and XCom)."""
        data = asdict(self)
        data["removals"] = len(self.removals)
        data["field_ids"] = dict(self.field_ids)
        data["missing_fields"] = list(self.missing_fields)
        data["field_types"] = dict(self.field_types)
        return data


@dataclass
class SyncSummary:
    """What a run did (or, for a dry run or verification, would do). Returned as XCom."""

    list_id: str | None
    list_name: str
    mode: str
    dry_run: bool = False
    list_created: bool = False
    rows_read: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    to_add: int = 0
    to_update: int = 0
    unchanged: int = 0
    to_unsubscribe: int = 0
    added: int = 0
    updated: int = 0
    resubscribed: int = 0
    unsubscribed: int = 0
    rejected: int = 0
    refused: int = 0  # refused by the importer this run (reasons in the rejects report)
    refusals: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_unsubscribed: int = 0
    previously_refused: int = 0  # audience contacts refused on earlier runs, data unchanged (offered or not)
    removals_dropped: int = 0  # removals of contacts that no longer exist in ActiveCampaign
    in_flight_resolved: int = 0  # batches of an earlier attempt resolved from the journal
    api_requests: int = 0
    requests_by_endpoint: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    membership_source: str = "state"
    membership_reason: str = ""
    state_generation: str | None = None  # the generation committed by this run (or the one it used)
    rejects_report: str | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)
    # Verification (list sync): contacts missing from the list / on the list but not in the audience.
    missing: int = 0
    unexpected: int = 0
    state_warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
