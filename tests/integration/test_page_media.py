"""The agent forwards the kiosk page's media to the call's peer and back, never decoding.

A ``Call`` whose media is ``PageMedia``; a plain aiortc peer as the visitor and
another as the kiosk page (synthetic camera and tone, as Chromium's fake
devices would be), the page's connection on loopback only. Real grants, real
DTLS, the end by the grant's monotonic clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from aiortc import rtcrtpreceiver
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.device.call import Call
from kiosk.device.deadline import Accepted, check_grant
from kiosk.device.page_peer import (
    NoLiveCall,
    PageMedia,
    PageRefused,
    address_on_this_machine,
    loopback_only,
)
from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.media import forwarding
from kiosk.wire.grants import Grant, ReplayGuard, sign_grant
from tests.answering_peer import Peer
from tests.harness import stays, wait_until
from tests.loopback import ensure_page_media_address

pytestmark = pytest.mark.timeout(120)

KEY = Ed25519PrivateKey.generate()
DEVICE = "tablet-1"


def accepted(seconds: float) -> Accepted:
    now = datetime.now(UTC)
    grant = Grant(
        call_id="call-p1", device_id=DEVICE, inmate_id="inmate-1", contact_id="contact-1",
        category=Category.PERSONAL, route=Route.P2P, control=ControlLevel.NONE,
        not_before=now - timedelta(minutes=1), not_after=now + timedelta(seconds=seconds),
        issued_at=now, dial_nonce="page-media-test-nonce",
    )
    decision = check_grant(sign_grant(grant, KEY), KEY.public_key(), DEVICE, ReplayGuard(),
                           time.monotonic(), sent_monotonic=time.monotonic())
    assert isinstance(decision, Accepted)
    return decision


def candidate_addresses(sdp: str) -> set[str]:
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


async def test_page_media_goes_to_the_peer_and_back_and_stops_at_the_grant_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = ensure_page_media_address()
    decoders: list[object] = []
    real_get_decoder = rtcrtpreceiver.get_decoder

    def counting_decoder(codec: object) -> object:
        decoders.append(codec)
        return real_get_decoder(codec)  # type: ignore[arg-type]

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", counting_decoder)
    media = PageMedia("call-p1", host)
    call = Call(accepted(8.0), media, [])
    visitor, page = Peer(), Peer()
    try:
        await call.apply_answer(await visitor.answer(await call.make_offer()))
        answer = await media.accept_page(await page.offer())
        assert candidate_addresses(answer) == {host}  # the agent's end: loopback only
        await page.accept(answer)
        await wait_until(
            lambda: visitor.frames["video"] >= 10 and visitor.frames["audio"] >= 10
            and page.frames["video"] >= 10 and page.frames["audio"] >= 10,
            30, "the page's media at the visitor and the visitor's at the page",
        )
        assert len(set(visitor.luma)) > 1 and len(set(page.luma)) > 1  # moving pictures
        assert call.counters.video_frames >= 10 and call.counters.audio_frames >= 10
        # Only the two ends decode: the visitor's and the page's two receivers each.
        assert len(decoders) == 4
        assert all(forwarding.is_tapped(t.receiver) for t in call.pc.getTransceivers())
        assert all(forwarding.never_encoded(t.sender) for t in call.pc.getTransceivers())

        # The grant's end, by the call's own clock: both connections close.
        await wait_until(lambda: call.closed, 30, "the grant to end the call")
        assert call.end_reason is EndReason.TIME_UP
        await wait_until(lambda: page.ended == {"video", "audio"}, 30, "the page's tracks to end")
        await wait_until(lambda: visitor.ended == {"video", "audio"}, 30, "the visitor's to end")
        then = (dict(visitor.frames), dict(page.frames))
        await stays(lambda: (visitor.frames, page.frames) == then, 0.5, "no frame after the end")
        with pytest.raises(NoLiveCall):
            await media.accept_page(await Peer().offer())
    finally:
        await call.close(EndReason.HANGUP)
        await visitor.close()
        await page.close()


async def test_an_offer_without_loopback_candidates_is_refused() -> None:
    host = ensure_page_media_address()
    media = PageMedia("call-p2", host)
    page = Peer()
    try:
        offer = await page.offer()
        outside = loopback_only(offer, lambda address: False)
        with pytest.raises(PageRefused):
            await media.accept_page(outside)
        assert media.page_pc is None
    finally:
        await media.close()
        await page.close()


def test_only_loopback_candidates_are_kept() -> None:
    sdp = (
        "v=0\r\na=candidate:1 1 udp 1 10.0.0.5 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 127.0.0.2 5001 typ host\r\n"
        "a=candidate:3 1 udp 1 ::1 5002 typ host\r\na=candidate:4 1 udp\r\n"
    )
    assert candidate_addresses(loopback_only(sdp)) == {"127.0.0.2", "::1"}


def test_the_agent_can_tell_whether_its_page_address_is_on_this_machine() -> None:
    assert address_on_this_machine(ensure_page_media_address())
    assert not address_on_this_machine("127.0.0.254")
