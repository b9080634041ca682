"""Tiny DAG for tests/browser: an audience send to the emulator; its task gets an "ActiveCampaign list" link.

Run by test_connection_ui.py with `airflow dags test ac_browser_link` in the browser tests' AIRFLOW_HOME;
the connection (AIRFLOW_CONN_AC_BROWSER_LINK) and the state location (AC_BROWSER_STATE_URI) come from the
test's environment.
"""

from __future__ import annotations

import os
import tempfile

from airflow.sdk import DAG

from airflow_provider_activecampaign.operators.activecampaign import ActiveCampaignAudienceSendOperator

with DAG(dag_id="ac_browser_link", schedule=None, catchup=False, tags=["activecampaign", "browser-test"]):
    ActiveCampaignAudienceSendOperator(
        task_id="send_audience",
        activecampaign_conn_id="ac_browser_link",
        list_name="Browser E2E list",
        records=[
            {"email": "ada@example.com", "first_name": "Ada"},
            {"email": "grace@example.com", "first_name": "Grace"},
            {"email": "linus@example.com", "first_name": "Linus"},
        ],
        mode="mirror",
        state_uri=os.environ.get("AC_BROWSER_STATE_URI") or f"file://{tempfile.gettempdir()}/ac_browser_state",
    )
