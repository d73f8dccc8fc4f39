"""The verification code of a p2p call (principle 2): same at both ends, different under a MITM."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import given
from hypothesis import strategies as st

from kiosk.wire.verification import code_for, code_for_session, sdp_fingerprint

hexpair = st.text(alphabet="0123456789ABCDEF", min_size=2, max_size=2)
KNOWN = "947 113"
fingerprints = st.lists(hexpair, min_size=32, max_size=32).map(":".join)


@given(fingerprints, fingerprints)
def test_both_ends_compute_the_same_six_digits(a: str, b: str) -> None:
    code = code_for(a, b)
    assert code == code_for(b, a) == code_for(a.lower(), b)
    digits = code.replace(" ", "")
    assert len(code) == 7 and len(digits) == 6 and digits.isdigit()


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
    assert fingerprint is not None and len(fingerprint) == 95 and fingerprint == fingerprint.upper()
    assert code_for_session(sdp, sdp) == code_for(fingerprint, fingerprint)


def test_an_sdp_without_a_fingerprint_gives_no_code() -> None:
    assert sdp_fingerprint("v=0\r\ns=-\r\n") is None
    assert code_for_session("v=0\r\n", "v=0\r\n") is None


def test_a_known_pair_gives_a_known_code() -> None:
    """Pinned so that the browser's implementation can be checked against it."""
    a = ":".join(["AB"] * 32)
    b = ":".join(["01"] * 32)
    assert code_for(a, b) == KNOWN
