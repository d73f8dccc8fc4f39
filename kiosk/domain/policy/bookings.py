"""Bookings (R9, R10, R12, R15-R17) as a pure function.

Bookings (checked in this order)
  inmate active, contact belongs to the inmate, contact approved (R1/R4);
  R10 window (aware times, 0 < duration <= max_call_minutes, start not in the
  past); location (R12: a room must be one of the facility's rooms); R15
  closures (overlap -> ``facility_closed`` unless ``override_closure``; an
  inmate-initiated booking made at/after a closure's order deadline for a
  window starting before that closure's end -> ``order_deadline_passed``,
  staff-initiated bookings and overrides are exempt); R16 restrictions (overlap
  with SUSPEND, or LIMIT with a longer call -> ``facility_restricted``, no
  override); R9 capacity (tablets, the room, monitoring staff for controlled
  calls); R17 weekly quota for personal contacts (the inmate's live personal
  bookings starting in the ISO week (UTC) of the new start, plus the new one,
  within ``weekly_quota_minutes``, or ``parent_weekly_quota_minutes`` when the
  contact is the inmate's child). Live bookings are those not cancelled.
  R11 police clearance is checked when dialling, not booking: the clearance
  may be added to the booking later.
"""


from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.domain.model import (
    Booking,
    Category,
    Contact,
    FacilitySettings,
    Initiation,
    Inmate,
    LocationKind,
    PoliceClearance,
)
from kiosk.domain.policy.calendar import overlaps, restriction_refuses
from kiosk.domain.policy.outlook import taken
from kiosk.domain.policy.quota import quota_refuses
from kiosk.domain.policy.verdicts import ALLOW, Verdict, aware, deny
from kiosk.domain.reasons import Reason

# --- Bookings (R9, R10, R12, R15-R17) ---------------------------------------


@dataclass(frozen=True, slots=True)
class BookingRequest:
    inmate: Inmate
    contact: Contact
    start: datetime
    end: datetime
    location_kind: LocationKind
    location: str
    initiation: Initiation
    police_clearance: PoliceClearance | None = None
    override_closure: bool = False


@dataclass(frozen=True, slots=True)
class BookingContext:
    """The facts a booking is checked against.

    ``overlapping``: the facility's live bookings overlapping the window (more
    is harmless: they are filtered again). ``week_bookings``: the inmate's
    live bookings in the ISO week of the start. ``categories``: contact id ->
    category for those bookings.
    """

    settings: FacilitySettings
    overlapping: Sequence[Booking]
    week_bookings: Sequence[Booking]
    categories: Mapping[str, Category]


def check_window(
    settings: FacilitySettings, start: datetime, end: datetime, now: datetime
) -> Verdict:
    """R10: the prison sets a duration within its maximum, for a time still to come."""
    if not aware(start, end):
        return deny(Reason.INVALID_REQUEST, "times must carry a time zone")
    if end <= start:
        return deny(Reason.WINDOW_INVALID)
    if end - start > timedelta(minutes=settings.max_call_minutes):
        return deny(
            Reason.WINDOW_INVALID, f"calls last at most {settings.max_call_minutes} minutes"
        )
    if start < now:
        return deny(Reason.OUTSIDE_WINDOW, "the window starts in the past")
    return ALLOW


def create_booking(req: BookingRequest, ctx: BookingContext, now: datetime) -> Verdict:
    """May the prison book this window? (R1, R9, R10, R12, R15, R16, R17; order in module doc)"""
    settings = ctx.settings
    inmate, contact = req.inmate, req.contact
    if not inmate.active:
        return deny(Reason.INMATE_INACTIVE)
    if contact.inmate_id != inmate.id:
        return deny(Reason.INVALID_REQUEST, "the contact belongs to another inmate")
    # R1 / R4: no approving decision, no call, and so no booking.
    if not contact.approved:
        return deny(Reason.CONTACT_NOT_APPROVED)

    verdict = check_window(settings, req.start, req.end, now)  # R10
    if not verdict:
        return verdict
    start, end, duration = req.start, req.end, req.end - req.start

    # R12: the booking records where the call takes place.
    if not req.location.strip():
        return deny(Reason.INVALID_REQUEST, "the booking needs a location")
    if req.location_kind is LocationKind.ROOM and req.location not in settings.rooms:
        return deny(Reason.INVALID_REQUEST, "no such room")

    # R15: closed periods and their order deadlines.
    if not req.override_closure:
        for closure in settings.closures:
            if overlaps(start, end, closure.start, closure.end):
                return deny(Reason.FACILITY_CLOSED, closure.note)
        if req.initiation is Initiation.INMATE:
            for closure in settings.closures:
                deadline = closure.order_deadline
                if deadline is not None and now >= deadline and start < closure.end:
                    return deny(Reason.ORDER_DEADLINE_PASSED, closure.note)

    refused = restriction_refuses(settings, start, end, duration)  # R16
    if refused is not None:
        return refused

    # R9: the prison's capacity weighs most.
    now_taken = taken(ctx.overlapping, start, end)
    if now_taken.tablets >= settings.tablets:
        return deny(Reason.CAPACITY_TABLETS)
    if req.location_kind is LocationKind.ROOM and req.location in now_taken.rooms:
        return deny(Reason.CAPACITY_ROOM)
    if contact.control.controlled and now_taken.monitored >= settings.monitoring_staff:
        return deny(Reason.CAPACITY_MONITORING)

    refused = quota_refuses(
        settings, inmate, contact, start, duration, ctx.week_bookings, ctx.categories
    )  # R17
    if refused is not None:
        return refused
    return ALLOW
