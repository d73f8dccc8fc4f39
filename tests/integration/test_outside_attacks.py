"""Issue 12, attacks from outside on the real ``kiosk server``: a stranger cannot lock an
officer out, a password sprayer is stopped, forwarded headers are believed from the
trusted proxy only, and no answer names a version.

The world's web listener trusts one reverse proxy, 127.0.0.1 (``[web]
trusted_proxies``). Every other loopback address (127.0.0.x) is a client that
connects directly, as an attacker who reaches the listener past the proxy would:
a test picks its own, so tests sharing the world never share a client.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.domain.login_throttle import ADDRESS_BUDGET, FREE_FAILURES
from tests.harness import World, wait_until

pytestmark = pytest.mark.slow

PROXY = "127.0.0.1"
PASSWORD = "a long and right password"
OFFICER_DESK = {"for": "198.51.100.10"}  # the officer's machine, behind the proxy


def world_config(root: Path) -> str:
    # A first wait longer than any round trip on a busy machine, so that a refusal
    # within it is certain; short enough to wait out (the default is 1 s).
    return f'[web]\ntrusted_proxies = ["{PROXY}"]\nlogin_delay_seconds = 8\n'


async def _login(
    world: World, username: str, password: str, source: str = PROXY, **forwarded: str
) -> tuple[int, Any, Any]:
    """One login from the loopback address ``source`` (``PROXY``: through the proxy),
    with ``for=`` and ``proto=`` as ``X-Forwarded-For`` and ``X-Forwarded-Proto``."""
    headers = {f"X-Forwarded-{k.title()}": v for k, v in forwarded.items()}
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as http:
        body = {"username": username, "password": password}
        async with http.post(
            world.deployment.api + "/login", json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(), resp.headers


async def _officer(world: World) -> tuple[str, str]:
    assert world.api is not None
    username = f"officer-{secrets.token_hex(4)}"
    staff = await world.api.add_staff(username, "Officer", "officer", PASSWORD)
    return username, staff["id"]


async def _audit(world: World, action: str) -> list[dict[str, Any]]:
    assert world.api is not None
    entries = (await world.api.call("GET", "/audit?limit=1000"))["items"]
    return [e for e in entries if e["action"] == action]


async def test_a_stranger_cannot_lock_an_officer_out(world: World) -> None:
    """Items 2 and 1: the guesser behind the proxy waits longer each time; the officer,
    behind the same proxy, is let in at once; both are in the audit chain as counts."""
    username, staff_id = await _officer(world)
    attacker = {"for": "203.0.113.66"}
    for _ in range(FREE_FAILURES):
        status, body, _ = await _login(world, username, "guess one two three", **attacker)
        assert status == 401, body
    status, body, headers = await _login(world, username, PASSWORD, **attacker)
    assert status == 429 and body["error"]["code"] == "login_delayed"
    assert int(headers["Retry-After"]) >= 1
    # The real officer, through the same proxy from another machine: no wait at all.
    status, body, _ = await _login(world, username, PASSWORD, **OFFICER_DESK)
    assert status == 200, body
    # An attacker past the proxy who claims the officer's address is not believed:
    # his failures are his own, and the officer still gets in.
    spoof = OFFICER_DESK
    for _ in range(FREE_FAILURES):
        await _login(world, username, "guess four five six", source="127.0.0.41", **spoof)
    status, body, _ = await _login(world, username, PASSWORD, source="127.0.0.41", **spoof)
    assert status == 429 and body["error"]["code"] == "login_delayed"
    status, body, _ = await _login(world, username, PASSWORD, **OFFICER_DESK)
    assert status == 200, body

    # No lockout: once his wait is over, even the guesser's right password works.
    async def in_again() -> bool:
        return (await _login(world, username, PASSWORD, **attacker))[0] == 200

    await wait_until(in_again, timeout=60, what="the guesser's wait over", interval=0.5)

    # In the chain: counts per account and client, the client by a pseudonym that the
    # server's journal (which has a retention period) ties to the address.
    failed = [e for e in await _audit(world, "staff.login_failed")
              if e["subjects"] == {"staff": staff_id}]
    by_client: dict[str, list[int]] = {}
    for entry in failed:
        by_client.setdefault(entry["details"]["client"], []).append(entry["details"]["failures"])
    clients = _journal_clients(world)
    assert by_client == {
        clients["203.0.113.66"]: list(range(1, FREE_FAILURES + 1)),
        clients["127.0.0.41"]: list(range(1, FREE_FAILURES + 1)),
    }
    assert failed[-1]["details"]["delay_seconds"] >= 1
    assert "guess" not in json.dumps(failed) and "203.0.113" not in json.dumps(failed)
    logins = [e for e in await _audit(world, "staff.logged_in")
              if e["subjects"] == {"staff": staff_id}]
    assert logins[-1]["details"]["refused_before"] >= 1  # the refused tries, counted


def _journal_clients(world: World) -> dict[str, str]:
    """Address -> pseudonym, from the server's log lines of refused logins."""
    assert world.server is not None
    found = {}
    for line in world.server.output().splitlines():
        if '"login refused"' in line:
            event = json.loads(line)
            found[event["client_address"]] = event["client"]
    return found


async def test_one_password_sprayed_over_thirty_usernames_is_stopped(world: World) -> None:
    """Item 3: a budget of failures per client whatever the usernames."""
    sprayer = "127.0.0.42"
    answers = []
    for i in range(30):
        status, body, _ = await _login(world, f"sprayed-{i}", "Spring2026!", source=sprayer)
        answers.append((status, body["error"]["code"]))
    assert answers[:ADDRESS_BUDGET] == [(401, "not_authenticated")] * ADDRESS_BUDGET
    assert set(answers[ADDRESS_BUDGET:]) == {(429, "login_budget_exhausted")}
    # Nobody else is slowed down by it.
    username, _ = await _officer(world)
    assert (await _login(world, username, PASSWORD, source="127.0.0.43"))[0] == 200
    sprayer_client = _journal_clients(world)[sprayer]
    spent = [e for e in await _audit(world, "staff.login_failed")
             if e["details"]["client"] == sprayer_client]
    assert len(spent) == ADDRESS_BUDGET
    assert [e["details"]["client_failures"] for e in spent] == list(range(1, ADDRESS_BUDGET + 1))
    assert spent[-1]["details"]["client_budget_exhausted"] is True
    assert spent[-1]["details"]["account"] == "unknown" and spent[-1]["subjects"] == {}
    assert "sprayed-" not in json.dumps(spent) and "Spring" not in json.dumps(spent)


async def test_the_proxys_https_makes_the_cookie_secure_and_sends_hsts(world: World) -> None:
    """Item 4: X-Forwarded-Proto from the trusted proxy only."""
    username, _ = await _officer(world)
    for source, secure in ((PROXY, True), ("127.0.0.44", False)):
        status, _, headers = await _login(
            world, username, PASSWORD, source=source, proto="https"
        )
        assert status == 200
        cookie = headers["Set-Cookie"].lower()
        assert ("; secure" in cookie) is secure, (source, cookie)
        assert ("Strict-Transport-Security" in headers) is secure, source


async def test_an_oversized_attempt_on_a_call_is_refused_and_recorded(world: World) -> None:
    """Item 1 (R13): even a body too large to read is a refused attempt on a call, kept
    with its reason like any other; elsewhere it is only refused."""
    assert world.api is not None
    call_id = f"call-{secrets.token_hex(4)}"
    huge = {"note": "x" * (128 * 1024)}
    for path in (f"/calls/{call_id}/end", "/inmates"):
        refused = await world.api.call("POST", path, huge, expect=413)  # an admin may end
        assert refused["error"]["code"] == "payload_too_large"
    [entry] = [e for e in await _audit(world, "call.end_refused")
               if e["subjects"] == {"call": call_id}]
    assert entry["details"]["reason"] == "payload_too_large"
    assert entry["actor"].startswith("staff:")


async def test_a_visitor_reaches_the_waiting_room_through_the_proxy(world: World) -> None:
    """The request a trusted proxy forwards is handed on as the client's: a WebSocket too."""
    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    booking = await world.booking(inmate, contact, start_in=600)
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, timeout=30, what="the waiting room")
    assert not visitor.errors


async def _raw_answer_head(port: int, request: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode("latin-1")
    finally:
        writer.close()


def _server_header(head: str) -> str:
    found = re.findall(r"(?im)^server:\s*(.*?)\s*$", head)
    return found[0] if found else ""


async def test_no_answer_names_a_version(world: World) -> None:
    """Item 7: the web listener and the tablet's page server, for good, bad and unreadable
    requests alike."""
    tablet = await world.tablet(None, f"TAB-BANNER-{secrets.token_hex(2)}")
    ui_port = int(tablet.ui_url.rsplit(":", 1)[1].split("/", 1)[0])
    for port, path in ((world.deployment.web_port, "/api/v1/openapi.json"),
                       (world.deployment.web_port, "/no/such/page"),
                       (ui_port, "/api/state"), (ui_port, "/nothing")):
        head = await _raw_answer_head(
            port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        assert _server_header(head) == "kiosk", head
    for port in (world.deployment.web_port, ui_port):
        head = await _raw_answer_head(port, b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        assert " 400 " in head.split("\r\n", 1)[0], head  # aiohttp's own answer, no app's
        assert _server_header(head) == "kiosk", head
