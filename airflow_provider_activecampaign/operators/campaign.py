"""Sending a campaign: an audience split into treatment groups (sent) and control groups (only counted)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast, get_args
from urllib.parse import urlsplit

from airflow.sdk import ObjectStoragePath

from airflow_provider_activecampaign.audience.campaign import CampaignSplit, list_name_for, split_campaign
from airflow_provider_activecampaign.audience.state import StateLockedError, StateStore
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError, Mode
from airflow_provider_activecampaign.compat import AirflowFailException
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.masking import mask_email
from airflow_provider_activecampaign.operators.arguments import check_choice, is_template
from airflow_provider_activecampaign.operators.audience import (
    AUDIENCE_TEMPLATE_FIELDS,
    BaseAudienceOperator,
    _default_state_uri,
    documented_with_audience_params,
    task_logger,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ActiveCampaignCampaignSendOperator"]

# Summary keys that add up across a campaign's lists.
_COUNTS = ("rows_read", "valid", "invalid", "duplicates", "to_add", "to_update", "unchanged", "to_unsubscribe",
           "added", "updated", "unsubscribed", "rejected", "skipped_unsubscribed", "previously_refused",
           "api_requests")


@documented_with_audience_params
class ActiveCampaignCampaignSendOperator(BaseAudienceOperator):
    """Send a campaign's treatment groups to ActiveCampaign; count its control groups and send them nowhere.

    The query has one row per contact and a group column. With ``split_groups=True`` (default) each
    treatment group becomes its own list, named by ``list_name_template``, created when missing, tied to
    ``group_name`` and mirrored exactly like an audience send (same guards, same run state per list).
    Before anything is written every group's list is planned, so a guard that refuses one group stops the
    whole campaign. With ``split_groups=False`` one list named ``campaign_name`` holds every treatment
    group, and each contact's group is in the custom field whose personalization tag is the group
    column's name upper-cased (``treatment_group`` -> ``%TREATMENT_GROUP%``).

    A contact in two groups stays in the group of their first row; the other rows are rejected with the
    reason (the campaign's rejects report, next to the run state). Rows without a group are rejected
    too. Returns ``{"campaign", "split_groups", "groups": {group: summary}, "control": {group: contacts},
    "in_two_groups", "total": {...}}``; each group's summary is the audience send's (``list_id``,
    ``added``, ``unsubscribed``...) in split mode, and its contact count in combined mode.

    A treatment group missing from a later run's query leaves its list as it is: only groups in the query
    are sent. A contact who moves from one group to another leaves the first group's list (mirror mode).

    :param campaign_name: the campaign; names its list (combined) or its lists (split). (templated)
    :param group_column: the column holding each row's group.
    :param control_groups: groups never sent, only counted (matched ignoring case).
    :param split_groups: one list per treatment group (True) or one list with the group in a field (False);
        a rendered template may give ``"True"``/``"False"``. (templated)
    :param list_name_template: the name of a treatment group's list in split mode; ``{campaign}`` and
        ``{group}`` are filled in. (templated)
    :param tag_groups: combined mode: also tag each contact with its group's list name from
        ``list_name_template`` (e.g. ``Spring sale - A``).
    :param mode: ``"mirror"`` (each list matches its group) or ``"upsert"`` (add and update only).
    :param dry_run: plan and report, write nothing to ActiveCampaign.
    :param full_refresh: ignore the run state and compare with the lists read back from ActiveCampaign.
    :param import_timeout: seconds to wait for ActiveCampaign to process one bulk import.
    """

    template_fields: Sequence[str] = (*AUDIENCE_TEMPLATE_FIELDS, "campaign_name", "list_name_template",
                                      "split_groups")

    def __init__(
        self,
        *,
        campaign_name: str,
        group_column: str = "treatment_group",
        control_groups: Iterable[str] = ("control",),
        split_groups: bool | str = True,
        list_name_template: str = "{campaign} - {group}",
        tag_groups: bool = False,
        mode: Mode = "mirror",
        dry_run: bool = False,
        full_refresh: bool = False,
        import_timeout: float = 1800.0,
        **kwargs: Any,
    ) -> None:
        if "list_name" in kwargs:
            raise ValueError("A campaign's lists are named by campaign_name (and list_name_template), not list_name.")
        super().__init__(list_name=campaign_name, **kwargs)
        self.campaign_name = campaign_name
        self.group_column = group_column
        self.control_groups = tuple(control_groups)
        self.split_groups = split_groups
        self.list_name_template = list_name_template
        self.tag_groups = tag_groups
        self.mode = check_choice("mode", mode, get_args(Mode))
        # The public name shadows BaseOperator.dry_run(), as on the audience send.
        self.dry_run = dry_run  # type: ignore[method-assign,assignment]
        self.full_refresh = full_refresh
        self.import_timeout = import_timeout
        self._check_template()

    def _check_template(self) -> None:
        self.split_groups = _as_bool("split_groups", self.split_groups)
        if is_template(self.list_name_template) or is_template(self.split_groups):  # checked once rendered
            return
        first = list_name_for(self.list_name_template, campaign="c", group="A")
        if self.split_groups and first == list_name_for(self.list_name_template, campaign="c", group="B"):
            raise ValueError(f"list_name_template {self.list_name_template!r} must use {{group}}: "
                             "otherwise every treatment group would share one list.")

    # -- execute ---------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        self.list_name = self.campaign_name
        try:
            self._check_template()
        except ValueError as error:
            raise AirflowFailException(str(error)) from error
        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        with self.open_source() as (columns, rows):
            split = split_campaign(columns, rows, group_column=self.group_column,
                                   control_groups=self.control_groups, email_column=self.email_column,
                                   keep_group_column=not self.split_groups)
        self.log.info("Campaign %r: %d rows; treatment groups %s; control %s; %d rows rejected (%d in two groups).",
                      self.campaign_name, split.rows_read, dict(split.contacts), dict(split.control),
                      len(split.rejects), split.in_two_groups)
        if not split.groups and not split.control:
            raise AirflowFailException(f"Campaign {self.campaign_name!r}: the query returned no row with a group.")
        report = self._write_campaign_rejects(hook, context, split)
        try:
            if self.split_groups:
                groups = self._send_split(context, hook, split)
            else:
                groups = self._send_combined(context, hook, split)
        except (AudienceSyncError, StateLockedError) as error:
            raise AirflowFailException(f"Campaign {self.campaign_name!r}: {error}") from error
        result: dict[str, Any] = {
            "campaign": self.campaign_name, "split_groups": self.split_groups, "dry_run": self.dry_run,
            "groups": groups, "control": dict(split.control), "in_two_groups": split.in_two_groups,
            "no_group": len(split.rejects) - split.in_two_groups, "campaign_rejects_report": report,
        }
        result["total"] = self._total(groups, split)
        self.log.info("Campaign %r total: %s", self.campaign_name,
                      ", ".join(f"{k}={v}" for k, v in result["total"].items()))
        return result

    @property
    def _dry_run(self) -> bool:
        return cast(bool, self.dry_run)

    def _store(self, hook: ActiveCampaignHook, list_name: str) -> StateStore:
        uri = self.state_uri or _default_state_uri()
        root = ObjectStoragePath(uri, conn_id=self.state_conn_id) if self.state_conn_id else ObjectStoragePath(uri)
        return StateStore(root, account_key=urlsplit(hook.api_url).netloc, list_key=list_name)

    def _engine(self, context: Context, hook: ActiveCampaignHook, list_name: str, *, dry_run: bool) -> AudienceSync:
        options = self.sync_options(list_name=list_name, mode=self.mode, dry_run=dry_run,
                                    full_refresh=self.full_refresh, import_timeout=self.import_timeout)
        return AudienceSync(hook, options, store=self._store(hook, list_name), run_id=self.run_key(context),
                            log=task_logger(self))

    def _send_split(self, context: Context, hook: ActiveCampaignHook, split: CampaignSplit) -> dict[str, Any]:
        names = {group: list_name_for(self.list_name_template, campaign=self.campaign_name, group=group)
                 for group in split.groups}
        clash = len(set(names.values())) < len(names)
        if clash:
            raise AirflowFailException(f"Two treatment groups get the same list name: {names}.")
        if not self._dry_run and len(split.groups) > 1:
            # Plan every group first (writes nothing): a guard refusing one group stops all of them.
            for group, rows in split.groups.items():
                self._engine(context, hook, names[group], dry_run=True).run(split.columns, iter(rows))
        groups: dict[str, Any] = {}
        for group, rows in split.groups.items():
            engine = self._engine(context, hook, names[group], dry_run=self._dry_run)
            summary = engine.run(split.columns, iter(rows)).as_dict()
            summary["contacts"] = split.contacts[group]
            groups[group] = summary
            if len(groups) == 1:
                self.publish_list(context, hook, summary["list_id"])
            self.log.info("Group %r -> list %r (id %s): added %d, updated %d, unsubscribed %d, rejected %d.",
                          group, names[group], summary["list_id"], summary["added"], summary["updated"],
                          summary["unsubscribed"], summary["rejected"])
        return groups

    def _send_combined(self, context: Context, hook: ActiveCampaignHook, split: CampaignSplit) -> dict[str, Any]:
        columns, rows = split.columns, [row for group_rows in split.groups.values() for row in group_rows]
        if self.tag_groups:
            columns, rows = self._with_group_tags(columns, rows)
        engine = self._engine(context, hook, self.campaign_name, dry_run=self._dry_run)
        summary = engine.run(columns, iter(rows)).as_dict()
        self.publish_list(context, hook, summary["list_id"])
        self._combined_summary = summary
        return {group: {"contacts": split.contacts[group], "list_id": summary["list_id"],
                        "list_name": self.campaign_name} for group in split.groups}

    def _with_group_tags(self, columns: list[str], rows: list[tuple]) -> tuple[list[str], list[tuple]]:
        """Add each row's group list name to its tags (the tags column is created when missing)."""
        lowered = [c.strip().lower() for c in columns]
        group_at = lowered.index(self.group_column.strip().lower())
        if "tags" in lowered:
            tags_at = lowered.index("tags")
            tagged = []
            for row in rows:
                tag = list_name_for(self.list_name_template, campaign=self.campaign_name, group=str(row[group_at]))
                current = row[tags_at]
                extra = [tag] if current in (None, "") else (
                    [*current, tag] if isinstance(current, (list, tuple)) else [str(current), tag])
                tagged.append(row[:tags_at] + (extra,) + row[tags_at + 1:])
            return columns, tagged
        return [*columns, "tags"], [row + ([list_name_for(self.list_name_template, campaign=self.campaign_name,
                                                          group=str(row[group_at]))],) for row in rows]

    def _total(self, groups: dict[str, Any], split: CampaignSplit) -> dict[str, Any]:
        total: dict[str, Any]
        if self.split_groups:
            total = {key: sum(int(g.get(key) or 0) for g in groups.values()) for key in _COUNTS}
        else:
            summary = getattr(self, "_combined_summary", {})
            total = {key: int(summary.get(key) or 0) for key in _COUNTS}
            total["list_id"] = summary.get("list_id")
        total["treatment_contacts"] = sum(split.contacts.values())
        total["control_contacts"] = sum(split.control.values())
        total["campaign_rejected"] = len(split.rejects)
        return total

    def _write_campaign_rejects(self, hook: ActiveCampaignHook, context: Context, split: CampaignSplit) -> str | None:
        """Rows the split rejected (two groups, no group), with reasons, beside the run state."""
        if not split.rejects:
            return None
        for email, reason in split.rejects[:3]:
            self.log.info("Rejected %s: %s", mask_email(email), reason.split(":")[0])
        store = self._store(hook, f"campaign {self.campaign_name}")
        return str(store.write_rejects(self.run_key(context), split.rejects))


def _as_bool(name: str, value: Any) -> Any:
    """A bool, from a bool or its rendered text (``"True"``, ``"false"``); a template is left as it is."""
    if isinstance(value, bool) or is_template(value):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{name} must be True or False, not {value!r}.")
