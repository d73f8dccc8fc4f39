"""The rules (DOMAIN.md R1-R17) as pure functions: facts and ``now`` in, a verdict out.

Every function returns ``ALLOW`` or ``Deny(reason)`` with a code from
:mod:`kiosk.domain.reasons`; nothing here reads a clock, a file or a database.
The caller gathers the facts (the contacts of an inmate, the bookings that
overlap a window, ...) and acts on the verdict.

Choices made where the rules leave room (the one place they are written down):

One module per rule family; the verdict types in :mod:`.verdicts`. Each
module's docstring writes down the choices made where the rules leave room.
"""

from __future__ import annotations

from kiosk.domain.policy.bookings import (
    BookingContext,
    BookingRequest,
    check_window,
    create_booking,
)
from kiosk.domain.policy.calendar import call_deadline, closed_at, restricted_at
from kiosk.domain.policy.calling import CallContext, CallFacts, Purpose, place_call
from kiosk.domain.policy.contacts import (
    AWAITING,
    DECIDED,
    check_control,
    confirm_email,
    counts_toward_limit,
    decide_appeal,
    decide_contact,
    file_appeal,
    initial_status,
    personal_contacts_in_use,
    propose_contact,
    receive_application,
)
from kiosk.domain.policy.monitoring import attach_monitor, route_for
from kiosk.domain.policy.quota import quota_minutes
from kiosk.domain.policy.verdicts import ALLOW, Allow, Deny, Verdict, deny

__all__ = [
    "ALLOW",
    "AWAITING",
    "DECIDED",
    "Allow",
    "BookingContext",
    "BookingRequest",
    "CallContext",
    "CallFacts",
    "Deny",
    "Purpose",
    "Verdict",
    "attach_monitor",
    "call_deadline",
    "check_control",
    "check_window",
    "closed_at",
    "confirm_email",
    "counts_toward_limit",
    "create_booking",
    "decide_appeal",
    "decide_contact",
    "deny",
    "file_appeal",
    "initial_status",
    "personal_contacts_in_use",
    "place_call",
    "propose_contact",
    "quota_minutes",
    "receive_application",
    "restricted_at",
    "route_for",
]
