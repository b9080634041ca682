"""Run one audience send in this process, as a worker would: ``python -m tests.integration.send_child '<json>'``.

Used by tests that kill a run mid-send (SIGKILL cannot be aimed at a thread). The JSON holds the
operator's arguments plus ``dag_id``/``run_id`` for the task instance; the connections come from the
environment (AIRFLOW_CONN_*). Prints the summary as one JSON line.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class TaskInstance:
    """The part of Airflow's task instance the operator touches."""

    def __init__(self, dag_id: str, task_id: str, run_id: str) -> None:
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def main(arguments: dict[str, Any]) -> dict[str, Any]:
    from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator

    dag_id, run_id = arguments.pop("dag_id"), arguments.pop("run_id")
    operator = ActiveCampaignAudienceSendOperator(task_id="send_audience", **arguments)
    ti = TaskInstance(dag_id, operator.task_id, run_id)
    return operator.execute({"ti": ti, "run_id": run_id})  # type: ignore[arg-type]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1])), default=str))
