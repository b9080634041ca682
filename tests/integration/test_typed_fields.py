"""Typed custom fields through a real DAG run against the emulator: dates, lists and options arrive in
ActiveCampaign's formats, and a field of another type stops the run before any write."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from tests.integration.helpers import task_states, xcom_result

pytestmark = pytest.mark.integration

DAG_FILE = '''
import datetime as dt
from airflow.sdk import DAG
from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator

with DAG(dag_id="typed_fields", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False) as dag:
    # Types inferred from Python values: a date column, a datetime column and a list column.
    ActiveCampaignAudienceSendOperator(
        task_id="inferred", list_name="Typed", group_name="Admin", state_uri="{state}",
        records=[
            {{"email": "ann@example.com", "signup": dt.date(2026, 3, 7),
              "last_order": dt.datetime(2026, 3, 7, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
              "interests": ["golf", "chess"]}},
            {{"email": "bob@example.com", "signup": dt.date(2025, 12, 31), "last_order": None,
              "interests": ["chess"]}},
        ],
    )
    # Types named by field_types, from a warehouse that returns text (SQLite): dates, JSON arrays, a dropdown.
    ActiveCampaignAudienceSendOperator(
        task_id="declared", list_name="Declared", group_name="Admin", state_uri="{state}",
        sql_conn_id="typed_warehouse",
        sql="SELECT email, renewal, hobbies, tier FROM members ORDER BY email",
        field_types={{"renewal": "date", "hobbies": "checkbox", "tier": "dropdown"}}, max_invalid_ratio=0.5,
    )
'''


@pytest.fixture
def typed_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_dir: Path):  # noqa: ANN201
    warehouse = tmp_path / "typed.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE members (email TEXT, renewal TEXT, hobbies TEXT, tier TEXT)")
        db.executemany("INSERT INTO members VALUES (?, ?, ?, ?)", [
            ("cy@example.com", "2027-01-15T10:00:00Z", '["golf", "go"]', "Gold"),
            ("di@example.com", "2027-02-01", "go", "Silver"),
            ("ed@example.com", "next year", None, "Gold"),  # not a date: rejected with the reason
        ])
    monkeypatch.setenv("AIRFLOW_CONN_TYPED_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(warehouse)}))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "typed_fields.py").write_text(textwrap.dedent(DAG_FILE.format(state=f"file://{state_dir}")))
    # dag.test() serializes the DAGs of the configured bundles: add this folder as one.
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([
        {"name": "typed-fields-test", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
         "kwargs": {"path": str(folder)}}]))
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.3
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["typed_fields"]


@pytest.mark.usefixtures("airflow_db")
def test_dates_lists_and_options_arrive_in_activecampaigns_formats(ac_default: EmulatorServer, typed_dag) -> None:  # noqa: ANN001
    account = ac_default.account
    account.add_field("Tier", perstag="TIER", field_type="dropdown")  # exists, with no options yet
    run = typed_dag.test()
    assert run.state == "success", task_states(run)

    fields = {tag: account.field_by_perstag(tag) for tag in ("SIGNUP", "LAST_ORDER", "INTERESTS", "RENEWAL",
                                                             "HOBBIES", "TIER")}
    assert {tag: f.type for tag, f in fields.items()} == {
        "SIGNUP": "date", "LAST_ORDER": "datetime", "INTERESTS": "listbox", "RENEWAL": "date",
        "HOBBIES": "checkbox", "TIER": "dropdown"}
    assert account.field_values("ann@example.com") == {
        "SIGNUP": "2026-03-07", "LAST_ORDER": "2026-03-07T09:30:00-05:00", "INTERESTS": "||golf||chess||"}
    assert account.field_values("bob@example.com") == {"SIGNUP": "2025-12-31", "INTERESTS": "||chess||"}
    assert account.field_values("cy@example.com") == {"RENEWAL": "2027-01-15", "HOBBIES": "||golf||go||",
                                                      "TIER": "Gold"}
    assert account.field_values("di@example.com") == {"RENEWAL": "2027-02-01", "HOBBIES": "||go||",
                                                      "TIER": "Silver"}
    options = {tag: sorted(o.value for o in account.field_options(fields[tag].id))
               for tag in ("INTERESTS", "HOBBIES", "TIER")}
    assert options == {"INTERESTS": ["chess", "golf"], "HOBBIES": ["go", "golf"], "TIER": ["Gold", "Silver"]}

    declared = xcom_result(run, "declared")
    assert declared["added"] == 2 and declared["invalid"] == 1
    report = Path(declared["rejects_report"].removeprefix("file://")).read_text()
    assert "column 'renewal': 'next year' is not a date" in report


@pytest.mark.usefixtures("airflow_db")
def test_a_field_of_another_type_stops_the_run_before_any_write(ac_default: EmulatorServer, typed_dag) -> None:  # noqa: ANN001
    account = ac_default.account
    account.add_field("Renewal", perstag="RENEWAL", field_type="text")
    run = typed_dag.test()
    assert task_states(run)["declared"] == "failed"
    declared = account.list_by_name("Declared")
    assert declared is None or not account.list_members(declared.id)
    assert account.contact("cy@example.com") is None
