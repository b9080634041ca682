"""The way back through real DAG runs: a list's unsubscribes land in a SQLite warehouse table."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.operators.unsubscribes import ActiveCampaignUnsubscribesToSqlOperator
from demo.warehouse import change_warehouse
from tests.integration.helpers import audience_emails, load_dag, task_states, xcom_result

pytestmark = pytest.mark.integration

LIST = "VIP customers"
TABLE = "activecampaign_unsubscribes"


def table_rows(warehouse: Path) -> dict[str, tuple[str, str, str]]:
    with sqlite3.connect(warehouse) as db:
        return {email: (list_id, status, by) for email, list_id, status, by in
                db.execute(f"SELECT email, list_id, status, changed_by FROM {TABLE}")}


@pytest.mark.usefixtures("airflow_db")
def test_unsubscribes_fill_the_table_and_a_second_run_adds_only_what_changed(
        ac_default: EmulatorServer, warehouse: Path, state_dir: Path) -> None:
    send = load_dag("activecampaign_audience_orchestration")
    conf = {"state_uri": f"file://{state_dir}"}
    assert send.test(run_conf=conf).state == "success"
    account = ac_default.account
    list_id = account.list_by_name(LIST).id
    audience = audience_emails(warehouse)
    leavers = audience[:5]
    for number, email in enumerate(leavers):
        # Three leave with a reason, two without: only a reason (or a campaign) shows it was them.
        account.unsubscribe_by_contact(email, list_id, reason="Too many emails" if number < 3 else "")

    writeback = load_dag("activecampaign_unsubscribes")
    first = writeback.test(run_conf=conf)
    assert first.state == "success", task_states(first)
    result = xcom_result(first, "unsubscribes_to_warehouse")
    assert table_rows(warehouse) == {email: (list_id, "unsubscribed", "contact" if n < 3 else "other")
                                     for n, email in enumerate(leavers)}
    assert (result["read"], result["inserted"], result["updated"], result["removed"]) == (5, 5, 0, 0)
    assert not any("@" in str(value) for value in result.values())  # no email in XCom

    # An automation unsubscribes one, another bounces, one comes back through a form, and the send
    # unsubscribes the customers who opted out in the warehouse.
    account.unsubscribe_by_automation(audience[5], list_id, automation_id=7)
    account.bounce(audience[6], list_id)
    account.signup_by_form(leavers[0], list_id)
    change_warehouse(warehouse, fraction=0.05)
    resent = send.test(run_conf=conf)
    assert resent.state == "success"
    removed_by_sync = xcom_result(resent, "send_audience")["unsubscribed"]
    assert removed_by_sync > 0

    second = writeback.test(run_conf=conf)
    assert second.state == "success", task_states(second)
    result = xcom_result(second, "unsubscribes_to_warehouse")
    assert result["inserted"] == 2 + removed_by_sync
    assert (result["updated"], result["removed"], result["unchanged"]) == (0, 1, 4)
    rows = table_rows(warehouse)
    assert leavers[0] not in rows  # re-subscribed: no longer someone who said no
    assert set(rows) == account.list_members(list_id, status=2) | account.list_members(list_id, status=3)
    assert sum(1 for _, _, by in rows.values() if by == "sync") == removed_by_sync
    assert rows[audience[5]] == (list_id, "unsubscribed", "other")
    assert rows[audience[6]] == (list_id, "bounced", "other")
    assert [rows[email][2] for email in leavers[1:]] == ["contact", "contact", "other", "other"]

    third = writeback.test(run_conf=conf)
    result = xcom_result(third, "unsubscribes_to_warehouse")
    assert (result["inserted"], result["updated"], result["removed"]) == (0, 0, 0)


@pytest.mark.usefixtures("airflow_db")
def test_a_missing_table_fails_before_reading_activecampaign(ac_default: EmulatorServer, warehouse: Path) -> None:
    ac_default.account.add_list("VIP customers")
    operator = ActiveCampaignUnsubscribesToSqlOperator(task_id="t", list_name=LIST, sql_conn_id="audience_warehouse",
                                                       table="no_such_table")
    before = sum(ac_default.account.request_counts().values())
    with pytest.raises(Exception, match="no_such_table.*create_table=True"):
        operator.execute(context={})
    assert sum(ac_default.account.request_counts().values()) == before


def test_the_example_dag_runs_after_each_send() -> None:
    writeback = load_dag("activecampaign_unsubscribes")
    send = load_dag("activecampaign_audience_orchestration").get_task("send_audience")
    assert [asset.uri for asset in writeback.timetable.asset_condition.objects] == [
        asset.uri for asset in send.outlets]
    assert "Admin" in writeback.access_control and writeback.max_active_runs == 1
    task = writeback.get_task("unsubscribes_to_warehouse")
    assert task.pool == "activecampaign_default" and task.create_table is True
