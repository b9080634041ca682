"""ActiveCampaignListTrigger: the deferrable ActiveCampaignListSensor's checks, run in the triggerer.

Each check is the sensor's own (``sensors.list.verify_list``: the hook, the SQL source and the engine
are synchronous), run in a thread through ``sync_to_async`` so the triggerer's event loop never blocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["ActiveCampaignListTrigger", "check_list"]

log = logging.getLogger(__name__)


def check_list(arguments: dict[str, Any], run_key: str, tolerance: float) -> dict[str, Any]:
    """One check with the sensor's own logic, from the sensor's rendered arguments."""
    from airflow_provider_activecampaign.sensors.list import ActiveCampaignListSensor, verify_list

    task = ActiveCampaignListSensor(task_id="activecampaign_list_check", tolerance=tolerance, **arguments)
    return verify_list(task, run_key=run_key, tolerance=tolerance, log=log)[1]


class ActiveCampaignListTrigger(BaseTrigger):
    """Check every ``poke_interval`` seconds until the list matches; the deferral's timeout ends it.

    :param arguments: the sensor's rendered audience arguments (source, list, state, guards).
    :param run_key: the run's key (the state lock and journal use it).
    :param tolerance: the share (0 to 1) of audience contacts that may differ.
    :param poke_interval: seconds between checks.
    """

    def __init__(self, *, arguments: dict[str, Any], run_key: str, tolerance: float,
                 poke_interval: float) -> None:
        super().__init__()
        self.arguments = arguments
        self.run_key = run_key
        self.tolerance = tolerance
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"arguments": self.arguments, "run_key": self.run_key, "tolerance": self.tolerance,
                 "poke_interval": self.poke_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        while True:
            try:
                result = await sync_to_async(check_list)(self.arguments, self.run_key, self.tolerance)
            except Exception as error:  # a wrong setup: waiting cannot fix it; the task fails with it
                yield TriggerEvent({"status": "error", "message": str(error)})
                return
            if result["verified"]:
                yield TriggerEvent({"status": "verified", "result": result})
                return
            self.log.info("Not matching yet: %s; checking again in %.0fs.", result["message"], self.poke_interval)
            await asyncio.sleep(self.poke_interval)
