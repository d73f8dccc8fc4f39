"""Placing a call (R1, R10, R11, R16-R18) as a pure function.

Dialling (checked in this order: who is asking, then what they ask for, then
whether now is the moment; each step reveals no more than the one before)
  device revoked, device assigned to the inmate, inmate active, the booking
  exists for this inmate and contact (``booking_not_found``, also for somebody
  else's booking), booking held by a restriction (R16, ``facility_restricted``),
  booking still ``booked``, contact approved, now inside
  [start, end), R11 police clearance for remand, R16 facility not suspended
  and, under a LIMIT restriction, the limited time not yet spent (the call's
  end is then brought forward: ``call_deadline``), R17 quota, no other live
  call of the inmate or on the device. Closures (R15) govern booking, not
  dialling: a booking that exists was made open or with an override.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

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

# --- Dialling -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DialContext:
    inmate: Inmate
    contact: Contact
    booking: Booking | None
    device: Device
    settings: FacilitySettings
    inmate_has_live_call: bool
    device_has_live_call: bool
    week_bookings: Sequence[Booking]
    categories: Mapping[str, Category]


def dial(ctx: DialContext, now: datetime) -> Verdict:
    """May the tablet place this call now? (order in the module doc)"""
    inmate, contact, booking, device = ctx.inmate, ctx.contact, ctx.booking, ctx.device
    # R18: only issued, unrevoked equipment, handed to this inmate.
    if device.revoked:
        return deny(Reason.DEVICE_REVOKED)
    if device.inmate_id is None or device.inmate_id != inmate.id:
        return deny(Reason.DEVICE_NOT_ASSIGNED)
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    # Somebody else's booking is "not found": it reveals nothing about it.
    if booking is None or booking.inmate_id != inmate.id or booking.contact_id != contact.id:
        return deny(Reason.BOOKING_NOT_FOUND)
    # R16: a held booking is held by a restriction; say so, not merely "inactive".
    if booking.state is BookingState.HELD:
        return deny(Reason.FACILITY_RESTRICTED, "the booking is held by a facility restriction")
    if booking.state is not BookingState.BOOKED:
        return deny(Reason.BOOKING_NOT_ACTIVE, f"booking is {booking.state.value}")
    # R1 / R4 / R8: the decision in force must approve the contact.
    if contact.inmate_id != inmate.id or not contact.approved:
        return deny(Reason.CONTACT_NOT_APPROVED)
    # R10: only inside the window the prison set.
    if not (booking.start <= now < booking.end):
        return deny(Reason.OUTSIDE_WINDOW)
    # R11: remand calls are cleared with the police beforehand.
    if inmate.remand:
        clearance = booking.police_clearance
        if clearance is None or clearance.cleared_at > now:
            return deny(Reason.POLICE_CLEARANCE_MISSING)
    # R16: a restriction declared after booking still holds: no call while suspended, and
    # under a limit only while the limited time is not yet spent.
    if call_deadline(booking, ctx.settings, now) <= now:
        restriction = restricted_at(ctx.settings, now)
        note = restriction.note if restriction is not None else ""
        return deny(Reason.FACILITY_RESTRICTED, note)
    # R17: the quota may have been lowered since booking.
    refused = quota_refuses(
        ctx.settings,
        inmate,
        contact,
        booking.start,
        booking.duration,
        ctx.week_bookings,
        ctx.categories,
        exclude_id=booking.id,
    )
    if refused is not None:
        return refused
    if ctx.inmate_has_live_call or ctx.device_has_live_call:
        return deny(Reason.CALL_ALREADY_LIVE)
    return ALLOW
