"""The example DAGs through Airflow (dag.test()) against emulator accounts, with a small warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from demo.warehouse import change_warehouse
from tests.integration.helpers import audience_emails, load_dag, task_states, xcom_result

pytestmark = pytest.mark.integration

LIST = "VIP customers"


def members(emulator: EmulatorServer) -> set[str]:
    found = emulator.account.list_by_name(LIST)
    return emulator.account.list_members(found.id) if found else set()


def promotion_conf(state_dir: Path, **overrides: object) -> dict:
    return {"state_uri": f"file://{state_dir}", "sample_size": 20, **overrides}


@pytest.mark.usefixtures("airflow_db")
def test_orchestration_sends_then_sends_only_changes(ac_default: EmulatorServer, warehouse: Path,
                                                     state_dir: Path) -> None:
    dag = load_dag("activecampaign_audience_orchestration")
    first = dag.test(run_conf={"state_uri": f"file://{state_dir}"})
    assert first.state == "success", task_states(first)
    expected = set(audience_emails(warehouse))
    assert members(ac_default) == expected
    sent = xcom_result(first, "send_audience")
    assert sent["added"] == len(expected) and sent["invalid"] > 0 and sent["duplicates"] > 0
    assert xcom_result(first, "test_connection")["api_url"] == ac_default.url

    changes = change_warehouse(warehouse, fraction=0.05)
    second = dag.test(run_conf={"state_uri": f"file://{state_dir}"})
    assert second.state == "success", task_states(second)
    now_expected = set(audience_emails(warehouse))
    assert members(ac_default) == now_expected
    result = xcom_result(second, "send_audience")
    left = expected - now_expected
    assert result["unsubscribed"] == len(left) and result["added"] == len(now_expected - expected)
    assert 0 < result["updated"] <= changes["changed"]
    assert result["unchanged"] >= len(expected) - changes["changed"] - changes["opted_out"]


@pytest.mark.usefixtures("airflow_db")
def test_promotion_verifies_sandbox_then_sends_production(ac_default: EmulatorServer,
                                                          ac_sandbox: EmulatorServer,
                                                          warehouse: Path, state_dir: Path) -> None:
    dag = load_dag("activecampaign_sandbox_promotion")
    run = dag.test(run_conf=promotion_conf(state_dir, approve=True))
    states = task_states(run)
    assert run.state == "success", states
    assert members(ac_sandbox) == set(audience_emails(warehouse, limit=20))
    assert members(ac_default) == set(audience_emails(warehouse))
    assert xcom_result(run, "verify_sandbox")["verified"] is True
    assert xcom_result(run, "sandbox_dry_run")["dry_run"] is True
    assert states["await_human_approval"] == "skipped"


@pytest.mark.usefixtures("airflow_db")
def test_promotion_withheld_leaves_production_untouched(ac_default: EmulatorServer,
                                                        ac_sandbox: EmulatorServer,
                                                        warehouse: Path, state_dir: Path) -> None:
    dag = load_dag("activecampaign_sandbox_promotion")
    run = dag.test(run_conf=promotion_conf(state_dir, approve=False))
    states = task_states(run)
    assert states["verify_sandbox"] == "success"
    assert states["production_send"] == "skipped"
    assert members(ac_sandbox) and ac_default.account.list_by_name(LIST) is None
    assert not ac_default.account.requests(method="POST")


@pytest.mark.usefixtures("airflow_db")
def test_broken_sandbox_fails_and_production_receives_nothing(monkeypatch: pytest.MonkeyPatch,
                                                              ac_default: EmulatorServer,
                                                              ac_sandbox: EmulatorServer,
                                                              warehouse: Path, state_dir: Path) -> None:
    from tests.integration.conftest import connection_json

    monkeypatch.setenv("AIRFLOW_CONN_ACTIVECAMPAIGN_SANDBOX", connection_json(ac_sandbox.url, "wrong-key-123"))
    dag = load_dag("activecampaign_sandbox_promotion")
    run = dag.test(run_conf=promotion_conf(state_dir, approve=True))
    states = task_states(run)
    assert run.state == "failed"
    assert states["test_sandbox_connection"] == "failed"
    assert states["production_send"] in ("upstream_failed", "skipped")
    assert ac_default.account.list_by_name(LIST) is None
    assert not ac_default.account.requests(method="POST")


@pytest.mark.usefixtures("airflow_db")
def test_failed_sandbox_verification_keeps_production_untouched(ac_default: EmulatorServer,
                                                                ac_sandbox: EmulatorServer,
                                                                warehouse: Path, state_dir: Path) -> None:
    dag = load_dag("activecampaign_sandbox_promotion")
    dag.get_task("verify_sandbox").timeout = 0  # fail at once instead of waiting 30 minutes
    # The sample send "succeeds" without reaching ActiveCampaign: the list read back is empty.
    run = dag.test(run_conf=promotion_conf(state_dir, approve=True), mark_success_pattern="send_sample_to_sandbox")
    states = task_states(run)
    assert run.state == "failed"
    assert states["verify_sandbox"] == "failed"
    assert states["production_dry_run"] == "upstream_failed" and states["production_send"] == "upstream_failed"
    assert ac_default.account.list_by_name(LIST) is None
    assert not ac_default.account.requests(method="POST")


@pytest.mark.usefixtures("airflow_db")
def test_refused_contacts_are_reported_not_counted_as_differences(ac_default: EmulatorServer,
                                                                  ac_sandbox: EmulatorServer,
                                                                  warehouse: Path, state_dir: Path) -> None:
    sample = audience_emails(warehouse, limit=20)
    ac_sandbox.account.exclude(sample[3])  # on the account's exclusion list: ActiveCampaign refuses it
    dag = load_dag("activecampaign_sandbox_promotion")
    run = dag.test(run_conf=promotion_conf(state_dir, approve=False))
    states = task_states(run)
    assert states["verify_sandbox"] == "success"
    assert xcom_result(run, "send_sample_to_sandbox")["rejected"] == 1
    verified = xcom_result(run, "verify_sandbox")
    assert verified["previously_refused"] == 1 and "1 refused by ActiveCampaign" in verified["message"]
    assert sample[3] not in members(ac_sandbox) and len(members(ac_sandbox)) == len(sample) - 1
