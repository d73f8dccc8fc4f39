"""Whether the tablet takes a grant the server sent: its own checks on top of the signature.

Principle 1 (ARCHITECTURE.md): the server decides, the tablet obeys, both
enforce. ``check_grant`` (kiosk/device/deadline.py) holds the grant to its
signature, this device, its window and the calls already ended; here the
tablet also refuses a grant it did not ask for (deny by default) and a
second call while one is live.

Pure: the monotonic time and the session's facts come in as arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.device.deadline import Accepted, Refused, check_grant
from kiosk.wire.grants import ReplayGuard, SignedGrant

UNSOLICITED = "unsolicited"  # a grant reason of the tablet's own: it did not dial
ANOTHER_CALL_LIVE = "call_already_live"  # a grant reason of the tablet's own
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True, slots=True)
class SameCall:
    """The live call's own grant again (sent twice): nothing to do."""

    call_id: str


def admit_grant(
    signed: SignedGrant,
    grant_key: Ed25519PublicKey,
    device_id: str,
    ended: ReplayGuard,
    mono: float,
    *,
    dial_sent_at: float | None,
    live_call_id: str | None,
    dialling: bool,
) -> Accepted | Refused | SameCall:
    """Accept a grant arriving at ``mono``, or say why not (deny by default)."""
    # The dial's send time anchors the grant clock: the server signed after it,
    # so the end can only come early, never late (GrantClock).
    sent = dial_sent_at if dial_sent_at is not None else mono
    decision = check_grant(signed, grant_key, device_id, ended, mono, sent_monotonic=sent)
    if isinstance(decision, Refused):
        return decision
    call_id = decision.grant.call_id
    if live_call_id is not None:
        if live_call_id == call_id:
            return SameCall(call_id)  # the call is already running
        return Refused(ANOTHER_CALL_LIVE, "another call is live", call_id)
    if not dialling:
        # Media starts only for a call this tablet placed (and not one its
        # user cancelled while it was being granted).
        return Refused(UNSOLICITED, "this tablet did not dial", call_id)
    return decision


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
