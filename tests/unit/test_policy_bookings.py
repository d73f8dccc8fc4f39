"""Bookings: R1, R9, R10, R12, R15, R16, R17 — each allowed and refused."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.model import (
    Booking,
    BookingState,
    Category,
    Closure,
    Contact,
    ContactStatus,
    ControlLevel,
    FacilitySettings,
    Initiation,
    LocationKind,
    Relation,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.policy import ALLOW, Deny, Verdict, closed_at, create_booking, restricted_at
from kiosk.domain.reasons import Reason
from kiosk.domain.weeks import iso_week, week_bounds

from .strategies import MINUTE, MONDAY, approved, booking, contact, context, inmate, request

NOW = MONDAY  # Monday 09:00 UTC
LATER = MONDAY + timedelta(hours=2)  # 11:00 the same day


def reason(verdict: Verdict) -> Reason | None:
    return verdict.reason if isinstance(verdict, Deny) else None


# --- R1 / R4: who may be booked ----------------------------------------------------


def test_r1_an_approved_contact_can_be_booked() -> None:
    assert create_booking(request(approved(), LATER), context(), NOW) == ALLOW


@pytest.mark.parametrize(
    "status", [s for s in ContactStatus if s is not ContactStatus.APPROVED], ids=str
)
def test_r1_no_booking_before_an_approving_decision(status: ContactStatus) -> None:
    c = contact(status=status)
    assert reason(create_booking(request(c, LATER), context(), NOW)) is Reason.CONTACT_NOT_APPROVED


def test_r1_a_contact_of_another_inmate_cannot_be_booked() -> None:
    c = approved()
    req = request(c, LATER, inmate=inmate(id="inmate-2"))
    assert reason(create_booking(req, context(), NOW)) is Reason.INVALID_REQUEST


def test_r1_an_inactive_inmate_gets_no_booking() -> None:
    req = request(approved(), LATER, inmate=inmate(active=False))
    assert reason(create_booking(req, context(), NOW)) is Reason.INMATE_INACTIVE


# --- R10: the window ---------------------------------------------------------------


def test_r10_a_window_up_to_the_maximum_is_allowed() -> None:
    # An official contact: no weekly quota (R17) stands in the way of a long call.
    official = approved(Category.OFFICIAL)
    assert create_booking(request(official, LATER, minutes=120), context(), NOW) == ALLOW


@pytest.mark.parametrize("minutes", [0, -30, 121], ids=["empty", "end-before-start", "too-long"])
def test_r10_refuses_an_empty_backwards_or_overlong_window(minutes: int) -> None:
    verdict = create_booking(request(approved(), LATER, minutes=minutes), context(), NOW)
    assert reason(verdict) is Reason.WINDOW_INVALID


def test_r10_the_maximum_is_a_facility_setting() -> None:
    long = FacilitySettings(max_call_minutes=180)
    official = approved(Category.OFFICIAL)
    assert create_booking(request(official, LATER, minutes=180), context(long), NOW) == ALLOW
    verdict = create_booking(request(official, LATER, minutes=181), context(long), NOW)
    assert reason(verdict) is Reason.WINDOW_INVALID


def test_r10_a_window_in_the_past_is_refused() -> None:
    verdict = create_booking(request(approved(), NOW - MINUTE), context(), NOW)
    assert reason(verdict) is Reason.OUTSIDE_WINDOW
    assert create_booking(request(approved(), NOW), context(), NOW) == ALLOW


def test_r10_times_without_a_zone_are_refused() -> None:
    naive = LATER.replace(tzinfo=None)
    req = request(approved(), naive)
    assert reason(create_booking(req, context(), NOW)) is Reason.INVALID_REQUEST


# --- R12: where the call takes place -------------------------------------------------


def test_r12_a_call_in_one_of_the_facility_rooms_is_allowed() -> None:
    req = request(approved(), LATER, location_kind=LocationKind.ROOM, location="visit-room-2")
    assert create_booking(req, context(), NOW) == ALLOW


def test_r12_an_unknown_room_or_no_location_is_refused() -> None:
    req = request(approved(), LATER, location_kind=LocationKind.ROOM, location="gym")
    assert reason(create_booking(req, context(), NOW)) is Reason.INVALID_REQUEST
    req = request(approved(), LATER, location=" ")
    assert reason(create_booking(req, context(), NOW)) is Reason.INVALID_REQUEST


# --- R15: closures and order deadlines --------------------------------------------------

DEADLINE = MONDAY + timedelta(days=2)
WEEK_29 = Closure(
    id="week-29",
    start=MONDAY + timedelta(days=7),
    end=MONDAY + timedelta(days=14),
    order_deadline=DEADLINE,
    note="summer",
)
CLOSED = FacilitySettings(closures=(WEEK_29,))


def test_r15_a_window_inside_a_closure_is_refused() -> None:
    req = request(approved(), WEEK_29.start + timedelta(hours=3))
    assert reason(create_booking(req, context(CLOSED), NOW)) is Reason.FACILITY_CLOSED


def test_r15_a_window_touching_the_closure_start_is_refused_but_one_ending_there_is_not() -> None:
    c = approved()
    across = request(c, WEEK_29.start - 10 * MINUTE)
    assert reason(create_booking(across, context(CLOSED), NOW)) is Reason.FACILITY_CLOSED
    before = request(c, WEEK_29.start - 30 * MINUTE)
    assert create_booking(before, context(CLOSED), NOW) == ALLOW
    after = request(c, WEEK_29.end)
    assert create_booking(after, context(CLOSED), NOW) == ALLOW


def test_r15_staff_may_book_a_closed_period_with_an_override() -> None:
    req = request(approved(), WEEK_29.start + timedelta(hours=3), override_closure=True)
    assert create_booking(req, context(CLOSED), NOW) == ALLOW


def test_r15_inmate_orders_close_at_the_order_deadline() -> None:
    c = approved()
    wish = request(c, WEEK_29.start - timedelta(days=1), initiation=Initiation.INMATE)
    assert create_booking(wish, context(CLOSED), DEADLINE - MINUTE) == ALLOW
    verdict = create_booking(wish, context(CLOSED), DEADLINE)
    assert reason(verdict) is Reason.ORDER_DEADLINE_PASSED


def test_r15_the_order_deadline_does_not_bind_staff_or_later_periods() -> None:
    c = approved()
    after_deadline = DEADLINE + MINUTE
    by_staff = request(c, WEEK_29.start - timedelta(days=1), initiation=Initiation.STAFF)
    assert create_booking(by_staff, context(CLOSED), after_deadline) == ALLOW
    after_closure = request(c, WEEK_29.end + timedelta(hours=1), initiation=Initiation.INMATE)
    assert create_booking(after_closure, context(CLOSED), after_deadline) == ALLOW


def test_r15_closed_at_finds_the_closure_in_force() -> None:
    assert closed_at(CLOSED, WEEK_29.start) == WEEK_29
    assert closed_at(CLOSED, WEEK_29.end) is None
    assert closed_at(CLOSED, NOW) is None


# --- R16: restrictions ---------------------------------------------------------------

OUTBREAK = Restriction(
    id="outbreak",
    start=MONDAY + timedelta(days=1),
    end=MONDAY + timedelta(days=3),
    kind=RestrictionKind.SUSPEND,
    note="norovirus",
)
SHORT_CALLS = Restriction(
    id="short",
    start=MONDAY + timedelta(days=3),
    end=MONDAY + timedelta(days=5),
    kind=RestrictionKind.LIMIT,
    limit_minutes=20,
)
RESTRICTED = FacilitySettings(restrictions=(OUTBREAK, SHORT_CALLS))


def test_r16_a_suspension_refuses_bookings_even_with_an_override() -> None:
    req = request(approved(), OUTBREAK.start + timedelta(hours=1), override_closure=True)
    assert reason(create_booking(req, context(RESTRICTED), NOW)) is Reason.FACILITY_RESTRICTED


def test_r16_a_limit_caps_the_duration() -> None:
    c = approved()
    long = request(c, SHORT_CALLS.start + timedelta(hours=1), minutes=21)
    assert reason(create_booking(long, context(RESTRICTED), NOW)) is Reason.FACILITY_RESTRICTED
    short = request(c, SHORT_CALLS.start + timedelta(hours=1), minutes=20)
    assert create_booking(short, context(RESTRICTED), NOW) == ALLOW


def test_r16_outside_the_restriction_calls_are_booked_as_usual() -> None:
    req = request(approved(), OUTBREAK.start - timedelta(hours=2), minutes=60)
    assert create_booking(req, context(RESTRICTED), NOW) == ALLOW


def test_r16_restricted_at_prefers_a_suspension() -> None:
    overlapping = FacilitySettings(
        restrictions=(
            SHORT_CALLS,
            Restriction("s", SHORT_CALLS.start, SHORT_CALLS.end, RestrictionKind.SUSPEND),
        )
    )
    found = restricted_at(overlapping, SHORT_CALLS.start)
    assert found is not None and found.kind is RestrictionKind.SUSPEND
    assert restricted_at(RESTRICTED, SHORT_CALLS.start) == SHORT_CALLS
    assert restricted_at(RESTRICTED, NOW) is None


# --- R9: capacity -------------------------------------------------------------------


def _others(n: int, start: datetime, **kw: Any) -> tuple[Booking, ...]:
    return tuple(booking(approved(inmate_id=f"inmate-{i + 10}"), start, **kw) for i in range(n))


def test_r9_a_free_tablet_is_needed() -> None:
    settings = FacilitySettings(tablets=2)
    one = _others(1, LATER)
    assert create_booking(request(approved(), LATER), context(settings, one), NOW) == ALLOW
    two = _others(2, LATER + 10 * MINUTE)
    verdict = create_booking(request(approved(), LATER), context(settings, two), NOW)
    assert reason(verdict) is Reason.CAPACITY_TABLETS


def test_r9_cancelled_and_non_overlapping_bookings_free_their_tablet() -> None:
    settings = FacilitySettings(tablets=1)
    cancelled = _others(1, LATER, state=BookingState.CANCELLED)
    adjacent = _others(1, LATER + 30 * MINUTE)
    both = (*cancelled, *adjacent)
    assert create_booking(request(approved(), LATER), context(settings, both), NOW) == ALLOW


def test_r9_a_room_holds_one_call_at_a_time() -> None:
    room = {"location_kind": LocationKind.ROOM, "location": "visit-room-1"}
    taken = _others(1, LATER, **room)
    verdict = create_booking(request(approved(), LATER, **room), context(overlapping=taken), NOW)
    assert reason(verdict) is Reason.CAPACITY_ROOM
    other_room = request(
        approved(), LATER, location_kind=LocationKind.ROOM, location="visit-room-2"
    )
    assert create_booking(other_room, context(overlapping=taken), NOW) == ALLOW


def test_r9_controlled_calls_need_staff_free_to_monitor() -> None:
    settings = FacilitySettings(monitoring_staff=1)
    watched = tuple(
        booking(
            approved(control=ControlLevel.SIGHT, inmate_id="inmate-9"),
            LATER,
            control=ControlLevel.SIGHT,
        )
        for _ in range(1)
    )
    controlled = approved(control=ControlLevel.HEARING)
    verdict = create_booking(request(controlled, LATER), context(settings, watched), NOW)
    assert reason(verdict) is Reason.CAPACITY_MONITORING
    # An uncontrolled call needs nobody watching.
    assert create_booking(request(approved(), LATER), context(settings, watched), NOW) == ALLOW
    # ...and with a second officer free the controlled call fits.
    two = FacilitySettings(monitoring_staff=2)
    assert create_booking(request(controlled, LATER), context(two, watched), NOW) == ALLOW


# --- R17: weekly quotas ---------------------------------------------------------------


def _week(
    c: Contact, minutes: list[int], state: BookingState = BookingState.BOOKED
) -> tuple[Booking, ...]:
    # Earlier bookings in the same week, each on its own day.
    return tuple(
        booking(c, MONDAY + timedelta(days=i, hours=5), minutes=m, state=state)
        for i, m in enumerate(minutes)
    )


def test_r17_calls_fit_within_the_weekly_quota() -> None:
    c = approved()
    week = _week(c, [30])
    req = request(c, LATER, minutes=30)  # 30 + 30 = 60, the default quota
    assert create_booking(req, context(week=week, categories={c.id: c.category}), NOW) == ALLOW


def test_r17_the_weekly_quota_is_exhausted() -> None:
    c = approved()
    week = _week(c, [30, 20])
    req = request(c, LATER, minutes=11)  # 50 + 11 > 60
    verdict = create_booking(req, context(week=week, categories={c.id: c.category}), NOW)
    assert reason(verdict) is Reason.QUOTA_EXHAUSTED


def test_r17_the_quota_is_shared_across_personal_contacts() -> None:
    a, b = approved(), approved()
    week = _week(a, [60])
    verdict = create_booking(
        request(b, LATER, minutes=1),
        context(week=week, categories={a.id: a.category}),
        NOW,
    )
    assert reason(verdict) is Reason.QUOTA_EXHAUSTED


def test_r17_parents_get_the_larger_quota_for_calls_with_their_children() -> None:
    child = approved(relation=Relation.CHILD)
    week = _week(child, [60, 30])
    ctx = context(week=week, categories={child.id: child.category})
    assert create_booking(request(child, LATER, minutes=30), ctx, NOW) == ALLOW  # 120
    verdict = create_booking(request(child, LATER, minutes=31), ctx, NOW)
    assert reason(verdict) is Reason.QUOTA_EXHAUSTED
    partner = approved(relation=Relation.PARTNER)
    verdict = create_booking(request(partner, LATER, minutes=30), ctx, NOW)
    assert reason(verdict) is Reason.QUOTA_EXHAUSTED


@pytest.mark.parametrize("category", [c for c in Category if c is not Category.PERSONAL], ids=str)
def test_r17_official_and_privileged_calls_have_no_quota(category: Category) -> None:
    personal = approved()
    week = _week(personal, [60, 60])
    c = approved(category)
    ctx = context(week=week, categories={personal.id: personal.category})
    assert create_booking(request(c, LATER, minutes=120), ctx, NOW) == ALLOW


def test_r17_cancelled_bookings_and_other_weeks_use_no_quota() -> None:
    c = approved()
    cancelled = _week(c, [60], state=BookingState.CANCELLED)
    last_week = (booking(c, MONDAY - timedelta(days=3), minutes=60),)
    other_inmate = (booking(approved(inmate_id="inmate-2"), MONDAY, minutes=60),)
    week = (*cancelled, *last_week, *other_inmate)
    assert create_booking(request(c, LATER, minutes=60), context(week=week), NOW) == ALLOW


def test_r17_bookings_of_unknown_category_count_deny_by_default() -> None:
    c = approved()
    week = _week(c, [60])
    verdict = create_booking(request(c, LATER, minutes=1), context(week=week), NOW)
    assert reason(verdict) is Reason.QUOTA_EXHAUSTED


def test_r17_weeks_are_iso_weeks_in_utc() -> None:
    start, end = week_bounds(MONDAY + timedelta(days=6, hours=14))
    assert start == MONDAY.replace(hour=0) and end == start + timedelta(days=7)
    assert iso_week(MONDAY) == (2026, 10)
    assert iso_week(start - MINUTE) == (2026, 9)


@given(
    used=st.lists(st.integers(min_value=1, max_value=60), max_size=5),
    minutes=st.integers(min_value=1, max_value=120),
    child=st.booleans(),
)
def test_r17_allowed_exactly_when_the_sum_fits(used: list[int], minutes: int, child: bool) -> None:
    c = approved(relation=Relation.CHILD if child else Relation.FRIEND)
    week = _week(c, used)
    ctx = context(
        FacilitySettings(tablets=99),
        week=week,
        categories={c.id: c.category},
    )
    verdict = create_booking(request(c, MONDAY + timedelta(days=6), minutes=minutes), ctx, NOW)
    quota = 120 if child else 60
    assert bool(verdict) == (sum(used) + minutes <= quota)
    if not verdict:
        assert reason(verdict) is Reason.QUOTA_EXHAUSTED


# --- R9 as a property: whatever is already booked, an allowed booking fits ----------------

_slot = st.integers(min_value=0, max_value=8).map(lambda q: LATER + q * 15 * MINUTE)
_existing = st.lists(
    st.tuples(
        _slot,
        st.sampled_from([15, 30, 60]),
        st.sampled_from([(LocationKind.CELL, "cell-1"), (LocationKind.ROOM, "visit-room-1")]),
        st.sampled_from([ControlLevel.NONE, ControlLevel.SIGHT]),
        st.sampled_from([BookingState.BOOKED, BookingState.CANCELLED, BookingState.HELD]),
    ),
    max_size=8,
)


@given(
    existing=_existing,
    start=_slot,
    where=st.sampled_from([(LocationKind.CELL, "cell-2"), (LocationKind.ROOM, "visit-room-1")]),
    control=st.sampled_from(list(ControlLevel)),
    tablets=st.integers(min_value=0, max_value=4),
    staff=st.integers(min_value=0, max_value=2),
)
def test_r9_an_allowed_booking_never_overfills_tablets_rooms_or_monitoring_staff(
    existing: list[tuple[datetime, int, tuple[LocationKind, str], ControlLevel, BookingState]],
    start: datetime,
    where: tuple[LocationKind, str],
    control: ControlLevel,
    tablets: int,
    staff: int,
) -> None:
    booked = tuple(
        booking(
            approved(inmate_id=f"inmate-{n + 10}"),
            s_,
            minutes=m,
            location_kind=w[0],
            location=w[1],
            control=ctl,
            state=state,
        )
        for n, (s_, m, w, ctl, state) in enumerate(existing)
    )
    settings = FacilitySettings(tablets=tablets, monitoring_staff=staff)
    c = approved(Category.OFFICIAL, control=control)
    req = request(c, start, minutes=30, location_kind=where[0], location=where[1])
    verdict = create_booking(req, context(settings, booked), NOW)
    live = [b for b in booked if b.state is not BookingState.CANCELLED]
    overlapping = [b for b in live if b.overlaps(req.start, req.end)]
    fits = (
        len(overlapping) < tablets
        and not (where[0] is LocationKind.ROOM and any(b.location == where[1] for b in overlapping))
        and not (
            control.controlled and sum(1 for b in overlapping if b.control.controlled) >= staff
        )
    )
    assert bool(verdict) == fits
    if not verdict:
        assert reason(verdict) in {
            Reason.CAPACITY_TABLETS,
            Reason.CAPACITY_ROOM,
            Reason.CAPACITY_MONITORING,
        }
