"""Placing a call (R1, R10-R12, R16-R18): the one decision for a dial and a staff set-up.

The tablet's dial and staff setting a call up on the tablet (R12, ``POST
/calls``) ask this same function, so no rule is checked in one path and
forgotten in the other, and both refuse with the same reason code. They
differ only in *when*: a dial places the call now, inside its window; a
set-up may come ahead of the window and is judged for the moment the call
can begin (the later of now and the window's start).

Checked in this order (who is asking, then what they ask for, then whether
now is the moment; each step reveals no more than the one before):
  device revoked, device assigned to the inmate, inmate active, the booking
  exists for this inmate and contact (``booking_not_found``, also for somebody
  else's booking), booking held by a restriction (R16, ``facility_restricted``),
  booking still ``booked``, contact approved, the window (a dial: now inside
  [start, end); a set-up: before its end), R11 police clearance for remand
  (given by now), R16 facility not suspended and, under a LIMIT restriction,
  the limited time not yet spent (the call's end is then brought forward:
  ``call_deadline``), R17 quota, no other live call of the inmate or on the
  device (the caller says which calls are live: a call set up for a later
  window blocks nothing now). Closures (R15) govern booking, not calling: a
  booking that exists was made open or with an override.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from kiosk.domain.model import (
    Booking,
    BookingState,
    Category,
    Contact,
    Device,
    FacilitySettings,
    Inmate,
)
from kiosk.domain.policy.calendar import call_deadline, restricted_at
from kiosk.domain.policy.quota import quota_refuses
from kiosk.domain.policy.verdicts import ALLOW, Verdict, deny
from kiosk.domain.reasons import Reason


class Purpose(StrEnum):
    DIAL = "dial"  # the tablet places the call now
    SET_UP = "set_up"  # staff set it up on the tablet, now or ahead of its window (R12)


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the store knows that a call is judged on (the caller loads it)."""

    device: Device
    booking: Booking
    inmate: Inmate
    contact: Contact
    settings: FacilitySettings
    week_bookings: Sequence[Booking]  # the inmate's bookings in the booking's week (R17)
    categories: Mapping[str, Category]  # their contacts' categories

    def with_booking_state(self, state: BookingState) -> CallFacts:
        return replace(self, booking=replace(self.booking, state=state))


@dataclass(frozen=True, slots=True)
class CallContext:
    """The facts, and what only the caller knows: which calls are live now, and why it asks."""

    facts: CallFacts
    inmate_has_live_call: bool
    device_has_live_call: bool
    purpose: Purpose = Purpose.DIAL


def place_call(ctx: CallContext, now: datetime) -> Verdict:
    """May this call be placed (dialled now, or set up for its window)? Order in the module doc."""
    facts = ctx.facts
    inmate, contact, booking, device = facts.inmate, facts.contact, facts.booking, facts.device
    # R18: only issued, unrevoked equipment, handed to this inmate.
    if device.revoked:
        return deny(Reason.DEVICE_REVOKED)
    if device.inmate_id is None or device.inmate_id != inmate.id:
        return deny(Reason.DEVICE_NOT_ASSIGNED)
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    # Somebody else's booking is "not found": it reveals nothing about it.
    if booking.inmate_id != inmate.id or booking.contact_id != contact.id:
        return deny(Reason.BOOKING_NOT_FOUND)
    # R16: a held booking is held by a restriction; say so, not merely "inactive".
    if booking.state is BookingState.HELD:
        return deny(Reason.FACILITY_RESTRICTED, "the booking is held by a facility restriction")
    if booking.state is not BookingState.BOOKED:
        return deny(Reason.BOOKING_NOT_ACTIVE, f"booking is {booking.state.value}")
    # R1 / R4 / R8: the decision in force must approve the contact.
    if contact.inmate_id != inmate.id or not contact.approved:
        return deny(Reason.CONTACT_NOT_APPROVED)
    # R10: only inside the window the prison set; R12: a set-up may come ahead of it.
    if ctx.purpose is Purpose.DIAL:
        if not (booking.start <= now < booking.end):
            return deny(Reason.OUTSIDE_WINDOW)
    elif now >= booking.end:
        return deny(Reason.OUTSIDE_WINDOW)
    begins = max(now, booking.start)  # when the call can begin
    # R11: remand calls are cleared with the police beforehand.
    if inmate.remand:
        clearance = booking.police_clearance
        if clearance is None or clearance.cleared_at > now:
            return deny(Reason.POLICE_CLEARANCE_MISSING)
    # R16: a restriction declared after booking still holds: no call while suspended, and
    # under a limit only while the limited time is not yet spent.
    if call_deadline(booking, facts.settings, begins) <= begins:
        restriction = restricted_at(facts.settings, begins)
        note = restriction.note if restriction is not None else ""
        return deny(Reason.FACILITY_RESTRICTED, note)
    # R17: the quota may have been lowered since booking.
    refused = quota_refuses(
        facts.settings,
        inmate,
        contact,
        booking.start,
        booking.duration,
        facts.week_bookings,
        facts.categories,
        exclude_id=booking.id,
    )
    if refused is not None:
        return refused
    if ctx.inmate_has_live_call or ctx.device_has_live_call:
        return deny(Reason.CALL_ALREADY_LIVE)
    return ALLOW
