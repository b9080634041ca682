"""The way back: a list's unsubscribes and bounces into the warehouse, after every audience send.

Scheduled on the Asset the orchestration's send emits, so it runs right after each send (and can be
triggered by hand). It reads the list's unsubscribed and bounced members from ActiveCampaign and
upserts them into the warehouse table ``activecampaign_unsubscribes`` (created on the first run):
``email, list_id, status, changed_at, changed_by``. Leave these people out of upstream audiences:

    SELECT ... FROM customers c
    WHERE NOT EXISTS (SELECT 1 FROM activecampaign_unsubscribes u WHERE u.email = lower(trim(c.email)))

Operational notes
- The task runs in the account's pool ``activecampaign_default`` (1 slot): it shares the account's
  5 requests/second with the send. It reads N/100 pages for N unsubscribed and bounced members.
- Retries are safe: each run writes the table in one transaction, and a run that finds no change
  writes nothing.
- ``state_uri`` (the send's run state) lets it tell the send's own unsubscribes (``changed_by="sync"``)
  from everyone else's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, Param

from airflow_provider_activecampaign.lineage import list_asset_uri
from airflow_provider_activecampaign.operators.unsubscribes import ActiveCampaignUnsubscribesToSqlOperator

# The Asset the orchestration's send emits (dags/activecampaign_audience_orchestration.py).
ACTIVECAMPAIGN_LIST = Asset(name="activecampaign_vip_customers",
                            uri=list_asset_uri("activecampaign_default", "VIP customers"))

with DAG(
    dag_id="activecampaign_unsubscribes",
    description="Write the list's unsubscribes and bounces back into the warehouse.",
    schedule=[ACTIVECAMPAIGN_LIST],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "pool": "activecampaign_default"},
    params={
        "activecampaign_conn_id": Param("activecampaign_default", type="string"),
        "warehouse_conn_id": Param("audience_warehouse", type="string"),
        "list_name": Param("VIP customers", type="string"),
        "table": Param("activecampaign_unsubscribes", type="string"),
        "state_uri": Param("", type="string", description="The send's run state folder; empty = AIRFLOW_HOME"),
    },
    access_control={"Admin": {"DAGs": {"can_read", "can_edit"}}},
    tags=["activecampaign", "audience"],
    doc_md=__doc__,
) as dag:
    ActiveCampaignUnsubscribesToSqlOperator(
        task_id="unsubscribes_to_warehouse",
        activecampaign_conn_id="{{ params.activecampaign_conn_id }}",
        list_name="{{ params.list_name }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.table }}",
        create_table=True,
        state_uri="{{ params.state_uri or '' }}",
    )
