"""Issue 8's code-review items and the incremental-run guarantee, each through real DAG runs of the
audience send (mirror mode) against the emulator over loopback HTTP."""

# The shared fixtures are imported from lifecycle_helpers; pytest passes them in by name (F811).
# ruff: noqa: F811

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.integration.lifecycle_helpers import (
    LIST,
    TASK,
    Scenario,
    account,  # noqa: F401  (fixture)
    active,
    assert_list_matches,
    assert_masked,
    dag_folder,  # noqa: F401
    email_of,
    emails,
    people,
    person,
    read_rejects,
    requests_since,
    scenario,  # noqa: F401
    unsubscribed,
    warehouse,  # noqa: F401
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]


def list_reads(records: list[Any], status: str | None = None) -> list[Any]:
    """Paged reads of the list's members (GET contacts?listid=...), not the one-row counts (limit=1)."""
    found = []
    for record in records:
        query = parse_qs(record.query)
        if record.endpoint != "GET contacts" or "listid" not in query or query.get("limit") == ["1"]:
            continue
        if status is None or query.get("status") == [status]:
            found.append(record)
    return found


def test_a_removal_whose_confirmation_was_lost_is_not_taken_for_the_contacts_own_unsubscribe(scenario) -> None:
    """The removal batch is applied by ActiveCampaign but its status cannot be read: the run ends
    without confirmation. Later runs must not record the removed as having unsubscribed themselves:
    when they come back into the audience they are subscribed again."""
    s: Scenario = scenario()
    audience = people(range(30))
    s.send(audience)
    s.account.fail_next(count=None, status=404, path="import/info")  # the batch's status is unreadable
    s.send(people(range(18)), expect_success=False)
    s.account.faults.clear()
    assert emails(people(range(18, 30))) <= unsubscribed(s.account)  # the removal itself went through

    s.send(people(range(18)))
    back = s.send(audience)
    assert_list_matches(s.account, audience)
    assert back.summary["skipped_unsubscribed"] == 0
    assert_masked(back, emails(audience))


def test_a_row_too_large_for_one_bulk_request_is_reported_and_the_other_joiners_are_sent(scenario) -> None:
    s: Scenario = scenario()
    s.send(people(range(20)))
    giant = person(25, plan="x" * 410_000)  # more than one bulk import request may carry
    joined = people(range(20)) + people(range(20, 25)) + [giant] + people(range(26, 33))
    run = s.send(joined)
    assert_list_matches(s.account, [r for r in joined if r is not giant])
    assert run.summary["added"] == 12 and run.summary["rejected"] == 1
    assert giant["email"] in read_rejects(run.summary)
    assert_masked(run, emails(joined))


@pytest.mark.parametrize("blank", ["", None], ids=["empty email", "null email"])
def test_a_list_member_without_an_email_does_not_break_the_list_read(scenario, blank: str | None) -> None:
    s: Scenario = scenario(full_refresh=True)  # every run reads the list back
    audience = people(range(20))
    s.send(audience)
    sms_only = s.account.account.add_contact("", phone="+15550100")  # a contact added by hand, no email
    s.account.account.add_by_hand("", s.list_id)
    sms_only.email = blank  # how the API shows it: "" or null

    grown = audience + people(range(20, 22))
    run = s.send(grown)
    assert active(s.account) - {"", None} == emails(grown)
    assert_masked(run, emails(grown))


def test_an_import_not_processed_by_import_timeout_is_retried_and_the_retry_resumes(scenario) -> None:
    s: Scenario = scenario(import_timeout=1.5, retries=3, retry_seconds=1.0)
    s.send(people(range(20)))
    s.account.account.configure(import_delay=6.0)  # ActiveCampaign is slow today
    before = len(s.account.account.requests(endpoint="POST import/bulk_import"))
    audience = people(range(50))
    run = s.send(audience)

    tries = {ti.task_id: ti.try_number for ti in run.dag_run.get_task_instances()}
    assert tries[TASK] > 1, "the timed-out import should fail the try and be retried"
    assert len(s.account.account.requests(endpoint="POST import/bulk_import")) == before + 1  # resumed, not resent
    assert_list_matches(s.account, audience)
    assert_masked(run, emails(audience))


def test_a_removal_for_a_contact_deleted_in_activecampaign_does_not_create_them_again(scenario) -> None:
    s: Scenario = scenario()
    s.send(people(range(30)))
    deleted = email_of(25)
    s.account.account.delete_contact(deleted)  # someone deleted them in ActiveCampaign

    run = s.send(people(range(18)))  # 12 leave, the deleted one among them
    assert s.account.account.contact(deleted) is None
    assert emails(people(range(18, 30))) - {deleted} <= unsubscribed(s.account)
    assert_list_matches(s.account, people(range(18)))
    assert_masked(run, emails(people(range(30))))


def test_a_batch_refused_whole_for_a_systematic_reason_is_not_bisected_into_single_imports(
        scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every import is refused whole, each contact named with the same account-wide reason. The send
    stops splitting after a bound and reports it, instead of hundreds of single-contact imports."""
    from airflow_provider_activecampaign.emulator.errors import ApiError

    s: Scenario = scenario()
    s.send(people(range(20)))

    def refuse_all(payload: Any, size: int) -> Any:
        contacts = payload.get("contacts") or []
        raise ApiError(400, {"success": 0, "message": "JSON payload did not pass validation. Please fix "
                             "failure Reasons and retry. The import was not queued for processing.",
                             "failureReasons": [{"contact": i, "failureReason": "Account contact limit reached"}
                                                for i in range(len(contacts))]})

    monkeypatch.setattr(s.account.account, "queue_import", refuse_all)  # what this account answers today
    before = len(s.account.account.requests(endpoint="POST import/bulk_import"))
    run = s.send(people(range(20)) + people(range(100, 400)), expect_success=False)

    imports = len(s.account.account.requests(endpoint="POST import/bulk_import")) - before
    # Splitting to find a culprit is worth a few tries per batch (main made 598 requests here).
    assert imports <= 2 * 25, f"{imports} import requests for 2 batches refused for the same reason"
    reasons = read_rejects(run.summary)
    assert set(reasons) == emails(people(range(100, 400))), "every refused joiner is in the rejects report"
    assert all("refused" in reason for reason in reasons.values())
    assert active(s.account) == emails(people(range(20)))


def test_removals_do_not_read_the_whole_unsubscribed_population(scenario) -> None:
    s: Scenario = scenario()
    emulated = s.account.account
    emulated.add_list(LIST)
    for i in range(1000, 1500):  # years of people who unsubscribed themselves
        emulated.subscribe(email_of(i), emulated.list_by_name(LIST).id)
        emulated.unsubscribe_by_contact(email_of(i), emulated.list_by_name(LIST).id)
    s.send(people(range(30)))

    start = len(emulated.request_log)
    run = s.send(people(range(28)))  # two leave
    assert run.summary["unsubscribed"] == 2
    assert not list_reads(requests_since(s.account, start), status="2")
    assert run.summary["api_requests"] < 30
    assert_list_matches(s.account, people(range(28)))


SPECIAL = ["josé.garcía@example.com", "zoë+news@example.com", "müller@bücher.de", "o'brien@example.com",
           "用户@example.com"]
# What a mask that keeps the first letters must never let through, in any encoding.
FRAGMENTS = ["garc", "os%C3%A9", "oë", "o%C3%AB", "%C3%AB%2Bnews", "üller", "%C3%BCller", "bücher",
             "b%C3%BCcher", "xn--bcher-kva", "brien", "用户", "户", "%E6%88%B7"]


class ArmOnLookUp:
    """Once the send looks a contact up by email (GET contacts?email=), throttle the next request
    there: the hook's retry warning then carries that look-up's URL, email included."""

    def __init__(self, emulator: Any) -> None:
        self.emulator, self.armed, self._stop = emulator, False, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        seen = 0
        while not self._stop.wait(0.005):
            log = self.emulator.account.request_log
            if any(r.endpoint == "GET contacts" and "email=" in r.query for r in log[seen:]):
                self.emulator.throttle_next(count=2, path="contacts", method="GET", retry_after=0.05)
                self.armed = True
                return
            seen = len(log)

    def __enter__(self) -> ArmOnLookUp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_emails_in_every_form_never_appear_unmasked_in_the_task_output(scenario) -> None:
    """Non-ASCII local parts and domains, plus-addresses and quotes, through the paths that put emails
    in URLs (per-contact look-ups), in retried requests' warnings and in exception texts."""
    s: Scenario = scenario()
    special = [{**person(100 + i), "email": e} for i, e in enumerate(SPECIAL)]
    audience = people(range(20)) + special
    first = s.send(audience)
    with ArmOnLookUp(s.account) as watcher:
        second = s.send(people(range(20)) + special[3:])  # three leave: removed one by one
    s.account.faults.clear()
    s.account.fail_next(count=None, status=400, path="contact/sync")  # refused: the task fails
    third = s.send(people(range(20)) + [{**row, "plan": "gold"} for row in special], expect_success=False)

    everyone = emails(audience)
    for run in (first, second, third):
        assert_masked(run, everyone)
        output = (run.log + str(run.summary)).lower()
        assert not [f for f in FRAGMENTS if f.lower() in output], [f for f in FRAGMENTS if f.lower() in output]
    assert watcher.armed or not s.account.account.requests(endpoint="GET contacts")


def test_a_one_percent_change_sends_only_that_and_checks_the_list_without_reading_it(scenario) -> None:
    """3,000 contacts, 1% changed (10 updated, 10 left, 10 joined): at most 1.1% is sent; the run's
    request count includes the drift check and there is no read of the whole list."""
    s: Scenario = scenario()
    base = people(range(3000))
    s.send(base)
    changed = [person(i, plan="enterprise") if i < 10 else row for i, row in enumerate(base)]
    changed = changed[:-10] + people(range(5000, 5010))

    start = len(s.account.account.request_log)
    run = s.send(changed)
    summary = run.summary
    sent = summary["added"] + summary["updated"] + summary["unsubscribed"]
    assert (summary["updated"], summary["added"], summary["unsubscribed"]) == (10, 10, 10)
    assert sent <= 0.011 * len(base)
    window = requests_since(s.account, start)
    first_me = next(i for i, r in enumerate(window) if r.endpoint == "GET users/me")  # the test task's
    send_requests = window[:first_me] + window[first_me + 1:]
    assert summary["api_requests"] == len(send_requests), summary["requests_by_endpoint"]
    counts = [r for r in send_requests if r.endpoint == "GET contacts" and parse_qs(r.query).get("limit") == ["1"]
              and "listid" in parse_qs(r.query)]
    assert counts, "no drift check (a count of the list's members) was made"
    assert not list_reads(send_requests)
    assert_list_matches(s.account, changed)
