"""ActiveCampaignListSensor: wait until a list, read back from ActiveCampaign, matches the audience.

ActiveCampaign can take a while to show what it accepted, so verification is a sensor: each check
plans the audience against the list's real membership (a dry run of the engine, writing nothing) and
passes when the share of differing contacts is within ``tolerance``. Between checks it holds no worker
slot: ``mode="reschedule"`` by default, or ``deferrable=True`` to wait in the triggerer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_activecampaign.audience.destination import DestinationError
from airflow_provider_activecampaign.audience.state import StateLockedError
from airflow_provider_activecampaign.audience.sync import AudienceSync, AudienceSyncError
from airflow_provider_activecampaign.compat import AirflowFailException, AirflowSensorTimeout
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.operators.arguments import check_ratio
from airflow_provider_activecampaign.operators.audience import (
    AUDIENCE_TEMPLATE_FIELDS,
    AudienceTaskMixin,
    documented_with_audience_params,
    task_logger,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ActiveCampaignListSensor", "verify_list"]

# The arguments a check needs, handed to the trigger so it checks exactly as the sensor does.
CHECK_ARGUMENTS: tuple[str, ...] = (
    "list_name", "activecampaign_conn_id", "group_name", "sql", "sql_conn_id", "sql_hook_params", "parameters",
    "records", "email_column", "fetch_size", "sample_size", "state_uri", "state_conn_id", "create_custom_fields",
    "max_invalid_ratio", "max_removal_ratio", "action_on_empty", "exclude_automations", "sender_url",
    "sender_reminder",
)


def verify_list(task: AudienceTaskMixin, *, run_key: str, tolerance: float,
                log: logging.Logger) -> tuple[ActiveCampaignHook, dict[str, Any]]:
    """One check: the engine plans the audience against the list's real membership, writing nothing.

    Returns the hook and the summary with ``verified`` and ``message``. A wrong setup (no such list or
    group, a guard tripped, a locked list) fails for good: waiting cannot fix it.
    """
    hook = ActiveCampaignHook(activecampaign_conn_id=task.activecampaign_conn_id)
    options = task.sync_options(dry_run=True, create_list=False, action_on_empty="fail")
    engine = AudienceSync(hook, options, store=task.state_store(hook), run_id=run_key, log=log)
    try:
        with task.open_source() as (columns, rows):
            summary = engine.run(columns, rows, membership="activecampaign")
    except (AudienceSyncError, DestinationError, StateLockedError) as error:
        raise AirflowFailException(str(error)) from error
    ok, message = engine.verification(tolerance)
    result = summary.as_dict()
    result.update(verified=ok, message=message)
    return hook, result


@documented_with_audience_params
class ActiveCampaignListSensor(AudienceTaskMixin, BaseSensorOperator):
    """Wait until an ActiveCampaign list matches the audience, then return the verification as XCom.

    Each check reads the audience and the list's membership back from ActiveCampaign and compares them
    as the send would (people who unsubscribed themselves and contacts ActiveCampaign refused earlier
    are reported, not counted). It passes when at most ``tolerance`` of the audience differs; it fails
    with the last difference after ``timeout``. Nothing is written to ActiveCampaign.

    :param tolerance: the share (0 to 1) of audience contacts that may differ. (templated)
    :param mode: ``"reschedule"`` (default: the slot is freed between checks) or ``"poke"``.
    :param poke_interval: time between checks (``timedelta`` or seconds).
    :param timeout: how long to keep checking before failing (``timedelta`` or seconds).
    :param exponential_backoff: wait longer after each check that did not match.
    :param deferrable: wait in Airflow's triggerer instead of rescheduling (needs a running triggerer).
    """

    template_fields: Sequence[str] = (*AUDIENCE_TEMPLATE_FIELDS, "tolerance")

    def __init__(
        self,
        *,
        tolerance: float = 0.0,
        mode: str = "reschedule",
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = timedelta(minutes=30),
        exponential_backoff: bool = False,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, timeout=timeout,
                         exponential_backoff=exponential_backoff, **kwargs)
        self.tolerance = check_ratio("tolerance", tolerance, templated=True)
        self.deferrable = deferrable
        self._last_message: str | None = None

    def check_arguments(self) -> None:
        super().check_arguments()
        if hasattr(self, "tolerance"):  # not set yet while the mixin's __init__ checks its own arguments
            self.tolerance = check_ratio("tolerance", self.tolerance, templated=True)

    def check_once(self, context: Context) -> dict[str, Any]:
        """One check; publishes the list link and logs the outcome."""
        hook, result = verify_list(self, run_key=self.run_key(context), tolerance=float(self.tolerance),
                                   log=task_logger(self))
        self.publish_list(context, hook, result.get("list_id"))
        self._last_message = result["message"]
        if result["verified"]:
            self.log.info("Verified: %s", result["message"])
        else:
            self.log.info("Not matching yet: %s", result["message"])
        return result

    def poke(self, context: Context) -> PokeReturnValue:
        result = self.check_once(context)
        return PokeReturnValue(is_done=bool(result["verified"]), xcom_value=result)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            return self._execute_deferrable(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            if self._last_message is None:
                raise
            raise AirflowSensorTimeout(f"Verification failed: {self._last_message} ({timeout})") from timeout

    def _execute_deferrable(self, context: Context) -> Any:
        from airflow_provider_activecampaign.triggers.list import ActiveCampaignListTrigger

        result = self.check_once(context)  # most lists match at once: no trip through the triggerer
        if result["verified"]:
            return result
        self.defer(
            trigger=ActiveCampaignListTrigger(
                arguments={name: getattr(self, name) for name in CHECK_ARGUMENTS},
                run_key=self.run_key(context), tolerance=float(self.tolerance),
                poke_interval=float(self.poke_interval)),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the triggerer: succeed with its verification, or fail with its reason."""
        if event.get("status") != "verified":
            raise AirflowFailException(f"Verification failed: {event.get('message')}")
        result: dict[str, Any] = event["result"]
        self.log.info("Verified: %s", result["message"])
        hook = ActiveCampaignHook(activecampaign_conn_id=self.activecampaign_conn_id)
        self.publish_list(context, hook, result.get("list_id"))
        return result
