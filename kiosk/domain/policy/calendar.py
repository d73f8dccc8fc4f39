"""The facility calendar (R15 closures, R16 restrictions) and the end of a call under them.
"""


from __future__ import annotations

from datetime import datetime, timedelta

from kiosk.domain.model import (
    Booking,
    Closure,
    FacilitySettings,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.policy.verdicts import Deny, deny
from kiosk.domain.reasons import Reason

# --- Facility calendar (R15, R16) -------------------------------------------


def closed_at(settings: FacilitySettings, at: datetime) -> Closure | None:
    """The closure (R15) in force at ``at``, if any."""
    for closure in settings.closures:
        if closure.start <= at < closure.end:
            return closure
    return None


def restricted_at(settings: FacilitySettings, at: datetime) -> Restriction | None:
    """The restriction (R16) in force at ``at``; a suspension wins over a limit."""
    found: Restriction | None = None
    for restriction in settings.restrictions:
        if restriction.start <= at < restriction.end:
            if restriction.kind is RestrictionKind.SUSPEND:
                return restriction
            if found is None or _limit(restriction) < _limit(found):
                found = restriction
    return found


def call_deadline(booking: Booking, settings: FacilitySettings, now: datetime) -> datetime:
    """When a call on ``booking`` placed at ``now`` must end (R10, R16).

    The window's end, brought forward by the restrictions that overlap the rest
    of it: a suspension ends the call where it begins; a limit lets the call run
    ``limit_minutes`` from the later of the window's start and the limit's start.
    At or before ``now`` means no call at all (``dial`` refuses it).
    """
    deadline = booking.end
    for r in settings.restrictions:
        if not overlaps(now, booking.end, r.start, r.end):
            continue
        if r.kind is RestrictionKind.SUSPEND:
            deadline = min(deadline, max(r.start, now))
        else:
            since = max(booking.start, r.start)
            deadline = min(deadline, since + timedelta(minutes=_limit(r)))
    return deadline


def _limit(restriction: Restriction) -> int:
    # A LIMIT without minutes limits to nothing: deny by default.
    return restriction.limit_minutes if restriction.limit_minutes is not None else 0


def overlaps(start: datetime, end: datetime, other_start: datetime, other_end: datetime) -> bool:
    return start < other_end and other_start < end


def restriction_refuses(
    settings: FacilitySettings, start: datetime, end: datetime, duration: timedelta
) -> Deny | None:
    # R16: suspended periods take no calls; limited periods take only short ones.
    for r in settings.restrictions:
        if not overlaps(start, end, r.start, r.end):
            continue
        if r.kind is RestrictionKind.SUSPEND:
            return deny(Reason.FACILITY_RESTRICTED, f"calls are suspended ({r.note or r.id})")
        if duration > timedelta(minutes=_limit(r)):
            return deny(
                Reason.FACILITY_RESTRICTED, f"calls are limited to {_limit(r)} minutes then"
            )
    return None
