"""The ActiveCampaign emulator's transport over real loopback HTTP, driven with ``requests``: auth and
error shapes, the general rate limit, faults, the admin API and request log, the server and its CLI.

Each behaviour here is one the provider depends on (see docs/ARCHITECTURE.md and
/work/shared/research/activecampaign-api.md).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from airflow_provider_activecampaign.emulator import (
    BY_CONTACT,
    Account,
    EmulatorServer,
)
from airflow_provider_activecampaign.emulator.__main__ import main as cli_main
from tests.emulator.client import API_KEY, Api, make_list, people

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --------------------------------------------------------------------------------------------------
# auth, routing, basics
# --------------------------------------------------------------------------------------------------


def test_users_me_returns_the_seeded_user_with_string_id(api: Api) -> None:
    resp = api.get("users/me")
    assert resp.status_code == 200
    user = resp.json()["user"]
    assert user["id"] == "1"
    assert {"username", "firstName", "lastName", "email"} <= set(user)


@pytest.mark.parametrize("headers", [{}, {"Api-Token": "wrong"}, {"api-token": API_KEY + "x"}])
def test_bad_or_missing_key_gets_403_with_empty_body_and_no_content_type(
    emulator: EmulatorServer, headers: dict[str, str]
) -> None:
    resp = requests.get(emulator.api_url + "/users/me", headers=headers, timeout=5)
    assert resp.status_code == 403
    assert resp.content == b""
    assert "content-type" not in resp.headers


def test_header_name_is_case_insensitive(emulator: EmulatorServer) -> None:
    resp = requests.get(emulator.api_url + "/users/me", headers={"API-TOKEN": API_KEY}, timeout=5)
    assert resp.status_code == 200


def test_paths_outside_the_api_are_an_html_404(api: Api, emulator: EmulatorServer) -> None:
    for path in ("/", "/api/2/lists", "/admin/api.php"):
        resp = api.session.get(emulator.url + path, timeout=5)
        assert resp.status_code == 404
        assert resp.headers["content-type"].startswith("text/html")
        assert resp.text.lstrip().startswith("<!DOCTYPE html>")
    # Inside /api/3 an unknown resource is a JSON 404 (after auth).
    resp = api.get("nothing/here")
    assert resp.status_code == 404 and "message" in resp.json()


def test_malformed_json_body_is_a_bare_400(api: Api) -> None:
    resp = api.post("lists", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {}


# --------------------------------------------------------------------------------------------------
# general rate limit
# --------------------------------------------------------------------------------------------------


def test_sliding_window_answers_429_with_retry_after_and_ratelimit_headers(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=3, rate_window=0.4, retry_after=2)
    statuses = [api.get("users/me") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 200]
    assert statuses[0].headers["RateLimit-Limit"] == "3"
    assert [r.headers["RateLimit-Remaining"] for r in statuses] == ["2", "1", "0"]
    throttled = api.get("users/me")
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    assert throttled.headers["RateLimit-Limit"] == "3"
    assert throttled.headers["RateLimit-Remaining"] == "0"
    assert throttled.json()["message"]


def test_refused_requests_do_not_count_toward_the_window(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=2, rate_window=0.5)
    assert [api.get("users/me").status_code for _ in range(2)] == [200, 200]
    first_ok = emulator.account.requests(status=200)[0].time
    # Hammer while throttled: none of these 429s may extend the wait.
    hammered = [api.get("users/me").status_code for _ in range(5)]
    assert set(hammered) == {429}
    time.sleep(max(0.0, first_ok + 0.52 - time.monotonic()))
    assert api.get("users/me").status_code == 200


def test_no_sliding_window_ever_holds_more_than_the_limit(emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=5, rate_window=0.25)
    url, headers = emulator.api_url + "/users/me", {"Api-Token": API_KEY}

    def hammer() -> None:
        with requests.Session() as session:
            for _ in range(15):
                session.get(url, headers=headers, timeout=5)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    served = emulator.account.requests(status=200)
    assert len(emulator.account.requests(status=429)) > 0
    assert 5 <= len(served) < 60
    assert emulator.account.peak_rate(0.25, served) <= 5


def test_bulk_imports_count_toward_the_general_limit(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=2, rate_window=5)
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert api.get("users/me").status_code == 429


# --------------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_injected_5xx_is_a_cloudflare_html_page(api: Api, emulator: EmulatorServer, status: int) -> None:
    emulator.fail_next(2, status)
    for _ in range(2):
        resp = api.get("users/me")
        assert resp.status_code == status
        assert resp.headers["content-type"].startswith("text/html")
        assert resp.text.startswith("<!DOCTYPE html>") and str(status) in resp.text
    assert api.get("users/me").status_code == 200
    assert [r.fault for r in emulator.account.requests()] == ["status", "status", None]


def test_503_and_429_bursts_carry_retry_after(api: Api, emulator: EmulatorServer) -> None:
    emulator.fail_next(1, 503, retry_after=3)
    emulator.throttle_next(2, retry_after=0.5)
    busy = api.get("users/me")
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "3"
    for _ in range(2):
        throttled = api.get("users/me")
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "0.5"
        assert throttled.headers["RateLimit-Remaining"] == "0"
    assert api.get("users/me").status_code == 200


def test_faults_can_target_a_path_prefix_and_method(api: Api, emulator: EmulatorServer) -> None:
    emulator.fail_next(1, 502, path="import/", method="POST")
    assert api.get("import/info", params={"batchId": "x"}).status_code == 404  # GET: not targeted
    assert api.get("users/me").status_code == 200
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 502
    assert api.post("import/bulk_import", json={"contacts": people(2)}).status_code == 200
    assert emulator.faults.pending() == []


def test_dropped_connection_is_a_connection_error_and_nothing_happens(api: Api, emulator: EmulatorServer) -> None:
    emulator.drop_next(path="lists")
    with pytest.raises(requests.ConnectionError):
        make_list(api)
    assert emulator.account.lists == {}
    assert emulator.account.requests()[0].status == 0
    assert make_list(api) == "1"  # the next request (new connection) works


def test_drop_after_processing_applies_the_write(api: Api, emulator: EmulatorServer) -> None:
    emulator.drop_next(path="lists", after_processing=True)
    with pytest.raises(requests.ConnectionError):
        make_list(api, "Lost answer", "lost")
    assert [lst.name for lst in emulator.account.lists.values()] == ["Lost answer"]
    retry = api.post(
        "lists",
        json={"list": {"name": "Lost answer", "stringid": "lost", "sender_url": "u", "sender_reminder": "r"}},
    )
    assert retry.status_code == 422  # the client must look the list up instead of blindly retrying


def test_slow_answer_times_out_a_short_read_timeout(api: Api, emulator: EmulatorServer) -> None:
    emulator.slow_next(1, delay=0.4)
    with pytest.raises(requests.ReadTimeout):
        api.session.get(emulator.api_url + "/users/me", timeout=(2, 0.15))
    emulator.slow_next(1, delay=0.2)
    started = time.monotonic()
    assert api.get("users/me").status_code == 200
    assert time.monotonic() - started >= 0.2
    # The abandoned request is still answered by the server (it processes it after the delay).
    deadline = time.monotonic() + 2
    while emulator.account.requests()[0].status == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.status for r in emulator.account.requests()] == [200, 200]


def test_blocked_account_answers_402(api: Api, emulator: EmulatorServer) -> None:
    emulator.block_account()
    resp = api.get("users/me")
    assert resp.status_code == 402 and "payment" in resp.json()["message"]
    emulator.block_account(False)
    assert api.get("users/me").status_code == 200


def test_injected_faults_do_not_use_rate_window_slots(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(requests_per_second=1, rate_window=5)
    emulator.fail_next(3, 503)
    assert [api.get("users/me").status_code for _ in range(4)] == [503, 503, 503, 200]
    assert api.get("users/me").status_code == 429


# --------------------------------------------------------------------------------------------------
# admin API, request log
# --------------------------------------------------------------------------------------------------


def test_admin_api_drives_and_inspects_the_account(api: Api, emulator: EmulatorServer) -> None:
    admin = emulator.url + "/_emulator"
    group = requests.post(admin + "/groups", json={"title": "Marketing"}, timeout=5).json()["group"]
    assert group["id"] == "2"
    list_id = make_list(api)
    requests.post(admin + "/subscribe", json={"email": "a@example.com", "list": list_id}, timeout=5)
    unsub = requests.post(admin + "/unsubscribe", json={"email": "a@example.com", "list": list_id}, timeout=5)
    assert unsub.json()["contactList"]["status"] == "2"
    fault = requests.post(admin + "/faults", json={"kind": "status", "status": 504, "count": 1}, timeout=5)
    assert fault.status_code == 201
    assert requests.post(admin + "/faults", json={"kind": "bogus"}, timeout=5).status_code == 400
    assert api.get("users/me").status_code == 504
    requests.post(admin + "/blocked", json={"blocked": True}, timeout=5)
    assert api.get("users/me").status_code == 402
    requests.post(admin + "/blocked", json={"blocked": False}, timeout=5)
    assert api.get("users/me").status_code == 200
    patched = requests.patch(admin + "/config", json={"import_delay": 0.05}, timeout=5).json()
    assert patched["import_delay"] == 0.05 and "api_key" not in patched

    state = requests.get(admin + "/state", timeout=5).json()
    assert state["summary"]["lists"] == 1 and state["summary"]["memberships"] == {"unsubscribed": 1}
    assert [g["title"] for g in state["groups"]] == ["Admin", "Marketing"]
    assert state["contacts"][0]["lists"][list_id]["status"] == 2
    assert state["contacts"][0]["lists"][list_id]["changed_by"] == BY_CONTACT
    assert state["requests"]["by_endpoint"]["GET users/me"] == 3
    members = requests.get(f"{admin}/lists/{list_id}/members", params={"status": 2}, timeout=5).json()
    assert members == {"emails": ["a@example.com"]}
    log = requests.get(admin + "/requests", timeout=5).json()
    assert [r["status"] for r in log["requests"] if r["endpoint"] == "GET users/me"] == [504, 402, 200]

    assert requests.post(admin + "/reset", timeout=5).json() == {"ok": True}
    state = requests.get(admin + "/state", timeout=5).json()
    assert state["lists"] == [] and state["contacts"] == [] and [g["title"] for g in state["groups"]] == ["Admin"]


def test_request_log_counts_and_rates(api: Api, emulator: EmulatorServer) -> None:
    list_id = make_list(api)
    api.get(f"lists/{list_id}")
    api.get("contacts", params={"listid": list_id})
    assert [r.endpoint for r in emulator.account.request_log] == [
        "POST lists",
        "GET lists/{id}",
        "GET contacts",
    ]
    counts = emulator.account.request_counts()
    assert counts == {"POST lists": 1, "GET lists/{id}": 1, "GET contacts": 1}
    records = emulator.account.requests(endpoint="GET contacts")
    assert records[0].query.startswith("listid=") and records[0].status == 200
    assert emulator.account.peak_rate(window=10) == 3


def test_a_thousand_contacts_import_and_read_back_quickly(api: Api, emulator: EmulatorServer) -> None:
    emulator.account.configure(import_delay=0)
    list_id = make_list(api)
    started = time.monotonic()
    for start in range(0, 1000, 250):
        batch = [{**c, "subscribe": [{"listid": list_id}]} for c in people(250, start)]
        assert api.post("import/bulk_import", json={"contacts": batch}).status_code == 200
    total, last = 0, 0
    while True:
        page = api.get("contacts", params={"listid": list_id, "status": 1, "id_greater": last, "limit": 100}).json()
        if not page["contacts"]:
            break
        total += len(page["contacts"])
        last = int(page["contacts"][-1]["id"])
    assert total == 1000
    assert time.monotonic() - started < 3


# --------------------------------------------------------------------------------------------------
# server lifecycle and CLI
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_bind_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(host=host)


def test_server_context_manager_starts_and_stops() -> None:
    account = Account()
    with EmulatorServer(account=account) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.state is account
        resp = requests.get(server.api_url + "/users/me", headers={"Api-Token": server.api_key}, timeout=5)
        assert resp.status_code == 200
    assert not server.running
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{server.port}/api/3/users/me", timeout=1)


def test_cli_serves_until_sigterm() -> None:
    cmd = [
        sys.executable,
        "-m",
        "airflow_provider_activecampaign.emulator",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--requests-per-second",
        "50",
        "--user",
        "demo",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match, line
        url = match.group(0)
        resp = requests.get(url + "/api/3/users/me", headers={"Api-Token": "cli-key"}, timeout=5)
        assert resp.status_code == 200 and resp.json()["user"]["username"] == "demo"
        assert requests.get(url + "/api/3/users/me", timeout=5).status_code == 403
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_refuses_a_public_bind(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--host", "0.0.0.0", "--port", "0"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_drops_work_on_a_minimal_uvicorn_install() -> None:
    """Plain ``pip install uvicorn`` means h11 on asyncio (no httptools, uvloop): drops work there too."""
    with EmulatorServer(api_key=API_KEY, uvicorn_options={"http": "h11", "loop": "asyncio"}) as server:
        client = Api(server.api_url)
        server.drop_next()
        server.drop_next(after_processing=True, path="lists")
        with pytest.raises(requests.ConnectionError):
            client.get("users/me")
        with pytest.raises(requests.ConnectionError):
            make_list(client)
        assert list(server.account.lists) == ["1"]
        assert client.get("users/me").status_code == 200
        client.session.close()
