"""ISO-week arithmetic for the weekly call quota (R17).

A week is the ISO week (Monday 00:00 to the next Monday 00:00) in UTC. A
booking's minutes count in the week its window starts, all of them, even when
the window runs past midnight on Sunday: one booking, one week, no splitting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from kiosk.domain.model import Booking, BookingState

WEEK = timedelta(days=7)

# Bookings that use up quota and capacity: everything not cancelled. A held
# booking (R16) may be released again, and a used one was really called.
LIVE_BOOKING_STATES = frozenset({BookingState.BOOKED, BookingState.HELD, BookingState.USED})


def iso_week(at: datetime) -> tuple[int, int]:
    """(ISO year, ISO week number) of ``at`` in UTC."""
    year, week, _ = at.astimezone(UTC).isocalendar()
    return year, week


def week_bounds(at: datetime) -> tuple[datetime, datetime]:
    """[Monday 00:00 UTC, next Monday 00:00 UTC) of the ISO week holding ``at``."""
    utc = at.astimezone(UTC)
    monday = (utc - timedelta(days=utc.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return monday, monday + WEEK


def same_week(a: datetime, b: datetime) -> bool:
    return iso_week(a) == iso_week(b)


def week_usage(
    inmate_id: str,
    at: datetime,
    bookings: Iterable[Booking],
    counts: Callable[[Booking], bool],
    exclude_id: str | None = None,
) -> timedelta:
    """Time booked by ``inmate_id`` in the ISO week of ``at`` (R17).

    Only live bookings of this inmate starting in that week and for which
    ``counts`` is true add up; ``exclude_id`` leaves one booking out (the one
    being dialled, so that it is not counted twice).
    """
    total = timedelta()
    for booking in bookings:
        if (
            booking.inmate_id == inmate_id
            and booking.id != exclude_id
            and booking.state in LIVE_BOOKING_STATES
            and same_week(booking.start, at)
            and counts(booking)
        ):
            total += booking.duration
    return total
