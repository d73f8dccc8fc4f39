"""Dialling: every check of policy.place_call, allowed and refused, and their order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.model import (
    BookingState,
    Category,
    ContactStatus,
    FacilitySettings,
    Relation,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.policy import ALLOW, Deny, Verdict, call_deadline, place_call
from kiosk.domain.reasons import Reason

from .strategies import (
    MINUTE,
    MONDAY,
    approved,
    booking,
    clearance,
    contact,
    device,
    dial_context,
    inmate,
)

START = MONDAY + timedelta(hours=2)
INSIDE = START + 10 * MINUTE


def reason(verdict: Verdict) -> Reason | None:
    return verdict.reason if isinstance(verdict, Deny) else None


def test_r1_an_approved_contact_inside_its_window_may_be_called() -> None:
    c = approved()
    assert place_call(dial_context(c, booking(c, START)), INSIDE) == ALLOW


@pytest.mark.parametrize(
    "status", [s for s in ContactStatus if s is not ContactStatus.APPROVED], ids=str
)
def test_r1_no_call_to_a_contact_without_an_approving_decision(status: ContactStatus) -> None:
    c = contact(status=status)
    verdict = place_call(dial_context(c, booking(c, START)), INSIDE)
    assert reason(verdict) is Reason.CONTACT_NOT_APPROVED


def test_r8_a_contact_refused_on_appeal_is_no_longer_called() -> None:
    """R8: the booking was made while approved; the decision in force now refuses."""
    c = approved()
    b = booking(c, START)
    from .strategies import refused

    now_refused = refused(id=c.id)
    assert reason(place_call(dial_context(now_refused, b), INSIDE)) is Reason.CONTACT_NOT_APPROVED


# --- R10: the window ------------------------------------------------------------


def test_r10_calls_only_inside_the_window() -> None:
    c = approved()
    b = booking(c, START, minutes=30)
    ctx = dial_context(c, b)
    assert place_call(ctx, START) == ALLOW
    assert place_call(ctx, b.end - timedelta(seconds=1)) == ALLOW
    assert reason(place_call(ctx, START - timedelta(seconds=1))) is Reason.OUTSIDE_WINDOW
    assert reason(place_call(ctx, b.end)) is Reason.OUTSIDE_WINDOW


@given(offset=st.integers(min_value=-120, max_value=120))
def test_r10_allowed_exactly_inside_start_to_end(offset: int) -> None:
    c = approved()
    b = booking(c, START, minutes=30)
    now = START + offset * MINUTE
    assert bool(place_call(dial_context(c, b), now)) == (b.start <= now < b.end)


# --- bookings -----------------------------------------------------------------------


def test_somebody_elses_booking_is_not_found_either() -> None:
    c = approved()
    others = booking(approved(inmate_id="inmate-2"), START)
    assert reason(place_call(dial_context(c, others), INSIDE)) is Reason.BOOKING_NOT_FOUND
    other_contact = booking(approved(), START)
    assert reason(place_call(dial_context(c, other_contact), INSIDE)) is Reason.BOOKING_NOT_FOUND


@pytest.mark.parametrize("state", [BookingState.CANCELLED, BookingState.USED], ids=str)
def test_cancelled_or_used_bookings_are_not_called(state: BookingState) -> None:
    c = approved()
    verdict = place_call(dial_context(c, booking(c, START, state=state)), INSIDE)
    assert reason(verdict) is Reason.BOOKING_NOT_ACTIVE


def test_r16_a_booking_held_by_a_restriction_is_refused_as_restricted() -> None:
    c = approved()
    verdict = place_call(dial_context(c, booking(c, START, state=BookingState.HELD)), INSIDE)
    assert reason(verdict) is Reason.FACILITY_RESTRICTED


# --- R18: the device --------------------------------------------------------------


def test_r18_the_issued_tablet_assigned_to_the_inmate_may_dial() -> None:
    c = approved()
    ctx = dial_context(c, booking(c, START), device=device(inmate_id=c.inmate_id))
    assert place_call(ctx, INSIDE) == ALLOW


def test_r18_a_revoked_tablet_places_no_call() -> None:
    c = approved()
    ctx = dial_context(c, booking(c, START), device=device(revoked=True))
    assert reason(place_call(ctx, INSIDE)) is Reason.DEVICE_REVOKED


def test_r18_only_the_tablet_assigned_to_the_inmate() -> None:
    c = approved()
    for assigned in (None, "inmate-2"):
        ctx = dial_context(c, booking(c, START), device=device(inmate_id=assigned))
        assert reason(place_call(ctx, INSIDE)) is Reason.DEVICE_NOT_ASSIGNED


def test_an_inactive_inmate_places_no_call() -> None:
    c = approved()
    ctx = dial_context(c, booking(c, START), inmate=inmate(active=False))
    assert reason(place_call(ctx, INSIDE)) is Reason.INMATE_INACTIVE


# --- R11: remand ----------------------------------------------------------------------


def test_r11_a_remand_call_needs_police_clearance() -> None:
    c = approved()
    remand = inmate(remand=True)
    ctx = dial_context(c, booking(c, START), inmate=remand)
    assert reason(place_call(ctx, INSIDE)) is Reason.POLICE_CLEARANCE_MISSING


def test_r11_a_cleared_remand_call_goes_ahead() -> None:
    c = approved()
    remand = inmate(remand=True)
    ctx = dial_context(c, booking(c, START, police_clearance=clearance()), inmate=remand)
    assert place_call(ctx, INSIDE) == ALLOW


def test_r11_the_clearance_comes_beforehand() -> None:
    c = approved()
    late = clearance(at=INSIDE + MINUTE)
    ctx = dial_context(c, booking(c, START, police_clearance=late), inmate=inmate(remand=True))
    assert reason(place_call(ctx, INSIDE)) is Reason.POLICE_CLEARANCE_MISSING


def test_r11_sentenced_inmates_need_no_clearance() -> None:
    c = approved()
    ctx = dial_context(c, booking(c, START), inmate=inmate(remand=False))
    assert place_call(ctx, INSIDE) == ALLOW


# --- R16: restrictions at dial time ---------------------------------------------------------


def test_r16_a_suspension_declared_after_booking_stops_the_call() -> None:
    c = approved()
    outbreak = Restriction(
        "r", START - timedelta(days=1), START + timedelta(days=1), RestrictionKind.SUSPEND
    )
    ctx = dial_context(c, booking(c, START), settings=FacilitySettings(restrictions=(outbreak,)))
    assert reason(place_call(ctx, INSIDE)) is Reason.FACILITY_RESTRICTED


def test_r16_a_suspension_over_by_now_does_not() -> None:
    c = approved()
    earlier = Restriction(
        "r", START - timedelta(days=2), START - timedelta(days=1), RestrictionKind.SUSPEND
    )
    ctx = dial_context(c, booking(c, START), settings=FacilitySettings(restrictions=(earlier,)))
    assert place_call(ctx, INSIDE) == ALLOW


def test_r16_a_limit_shortens_the_call_and_refuses_once_the_time_is_spent() -> None:
    c = approved()
    limit = Restriction("r", START, START + timedelta(days=1), RestrictionKind.LIMIT, 20)
    settings = FacilitySettings(restrictions=(limit,))
    b = booking(c, START, minutes=30)
    ctx = dial_context(c, b, settings=settings)
    assert place_call(ctx, INSIDE) == ALLOW
    assert call_deadline(b, settings, INSIDE) == START + 20 * MINUTE
    assert reason(place_call(ctx, START + 20 * MINUTE)) is Reason.FACILITY_RESTRICTED


def test_r16_call_deadline_is_the_window_end_without_restrictions() -> None:
    c = approved()
    b = booking(c, START, minutes=30)
    assert call_deadline(b, FacilitySettings(), INSIDE) == b.end


def test_r16_a_suspension_later_in_the_window_ends_the_call_where_it_begins() -> None:
    c = approved()
    b = booking(c, START, minutes=30)
    later = Restriction(
        "r", START + 20 * MINUTE, START + timedelta(days=1), RestrictionKind.SUSPEND
    )
    settings = FacilitySettings(restrictions=(later,))
    assert place_call(dial_context(c, b, settings=settings), INSIDE) == ALLOW
    assert call_deadline(b, settings, INSIDE) == later.start


def test_r16_a_limit_starting_inside_the_window_counts_from_its_start() -> None:
    c = approved()
    b = booking(c, START, minutes=60)
    limit = Restriction(
        "r", START + 30 * MINUTE, START + timedelta(days=1), RestrictionKind.LIMIT, 20
    )
    settings = FacilitySettings(restrictions=(limit,))
    assert call_deadline(b, settings, INSIDE) == START + 50 * MINUTE


def test_r15_closures_govern_booking_not_dialling() -> None:
    """A booking that exists was made while open or with an override (R15)."""
    from kiosk.domain.model import Closure

    c = approved()
    closure = Closure("c", START - timedelta(days=1), START + timedelta(days=1))
    ctx = dial_context(c, booking(c, START), settings=FacilitySettings(closures=(closure,)))
    assert place_call(ctx, INSIDE) == ALLOW


# --- R17: quota at dial time ------------------------------------------------------------------


def test_r17_a_lowered_quota_stops_the_call() -> None:
    c = approved()
    b = booking(c, START, minutes=30)
    earlier = booking(c, MONDAY - timedelta(hours=5), minutes=30)
    week = (earlier, b)
    assert place_call(dial_context(c, b, week_bookings=week), INSIDE) == ALLOW  # 60 of 60
    lowered = FacilitySettings(weekly_quota_minutes=45)
    ctx = dial_context(c, b, week_bookings=week, settings=lowered)
    assert reason(place_call(ctx, INSIDE)) is Reason.QUOTA_EXHAUSTED


def test_r17_the_booking_dialled_is_counted_once() -> None:
    c = approved()
    b = booking(c, START, minutes=60)
    assert place_call(dial_context(c, b, week_bookings=(b,)), INSIDE) == ALLOW


def test_r17_parents_and_non_personal_calls() -> None:
    child = approved(relation=Relation.CHILD)
    b = booking(child, START, minutes=90)
    assert place_call(dial_context(child, b), INSIDE) == ALLOW  # 90 of 120
    lawyer = approved(Category.DEFENCE_COUNSEL)
    b = booking(lawyer, START, minutes=120)
    assert place_call(dial_context(lawyer, b), INSIDE) == ALLOW


# --- one live call ---------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["inmate", "device"])
def test_only_one_live_call_at_a_time(who: str) -> None:
    c = approved()
    ctx = dial_context(c, booking(c, START), **{f"{who}_has_live_call": True})
    assert reason(place_call(ctx, INSIDE)) is Reason.CALL_ALREADY_LIVE


# --- the order the checks speak in -------------------------------------------------------------


def test_the_checks_speak_in_the_documented_order() -> None:
    """Each fault is reported only once every earlier check passes."""
    c = contact(status=ContactStatus.AWAITING_ASSESSMENT, inmate_id="inmate-1")
    b = booking(c, START, state=BookingState.CANCELLED)
    suspended = FacilitySettings(
        weekly_quota_minutes=1,
        restrictions=(Restriction("r", START, START + timedelta(days=1), RestrictionKind.SUSPEND),),
    )
    faults: list[tuple[Reason, dict[str, object]]] = [
        (Reason.DEVICE_REVOKED, {"device": device(revoked=True, inmate_id=None)}),
        (Reason.DEVICE_NOT_ASSIGNED, {"device": device(inmate_id=None)}),
        (Reason.INMATE_INACTIVE, {"inmate": inmate(active=False, remand=True)}),
        (Reason.BOOKING_NOT_FOUND, {"booking": booking(approved(inmate_id="other"), START)}),
        (Reason.BOOKING_NOT_ACTIVE, {"booking": b}),
        (Reason.CONTACT_NOT_APPROVED, {"contact": c}),
        (Reason.OUTSIDE_WINDOW, {"now": START - MINUTE}),
        (Reason.POLICE_CLEARANCE_MISSING, {"inmate": inmate(remand=True)}),
        (Reason.FACILITY_RESTRICTED, {"settings": suspended}),
        (Reason.QUOTA_EXHAUSTED, {"settings": FacilitySettings(weekly_quota_minutes=1)}),
        (Reason.CALL_ALREADY_LIVE, {"inmate_has_live_call": True}),
    ]
    good = approved(id=c.id)
    good_booking = booking(good, START)
    for i, (expected, _) in enumerate(faults):
        # Every fault from this one on is present; the first must win.
        kw: dict[str, object] = {}
        for _, fault in reversed(faults[i:]):
            kw.update(fault)
        now = kw.pop("now", INSIDE)
        kw.setdefault("contact", good)
        kw.setdefault("booking", good_booking)
        ctx = dial_context(good, good_booking, **kw)
        got = reason(place_call(ctx, now))  # type: ignore[arg-type]
        assert got is expected, (expected, got)
