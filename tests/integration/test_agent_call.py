"""The tablet's Call against a plain aiortc peer: real media both ways, ended by the grant.

No server: the test plays the signalling itself (offer from the tablet,
answer from the peer). Everything else is real: aiortc over the machine's
own interface with no ICE servers, VP8 and Opus, decoded frames counted at
both ends, the grant verified by the pinned key, the end by the monotonic
clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiosk.device.call import Call
from kiosk.device.deadline import Accepted, Refused, check_grant
from kiosk.device.media import synthetic_media
from kiosk.domain.callstate import End
from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.wire.grants import Grant, GrantError, ReplayGuard, sign_grant
from tests.answering_peer import Peer
from tests.harness import stays
from tests.harness import wait_until as wait_for

pytestmark = pytest.mark.timeout(120)

KEY = Ed25519PrivateKey.generate()
DEVICE = "tablet-1"


def make_grant(seconds: float, *, call_id: str = "call-1", device_id: str = DEVICE) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        call_id=call_id, device_id=device_id, inmate_id="inmate-1", contact_id="contact-1",
        category=Category.PERSONAL, route=Route.P2P, control=ControlLevel.NONE,
        not_before=now - timedelta(minutes=1), not_after=now + timedelta(seconds=seconds),
        issued_at=now,
    )


async def test_media_flows_both_ways_and_the_grant_ends_the_call() -> None:
    sent = time.monotonic()
    decision = check_grant(
        sign_grant(make_grant(6.0), KEY), KEY.public_key(), DEVICE, ReplayGuard(),
        time.monotonic(), sent_monotonic=sent,
    )
    assert isinstance(decision, Accepted)
    effects: list[object] = []
    tablet_luma: list[bytes] = []

    def on_video(frame) -> None:  # type: ignore[no-untyped-def]
        if len(tablet_luma) < 60:
            tablet_luma.append(bytes(frame.planes[0]))

    call = Call(decision, synthetic_media(), [],
                on_time=effects.append, on_video=on_video)
    peer = Peer()
    try:
        await call.apply_answer(await peer.answer(await call.make_offer()))
        c = call.counters
        await wait_for(
            lambda: c.video_frames >= 10 and c.audio_frames >= 10
            and peer.frames["video"] >= 10 and peer.frames["audio"] >= 10,
            30, "decoded frames both ways",
        )
        # Moving pictures arrive at both ends, not a frozen frame.
        assert len(set(tablet_luma)) > 1 and len(set(peer.luma)) > 1
        assert call.connection_state == "connected"

        # The end: at the grant's deadline by the tablet's monotonic clock.
        await wait_for(lambda: call.closed, 30, "the tablet to end the call")
        ended_at = time.monotonic()
        assert call.end_reason is EndReason.TIME_UP
        assert End(EndReason.TIME_UP) in effects
        assert ended_at >= call.deadline.deadline()
        assert ended_at - call.deadline.deadline() < 2.0  # generous: no hang, not a speed test
        await asyncio.wait_for(call.wait_closed(), 30)
        assert call.pc.connectionState == "closed"

        # The other end sees it too: its incoming tracks end and its connection closes.
        await wait_for(lambda: peer.ended == {"video", "audio"}, 30, "the peer's tracks to end")
        await wait_for(lambda: peer.pc.connectionState in ("closed", "failed"), 30,
                       "the peer's connection to close")
        # No media after the end, either way.
        frames_then = dict(peer.frames)
        await stays(lambda: peer.frames == frames_then, 0.5, "no frame after the end")
        assert peer.last["video"] <= call.deadline.deadline() + 2.0  # generous: a loaded machine
    finally:
        await call.close(EndReason.HANGUP)
        await peer.close()


async def test_hangup_closes_before_the_deadline_and_keeps_its_reason() -> None:
    decision = check_grant(sign_grant(make_grant(600), KEY), KEY.public_key(), DEVICE,
                           ReplayGuard(), time.monotonic())
    assert isinstance(decision, Accepted)
    call = Call(decision, synthetic_media(), [])
    peer = Peer()
    try:
        await call.apply_answer(await peer.answer(await call.make_offer()))
        await wait_for(lambda: peer.frames["video"] >= 3, 30, "video at the peer")
        await call.close(EndReason.HANGUP)
        await call.close(EndReason.TIME_UP)  # a second close changes nothing
        assert call.end_reason is EndReason.HANGUP
        assert call.deadline.tick(call.deadline.deadline() + 1) == []
        await wait_for(lambda: "video" in peer.ended, 30, "the peer's video to end")
        with pytest.raises(RuntimeError):
            await call.make_offer()
    finally:
        await call.close(EndReason.HANGUP)
        await peer.close()


@pytest.mark.parametrize(
    ("signed_by", "device", "replay", "reason"),
    [
        ("forger", DEVICE, False, GrantError.BAD_SIGNATURE),
        ("server", "tablet-2", False, GrantError.WRONG_DEVICE),
        ("server", DEVICE, True, GrantError.REPLAYED),
    ],
)
def test_refused_grant_gives_no_call(signed_by: str, device: str, replay: bool,
                                     reason: str) -> None:
    key = KEY if signed_by == "server" else Ed25519PrivateKey.generate()
    ended = ReplayGuard()
    if replay:
        ended.end("call-1")
    decision = check_grant(sign_grant(make_grant(600, device_id=device), key),
                           KEY.public_key(), DEVICE, ended, time.monotonic())
    assert isinstance(decision, Refused) and decision.reason == reason
    media = synthetic_media()
    with pytest.raises(TypeError):
        Call(decision, media, [])  # type: ignore[arg-type]
    with contextlib.suppress(Exception):
        media.stop()


async def test_trickled_candidates_even_before_the_answer_connect_the_call() -> None:
    """As a browser does: an answer without candidates, the candidates on their own."""
    decision = check_grant(sign_grant(make_grant(600), KEY), KEY.public_key(), DEVICE,
                           ReplayGuard(), time.monotonic())
    assert isinstance(decision, Accepted)
    call = Call(decision, synthetic_media(), [])
    peer = Peer()
    try:
        answer = await peer.answer(await call.make_offer())
        lines = answer.split("\r\n")
        candidates: list[tuple[str, str, int]] = []
        mid, index = "", -1
        for line in lines:
            if line.startswith("m="):
                index += 1
            elif line.startswith("a=mid:"):
                mid = line[len("a=mid:"):]
            elif line.startswith("a=candidate:"):
                candidates.append((line[2:], mid, index))
        assert candidates
        trickled = ("a=candidate:", "a=end-of-candidates")
        stripped = "\r\n".join(ln for ln in lines if not ln.startswith(trickled))
        half = len(candidates) // 2 or 1
        first, rest = candidates[:half], candidates[half:]
        for text, sdp_mid, mline in first:  # before the answer: held
            await call.add_ice(text, sdp_mid, mline)
        await call.apply_answer(stripped)
        # The early ones were held and applied with the answer (bundled: one ICE transport).
        ice = call.pc.getTransceivers()[0].receiver.transport.transport
        held = {c.foundation for c in ice.getRemoteCandidates()}
        assert {text.split()[0].split(":")[1] for text, _, _ in first} <= held
        for text, sdp_mid, mline in rest:
            await call.add_ice(text, sdp_mid, mline)
        await call.add_ice(None, None, None)
        for junk in ("candidate:garbage", "candidate:1 x udp y 1.2.3.4 z typ host", ""):
            await call.add_ice(junk, "0", 0)  # unusable: ignored, no crash
        await call.add_ice(candidates[0][0], "no-such-mid", 99)
        await wait_for(lambda: call.counters.video_frames >= 3 and peer.frames["video"] >= 3,
                       30, "media over trickled candidates")
    finally:
        await call.close(EndReason.HANGUP)
        await peer.close()
