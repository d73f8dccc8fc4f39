"""Controlled calls' media through aiortc bridges: the :class:`BridgePort` the runner uses.

One :class:`~kiosk.signalling.bridge.Bridge` per call id. The tablet's offer
is answered by the bridge, the bridge offers to the visitor and takes the
visitor's answer; monitors get offers with only the kinds the decision allows
(R6). Whatever fails — a leg, the bridge, an SDP the bridge refuses — is
reported as ``BridgeFailed`` and the call ends; there is never a fallback to
a peer-to-peer path (ARCHITECTURE.md principle 3).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from aiortc import RTCIceServer

from kiosk.domain.model import Category, MediaKind
from kiosk.domain.switchboard import events as ev
from kiosk.runtime.logs import get_logger
from kiosk.signalling.bridge import Bridge, BridgeError, BridgeFailure, Leg
from kiosk.signalling.calls.ports import Report
from kiosk.signalling.metrics import Metrics
from kiosk.wire.messages import IceServer

log = get_logger(__name__)


async def _nobody(event: ev.Event) -> None:
    return None


class Bridges:
    """Every bridge of this server process, by call id."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._bridges: dict[str, Bridge] = {}
        self._report: Report = _nobody

    def bind(self, report: Report) -> None:
        self._report = report

    def __len__(self) -> int:
        return len(self._bridges)

    def monitors(self) -> int:
        return sum(len(b.monitor_ids) for b in self._bridges.values())

    async def open(
        self, call_id: str, category: Category, ice_servers: Sequence[IceServer]
    ) -> None:
        # R13: a bridge is never made for a privileged call; the metric lets anyone
        # check that none ever got one.
        if category.privileged:
            raise BridgeError("refusing to bridge a privileged call")  # R13
        if call_id in self._bridges:
            raise BridgeError("the call already has a bridge")

        async def failed(failure: BridgeFailure) -> None:
            log.warning("bridge failed", call_id=call_id, leg=failure.leg, detail=failure.detail)
            await self._report(ev.BridgeFailed(call_id))

        async def monitor_gone(monitor_id: str) -> None:
            await self._report(ev.MonitorGone(call_id, monitor_id))

        self._bridges[call_id] = Bridge(
            [
                RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in ice_servers
            ],
            on_failure=failed,
            on_monitor_gone=monitor_gone,
        )
        if self.metrics is not None:
            self.metrics.count("bridge_created")

    def _bridge(self, call_id: str) -> Bridge:
        bridge = self._bridges.get(call_id)
        if bridge is None:
            raise BridgeError("the call has no bridge")
        return bridge

    async def answer_tablet(self, call_id: str, offer_sdp: str) -> str:
        return await self._bridge(call_id).answer_leg(Leg.TABLET, offer_sdp)

    async def offer_visitor(self, call_id: str) -> str:
        return await self._bridge(call_id).offer_leg(Leg.VISITOR)

    async def visitor_answer(self, call_id: str, answer_sdp: str) -> None:
        await self._bridge(call_id).leg_answer(Leg.VISITOR, answer_sdp)

    async def add_monitor(self, call_id: str, kinds: frozenset[MediaKind]) -> tuple[str, str]:
        return await self._bridge(call_id).add_monitor(kinds)

    async def monitor_answer(self, call_id: str, monitor_id: str, answer_sdp: str) -> None:
        await self._bridge(call_id).monitor_answer(monitor_id, answer_sdp)

    async def remove_monitor(self, call_id: str, monitor_id: str) -> None:
        bridge = self._bridges.get(call_id)
        if bridge is not None:
            await bridge.remove_monitor(monitor_id)

    async def close(self, call_id: str) -> None:
        bridge = self._bridges.pop(call_id, None)
        if bridge is None or bridge.failure is not None:
            # A bridge that failed closes its own connections once the call has ended
            # (its failure report is what ended it): waiting for it here would wait
            # for the very report that is waiting for this.
            return
        with contextlib.suppress(Exception):
            await bridge.close()

    async def close_all(self) -> None:
        for call_id in list(self._bridges):
            await self.close(call_id)
