"""The list stays right through a real account's life (issue 8): one test per event, each through real
DAG runs (``dag.test()``) of the audience send in mirror mode against the emulator over loopback HTTP.

After every event the list's active members must equal the audience, except those unsubscribed by
anyone but the sync, who stay unsubscribed; and no email appears unmasked in the task output.
"""

# The shared fixtures are imported from lifecycle_helpers; pytest passes them in by name (F811).
# ruff: noqa: F811

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.helpers import REPO
from tests.integration.lifecycle_helpers import (
    LIST,
    Scenario,
    account,  # noqa: F401  (fixture)
    active,
    assert_list_matches,
    assert_masked,
    dag_folder,  # noqa: F401
    email_of,
    emails,
    history_length,
    people,
    person,
    read_rejects,
    scenario,  # noqa: F401
    subscribed_by_contact_lists,
    unsubscribed,
    warehouse,  # noqa: F401
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


# ------------------------------------------------------------------------------------- 1. consent
@pytest.mark.parametrize("returning", [1, 12], ids=["per-contact path", "bulk path"])
def test_consent_a_contact_who_unsubscribed_themselves_is_never_resubscribed(scenario, returning: int) -> None:
    """Removed by the sync -> signed up again through a form -> unsubscribed themselves -> back in the
    audience: they stay unsubscribed and are reported as skipped. Someone the sync removed and nobody
    touched since comes back (the control: the sync still re-subscribes what it made itself)."""
    s: Scenario = scenario()
    audience = people(range(40))
    s.send(audience)
    consent = [email_of(i) for i in range(returning)]
    control = email_of(39)
    s.send(people(range(returning, 39)))
    assert {*consent, control} <= unsubscribed(s.account)

    time.sleep(1.1)  # people act after the run: ActiveCampaign's dates have whole seconds
    marks = {}
    emulated = s.account.account
    for n, email in enumerate(consent):
        emulated.signup_by_form(email, s.list_id)
        marks[email] = history_length(s.account, email)
        # Whoever unsubscribes them, it is not the sync: a user by hand (leaves no reason, only the
        # date says it), the person themselves, an automation.
        if n % 3 == 0:
            emulated.unsubscribe_by_admin(email, s.list_id)
        elif n % 3 == 1:
            emulated.unsubscribe_by_contact(email, s.list_id, reason="Too many emails")
        else:
            emulated.unsubscribe_by_automation(email, s.list_id, automation_id=7)

    back = s.send(audience)
    assert_list_matches(s.account, audience, kept_out=consent)
    assert control in emails(audience) and back.summary["skipped_unsubscribed"] == returning
    for email in consent:
        assert not subscribed_by_contact_lists(s.account, email, after=marks[email]), email
    assert_masked(back, emails(audience))


# --------------------------------------------------------------------------------- 2. two workers
def test_two_workers_a_stale_local_copy_is_noticed_and_the_list_stays_right(scenario, tmp_path: Path) -> None:
    """The state on each worker's local disk (the default). Worker B's copy predates a run on worker A;
    B must learn from Airflow's metadata DB that its copy is stale and read the list back."""
    s: Scenario = scenario()
    worker_b = tmp_path / "worker_b"
    first = people(range(40))
    s.send(first)
    shutil.copytree(s.worker, worker_b)  # B ran the first run too, then A ran the next one

    s.send(people(range(5, 45)))  # on A: 0-4 leave, 40-44 join
    on_b = s.send(first, worker=worker_b)  # on B, with its older copy: 0-4 back, 40-44 leave again
    assert_list_matches(s.account, first)
    assert on_b.summary["membership_source"] == "activecampaign"
    assert "stale" in on_b.summary["membership_reason"], on_b.summary["membership_reason"]

    again_on_a = s.send(first)  # now A's copy is the older one
    assert_list_matches(s.account, first)
    assert again_on_a.summary["membership_source"] == "activecampaign"
    assert "stale" in again_on_a.summary["membership_reason"], again_on_a.summary["membership_reason"]
    assert_masked(on_b, emails(first) | emails(people(range(40, 45))))


# ---------------------------------------------------------------------------------- 3. small runs
def test_small_run_sends_tags_and_account_names_and_subscribes_without_contact_lists(scenario) -> None:
    """A 3-contact change takes the small-run path: new tags and account names arrive, and with
    exclude_automations=True the new member is not subscribed through contactLists."""
    s: Scenario = scenario(exclude_automations=True)
    s.send(people(range(30)))
    changed = people(range(30))
    changed[1] = person(1, tags="newsletter,vip")
    changed[2] = person(2, customer_acct_name="Renamed Co")
    changed.append(person(30, tags="newsletter,vip", customer_acct_name="Newcomer Inc"))
    run = s.send(changed)

    assert (run.summary["updated"], run.summary["added"]) == (2, 1), run.summary
    emulated = s.account.account
    assert "vip" in emulated.contact_tags(email_of(1))
    assert emulated.contact(email_of(2)).orgname == "Renamed Co"
    assert "vip" in emulated.contact_tags(email_of(30))
    assert emulated.contact(email_of(30)).orgname == "Newcomer Inc"
    assert not subscribed_by_contact_lists(s.account, email_of(30))
    assert_list_matches(s.account, changed)
    assert s.send(changed).summary["unchanged"] == 31  # what was recorded as sent really arrived
    assert_masked(run, emails(changed))


# --------------------------------------------------------------------------------- 4. hand edits
def test_hand_edits_contacts_added_by_hand_are_unsubscribed_by_the_next_mirror_run(scenario) -> None:
    s: Scenario = scenario()
    audience = people(range(30))
    s.send(audience)
    by_hand = ["walk.in.1@example.com", "walk.in.2@example.com", email_of(77)]
    for email in by_hand:
        s.account.account.add_by_hand(email, s.list_id)

    run = s.send(audience)
    assert_list_matches(s.account, audience)
    assert set(by_hand) <= unsubscribed(s.account)
    assert run.summary["unsubscribed"] == 3
    for email in by_hand:
        assert s.account.account.contact(email) is not None  # unsubscribed, never deleted
    assert_masked(run, emails(audience) | set(by_hand))


# ----------------------------------------------------------------------------------- 5. refusals
def test_refusals_excluded_contacts_are_let_in_once_the_exclusion_is_lifted(scenario) -> None:
    s: Scenario = scenario()
    audience = people(range(30))
    refused = [email_of(3), email_of(17)]
    for email in refused:
        s.account.account.exclude(email)
    first = s.send(audience)
    assert first.summary["rejected"] == 2
    assert set(refused) <= set(read_rejects(first.summary))
    assert_list_matches(s.account, [r for r in audience if r["email"] not in refused])

    for email in refused:
        s.account.account.lift_exclusion(email)
    after = s.send(audience)
    assert_list_matches(s.account, audience)
    assert after.summary["added"] == 2
    assert_masked(after, emails(audience))


def test_refusals_over_the_contact_limit_are_let_in_once_the_limit_is_raised(scenario) -> None:
    s: Scenario = scenario()
    s.send(people(range(10)))
    s.account.account.set_group_limit("Admin", limit_contact=25)  # the plan allows 25 contacts
    audience = people(range(30))
    first = s.send(audience)
    assert first.summary["rejected"] == 5 and len(read_rejects(first.summary)) == 5
    assert len(active(s.account)) == 25

    s.account.account.set_group_limit("Admin", limit_contact=0)  # a bigger plan: no limit
    after = s.send(audience)
    assert_list_matches(s.account, audience)
    assert after.summary["added"] == 5
    assert_masked(after, emails(audience))


# -------------------------------------------------------------------------------------- 6. crash
def test_crash_a_killed_run_does_not_block_the_next_one(scenario, tmp_path: Path) -> None:
    """``airflow dags test`` in a process of its own is killed (SIGKILL) while its removals are in
    flight; the next run succeeds at once and the list is right."""
    s: Scenario = scenario()
    s.send(people(range(300)))
    audience = people(range(200))  # 100 leave: one bulk removal batch
    s.warehouse.set(audience)

    polls = len(s.account.account.requests(endpoint="GET import/info"))
    # The removal batch's confirmation is held, so the process dies with the batch in flight.
    s.account.slow_next(count=1, delay=8, path="import/info")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    conf = f'{{"state_uri": "file://{s.worker}"}}'
    with (tmp_path / "killed.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "airflow", "dags", "test", "-c", conf, s.dag.dag_id],
                                  env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while len(s.account.account.requests(endpoint="GET import/info")) == polls:
                assert worker.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the removal batch was never submitted"
                time.sleep(0.1)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    assert s.account.account.requests(endpoint="POST import/bulk_import")[-1].status == 200

    after = s.send(audience)
    assert_list_matches(s.account, audience)
    assert emails(people(range(200, 300))) <= unsubscribed(s.account)
    assert_masked(after, emails(people(range(300))))


# ------------------------------------------------------------------------------- 7. deleted list
def test_deleted_list_is_recreated_and_filled_including_members_whose_state_was_wrong(scenario) -> None:
    s: Scenario = scenario()
    audience = people(range(30))
    refused = [email_of(4), email_of(9)]
    for email in refused:
        s.account.account.exclude(email)
    s.send(audience)
    for email in refused:
        s.account.account.lift_exclusion(email)
    old_id = s.list_id
    s.account.account.delete_list(old_id)

    run = s.send(audience)
    assert s.list_id != old_id and run.summary["list_created"] is True
    assert_list_matches(s.account, audience)
    assert_masked(run, emails(audience))


def test_list_recreated_under_the_same_name_before_the_send_is_filled(scenario) -> None:
    """The promotion DAG's prepare step deletes nothing but may create the list before the send: a new
    list of the same name (another id) must be filled, not trusted to the state of the old one."""
    s: Scenario = scenario()
    audience = people(range(30))
    s.send(audience)
    old_id = s.list_id
    s.account.account.delete_list(old_id)
    s.account.account.add_list(LIST)  # what a prepare step (list sync with create_list=True) does

    run = s.send(audience)
    assert s.list_id != old_id
    assert_list_matches(s.account, audience)
    assert run.summary["added"] == 30
    assert_masked(run, emails(audience))
