"""Carrying out the switchboard's effects: the writes, then the messages and the bridge.

The writes of one event go first, in one transaction (``writes.write``):
nothing is sent for a decision that is not recorded. Then the rest, in the
order the switchboard gave. What the bridge answers comes back as events
for the switchboard (``Applier.apply`` returns them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls import writes
from kiosk.signalling.calls.ports import BridgePort, DeviceSender, VisitorLeg
from kiosk.signalling.calls.tablet_state import StatePusher
from kiosk.signalling.calls.turn import ice_servers_for_call
from kiosk.signalling.context import ServerContext
from kiosk.signalling.metrics import Metrics
from kiosk.wire import messages as p
from kiosk.wire.grants import sign_grant

log = get_logger(__name__)


BridgeWork = (
    fx.OpenBridge
    | fx.BridgeTabletOffer
    | fx.BridgeOfferVisitor
    | fx.BridgeVisitorAnswer
    | fx.DropMonitor
    | fx.CloseBridge
)
_BRIDGE_WORK = BridgeWork.__args__


def effect_keys(effects: Sequence[fx.Effect]) -> set[str]:
    """What a batch touches: its calls, tablets and visitors (see ``order.KeyedOrder``)."""
    keys: set[str] = set()
    for e in effects:
        if isinstance(e, fx.Persist | fx.RecordBreach):
            keys.add(f"call:{e.call.id}")
        elif isinstance(e, fx.SendDevice | fx.PushState):
            keys.add(f"device:{e.device_id}")
        elif isinstance(e, fx.SendGrant):
            keys |= {f"call:{e.grant.call_id}", f"device:{e.grant.device_id}"}
        elif isinstance(e, fx.SendVisitor | fx.AnnounceCall):
            keys.add(f"seat:{e.seat_id}")
        elif isinstance(e, fx.Audit) and "call" in e.subjects:
            keys.add(f"call:{e.subjects['call']}")
        elif isinstance(e, _BRIDGE_WORK):
            keys.add(f"call:{e.call_id}")
    return keys


def count(metrics: Metrics | None, effects: Sequence[fx.Effect]) -> None:
    """Counters move with the decision itself, so no scrape sees the live-call gauge
    drop without its ended call counted."""
    if metrics is None:
        return
    for e in effects:
        if isinstance(e, fx.Count):
            metrics.count(e.name)
        elif isinstance(e, fx.CountRefusal):
            metrics.refusal(e.reason)
        elif isinstance(e, fx.CountEnd):
            metrics.call_ended(e.reason)


class Applier:
    def __init__(
        self,
        ctx: ServerContext,
        devices: DeviceSender,
        bridges: BridgePort | None,
        pusher: StatePusher,
        grant_key: Ed25519PrivateKey,
        clock: Callable[[], datetime],
        fence: writes.Fence | None = None,
    ) -> None:
        self.ctx = ctx
        self.devices = devices
        self.bridges = bridges
        self.pusher = pusher
        self.grant_key = grant_key
        self.clock = clock
        self.fence = fence
        self.legs: dict[str, VisitorLeg] = {}  # seat id -> the visitor's connection

    def ice_servers(self, call_id: str, expires: datetime) -> list[p.IceServer]:
        return [
            p.IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in ice_servers_for_call(self.ctx.settings.turn, call_id, expires)
        ]

    async def apply(self, effects: Sequence[fx.Effect]) -> list[ev.Event]:
        """Carry out one event's effects; returns what the bridge answered, as events."""
        stored = [e for e in effects if isinstance(e, fx.WRITES)]
        if stored:
            await writes.write(self.ctx, stored, self.clock(), self.fence)
        follow: list[ev.Event] = []
        for effect in effects:
            if isinstance(effect, fx.WRITES):
                continue
            try:
                event = await self._do(effect)
            except Exception:
                log.exception("call effect failed", effect=type(effect).__name__)
                continue
            if event is not None:
                follow.append(event)
        return follow

    async def _do(self, e: fx.Effect) -> ev.Event | None:
        if isinstance(e, fx.SendDevice):
            await self.devices.send(e.device_id, e.message)
        elif isinstance(e, fx.SendGrant):
            signed = p.GrantDocument.of(sign_grant(e.grant, self.grant_key))
            ice = self.ice_servers(e.grant.call_id, e.grant.not_after)
            grant = p.GrantMessage(grant=signed, ice_servers=ice)
            await self.devices.send(e.grant.device_id, grant)
        elif isinstance(e, fx.SendVisitor):
            await self._to_visitor(e.seat_id, e.message)
        elif isinstance(e, fx.AnnounceCall):
            message = p.VisitorCallMessage(
                call_id=e.call_id,
                control=e.control,
                route=e.route,
                not_after=e.not_after,
                server_time=self.clock(),
                ice_servers=self.ice_servers(e.call_id, e.not_after),
            )
            await self._to_visitor(e.seat_id, message)
        elif isinstance(e, fx.Checkpoint):
            await self.ctx.audit.checkpoint_now()
        elif isinstance(e, fx.PushState):
            self.pusher.push(e.device_id)
        elif isinstance(e, fx.Log):
            (log.warning if e.warning else log.info)(e.sentence, **e.fields)
        elif isinstance(e, _BRIDGE_WORK):
            return await self._bridge(e)
        return None

    async def _to_visitor(self, seat_id: str, message: BaseModel) -> None:
        leg = self.legs.get(seat_id)
        if leg is not None:
            with contextlib.suppress(Exception):  # a page gone away is the endpoint's to see
                await leg.send(message)

    async def _bridge(self, e: BridgeWork) -> ev.Event | None:
        bridges = self.bridges
        call_id = e.call_id
        if bridges is None:
            return ev.BridgeFailed(call_id)
        try:
            if isinstance(e, fx.OpenBridge):
                await bridges.open(call_id, e.category, self.ice_servers(call_id, e.not_after))
                return ev.BridgeOpened(call_id)
            if isinstance(e, fx.BridgeTabletOffer):
                return ev.BridgeAnswered(call_id, await bridges.answer_tablet(call_id, e.sdp))
            if isinstance(e, fx.BridgeOfferVisitor):
                return ev.BridgeOffered(call_id, await bridges.offer_visitor(call_id))
            if isinstance(e, fx.BridgeVisitorAnswer):
                await bridges.visitor_answer(call_id, e.sdp)
                return ev.BridgeConnected(call_id)
            if isinstance(e, fx.DropMonitor):
                await bridges.remove_monitor(call_id, e.monitor_id)
            elif isinstance(e, fx.CloseBridge):
                await bridges.close(call_id)
        except Exception as exc:
            # Fail closed: whatever the bridge refuses ends the call (principle 3).
            log.warning("bridge refused", call_id=call_id, step=type(e).__name__, error=str(exc))
            return ev.BridgeFailed(call_id)
        return None
