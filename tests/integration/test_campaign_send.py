"""The campaign send through real DAG runs against the emulator: treatment groups into lists, control nowhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.operators.campaign import ActiveCampaignCampaignSendOperator
from tests.integration.helpers import REPO, load_dag, task_states, xcom_result

pytestmark = pytest.mark.integration

CAMPAIGN_SQL = (REPO / "dags" / "sql" / "campaign.sql").read_text()


def expected_groups(warehouse: Path) -> dict[str, set[str]]:
    """What the campaign query assigns: valid emails by group, first row winning (as the docs say)."""
    from airflow_provider_activecampaign.audience.emails import email_problem, normalize_email

    owner: dict[str, str] = {}
    with sqlite3.connect(warehouse) as db:
        for email, _first, _last, _plan, group in db.execute(CAMPAIGN_SQL):
            normalized = normalize_email(email)
            if normalized and email_problem(normalized) is None:
                owner.setdefault(normalized, group)
    groups: dict[str, set[str]] = {}
    for email, group in owner.items():
        groups.setdefault(group, set()).add(email)
    return groups


def members(emulator: EmulatorServer, name: str) -> set[str]:
    found = emulator.account.list_by_name(name)
    return emulator.account.list_members(found.id) if found else set()


@pytest.mark.usefixtures("airflow_db")
def test_two_treatment_groups_become_two_lists_and_control_goes_nowhere(
        ac_default: EmulatorServer, warehouse: Path, state_dir: Path) -> None:
    # The warehouse's case-only duplicates put some contacts in two groups (their id decides the group).
    # Someone the unsubscribes write-back stored is left out by the campaign's query.
    with sqlite3.connect(warehouse) as db:
        (said_no,) = db.execute("SELECT lower(email) FROM customers WHERE customer_id = 4").fetchone()
        db.execute("INSERT INTO activecampaign_unsubscribes VALUES (?, '9', 'unsubscribed', NULL, 'contact')",
                   (said_no,))
    dag = load_dag("activecampaign_campaign")
    run = dag.test(run_conf={"state_uri": f"file://{state_dir}"})
    assert run.state == "success", task_states(run)
    groups = expected_groups(warehouse)
    a, b = members(ac_default, "Spring sale - A"), members(ac_default, "Spring sale - B")
    assert a == groups["A"] and b == groups["B"]
    assert not (a | b) & groups["control"]
    assert said_no not in a | b | groups["A"]  # customer 4 would be in group A
    assert {lst.name for lst in ac_default.account.lists.values()} == {"Spring sale - A", "Spring sale - B"}
    for name in ("Spring sale - A", "Spring sale - B"):  # tied to the user group, like an audience's list
        found = ac_default.account.list_by_name(name)
        assert ac_default.account.list_group_ids(found.id), name

    result = xcom_result(run, "send_campaign")
    assert result["groups"]["A"]["added"] == result["groups"]["A"]["contacts"] == len(groups["A"])
    assert result["groups"]["B"]["added"] == len(groups["B"])
    assert result["control"] == {"control": len(groups["control"])}
    assert result["in_two_groups"] > 0  # the case-only duplicates that landed in another group
    assert result["total"]["added"] == len(groups["A"]) + len(groups["B"])
    assert result["total"]["control_contacts"] == len(groups["control"])
    assert result["campaign_rejects_report"]

    # A second run with nothing changed sends nothing.
    again = dag.test(run_conf={"state_uri": f"file://{state_dir}"})
    totals = xcom_result(again, "send_campaign")["total"]
    assert (totals["added"], totals["updated"], totals["unsubscribed"]) == (0, 0, 0)

    # A customer moves from A to control: they leave list A, and join no list.
    with sqlite3.connect(warehouse) as db:
        moved, customer_id = next(
            (email, ids[0]) for email in sorted(groups["A"])
            if len(ids := [i for (i,) in db.execute("SELECT customer_id FROM customers WHERE lower(email) = ?",
                                                    (email,))]) == 1)
        db.execute("UPDATE customers SET customer_id = ? WHERE customer_id = ?", (300_000 + customer_id * 3,
                                                                                   customer_id))
    third = dag.test(run_conf={"state_uri": f"file://{state_dir}"})
    assert third.state == "success", task_states(third)
    assert moved not in members(ac_default, "Spring sale - A") | members(ac_default, "Spring sale - B")
    assert xcom_result(third, "send_campaign")["groups"]["A"]["unsubscribed"] == 1


@pytest.mark.usefixtures("airflow_db")
def test_combined_mode_sends_one_list_with_each_contacts_group_in_a_field(
        ac_default: EmulatorServer, warehouse: Path, state_dir: Path) -> None:
    dag = load_dag("activecampaign_campaign")
    run = dag.test(run_conf={"state_uri": f"file://{state_dir}", "split_groups": False})
    assert run.state == "success", task_states(run)
    groups = expected_groups(warehouse)
    account = ac_default.account
    assert {lst.name for lst in account.lists.values()} == {"Spring sale"}
    assert members(ac_default, "Spring sale") == groups["A"] | groups["B"]
    field = account.field_by_perstag("TREATMENT_GROUP")
    assert field is not None
    for group in ("A", "B"):
        for email in sorted(groups[group])[:20]:
            assert account.field_values(email)["TREATMENT_GROUP"] == group
    result = xcom_result(run, "send_campaign")
    assert result["groups"]["A"]["contacts"] == len(groups["A"])
    assert result["total"]["added"] == len(groups["A"]) + len(groups["B"])
    assert result["control"] == {"control": len(groups["control"])}


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="must use \\{group\\}"):
        ActiveCampaignCampaignSendOperator(task_id="t", campaign_name="C", records=[], list_name_template="{campaign}")
    with pytest.raises(ValueError, match="not list_name"):
        ActiveCampaignCampaignSendOperator(task_id="t", campaign_name="C", records=[], list_name="L")
    combined = ActiveCampaignCampaignSendOperator(task_id="t", campaign_name="C", records=[], split_groups=False,
                                                  list_name_template="{campaign}")
    assert combined.group_column == "treatment_group" and combined.control_groups == ("control",)


def test_combined_mode_can_tag_each_contact_with_its_group() -> None:
    operator = ActiveCampaignCampaignSendOperator(task_id="t", campaign_name="Spring", records=[],
                                                  split_groups="False", tag_groups=True)
    assert operator.split_groups is False
    columns, rows = operator._with_group_tags(["email", "treatment_group"], [("a@x.com", "A")])
    assert columns == ["email", "treatment_group", "tags"] and rows == [("a@x.com", "A", ["Spring - A"])]
    columns, rows = operator._with_group_tags(["email", "tags", "treatment_group"],
                                              [("a@x.com", "vip", "B"), ("b@x.com", None, "A")])
    assert rows == [("a@x.com", ["vip", "Spring - B"], "B"), ("b@x.com", ["Spring - A"], "A")]
