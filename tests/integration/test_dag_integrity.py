"""The example DAGs import cleanly and are shaped the way the README promises."""

from __future__ import annotations

import pytest

from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator
from airflow_provider_activecampaign.sensors.list import ActiveCampaignListSensor
from tests.integration.helpers import load_dag

DAG_IDS = ["activecampaign_audience_orchestration", "activecampaign_sandbox_promotion"]


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_loads_restricted_to_admins(dag_id: str) -> None:
    dag = load_dag(dag_id)
    assert "Admin" in dag.access_control
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        if task.__class__.__module__.startswith("airflow_provider_activecampaign"):
            assert task.pool.startswith("activecampaign_"), task.task_id


def test_orchestration_is_scheduled_and_emits_the_list_asset() -> None:
    dag = load_dag("activecampaign_audience_orchestration")
    assert dag.catchup is False and dag.schedule == "0 6 * * *"
    send = dag.get_task("send_audience")
    assert isinstance(send, ActiveCampaignAudienceSendOperator) and send.mode == "mirror"
    assert [o.uri for o in send.outlets] == ["activecampaign://activecampaign_default/lists/vip-customers"]
    assert send.retries == 2
    assert set(dag.params.keys()) >= {"activecampaign_conn_id", "warehouse_conn_id", "list_name", "group_name"}


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_the_default_group_is_the_one_every_account_has(dag_id: str) -> None:
    assert load_dag(dag_id).params["group_name"] == "Admin"  # not "Admins": "invalid group name" on day one


def test_promotion_puts_production_behind_sandbox_verification() -> None:
    dag = load_dag("activecampaign_sandbox_promotion")
    verify = dag.get_task("verify_sandbox")
    assert isinstance(verify, ActiveCampaignListSensor) and verify.mode == "reschedule"
    assert verify.timeout == 1800 and verify.tolerance == 0.0
    production = dag.get_task("production_send")
    assert "verify_sandbox" in production.get_flat_relative_ids(upstream=True)
    assert "production_dry_run" in production.upstream_task_ids
    assert dag.get_task("await_human_approval").__class__.__name__ == "ApprovalOperator"
