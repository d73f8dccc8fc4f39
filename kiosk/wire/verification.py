"""The verification code of a peer-to-peer call (ARCHITECTURE.md principle 2).

A privileged call's media runs end to end, encrypted by DTLS-SRTP. The
signalling server relays the SDP, so a dishonest server could swap the DTLS
fingerprints and sit in the middle. Both ends therefore show a short code
made from the two fingerprints of the connection they actually made — their
own and the one their peer proved in the DTLS handshake (aiortc and browsers
refuse a handshake whose certificate does not match the fingerprint in the
remote description). Lawyer and inmate read it to each other; a man in the
middle shows up as two different codes, because each end then sees the
middle's fingerprint instead of its peer's.

The code: SHA-256 over a context label and the two SHA-256 fingerprints
(upper-case hex with colons), sorted so that offerer and answerer get the
same and joined by a newline; the first four bytes modulo one million, shown
as two groups of three digits ("042 917"). Chance agreement is one in a
million. The visitor page computes exactly this in the browser.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

CONTEXT: Final = b"kiosk-verify-v1\x00"
_FINGERPRINT: Final = re.compile(
    r"^a=fingerprint:sha-256 ([0-9A-Fa-f:]{95})\s*$", re.MULTILINE | re.IGNORECASE
)


def sdp_fingerprint(sdp: str) -> str | None:
    """The first SHA-256 DTLS fingerprint in an SDP (bundled media share one), upper-case."""
    match = _FINGERPRINT.search(sdp)
    return match.group(1).upper() if match else None


def code_for(fingerprint_a: str, fingerprint_b: str) -> str:
    """The code both ends show; the order of the two fingerprints does not matter."""
    a, b = sorted((fingerprint_a.upper(), fingerprint_b.upper()))
    digest = hashlib.sha256(CONTEXT + f"{a}\n{b}".encode("ascii")).digest()
    number = int.from_bytes(digest[:4], "big") % 1_000_000
    return f"{number // 1000:03d} {number % 1000:03d}"


def code_for_session(local_sdp: str, remote_sdp: str) -> str | None:
    """The code one end shows, from its own description and its peer's; None without both."""
    mine, theirs = sdp_fingerprint(local_sdp), sdp_fingerprint(remote_sdp)
    if mine is None or theirs is None:
        return None
    return code_for(mine, theirs)
