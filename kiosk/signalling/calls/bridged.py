"""A controlled call's media through the bridge (ARCHITECTURE.md principle 3).

The glue between the supervisor's signalling and one :class:`Bridge`: the
tablet's offer is answered by the bridge, the bridge offers to the visitor
and takes the visitor's answer. Whatever fails — a leg, the bridge, an SDP
the bridge refuses — ends the call (``BridgeFailed``); it never falls back
to a peer-to-peer path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiortc import RTCIceServer

from kiosk.domain import callstate as cs
from kiosk.domain.model import Route
from kiosk.runtime.logs import get_logger
from kiosk.signalling.bridge.bridge import Bridge, BridgeFailure, Leg
from kiosk.wire import messages as p

if TYPE_CHECKING:
    from kiosk.signalling.calls.supervisor import LiveCall, Supervisor, VisitorSession

log = get_logger(__name__)


class BridgedCall:
    def __init__(self, supervisor: Supervisor, live: LiveCall) -> None:
        self.supervisor = supervisor
        self.live = live
        self.bridge = Bridge(
            [
                RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in live.ice_servers
            ],
            on_failure=self._failed,
            on_monitor_gone=self._monitor_gone,
        )
        self._tablet_answered = False
        self._visitor_offered = False

    async def _failed(self, failure: BridgeFailure) -> None:
        log.warning("bridge failed", call_id=self.live.id, leg=failure.leg, detail=failure.detail)
        await self.supervisor.end_for(self.live, cs.BridgeFailed())

    async def _monitor_gone(self, monitor_id: str) -> None:
        await self.supervisor.monitor_gone(self.live, monitor_id)

    async def from_tablet(self, message: p.SdpMessage | p.IceMessage) -> None:
        # aiortc puts every candidate in its SDP: trickled ICE is not needed here.
        if not isinstance(message, p.SdpMessage) or message.kind != "offer":
            return
        try:
            answer = await self.bridge.answer_leg(Leg.TABLET, message.sdp)
        except Exception as exc:
            log.warning("bridge refused the tablet's offer", call_id=self.live.id, error=str(exc))
            await self.supervisor.end_for(self.live, cs.BridgeFailed())
            return
        self._tablet_answered = True
        await self.supervisor.devices.send(
            self.live.device_id, p.SdpMessage(call_id=self.live.id, kind="answer", sdp=answer)
        )
        if self.live.visitor is not None:
            await self.visitor_joined(self.live.visitor)

    async def visitor_joined(self, session: VisitorSession) -> None:
        # The visitor is offered once the tablet's leg is up, whichever came first.
        if self._visitor_offered or not self._tablet_answered:
            return
        self._visitor_offered = True
        try:
            offer = await self.bridge.offer_leg(Leg.VISITOR)
        except Exception as exc:
            log.warning("bridge could not offer to the visitor", error=str(exc))
            await self.supervisor.end_for(self.live, cs.BridgeFailed())
            return
        await session.leg.send(p.SdpMessage(call_id=self.live.id, kind="offer", sdp=offer))

    async def from_visitor(self, message: p.SdpMessage | p.IceMessage) -> None:
        if not isinstance(message, p.SdpMessage) or message.kind != "answer":
            return
        try:
            await self.bridge.leg_answer(Leg.VISITOR, message.sdp)
        except Exception as exc:
            log.warning("bridge refused the visitor's answer", error=str(exc))
            await self.supervisor.end_for(self.live, cs.BridgeFailed())
            return
        await self.supervisor.connected(self.live)

    async def add_monitor(self, kinds: frozenset) -> tuple[str, str]:  # type: ignore[type-arg]
        return await self.bridge.add_monitor(kinds)

    async def monitor_answer(self, monitor_id: str, sdp: str) -> None:
        await self.bridge.monitor_answer(monitor_id, sdp)

    async def close(self) -> None:
        await self.bridge.close()


async def bridge_factory(supervisor: Supervisor, live: LiveCall) -> BridgedCall:
    # R13: a bridge is made only for a controlled, unprivileged call; the metric
    # lets anyone check that no privileged call ever got one.
    if live.route is not Route.BRIDGE or live.contact.category.privileged:
        raise RuntimeError("refusing to bridge a call that is not controlled")  # R13
    if supervisor.metrics is not None:
        supervisor.metrics.count("bridge_created")
    return BridgedCall(supervisor, live)
