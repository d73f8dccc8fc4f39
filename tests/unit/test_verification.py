"""The verification code of a p2p call (principle 2): same at both ends, different under a MITM."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import given
from hypothesis import strategies as st

from kiosk.verification import VerificationError, code_for, code_for_session, sdp_fingerprint

hexpair = st.text(alphabet="0123456789ABCDEF", min_size=2, max_size=2)
fingerprints = st.lists(hexpair, min_size=32, max_size=32).map(
    lambda parts: "sha-256 " + ":".join(parts).lower()
)


@given(fingerprints, fingerprints)
def test_both_ends_compute_the_same_six_digits(a: str, b: str) -> None:
    code = code_for(a, b)
    assert code == code_for(b, a)
    assert len(code) == 6 and code.isdigit()


@given(fingerprints, fingerprints, fingerprints, fingerprints)
def test_a_man_in_the_middle_shows_up_as_two_different_codes(
    tablet: str, visitor: str, middle_1: str, middle_2: str
) -> None:
    # The middle terminates DTLS towards each end with its own certificate:
    # the tablet's peer is middle_1, the visitor's peer is middle_2.
    if len({tablet, visitor, middle_1, middle_2}) == 4:
        # A 6-digit code collides once in a million; no example here hits it.
        assert code_for(tablet, middle_1) != code_for(visitor, middle_2)


def test_the_fingerprint_is_read_from_a_real_session_description() -> None:
    async def offer() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    sdp = asyncio.run(offer())
    fingerprint = sdp_fingerprint(sdp)
    assert fingerprint.startswith("sha-256 ") and fingerprint == fingerprint.lower()
    assert code_for_session(sdp, sdp) == code_for(fingerprint, fingerprint)


def test_an_sdp_without_a_fingerprint_gives_no_code() -> None:
    try:
        sdp_fingerprint("v=0\r\ns=-\r\n")
    except VerificationError:
        return
    raise AssertionError("a code was made without a fingerprint")
