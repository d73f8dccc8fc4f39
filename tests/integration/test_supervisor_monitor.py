"""Monitors and the audit chain: a refusal from the bridge is a reason, never a 500."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy import select

from kiosk.audit.chain import ID_RE
from kiosk.crypto import pki
from kiosk.domain import callstate as cs
from kiosk.domain.model import (
    Booking,
    CallRecord,
    CallState,
    Category,
    ControlLevel,
    Initiation,
    LocationKind,
    MediaKind,
    Route,
)
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import LiveCall
from kiosk.runtime.config import load_settings
from kiosk.signalling.bridge import BridgeError
from kiosk.signalling.bridge.bridge import new_monitor_id
from kiosk.signalling.calls.ports import Report
from kiosk.signalling.calls.runner import CallRefused, CallRunner
from kiosk.signalling.context import open_context
from kiosk.store import schema
from kiosk.wire.messages import IceServer

NOW = datetime.now(UTC)


class NoDevices:
    async def send(self, device_id: str, message: BaseModel) -> bool:
        return False


class ClosingBridge:
    """The bridge as the call ends under a request: its own refusal."""

    def bind(self, report: Report) -> None:
        pass

    async def open(self, call_id: str, category: Category, ice: Sequence[IceServer]) -> None:
        pass

    async def add_monitor(self, call_id: str, kinds: frozenset[MediaKind]) -> tuple[str, str]:
        raise BridgeError("the bridge is closed")

    async def remove_monitor(self, call_id: str, monitor_id: str) -> None:
        pass

    async def close(self, call_id: str) -> None:
        pass

    async def close_all(self) -> None:
        pass


def _live() -> LiveCall:
    # A controlled call with its bridge open, as the switchboard holds it once connected.
    end = NOW + timedelta(minutes=30)
    booking = Booking(
        "b1", "i1", "c1", NOW, end, LocationKind.CELL, "A-1", Initiation.STAFF
    )
    record = CallRecord(
        id="call-1", booking_id="b1", device_id="d1", inmate_id="i1", contact_id="c1",
        category=Category.PERSONAL, route=Route.BRIDGE, control=ControlLevel.SIGHT,
        state=CallState.CONNECTED, not_before=NOW, not_after=end, created_at=NOW,
    )
    machine = cs.CallMachine(NOW, end, state=CallState.CONNECTED)
    return LiveCall(record=record, booking=booking, machine=machine, granted=True,
                    bridge_asked=True, bridge_open=True)


async def test_a_bridge_that_cannot_offer_gives_bridge_unavailable_and_an_audit_entry(
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(config)
    pki.init_ca(settings.pki_dir, ["127.0.0.1"])
    async with open_context(settings) as ctx:
        runner = CallRunner(
            ctx, NoDevices(), Ed25519PrivateKey.generate(), bridges=ClosingBridge()  # type: ignore[arg-type]
        )
        runner.board.calls["call-1"] = _live()
        with pytest.raises(CallRefused) as refused:
            await runner.attach_monitor("call-1", "staff-1", frozenset({MediaKind.VIDEO}))
        assert refused.value.reason is Reason.BRIDGE_UNAVAILABLE
        assert runner.board.calls["call-1"].monitors == {}
        assert runner.board.calls["call-1"].monitors_asked == 0
        async with ctx.engine.connect() as conn:
            rows = (await conn.execute(select(schema.audit_entries))).all()
        [entry] = [r for r in rows if r.action == "monitor.refused"]
        assert entry.details["reason"] == "bridge_unavailable"


def test_every_monitor_id_is_an_audit_id() -> None:
    # A url-safe token starts with '-' or '_' one time in 32; the chain refuses those,
    # and attaching or detaching such a monitor failed on a bug.
    ids = {new_monitor_id() for _ in range(4000)}
    assert len(ids) == 4000
    assert all(ID_RE.fullmatch(i) for i in ids)
