"""Operators as a DAG author meets them: arguments, failures, the list link and OpenLineage."""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from airflow_provider_activecampaign.links import list_web_url
from airflow_provider_activecampaign.operators.activecampaign import (
    ActiveCampaignAudienceSendOperator,
    ActiveCampaignListSyncOperator,
    ActiveCampaignTestConnectionOperator,
)
from airflow_provider_activecampaign.sensors.list import ActiveCampaignListSensor
from tests.integration.conftest import PRODUCTION_KEY, connection_json


def test_source_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="sql_conn_id"):
        ActiveCampaignAudienceSendOperator(task_id="t", list_name="L", sql="SELECT 1")
    with pytest.raises(ValueError, match="not both"):
        ActiveCampaignAudienceSendOperator(task_id="t", list_name="L", sql="x", sql_conn_id="db", records=[])
    with pytest.raises(ValueError, match="mode"):
        ActiveCampaignAudienceSendOperator(task_id="t", list_name="L", records=[], mode="replace")


WRONG_ARGUMENTS = [
    ("action_on_empty='skp'", "action_on_empty must be one of 'fail', 'skip', 'proceed', not 'skp'"),
    ("max_removal_ratio=1.5", "max_removal_ratio must be from 0 to 1"),
    ("max_invalid_ratio=-0.1", "max_invalid_ratio must be from 0 to 1"),
    ("max_invalid_ratio='lots'", "max_invalid_ratio must be a number from 0 to 1"),
    ("mode='replace'", "mode must be one of 'mirror', 'upsert', not 'replace'"),
    ("fetch_size=0", "fetch_size must be a whole number of at least 1"),
    ("sample_size=2.5", "sample_size must be a whole number of at least 1"),
]


@pytest.mark.parametrize(("argument", "message"), WRONG_ARGUMENTS)
def test_a_dag_with_a_wrong_argument_fails_to_parse_naming_it(tmp_path: Path, argument: str,
                                                             message: str) -> None:
    (tmp_path / "bad_dag.py").write_text(f"""
from datetime import datetime
from airflow.sdk import DAG
from airflow_provider_activecampaign.operators.audience import ActiveCampaignAudienceSendOperator

with DAG(dag_id="bad", schedule=None, start_date=datetime(2026, 1, 1)):
    ActiveCampaignAudienceSendOperator(task_id="send", list_name="L", records=[], {argument})
""")
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.3
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(tmp_path))
    assert "bad" not in bag.dags
    (error,) = bag.import_errors.values()
    assert message in error


def test_sensor_and_list_sync_tolerance_is_a_share() -> None:
    with pytest.raises(ValueError, match="tolerance must be from 0 to 1"):
        ActiveCampaignListSyncOperator(task_id="v", list_name="L", records=[], verify_only=True, tolerance=5)
    with pytest.raises(ValueError, match="tolerance must be from 0 to 1"):
        ActiveCampaignListSensor(task_id="v", list_name="L", records=[], tolerance=-1)
    with pytest.raises(ValueError, match="action_on_empty must be one of"):
        ActiveCampaignListSensor(task_id="v", list_name="L", records=[], action_on_empty="skp")


def test_templated_guards_are_checked_once_rendered() -> None:
    from airflow_provider_activecampaign.compat import AirflowFailException

    send = ActiveCampaignAudienceSendOperator(
        task_id="send", list_name="L", records=[], max_removal_ratio="{{ params.removal }}",
        action_on_empty="{{ params.empty }}")
    assert send.max_removal_ratio == "{{ params.removal }}"  # not known before the run
    send.render_template_fields({"params": {"removal": "0.5", "empty": "skip"}})
    assert send.max_removal_ratio == 0.5 and send.action_on_empty == "skip"
    wrong = ActiveCampaignAudienceSendOperator(
        task_id="send", list_name="L", records=[], max_removal_ratio="{{ params.removal }}")
    with pytest.raises(AirflowFailException, match="max_removal_ratio must be from 0 to 1"):
        wrong.render_template_fields({"params": {"removal": "1.5"}})


def test_source_conn_id_still_reads_the_query_with_a_deprecation_warning(warehouse: Path) -> None:
    with pytest.warns(DeprecationWarning, match="source_conn_id is deprecated: use sql_conn_id"):
        old = ActiveCampaignAudienceSendOperator(task_id="send", list_name="L", source_conn_id="audience_warehouse",
                                                 sql="SELECT email FROM customers", sample_size=3)
    assert old.sql_conn_id == old.source_conn_id == "audience_warehouse"
    with old.open_source() as (columns, rows):
        assert columns == ["email"] and len(list(rows)) == 3
    with pytest.raises(ValueError, match="not both"):
        ActiveCampaignAudienceSendOperator(task_id="send", list_name="L", sql_conn_id="a", source_conn_id="b",
                                           sql="SELECT 1")


def test_sql_hook_params_reach_the_database_hook(warehouse: Path) -> None:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    made: list[DbApiHook] = []
    real_init = DbApiHook.__init__

    def spy(self: DbApiHook, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)
        made.append(self)

    send = ActiveCampaignAudienceSendOperator(task_id="send", list_name="L", sql_conn_id="audience_warehouse",
                                              sql="SELECT email FROM customers", sql_hook_params={"log_sql": False})
    with mock.patch.object(DbApiHook, "__init__", spy), send.open_source() as (columns, rows):
        assert next(rows)
    assert [hook.log_sql for hook in made] == [False]


def test_test_connection_operator_fails_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                        production: EmulatorServer) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", connection_json(production.url, "wrong-key-999"))
    operator = ActiveCampaignTestConnectionOperator(task_id="test")
    with pytest.raises(Exception, match="API key") as failure:
        operator.execute(context={})
    assert "wrong-key-999" not in str(failure.value)

    monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_DEFAULT", connection_json(production.url, PRODUCTION_KEY))
    facts = operator.execute(context={})
    assert facts["api_url"] == production.url and facts["username"] == "emulator"
    assert PRODUCTION_KEY not in json.dumps(facts)


def test_list_link_points_at_the_web_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_REAL", json.dumps(
        {"conn_type": "activecampaign", "host": "https://acme.api-us1.com/api/3/", "password": "k" * 20}))
    monkeypatch.setenv("AIRFLOW_CONN_CUSTOM", json.dumps(
        {"conn_type": "activecampaign", "host": "https://acme.api-us1.com", "password": "k" * 20,
         "extra": {"web_url": "https://marketing.acme.com/"}}))
    assert list_web_url(ActiveCampaignHook("real"), "7") == \
        "https://acme.activehosted.com/app/contacts?listid=7&status=1"
    assert list_web_url(ActiveCampaignHook("custom"), "7") == \
        "https://marketing.acme.com/app/contacts?listid=7&status=1"


def test_openlineage_reports_query_input_and_list_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}))
    operator = ActiveCampaignAudienceSendOperator(
        task_id="send", list_name="VIP", sql_conn_id="wh",
        sql="SELECT c.email FROM customers c JOIN mart.orders o ON o.customer_id = c.id "
            "WHERE c.id NOT IN (SELECT customer_id FROM optouts)",
    )
    operator._list_id, operator._account_url = "7", "https://acme.api-us1.com"
    lineage = operator.get_openlineage_facets_on_complete(task_instance=mock.MagicMock())
    assert sorted((d.namespace, d.name) for d in lineage.inputs) == [
        (f"sqlite://{tmp_path / 'w.db'}", name) for name in ("customers", "mart.orders", "optouts")]
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("activecampaign://activecampaign_default", "lists/vip")
    assert output.facets["documentation"].description == "ActiveCampaign list 'VIP' (id 7) on acme.api-us1.com"
    assert "customers" in lineage.job_facets["sql"].query


def test_lineage_never_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_activecampaign.lineage import tables_in_sql

    operator = ActiveCampaignAudienceSendOperator(task_id="send", list_name="VIP", sql_conn_id="missing_conn",
                                                  sql="SELECT email FROM customers")
    lineage = operator.get_openlineage_facets_on_complete(task_instance=mock.MagicMock())
    assert lineage.inputs == [] and [d.name for d in lineage.outputs] == ["lists/vip"]
    with mock.patch("openlineage.common.sql.parse", side_effect=RuntimeError("parser crashed")):
        assert tables_in_sql("SELECT e FROM a JOIN b ON a.x = b.x", "postgres") == ["a", "b"]


def test_the_example_dags_asset_is_the_sends_lineage_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AUDIENCE_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": "w.db"}))
    from tests.integration.helpers import load_dag

    dag = load_dag("activecampaign_audience_orchestration")
    send = dag.get_task("send_audience")
    params = {name: dag.params[name] for name in dag.params}
    send.render_template_fields({"params": params})
    (output,) = send.get_openlineage_facets_on_complete(task_instance=mock.MagicMock()).outputs
    assert [o.uri for o in send.outlets] == [f"{output.namespace}/{output.name}"]
    assert output.name == "lists/vip-customers"


def _ti() -> mock.MagicMock:
    from airflow.sdk import timezone

    ti = mock.MagicMock(dag_id="d", task_id="verify", run_id="r")
    ti.get_first_reschedule_date.return_value = None
    ti.start_date = timezone.utcnow()
    return ti


def test_deprecated_verify_only_reschedules_while_the_list_does_not_match_yet(ac_default: EmulatorServer) -> None:
    from airflow_provider_activecampaign.compat import AirflowFailException, AirflowRescheduleException

    records = [{"email": f"v{i}@example.com"} for i in range(12)]
    with pytest.warns(DeprecationWarning, match="use ActiveCampaignListSensor"):
        verify = ActiveCampaignListSyncOperator(task_id="verify", list_name="Fresh", records=records,
                                                verify_only=True, timeout=300, poke_interval=5)
    ti = _ti()
    ac_default.account.add_list("Fresh")
    with pytest.raises(AirflowRescheduleException):
        verify.execute(context={"ti": ti})  # nothing there yet: check again later, no slot held
    expired = ActiveCampaignListSyncOperator(task_id="verify", list_name="Fresh", records=records,
                                             verify_only=True, timeout=0)
    with pytest.raises(AirflowFailException, match="12 missing"):
        expired.execute(context={"ti": ti})

    repair = ActiveCampaignListSyncOperator(task_id="repair", list_name="Fresh", records=records)
    result = repair.execute(context={"ti": ti})
    assert result["added"] == 12
    assert verify.execute(context={"ti": ti})["verified"] is True


def test_list_sensor_waits_without_a_slot_then_passes_once_the_list_matches(ac_default: EmulatorServer) -> None:
    from airflow_provider_activecampaign.compat import AirflowRescheduleException, AirflowSensorTimeout

    records = [{"email": f"s{i}@example.com"} for i in range(12)]
    sensor = ActiveCampaignListSensor(task_id="verify", list_name="Fresh", records=records,
                                      poke_interval=5, timeout=300)
    assert sensor.mode == "reschedule"
    ti = _ti()
    ac_default.account.add_list("Fresh")
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(context={"ti": ti})
    expired = ActiveCampaignListSensor(task_id="verify", list_name="Fresh", records=records, timeout=0)
    with pytest.raises(AirflowSensorTimeout, match="Verification failed: .*12 missing"):
        expired.execute(context={"ti": ti})
    assert not ac_default.account.requests(method="POST")  # checking never writes

    ActiveCampaignListSyncOperator(task_id="repair", list_name="Fresh", records=records).execute(context={"ti": ti})
    result = sensor.execute(context={"ti": ti})
    assert result["verified"] is True and result["valid"] == 12 and "0 missing" in result["message"]
    assert ti.xcom_push.call_args.kwargs["value"].endswith("listid=" + result["list_id"] + "&status=1")


def test_list_sensor_fails_at_once_when_waiting_cannot_help(ac_default: EmulatorServer) -> None:
    from airflow_provider_activecampaign.compat import AirflowFailException

    sensor = ActiveCampaignListSensor(task_id="verify", list_name="Never created", records=[{"email": "a@b.co"}])
    with pytest.raises(AirflowFailException, match="does not exist"):
        sensor.execute(context={"ti": _ti()})


def test_deferrable_list_sensor_waits_in_the_triggerer(ac_default: EmulatorServer) -> None:
    import asyncio
    import concurrent.futures

    from airflow_provider_activecampaign.compat import TaskDeferred
    from airflow_provider_activecampaign.triggers.list import ActiveCampaignListTrigger

    records = [{"email": f"d{i}@example.com"} for i in range(11)]
    sensor = ActiveCampaignListSensor(task_id="verify", list_name="Deferred", records=records, deferrable=True,
                                      poke_interval=0.2, timeout=60)
    ac_default.account.add_list("Deferred")
    ti = _ti()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context={"ti": ti})
    trigger = deferred.value.trigger
    assert deferred.value.method_name == "execute_complete" and deferred.value.timeout.total_seconds() == 60
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_activecampaign.triggers.list.ActiveCampaignListTrigger"
    revived = ActiveCampaignListTrigger(**json.loads(json.dumps(kwargs)))  # what the triggerer stores

    async def first_event() -> dict:
        events = revived.run()
        ActiveCampaignListSyncOperator(task_id="repair", list_name="Deferred", records=records).execute(
            context={"ti": ti})
        return (await asyncio.wait_for(events.__anext__(), 30)).payload

    # A loop of its own in a thread of its own, as in the triggerer (and whatever loop an earlier test
    # left registered in this thread cannot interfere).
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        event = pool.submit(asyncio.run, first_event()).result()
    assert event["status"] == "verified" and event["result"]["valid"] == 11
    assert sensor.execute_complete(context={"ti": ti}, event=event)["verified"] is True
    from airflow_provider_activecampaign.compat import AirflowFailException

    with pytest.raises(AirflowFailException, match="Verification failed: boom"):
        sensor.execute_complete(context={"ti": ti}, event={"status": "error", "message": "boom"})


@pytest.mark.usefixtures("airflow_db")
def test_a_task_without_a_list_publishes_no_link_and_logs_no_xcom_error(
        ac_default: EmulatorServer, warehouse: Path, state_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Airflow 3 logged "XCom not found ... activecampaign_list_url" for every task that never found a list."""
    from tests.integration.helpers import load_dag, task_states

    dag = load_dag("activecampaign_audience_orchestration")
    run = dag.test(run_conf={"state_uri": f"file://{state_dir}", "group_name": "No such group"})
    log = "".join(capfd.readouterr())
    assert task_states(run) == {"test_connection": "success", "send_audience": "failed"}
    assert "Invalid group name 'No such group'" in log
    assert "XCom not found" not in log and "Failed to push an xcom for task operator extra link" not in log


def test_the_list_link_is_the_url_the_task_published(ac_default: EmulatorServer) -> None:
    from airflow_provider_activecampaign.links import ActiveCampaignListLink

    send = ActiveCampaignAudienceSendOperator(task_id="send", list_name="Linked", records=[{"email": "a@example.com"}])
    link = ActiveCampaignListLink()
    assert link.get_link(send, ti_key=None) == ""  # nothing published: no link, no XCom read
    ti = _ti()
    result = send.execute(context={"ti": ti})
    url = f"{ActiveCampaignHook().web_url}/app/contacts?listid={result['list_id']}&status=1"
    assert link.get_link(send, ti_key=None) == url
    ti.xcom_push.assert_any_call(key="activecampaign_list_url", value=url)  # (the state generation too)
