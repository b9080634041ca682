"""A campaign: treatment groups A and B each into their own list, the control group into none.

test the connection -> send the campaign. ``dags/sql/campaign.sql`` assigns each customer a
``treatment_group``; the send mirrors group A into the list "Spring sale - A" and group B into
"Spring sale - B" (created when missing, tied to the user group), and only counts the control group.
A contact in two groups stays in the group of their first row; the other rows go to the rejects
report. With the param ``split_groups`` false it sends one list named after the campaign instead, with
each contact's group in the custom field ``%TREATMENT_GROUP%``.

Operational notes
- Both tasks run in the pool ``activecampaign_default`` (1 slot per account), so the campaign never
  competes with other sends for the account's 5 requests/second.
- Retries are safe: each group's list has its own run state; a retry resumes after confirmed batches.
- The send emits the Asset ``ACTIVECAMPAIGN_CAMPAIGN`` for downstream DAGs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, Param

from airflow_provider_activecampaign.operators.campaign import ActiveCampaignCampaignSendOperator
from airflow_provider_activecampaign.operators.connection import ActiveCampaignTestConnectionOperator

ACTIVECAMPAIGN_POOL = "activecampaign_default"
ACTIVECAMPAIGN_CAMPAIGN = Asset(name="activecampaign_spring_sale",
                                uri="activecampaign://activecampaign_default/campaigns/spring-sale")

with DAG(
    dag_id="activecampaign_campaign",
    description="Send a campaign's treatment groups to ActiveCampaign lists; count the control group.",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "pool": ACTIVECAMPAIGN_POOL},
    params={
        "activecampaign_conn_id": Param("activecampaign_default", type="string"),
        "warehouse_conn_id": Param("audience_warehouse", type="string"),
        "campaign_name": Param("Spring sale", type="string"),
        "group_name": Param("Admin", type="string"),
        "state_uri": Param("", type="string", description="Run state folder; empty = AIRFLOW_HOME"),
        "split_groups": Param(True, type="boolean",
                              description="One list per treatment group, or one list with the group in a field"),
    },
    access_control={"Admin": {"DAGs": {"can_read", "can_edit"}}},
    tags=["activecampaign", "campaign"],
    doc_md=__doc__,
) as dag:
    test_connection = ActiveCampaignTestConnectionOperator(
        task_id="test_connection",
        activecampaign_conn_id="{{ params.activecampaign_conn_id }}",
        retries=0,
    )
    send_campaign = ActiveCampaignCampaignSendOperator(
        task_id="send_campaign",
        activecampaign_conn_id="{{ params.activecampaign_conn_id }}",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        sql="sql/campaign.sql",
        campaign_name="{{ params.campaign_name }}",
        group_name="{{ params.group_name }}",
        state_uri="{{ params.state_uri or '' }}",
        group_column="treatment_group",
        control_groups=("control",),
        split_groups="{{ params.split_groups }}",
        mode="mirror",
        outlets=[ACTIVECAMPAIGN_CAMPAIGN],
    )
    test_connection >> send_campaign
