"""The verification code of a peer-to-peer call (ARCHITECTURE.md principle 2).

A privileged call's media runs end to end, encrypted by DTLS-SRTP. The
signalling server relays the SDP, so a dishonest server could swap the DTLS
fingerprints and sit in the middle. Both ends therefore show a short code
made from the two fingerprints of the connection they actually made — their
own and the one their peer proved in the DTLS handshake. Lawyer and inmate
read it to each other; a man in the middle shows up as two different codes,
because each end then sees the middle's fingerprint instead of its peer's.

The code is six digits: SHA-256 over the two fingerprints, normalised
(algorithm and hex in lower case) and sorted so that both ends compute the
same text, then the first eight bytes as a number modulo one million. The
visitor page computes exactly this in the browser (``verification.js``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

CODE_DIGITS: Final = 6
_FINGERPRINT = re.compile(r"^a=fingerprint:(\S+)\s+([0-9A-Fa-f:]+)\s*$", re.MULTILINE)


class VerificationError(ValueError):
    """An SDP without a DTLS fingerprint: no code can be shown."""


def normalise(algorithm: str, value: str) -> str:
    return f"{algorithm.lower()} {value.lower()}"


def sdp_fingerprint(sdp: str) -> str:
    """The first DTLS fingerprint in ``sdp`` (bundled media share one transport)."""
    match = _FINGERPRINT.search(sdp)
    if match is None:
        raise VerificationError("the session description carries no DTLS fingerprint")
    return normalise(match.group(1), match.group(2))


def code_for(fingerprint_a: str, fingerprint_b: str) -> str:
    """Six digits from two normalised fingerprints; the order of the two does not matter."""
    text = "\n".join(sorted((fingerprint_a, fingerprint_b)))
    digest = hashlib.sha256(text.encode("ascii")).digest()
    number = int.from_bytes(digest[:8], "big") % 10**CODE_DIGITS
    return f"{number:0{CODE_DIGITS}d}"


def code_for_session(local_sdp: str, remote_sdp: str) -> str:
    """The code one end shows: from its own description and its peer's."""
    return code_for(sdp_fingerprint(local_sdp), sdp_fingerprint(remote_sdp))
