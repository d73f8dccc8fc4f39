"""A tablet's report that it refused a grant is kept in the audit chain (issue 12).

The tablet checks every grant again (principle 1); when it refuses one the
server signed, the server's own record says so, with the reason, whoever
reads the chain later. The whole server runs in-process on real SQLite; the
report comes in as the device listener hands it to the calls' runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from kiosk.crypto import pki
from kiosk.domain.reasons import GrantRefusal
from kiosk.signalling import process
from kiosk.signalling.calls.runner import CallRunner
from kiosk.store import schema
from kiosk.wire.messages import GrantRefusedMessage, parse_device_message
from tests.harness import utc_now
from tests.integration.api_support import settings_for


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[process.ServerProcess]:
    settings = settings_for(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}",
                            device_port=0)
    pki.init_ca(settings.pki_dir, ["127.0.0.1"])
    now = utc_now()
    proc = await process.start(settings, clock=lambda: now)
    try:
        yield proc
    finally:
        await proc.close()


async def test_a_refused_grant_is_audited_with_its_reason(
    server: process.ServerProcess,
) -> None:
    frame = '{"type":"grant_refused","call_id":"call-7","reason":"privileged_monitored"}'
    message = parse_device_message(frame)
    assert message == GrantRefusedMessage(call_id="call-7",
                                          reason=GrantRefusal.PRIVILEGED_MONITORED)
    runner = server.calls.runner
    assert isinstance(runner, CallRunner)  # a single process: the runner itself
    await runner.on_message("dev-1", message)
    await runner.on_message("dev-1", GrantRefusedMessage(reason=GrantRefusal.MALFORMED))
    async with runner.ctx.engine.connect() as conn:
        rows = (await conn.execute(select(schema.audit_entries))).all()
    refused = [r for r in rows if r.action == "call.grant_refused"]
    assert [(r.actor, r.subjects, r.details) for r in refused] == [
        ("device:dev-1", {"device": "dev-1"},
         {"reason": "privileged_monitored", "call_id": "call-7"}),
        ("device:dev-1", {"device": "dev-1"}, {"reason": "malformed", "call_id": ""}),
    ]
