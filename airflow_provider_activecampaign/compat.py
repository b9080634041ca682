"""Airflow names that moved between releases: import them from here to run on Airflow 3.1 to 3.3.

Airflow 3.3 exposes the task exceptions in ``airflow.sdk.exceptions``; 3.1 and 3.2 have only
``AirflowException`` there and the rest in ``airflow.exceptions`` (which 3.3 still re-exports).
"""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1 / 3.2
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowException,
        AirflowFailException,
        AirflowRescheduleException,
        AirflowSensorTimeout,
        TaskDeferred,
    )

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowRescheduleException",
    "AirflowSensorTimeout",
    "TaskDeferred",
]
