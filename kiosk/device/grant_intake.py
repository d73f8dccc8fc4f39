"""Whether the tablet takes a grant the server sent: its own checks on top of the signature.

Principle 1 (ARCHITECTURE.md): the server decides, the tablet obeys, both
enforce. ``check_grant`` (kiosk/device/deadline.py) holds the grant to its
signature, this device, its window and the calls already ended. Here the
tablet also refuses what the server must never sign, should it sign it
(issue 12):

- a call with defence counsel or police that is bridged or controlled (R13);
- a grant whose end has passed by the server's own clock as the tablet has
  learnt it (its last state plus the monotonic time since), whatever the
  grant's ``issued_at`` says;
- a grant that answers no dial of this tablet's: each dial carries a fresh
  nonce and the grant must carry it back, signed. Nothing is kept across a
  restart, so a restarted agent, having no dial outstanding, takes no old
  grant. A call staff set up (R12) is granted when the tablet dials its
  booking, like any other;
- a grant while the tablet is not dialling (deny by default), and a second
  call while one is live.

Pure: the monotonic time and the session's facts come in as arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.device.deadline import MIN_USEFUL_SECONDS, Accepted, Refused, check_grant
from kiosk.domain.model import ControlLevel, Route
from kiosk.domain.reasons import GrantRefusal
from kiosk.wire.grants import Grant, ReplayGuard, SignedGrant

UNSOLICITED = GrantRefusal.UNSOLICITED
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SameCall:
    """The live call's own grant again (sent twice): nothing to do."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Asking:
    """What the tablet knows when a grant arrives: its dial, the server's clock, its call."""

    dial_nonce: str | None  # the outstanding dial's nonce; None: not dialling
    dial_sent_at: float | None  # monotonic instant that dial went out
    server_now: datetime | None  # the server's clock now, as learnt; None: no state yet
    live_call_id: str | None = None


def admit_grant(
    signed: SignedGrant,
    grant_key: Ed25519PublicKey,
    device_id: str,
    ended: ReplayGuard,
    mono: float,
    asking: Asking,
) -> Accepted | Refused | SameCall:
    """Accept a grant arriving at ``mono``, or say why not (deny by default)."""
    # The dial's send time anchors the grant clock: the server signed after it,
    # so the end can only come early, never late (GrantClock).
    sent = asking.dial_sent_at if asking.dial_sent_at is not None else mono
    decision = check_grant(signed, grant_key, device_id, ended, mono, sent_monotonic=sent)
    if isinstance(decision, Refused):
        return decision
    grant = decision.grant
    call_id = grant.call_id
    refusal = _never_signed(grant, asking.server_now)
    if refusal is not None:
        return refusal
    if asking.live_call_id is not None:
        if asking.live_call_id == call_id:
            return SameCall(call_id)  # the call is already running
        return Refused(GrantRefusal.CALL_ALREADY_LIVE, "another call is live", call_id)
    if asking.dial_nonce is None:
        # Media starts only for a call this tablet placed (and not one its
        # user cancelled while it was being granted).
        return Refused(UNSOLICITED, "this tablet did not dial", call_id)
    if grant.dial_nonce != asking.dial_nonce:
        return Refused(GrantRefusal.NOT_MY_DIAL, "it answers another dial", call_id)
    return decision


def _never_signed(grant: Grant, server_now: datetime | None) -> Refused | None:
    """What the server must never sign, checked again here (principle 1)."""
    if grant.category.privileged and (
        grant.route is not Route.P2P or grant.control is not ControlLevel.NONE
    ):
        # R13: never overheard or watched, so never through the bridge.
        return Refused(GrantRefusal.PRIVILEGED_MONITORED,
                       "a privileged call must be peer to peer and uncontrolled", grant.call_id)
    if server_now is None:
        return Refused(GrantRefusal.NO_SERVER_TIME, "no state from the server yet", grant.call_id)
    if grant.not_after - server_now < timedelta(seconds=MIN_USEFUL_SECONDS):
        return Refused(GrantRefusal.EXPIRED, "its end has passed by the server's clock",
                       grant.call_id)
    return None


def grant_call_id_hint(payload: str) -> str | None:
    """The call id a refused grant claims, only to tell the server to hang it up.

    Not trusted for anything else: a hang-up names a call; the server acts
    on it only if that call is this device's.
    """
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = body.get("call_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and _ID.match(value) else None
