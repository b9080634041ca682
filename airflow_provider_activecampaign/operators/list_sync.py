"""ActiveCampaignListSyncOperator: reconcile a list with the audience from its real membership."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException

from airflow_provider_activecampaign.audience.state import StateLockedError
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.operators.arguments import check_ratio
from airflow_provider_activecampaign.operators.audience import BaseAudienceOperator, documented_with_audience_params

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ActiveCampaignListSyncOperator"]


@documented_with_audience_params
class ActiveCampaignListSyncOperator(BaseAudienceOperator):
    """Reconcile a list with the audience by reading its real membership back from ActiveCampaign.

    Without ``verify_only`` it subscribes the missing and unsubscribes the extra (same safety rules as
    the send). With ``verify_only=True`` it only compares and fails when the share of differing
    contacts exceeds ``tolerance``; since ActiveCampaign's changes can take time to appear it checks
    again every ``poke_interval`` until ``timeout``, rescheduling in between so no worker slot is held.
    Without a source (no sql/records) and with ``create_list=True`` it only prepares the list.

    :param verify_only: only compare the list with the audience and fail when they differ by more than
        ``tolerance`` (deprecated: use ActiveCampaignListSensor).
    :param tolerance: the share (0 to 1) of audience contacts that may differ when verifying. (templated)
    :param create_list: create the list (tied to ``group_name``) when it does not exist.
    :param timeout: how long verification keeps checking before it fails (``timedelta`` or seconds).
    :param poke_interval: time between two checks of a verification (``timedelta`` or seconds).
    """

    template_fields: Sequence[str] = (*BaseAudienceOperator.template_fields, "tolerance")

    def __init__(self, *, verify_only: bool = False, tolerance: float = 0.0, create_list: bool = False,
                 timeout: timedelta | float = 0, poke_interval: timedelta | float = 60, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verify_only = verify_only
        self.tolerance = check_ratio("tolerance", tolerance, templated=True)
        self.create_list = create_list
        self.verify_timeout = _seconds(timeout)
        self.poke_interval = _seconds(poke_interval)

    def check_arguments(self) -> None:
        super().check_arguments()
        if hasattr(self, "tolerance"):  # not set yet while the base's __init__ checks its own arguments
            self.tolerance = check_ratio("tolerance", self.tolerance, templated=True)

    def execute(self, context: Context) -> dict[str, Any]:
        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        if not self.has_source():
            return self._prepare_list(context, hook)
        options = self.sync_options(dry_run=self.verify_only, create_list=self.create_list or not
                                    self.verify_only, action_on_empty="fail")
        store = self.state_store(hook)
        engine = AudienceSync(hook, options, store=store, run_id=self.run_key(context), log=self.log)
        try:
            with self.open_source() as (columns, rows):
                summary = engine.run(columns, rows, membership="activecampaign")
        except (AudienceSyncError, StateLockedError) as error:
            raise AirflowFailException(str(error)) from error
        self.publish_list(context, hook, summary.list_id)
        if not self.verify_only:
            result = summary.as_dict()
            self.log_summary(result)
            return result
        ok, message = engine.verification(float(self.tolerance))
        result = summary.as_dict()
        result.update(verified=ok, message=message)
        if ok:
            self.log.info("Verified: %s", message)
            return result
        self._wait_or_fail(context, message)
        return result

    def _wait_or_fail(self, context: Context, message: str) -> None:
        from airflow.sdk import timezone

        ti = context["ti"]
        first = ti.get_first_reschedule_date(context) or ti.start_date or timezone.utcnow()
        now = timezone.utcnow()
        if (now - first).total_seconds() + self.poke_interval <= self.verify_timeout:
            self.log.info("Not matching yet (%s); checking again in %.0fs.", message, self.poke_interval)
            raise AirflowRescheduleException(now + timedelta(seconds=self.poke_interval))
        raise AirflowFailException(f"Verification failed: {message}")

    def _prepare_list(self, context: Context, hook: ActiveCampaignHook) -> dict[str, Any]:
        """Create the list if missing and tie it to the group: readies a new environment."""
        group = None
        if self.group_name:
            group = hook.find_user_group(self.group_name)
            if group is None:
                raise AirflowFailException(f"Invalid group name {self.group_name!r}: no such user group.")
        found = hook.find_list_by_name(self.list_name)
        created = False
        if found is None:
            if not self.create_list:
                raise AirflowFailException(f"List {self.list_name!r} does not exist and create_list=False.")
            found = hook.create_list(self.list_name, sender_url=self.sender_url,
                                     sender_reminder=self.sender_reminder)
            created = True
            if group is not None:
                hook.add_list_to_group(str(found["id"]), str(group["id"]))
        list_id = str(found["id"])
        self.publish_list(context, hook, list_id)
        self.log.info("List %r is ready (id %s, %s).", self.list_name, list_id, "created" if created else "existing")
        return {"list_id": list_id, "list_name": self.list_name, "list_created": created}


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
