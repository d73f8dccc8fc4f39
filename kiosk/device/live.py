"""The tablet's live call as its pure core keeps it: the grant, its deadline, what was shown.

Principle 2 (ARCHITECTURE.md): a privileged call carried peer to peer shows
a verification code made from both ends' DTLS fingerprints, so the two
people can check that nobody sits between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kiosk.device.deadline import Accepted
from kiosk.domain.model import Route
from kiosk.wire.grants import Grant
from kiosk.wire.messages import IceServer
from kiosk.wire.verification import code_for as verification_code
from kiosk.wire.verification import sdp_fingerprint


@dataclass(slots=True)
class LiveCall:
    grant: Grant
    accepted: Accepted
    contact_name: str
    ice_servers: tuple[IceServer, ...] = ()
    warned: set[int] = field(default_factory=set)
    offer: str = ""
    verification_code: str | None = None
    renewals: int = 0
    connected: bool = False  # media flowed at least once (issue 16: else the booking stays open)
    # Issue 16: the inmate's microphone and camera as the page last set them for this call.
    audio: bool = True
    video: bool = True

    def verify(self, answer: str) -> None:
        """Principle 2: only a privileged call, peer to peer, shows the code.

        A bridged call's other DTLS end is the bridge by design, so a code
        there would only mislead.
        """
        if not (self.grant.category.privileged and self.grant.route is Route.P2P):
            return
        mine, theirs = sdp_fingerprint(self.offer), sdp_fingerprint(answer)
        if mine and theirs:
            self.verification_code = verification_code(mine, theirs)
