"""Shared helpers for the integration tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from airflow_provider_activecampaign.audience.emails import email_problem, normalize_email

REPO = Path(__file__).resolve().parents[2]


def load_dag(dag_id: str) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.3
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def audience_emails(warehouse: Path, limit: int | None = None) -> list[str]:
    """What the example query should put on the list: valid, de-duplicated, in query order."""
    sql = (REPO / "dags" / "sql" / "audience.sql").read_text()
    with sqlite3.connect(warehouse) as db:
        rows = [r[0] for r in db.execute(sql)]
    if limit is not None:
        rows = rows[:limit]
    seen: dict[str, None] = {}
    for raw in rows:
        email = normalize_email(raw)
        if email and email_problem(email) is None:
            seen.setdefault(email, None)
    return list(seen)


def xcom_result(dag_run: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id, XComModel.key == "return_value",
            )
        )
    return json.loads(value) if isinstance(value, str | bytes) else value


def task_states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
