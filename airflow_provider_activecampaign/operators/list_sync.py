"""ActiveCampaignListSyncOperator: prepare a list, or repair it from its real membership.

Verification moved to ActiveCampaignListSensor; ``verify_only=True`` still works (deprecated) and
checks with the sensor's own logic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_activecampaign.audience.destination import (
    DestinationError,
    find_or_create_list,
    resolve_group,
)
from airflow_provider_activecampaign.audience.state import StateLockedError
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError
from airflow_provider_activecampaign.compat import AirflowFailException, AirflowRescheduleException
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.operators.arguments import check_ratio
from airflow_provider_activecampaign.operators.audience import (
    BaseAudienceOperator,
    documented_with_audience_params,
    task_logger,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ActiveCampaignListSyncOperator"]


@documented_with_audience_params
class ActiveCampaignListSyncOperator(BaseAudienceOperator):
    """Reconcile a list with the audience by reading its real membership back from ActiveCampaign.

    With a source (``sql`` or ``records``) it subscribes the missing and unsubscribes the extra, with
    the same safety rules as the send. Without a source it only prepares the list: found by name, or
    created (``create_list=True``) and tied to ``group_name``.

    :param verify_only: deprecated, use ActiveCampaignListSensor: only compare the list with the
        audience, checking again every ``poke_interval`` until ``timeout`` (rescheduled in between).
    :param tolerance: with ``verify_only``, the share (0 to 1) of audience contacts that may differ.
        (templated)
    :param create_list: create the list (tied to ``group_name``) when it does not exist.
    :param timeout: with ``verify_only``, how long to keep checking (``timedelta`` or seconds).
    :param poke_interval: with ``verify_only``, the time between checks (``timedelta`` or seconds).
    """

    template_fields: Sequence[str] = (*BaseAudienceOperator.template_fields, "tolerance")

    def __init__(self, *, verify_only: bool = False, tolerance: float = 0.0, create_list: bool = False,
                 timeout: timedelta | float = 0, poke_interval: timedelta | float = 60, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if verify_only:
            warnings.warn("ActiveCampaignListSyncOperator(verify_only=True) is deprecated: use "
                          "ActiveCampaignListSensor (same arguments, plus mode, exponential_backoff and "
                          "deferrable).", DeprecationWarning, stacklevel=3)
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
        if self.verify_only:
            return self._verify(context)
        options = self.sync_options(create_list=True, action_on_empty="fail")
        engine = AudienceSync(hook, options, store=self.state_store(hook), run_id=self.run_key(context),
                              log=task_logger(self))
        try:
            with self.open_source() as (columns, rows):
                summary = engine.run(columns, rows, membership="activecampaign")
        except (AudienceSyncError, DestinationError, StateLockedError) as error:
            raise AirflowFailException(str(error)) from error
        self.publish_list(context, hook, summary.list_id)
        result = summary.as_dict()
        self.log_summary(result)
        return result

    def _verify(self, context: Context) -> dict[str, Any]:
        from airflow_provider_activecampaign.sensors.list import verify_list

        hook, result = verify_list(self, run_key=self.run_key(context), tolerance=float(self.tolerance),
                                   log=task_logger(self))
        self.publish_list(context, hook, result.get("list_id"))
        if result["verified"]:
            self.log.info("Verified: %s", result["message"])
            return result
        self._wait_or_fail(context, result["message"])
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
        """Find the list, or create it and tie it to the group: readies a new environment."""
        try:
            group = resolve_group(hook, self.group_name)
            found, created = find_or_create_list(hook, self.list_name, group=group, create=self.create_list,
                                                 sender_url=self.sender_url, sender_reminder=self.sender_reminder)
        except DestinationError as error:
            raise AirflowFailException(str(error)) from error
        list_id = str(found["id"])
        self.publish_list(context, hook, list_id)
        self.log.info("List %r is ready (id %s, %s).", self.list_name, list_id, "created" if created else "existing")
        return {"list_id": list_id, "list_name": self.list_name, "list_created": created}


def _seconds(value: timedelta | float) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)
