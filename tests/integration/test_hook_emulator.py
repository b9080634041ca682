"""The real hook against the emulator over loopback: limits, faults, test_connection, no leaked key."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest

from airflow_provider_activecampaign.emulator import EmulatorServer
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
from tests.integration.conftest import PRODUCTION_KEY, connection_json


def use(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str, key: str = PRODUCTION_KEY) -> ActiveCampaignHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(host, key))
    return ActiveCampaignHook(activecampaign_conn_id=conn_id)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_test_connection_says_plainly_what_is_wrong(monkeypatch: pytest.MonkeyPatch,
                                                    production: EmulatorServer) -> None:
    ok, message = use(monkeypatch, "ac_ok", production.url).test_connection()
    assert ok and production.url in message and "emulator" in message

    ok, message = use(monkeypatch, "ac_key", production.url, "wrong-key-000000").test_connection()
    assert not ok and "API key rejected" in message and "wrong-key" not in message

    ok, message = use(monkeypatch, "ac_path", production.url + "/not-the-api").test_connection()
    assert not ok and "does not answer like an ActiveCampaign API" in message and "/not-the-api" in message

    port = closed_port()
    ok, message = use(monkeypatch, "ac_port", f"http://127.0.0.1:{port}").test_connection()
    assert not ok and f"127.0.0.1:{port}" in message and "reach" in message

    before = len(production.account.requests())
    ok, message = use(monkeypatch, "ac_http", "http://ac.example.com").test_connection()
    assert not ok and "http" in message and "https" in message
    assert len(production.account.requests()) == before  # nothing was sent anywhere

    production.block_account(True)
    ok, message = use(monkeypatch, "ac_blocked", production.url).test_connection()
    assert not ok and "blocked" in message and "402" in message


def test_four_threads_of_separate_hooks_share_the_account_limit(monkeypatch: pytest.MonkeyPatch,
                                                                 production: EmulatorServer) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AC_THREADS", connection_json(production.url, PRODUCTION_KEY))
    errors: list[BaseException] = []

    def worker(calls: int) -> None:
        hook = ActiveCampaignHook(activecampaign_conn_id="ac_threads")  # its own session
        try:
            for _ in range(calls):
                hook.get_current_user()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    production.account.clear_requests()
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(n,)) for n in (13, 13, 12, 12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert not errors
    answered = production.account.requests()
    assert len(answered) == 50
    assert not [r for r in answered if r.status == 429]
    assert production.account.peak_rate(1.0) <= 5
    print(f"50 calls from 4 threads: {elapsed:.1f}s, {50 / elapsed:.2f} requests/s, no 429")


def test_every_call_survives_429_503_bursts_and_dropped_connections(
        monkeypatch: pytest.MonkeyPatch, production: EmulatorServer) -> None:
    hook = use(monkeypatch, "ac_faults", production.url)
    production.throttle_next(3, retry_after=0.3)
    assert hook.get_current_user()["username"] == "emulator"
    production.fail_next(2, status=503, retry_after=0.2)
    assert hook.find_list_by_name("nothing") is None
    production.fail_next(2, status=502)  # HTML body, as Cloudflare sends
    assert hook.get_custom_fields() == {}
    production.drop_next(2)
    assert hook.find_user_group("Admin")["title"] == "Admin"
    assert hook.request_counts["GET users/me"] == 4 and hook.request_counts["GET groups"] >= 3


def test_the_api_key_never_reaches_logs_or_errors(monkeypatch: pytest.MonkeyPatch, production: EmulatorServer,
                                                  caplog: pytest.LogCaptureFixture,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    hook = use(monkeypatch, "ac_leak", production.url)
    production.throttle_next(1, retry_after=0.1)
    hook.get_current_user()
    production.fail_next(10, status=500)
    with pytest.raises(Exception) as failure:
        ActiveCampaignHook(activecampaign_conn_id="ac_leak", max_attempts=2).get_current_user()
    bad = use(monkeypatch, "ac_leak_bad", production.url, "another-secret-key-42")
    production.faults.clear()
    assert not bad.test_connection()[0]
    out = capsys.readouterr()
    everything = caplog.text + out.out + out.err + str(failure.value) + json.dumps(hook.request_counts)
    assert PRODUCTION_KEY not in everything and "another-secret-key-42" not in everything


class _WouldWait(Exception):
    pass


def _refuse_to_wait(seconds: float) -> None:
    raise _WouldWait(seconds)


def test_a_burst_of_100_imports_goes_at_the_requests_pace_and_the_101st_would_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ActiveCampaign's limits (100 imports/minute) at a raised requests budget (20/s) so the test is
    quick: the 100 imports arrive within seconds, none refused, and the window is then full."""
    with EmulatorServer(api_key=PRODUCTION_KEY, requests_per_second=20, import_delay=0.1) as server:
        monkeypatch.setenv("AIRFLOW_CONN_AC_BURST", connection_json(server.url, PRODUCTION_KEY,
                                                                    requests_per_second=20))
        hook = ActiveCampaignHook(activecampaign_conn_id="ac_burst")
        started = time.monotonic()
        for i in range(100):
            hook.bulk_import([{"email": f"burst{i}a@example.com"}, {"email": f"burst{i}b@example.com"}])
        elapsed = time.monotonic() - started
        imports = server.account.requests(endpoint="POST import/bulk_import")
        assert len(imports) == 100 and all(r.status == 200 for r in imports)  # no 400 "Rate limit exceeded."
        assert server.account.peak_rate(60.0, imports) == 100
        assert imports[-1].time - imports[0].time < 60  # a burst, not 0.6 s apart (that would be 59.4 s)
        # A second hook in the same process (the next task run) shares the full window: it would wait.
        later_run = ActiveCampaignHook(activecampaign_conn_id="ac_burst")
        with pytest.raises(_WouldWait) as waited:
            later_run._bulk_limiter(2).acquire(_refuse_to_wait)
        assert float(waited.value.args[0]) > 0
        print(f"100 imports in {elapsed:.1f}s against the emulator at 20 requests/s, no 400")


def test_the_test_connection_operator_succeeds_through_a_burst_of_two_429s(
        monkeypatch: pytest.MonkeyPatch, production: EmulatorServer) -> None:
    from airflow_provider_activecampaign.operators.connection import ActiveCampaignTestConnectionOperator

    monkeypatch.setenv("AIRFLOW_CONN_AC_BUSY", connection_json(production.url, PRODUCTION_KEY))
    production.account.clear_requests()
    production.throttle_next(2, retry_after=0.2)
    facts = ActiveCampaignTestConnectionOperator(task_id="check", activecampaign_conn_id="ac_busy").execute(
        context={})
    assert facts["username"] == "emulator" and facts["api_url"] == production.url
    assert [r.status for r in production.account.requests(endpoint="GET users/me")] == [429, 429, 200]

    # The UI's Test button (the hook's default) stays one quick call and reports the 429.
    production.throttle_next(1, retry_after=0.2)
    ok, message = ActiveCampaignHook(activecampaign_conn_id="ac_busy").test_connection()
    assert not ok and "rate limited" in message


def test_reading_a_list_back_with_memberships_and_counts(monkeypatch: pytest.MonkeyPatch,
                                                         production: EmulatorServer) -> None:
    """The drift check and the read-back against the emulator: counts in one request each, every member
    paired with its membership of THIS list (not of another list the contact is also on)."""
    hook = use(monkeypatch, "ac_readback", production.url)
    account = production.account
    target = hook.create_list("Read back", sender_url="https://example.com", sender_reminder="You signed up.")
    other = hook.create_list("Other list", sender_url="https://example.com", sender_reminder="You signed up.")
    for i in range(130):
        account.subscribe(f"member{i}@example.com", target["id"])
        account.subscribe(f"member{i}@example.com", other["id"])
    account.unsubscribe_by_contact("member7@example.com", target["id"], reason="too many emails")
    account.unsubscribe_by_admin("member8@example.com", target["id"])
    account.unsubscribe_by_contact("member9@example.com", other["id"])  # another list: still active here

    hook.request_counts.clear()
    assert hook.count_list_contacts(target["id"], 1) == 128
    assert hook.count_list_contacts(target["id"], 2) == 2
    assert hook.request_counts["GET contacts"] == 2

    pairs = list(hook.iter_list_memberships(target["id"]))
    assert len(pairs) == 130 and all(m is not None and str(m["list"]) == str(target["id"]) for _, m in pairs)
    status = {c["email"]: str(m["status"]) for c, m in pairs if m is not None}
    assert status["member7@example.com"] == status["member8@example.com"] == "2"
    assert status["member9@example.com"] == "1"
    reason = {c["email"]: m.get("unsubreason") for c, m in pairs if m is not None}
    assert reason["member7@example.com"] == "too many emails"
    unsubscribed = [c["email"] for c, _ in hook.iter_list_memberships(target["id"], status=2)]
    assert sorted(unsubscribed) == ["member7@example.com", "member8@example.com"]

    member7 = hook.find_contact_by_email("member7@example.com")
    mine = hook.get_contact_membership(member7["id"], target["id"])
    assert mine is not None and str(mine["status"]) == "2" and mine.get("unsubreason") == "too many emails"
    assert str(hook.get_contact_membership(member7["id"], other["id"])["status"]) == "1"

    assert hook.get_list(target["id"])["name"] == "Read back"
    hook.delete_list(target["id"])
    assert hook.get_list(target["id"]) is None
    assert hook.find_list_by_name("Read back") is None


def test_exclusions_are_read_from_the_account(monkeypatch: pytest.MonkeyPatch, production: EmulatorServer) -> None:
    hook = use(monkeypatch, "ac_exclusions", production.url)
    production.account.exclude("nobody@example.com")
    entries = list(hook.iter_exclusions())
    assert [(e["matchPhrase"], e["matchType"]) for e in entries] == [("nobody@example.com", "exact")]


_IMPORTS_IN_A_CHILD = """
import os, sys
from airflow_provider_activecampaign.hooks.activecampaign import ActiveCampaignHook
hook = ActiveCampaignHook(activecampaign_conn_id="ac_ledger")
for i in range(int(sys.argv[1])):
    hook.bulk_import([{"email": f"child{i}a@example.com"}, {"email": f"child{i}b@example.com"}])
"""


def test_a_run_in_a_new_process_waits_instead_of_drawing_a_400(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow runs each task in its own process. A run right after one that made 100 imports shares
    their minute through the host's ledger: it waits for the window, where it used to draw a 400
    "Rate limit exceeded." and a minute's stall."""
    import subprocess
    import sys

    with EmulatorServer(api_key=PRODUCTION_KEY, requests_per_second=20, import_delay=0.1) as server:
        conn = connection_json(server.url, PRODUCTION_KEY, requests_per_second=20)
        monkeypatch.setenv("AIRFLOW_CONN_AC_LEDGER", conn)
        subprocess.run([sys.executable, "-c", _IMPORTS_IN_A_CHILD, "100"], check=True, timeout=300)
        assert len(server.account.requests(endpoint="POST import/bulk_import", status=200)) == 100
        next_run = ActiveCampaignHook(activecampaign_conn_id="ac_ledger")  # this process made no import
        with pytest.raises(_WouldWait) as waited:
            next_run._bulk_limiter(2).acquire(_refuse_to_wait)
        assert 0 < float(waited.value.args[0]) <= 60 * 1.02
        assert not server.account.requests(status=400)


def test_group_limits_and_field_options_against_the_emulator(monkeypatch: pytest.MonkeyPatch,
                                                             production: EmulatorServer) -> None:
    hook = use(monkeypatch, "ac_fields", production.url)
    production.account.set_group_limit("Admin", 2500)
    admin = hook.find_user_group("Admin")
    assert admin is not None
    limits = {str(g.get("groupid") or g.get("group")): g for g in hook.get_group_limits()}
    assert str(limits[str(admin["id"])]["limitContact"]) == "2500"

    field = hook.create_custom_field("Tier", perstag="TIER", field_type="dropdown", options=["Gold", "Silver"])
    assert [o["value"] for o in hook.get_field_options(field["id"])] == ["Gold", "Silver"]
    hook.create_field_options(field["id"], ["Bronze"])
    assert [o["value"] for o in hook.get_field_options(field["id"])] == ["Gold", "Silver", "Bronze"]
