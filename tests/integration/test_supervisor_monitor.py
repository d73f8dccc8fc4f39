"""Monitors and the audit chain: a refusal from the bridge is a reason, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from kiosk.audit.chain import ID_RE
from kiosk.crypto import pki
from kiosk.domain import callstate as cs
from kiosk.domain.model import CallState, Category, ControlLevel, MediaKind, Route
from kiosk.domain.reasons import Reason
from kiosk.runtime.config import load_settings
from kiosk.signalling.bridge import BridgeError
from kiosk.signalling.bridge.bridge import new_monitor_id
from kiosk.signalling.calls.supervisor import LiveCall, Supervisor, SupervisorError
from kiosk.signalling.context import open_context
from kiosk.store import schema

NOW = datetime.now(UTC)


class ClosingBridge:
    """The bridge as the call ends under a request: its own refusal."""

    async def add_monitor(self, kinds: frozenset[MediaKind]) -> tuple[str, str]:
        raise BridgeError("the bridge is closed")


def _live(contact: Any) -> LiveCall:
    # Only what the monitor path reads: the call's parties and its control.
    booking: Any = SimpleNamespace(id="b1", inmate_id="i1", contact_id=contact.id)
    inmate: Any = SimpleNamespace(id="i1")
    return LiveCall(
        id="call-1", booking=booking, inmate=inmate,
        contact=contact, device_id="d1", route=Route.BRIDGE, control=ControlLevel.SIGHT,
        machine=cs.CallMachine(NOW, NOW + timedelta(minutes=30), state=CallState.CONNECTED),
        bridge=ClosingBridge(),
    )


async def test_a_bridge_that_cannot_offer_gives_bridge_unavailable_and_an_audit_entry(
    tmp_path: Path,
) -> None:
    config = tmp_path / "server.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path / "data"}"\n')
    settings = load_settings(config)
    pki.init_ca(settings.pki_dir, ["127.0.0.1"])
    contact = SimpleNamespace(id="c1", category=Category.PERSONAL, control=ControlLevel.SIGHT)
    async with open_context(settings) as ctx:
        supervisor = Supervisor(Ed25519PrivateKey.generate())
        supervisor.bind(ctx, devices=None)  # type: ignore[arg-type]
        supervisor.calls["call-1"] = _live(contact)
        with pytest.raises(SupervisorError) as refused:
            await supervisor.attach_monitor("call-1", "staff-1", frozenset({MediaKind.VIDEO}))
        assert refused.value.reason is Reason.BRIDGE_UNAVAILABLE
        assert supervisor.calls["call-1"].monitors == {}
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
