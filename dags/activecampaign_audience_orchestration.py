"""The orchestration: send a warehouse query's audience to an ActiveCampaign list on a schedule.

test the connection -> send the audience (mirror mode: the list matches the query; people who left the
audience are unsubscribed, never deleted). Only what changed since the last confirmed run is sent.

Operational notes
- Both ActiveCampaign tasks run in the pool ``activecampaign_default`` (1 slot per account), so
  several DAGs and workers never exceed the account's shared 5 requests/second. Create it once:
  ``airflow pools set activecampaign_default 1 "ActiveCampaign account (5 req/s shared)"``.
- Retries are safe: confirmed batches are in the run state, a retry resumes after them.
- The send emits the Asset ``ACTIVECAMPAIGN_LIST`` so downstream DAGs can be scheduled on it.
- Task logs hold counts and masked emails only (j***@e***.com), never a contact's data or the key.
- ``access_control`` restricts the DAG to the Admin role (the seed's "Admin only"); it takes effect
  with an auth manager that supports DAG-level permissions (e.g. the FAB auth manager).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, Param

from airflow_provider_activecampaign.lineage import list_asset_uri
from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator
from airflow_provider_activecampaign.operators.connection import ActiveCampaignTestConnectionOperator

ACTIVECAMPAIGN_POOL = "activecampaign_default"
# The same identifier as the send's OpenLineage output: the connection and the list's name.
ACTIVECAMPAIGN_LIST = Asset(name="activecampaign_vip_customers",
                            uri=list_asset_uri("activecampaign_default", "VIP customers"))

with DAG(
    dag_id="activecampaign_audience_orchestration",
    description="Send the warehouse audience to an ActiveCampaign list (mirror mode).",
    schedule="0 6 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "pool": ACTIVECAMPAIGN_POOL},
    params={
        "activecampaign_conn_id": Param("activecampaign_default", type="string"),
        "warehouse_conn_id": Param("audience_warehouse", type="string"),
        "list_name": Param("VIP customers", type="string"),
        "group_name": Param("Admin", type="string"),
        "state_uri": Param("", type="string", description="Run state folder; empty = AIRFLOW_HOME"),
    },
    access_control={"Admin": {"DAGs": {"can_read", "can_edit"}}},
    tags=["activecampaign", "audience"],
    doc_md=__doc__,
) as dag:
    test_connection = ActiveCampaignTestConnectionOperator(
        task_id="test_connection",
        activecampaign_conn_id="{{ params.activecampaign_conn_id }}",
        retries=0,
    )
    send_audience = ActiveCampaignAudienceSendOperator(
        task_id="send_audience",
        activecampaign_conn_id="{{ params.activecampaign_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        sql="sql/audience.sql",
        list_name="{{ params.list_name }}",
        group_name="{{ params.group_name }}",
        state_uri="{{ params.state_uri or '' }}",
        mode="mirror",
        max_removal_ratio=0.2,
        max_invalid_ratio=0.05,
        outlets=[ACTIVECAMPAIGN_LIST],
    )
    test_connection >> send_audience
