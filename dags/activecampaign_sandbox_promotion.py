"""Sandbox -> production promotion, as Amperity advises: prove the destination on a sandbox account
with a small test audience, verify it in ActiveCampaign, and only then send to production.

test both connections -> prepare the list in the sandbox -> dry run -> send a sample (10-100 people)
to the sandbox -> verify it by reading the list back (waiting out ActiveCampaign's delay) -> approval
gate -> production dry run -> production send with the guards.

Nothing reaches production unless the sandbox verification passed: every production task is
downstream of it with the default all_success rule.

The gate (DAG param ``approve``):
- ``null`` (default, real deployments): a person approves in the Airflow UI (Browse > Required
  Actions) through Airflow's human-in-the-loop ApprovalOperator; "Reject" skips production.
- ``true``: approved by whoever triggered the run with this param (the demo does this; no human).
- ``false``: withheld; production is skipped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, Param, task

from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator
from airflow_provider_activecampaign.operators.connection import ActiveCampaignTestConnectionOperator
from airflow_provider_activecampaign.operators.list_sync import ActiveCampaignListSyncOperator
from airflow_provider_activecampaign.sensors.list import ActiveCampaignListSensor

AUDIENCE_SQL = "sql/audience.sql"
SANDBOX = "{{ params.sandbox_conn_id }}"
PRODUCTION = "{{ params.production_conn_id }}"
COMMON = {
    "sql_conn_id": "{{ params.warehouse_conn_id }}",
    "list_name": "{{ params.list_name }}",
    "group_name": "{{ params.group_name }}",
    "state_uri": "{{ params.state_uri or '' }}",
}

with DAG(
    dag_id="activecampaign_sandbox_promotion",
    description="Prove the audience on the sandbox account, then promote it to production.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0},
    params={
        "sandbox_conn_id": Param("activecampaign_sandbox", type="string"),
        "production_conn_id": Param("activecampaign_default", type="string"),
        "warehouse_conn_id": Param("audience_warehouse", type="string"),
        "list_name": Param("VIP customers", type="string"),
        "group_name": Param("Admin", type="string"),
        "sample_size": Param(50, type="integer", minimum=10, maximum=100),
        "state_uri": Param("", type="string"),
        "approve": Param(None, type=["null", "boolean"],
                         description="null: a person approves in the UI; true/false: decided by this run"),
    },
    access_control={"Admin": {"DAGs": {"can_read", "can_edit"}}},
    tags=["activecampaign", "audience", "promotion"],
    doc_md=__doc__,
) as dag:
    test_sandbox = ActiveCampaignTestConnectionOperator(task_id="test_sandbox_connection",
                                                        activecampaign_conn_id=SANDBOX,
                                                        pool="activecampaign_sandbox")
    test_production = ActiveCampaignTestConnectionOperator(task_id="test_production_connection",
                                                           activecampaign_conn_id=PRODUCTION,
                                                           pool="activecampaign_default")
    prepare_sandbox = ActiveCampaignListSyncOperator(
        task_id="prepare_sandbox_list", activecampaign_conn_id=SANDBOX, create_list=True,
        list_name="{{ params.list_name }}", group_name="{{ params.group_name }}",
        pool="activecampaign_sandbox",
    )
    sandbox_dry_run = ActiveCampaignAudienceSendOperator(
        task_id="sandbox_dry_run", activecampaign_conn_id=SANDBOX, sql=AUDIENCE_SQL,
        sample_size="{{ params.sample_size }}", dry_run=True, pool="activecampaign_sandbox", **COMMON,
    )
    send_sample = ActiveCampaignAudienceSendOperator(
        task_id="send_sample_to_sandbox", activecampaign_conn_id=SANDBOX, sql=AUDIENCE_SQL,
        sample_size="{{ params.sample_size }}", mode="mirror", pool="activecampaign_sandbox", **COMMON,
    )
    # A sensor: ActiveCampaign may take a while to show what it accepted. Rescheduled between
    # checks, it holds no worker or pool slot while it waits.
    verify_sandbox = ActiveCampaignListSensor(
        task_id="verify_sandbox", activecampaign_conn_id=SANDBOX, sql=AUDIENCE_SQL,
        sample_size="{{ params.sample_size }}", tolerance=0.0, mode="reschedule",
        timeout=timedelta(minutes=30), poke_interval=timedelta(seconds=30), exponential_backoff=True,
        pool="activecampaign_sandbox", **COMMON,
    )

    @task.branch(task_id="approval_gate")
    def approval_gate(params: dict | None = None) -> list[str]:
        decision = (params or {}).get("approve")
        if decision is True:
            return ["approved_by_param"]
        if decision is False:
            return []  # withheld: production is skipped
        return ["await_human_approval"]

    gate = approval_gate()
    approved_by_param = EmptyOperator(task_id="approved_by_param")
    human_approval = ApprovalOperator(
        task_id="await_human_approval",
        subject="Promote audience '{{ params.list_name }}' from sandbox to production?",
        body="The sandbox received and verified a sample of {{ params.sample_size }} contacts: "
             "{{ ti.xcom_pull(task_ids='verify_sandbox')['message'] }}",
        defaults="Reject",
        response_timeout=timedelta(hours=24),
    )
    production_dry_run = ActiveCampaignAudienceSendOperator(
        task_id="production_dry_run", activecampaign_conn_id=PRODUCTION, sql=AUDIENCE_SQL, dry_run=True,
        trigger_rule="none_failed_min_one_success", pool="activecampaign_default", **COMMON,
    )
    production_send = ActiveCampaignAudienceSendOperator(
        task_id="production_send", activecampaign_conn_id=PRODUCTION, sql=AUDIENCE_SQL, mode="mirror",
        max_removal_ratio=0.2, max_invalid_ratio=0.05, pool="activecampaign_default", **COMMON,
    )

    [test_sandbox, test_production] >> prepare_sandbox >> sandbox_dry_run >> send_sample >> verify_sandbox
    verify_sandbox >> gate >> [approved_by_param, human_approval] >> production_dry_run >> production_send
