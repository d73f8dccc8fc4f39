"""Every reason a dial is refused, through the whole server in-process, at any hour.

The server process (web API, calls' runner, device listener) runs with a
clock the test sets, on a real SQLite database; the facts are made through
the staff API as staff make them, then the tablet's dial is put to the
calls' runner. Each refusal is audited with its reason (principle 5) and sent to
the tablet over its link: ``tests/integration/test_calls.py`` follows two of
them (one per mechanism: the lookup of the tablet, a rule of the policy) all
the way to a real tablet agent's screen. The rules themselves are checked
exhaustively in ``tests/unit/test_policy_dial.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from kiosk.crypto import pki
from kiosk.signalling import process
from kiosk.signalling.calls.runner import CallRunner
from kiosk.store import schema
from kiosk.wire.messages import DialMessage
from tests.harness import utc_now
from tests.integration.api_support import LiveApi, add_role_users, settings_for


@dataclass
class Server:
    api: LiveApi
    process: process.ServerProcess
    now: list[datetime]

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.api.call(method, path, json=body)
        assert status in (200, 201), (method, path, answer)
        return answer

    async def dial_refusal(self, device_id: str, booking_id: str) -> str:
        """The tablet dials; the reason in the audit chain's refusal entry."""
        dial = DialMessage(booking_id=booking_id, nonce="dial-nonce-of-the-test")
        runner = self.process.calls.runner
        assert isinstance(runner, CallRunner)  # a single process: the runner itself
        await runner.on_message(device_id, dial)
        async with runner.ctx.engine.connect() as conn:
            rows = (await conn.execute(select(schema.audit_entries))).all()
        [refusal] = [r for r in rows if r.action == "call.dial_refused"]
        assert refusal.subjects == {"device": device_id, "booking": booking_id}
        return str(refusal.details["reason"])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}",
                            device_port=0)
    pki.init_ca(settings.pki_dir, ["127.0.0.1"])
    now = [utc_now()]
    proc = await process.start(settings, clock=lambda: now[0])
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            api = LiveApi(server=proc.web, http=http)
            await add_role_users(api)
            yield Server(api, proc, now)
    finally:
        await proc.close()


CASES = [
    "contact_not_approved",  # R8: an appeal changed the decision to a refusal
    "outside_window",  # R10
    "police_clearance_missing",  # R11
    "device_not_assigned",  # R18: the tablet is not this inmate's
    "facility_restricted",  # R16
]


@pytest.mark.parametrize("case", CASES)
async def test_each_refusal_of_a_dial_is_audited_with_its_reason(server: Server, case: str) -> None:
    inmate = await server.ok("POST", "/inmates", {"name": "Ola", "remand": case == CASES[2]})
    contact = await server.ok(
        "POST",
        f"/inmates/{inmate['id']}/contacts",
        {"name": "Kari", "email": "kari@example.org", "category": "personal",
         "relation": "sibling", "cleared_for_visits": True},
    )
    await server.ok("POST", f"/contacts/{contact['id']}/email-confirmation")
    await server.ok("POST", f"/contacts/{contact['id']}/decision",
                    {"outcome": "approve", "control": "none"})
    start = server.now[0] + timedelta(hours=1)
    booking = await server.ok(
        "POST",
        "/bookings",
        {"inmate_id": inmate["id"], "contact_id": contact["id"], "start": start.isoformat(),
         "end": (start + timedelta(minutes=30)).isoformat(), "location_kind": "cell",
         "location": "A-101", "initiation": "staff"},
    )
    device = await server.ok("POST", "/devices", {"serial": "TAB-R", "certificate_serial": "0a"})
    if case != "device_not_assigned":
        await server.ok("PUT", f"/devices/{device['id']}/assignment",
                        {"inmate_id": inmate["id"]})
    if case == "contact_not_approved":
        appeal = await server.ok("POST", f"/contacts/{contact['id']}/appeals",
                                 {"by": "inmate", "text": "review"})
        await server.ok("POST", f"/appeals/{appeal['id']}/decision",
                        {"result": "changed", "decision": {"outcome": "refuse", "note": "no"}})
    if case == "facility_restricted":
        await server.ok("POST", "/facility/restrictions",
                        {"start": (start - timedelta(minutes=1)).isoformat(),
                         "end": (start + timedelta(hours=2)).isoformat(),
                         "kind": "suspend", "note": "outbreak"})
    if case != "outside_window":
        server.now[0] = start + timedelta(minutes=1)  # the window is open: no waiting for it
    assert await server.dial_refusal(device["id"], booking["id"]) == case
