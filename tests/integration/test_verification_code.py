"""The verification code exposes a man in the middle (ARCHITECTURE.md principle 2).

Through the real server and a real tablet agent: on an honest p2p call the
tablet and the visitor show the same code. Then the test itself becomes the
man in the middle a dishonest signalling path could insert: it answers the
tablet's offer with its own DTLS endpoint and offers the visitor another,
relaying the media between them. The call still works — which is the danger
— but the two codes differ, and that is what lawyer and inmate compare.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from kiosk.signalling.bridge import Bridge, Leg
from kiosk.wire import messages as p
from kiosk.wire.verification import code_for_session
from tests.harness import World, wait_until
from tests.visitor_client import Visitor

pytestmark = pytest.mark.slow


class HonestVisitor(Visitor):
    def code(self) -> str | None:
        if self.pc is None or self.pc.remoteDescription is None:
            return None
        return code_for_session(self.pc.localDescription.sdp, self.pc.remoteDescription.sdp)


class ManInTheMiddle(HonestVisitor):
    """Swaps the fingerprints on the signalling path and relays the media."""

    def __init__(self, ws_url: str, token: str) -> None:
        super().__init__(ws_url, token)
        self.middle = Bridge()

    async def _answer(self, offer: p.SdpMessage) -> None:
        assert self.ws is not None
        # Towards the tablet: the middle's own answer, with its own fingerprint.
        answer_to_tablet = await self.middle.answer_leg(Leg.TABLET, offer.sdp)
        # Towards the real visitor: the middle's own offer.
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc = pc
        pc.on(
            "track", lambda track: self._tasks.append(asyncio.ensure_future(self._consume(track)))
        )
        offer_to_visitor = await self.middle.offer_leg(Leg.VISITOR)
        await pc.setRemoteDescription(RTCSessionDescription(offer_to_visitor, "offer"))
        for transceiver in pc.getTransceivers():
            transceiver.direction = "recvonly"
        await pc.setLocalDescription(await pc.createAnswer())
        await self.middle.leg_answer(Leg.VISITOR, pc.localDescription.sdp)
        await self.ws.send_str(
            p.encode(p.SdpMessage(call_id=offer.call_id, kind="answer", sdp=answer_to_tablet))
        )

    async def close(self) -> None:
        await self.middle.close()
        await super().close()


async def _lawyer_call(world: World, visitor_class: type[HonestVisitor], serial: str) -> Any:
    inmate = await world.inmate()
    contact = await world.approved_contact(
        inmate, category="defence_counsel", relation="professional"
    )
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, serial)
    visitor = visitor_class(world.deployment.visit_ws, await world.invite_token(booking["id"]))
    await visitor.join()
    world.visitors.append(visitor)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    await tablet.dial(booking["id"])
    await wait_until(lambda: visitor.received.video > 10, timeout=40, what="media")

    async def tablet_code() -> str | None:
        call = (await tablet.state()).get("call") or {}
        return call.get("verification_code")

    return await wait_until(tablet_code, timeout=20, what="the tablet's code"), visitor


async def test_an_honest_call_shows_the_same_code_at_both_ends(world: World) -> None:
    tablet_code, visitor = await _lawyer_call(world, HonestVisitor, "TAB-HONEST")
    assert visitor.code() is not None
    assert tablet_code == visitor.code()


async def test_a_man_in_the_middle_shows_up_as_different_codes(world: World) -> None:
    tablet_code, visitor = await _lawyer_call(world, ManInTheMiddle, "TAB-MITM")
    # The relayed call works: the danger the code exists for.
    assert visitor.received.video > 10
    assert visitor.code() is not None and tablet_code is not None
    assert tablet_code != visitor.code()
