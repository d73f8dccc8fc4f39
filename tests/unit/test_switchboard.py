"""The switchboard stepped by hand, as h11's tests drive two connections: several calls,
tablets and visitors, each event fed with ``now``, each effect read back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from kiosk.domain.model import (
    BookingState,
    CallState,
    Category,
    ControlLevel,
    FacilitySettings,
    MediaKind,
    PoliceClearance,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.reasons import EndReason, Reason
from kiosk.domain.switchboard import Rules, Switchboard
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev
from kiosk.wire.grants import Grant
from kiosk.wire.messages import (
    EndMessage,
    RefusedMessage,
    SdpMessage,
    TabletMessage,
    WaitingMessage,
    WarningMessage,
)

from .board_world import NOW, Prison, Runner
from .strategies import MINUTE


def world() -> tuple[Prison, Runner]:
    prison = Prison()
    return prison, Runner(prison)


def offer(call_id: str) -> SdpMessage:
    return SdpMessage(call_id=call_id, kind="offer", sdp="v=0 offer")


def answer(call_id: str) -> SdpMessage:
    return SdpMessage(call_id=call_id, kind="answer", sdp="v=0 answer")


def refused_code(outcome: object) -> Reason | None:
    refusal = getattr(outcome, "refused", None)
    return None if refusal is None else refusal.reason


def test_two_calls_on_two_tablets_run_and_end_apart() -> None:
    prison, run = world()
    ola, kari = prison.inmate(), prison.inmate()
    t1, t2 = prison.tablet(ola.id), prison.tablet(kari.id)
    b1 = prison.book(prison.contact(ola.id), NOW - 5 * MINUTE)
    b2 = prison.book(prison.contact(kari.id), NOW - 5 * MINUTE)
    first = run.dial(t1.id, b1.id)
    second = run.dial(t2.id, b2.id)
    assert first.call_id and second.call_id and first.call_id != second.call_id
    [g1] = [m for m in run.sent_to_device(t1.id) if isinstance(m, Grant)]
    assert g1.call_id == first.call_id and g1.not_after == prison.bookings[b1.id].end
    run.feed(ev.StaffEnd(first.call_id, "staff-1"))
    assert set(run.board.calls) == {second.call_id}
    assert EndMessage(call_id=first.call_id, reason=EndReason.ENDED_BY_STAFF) in (
        run.sent_to_device(t1.id)
    )
    assert not any(isinstance(m, EndMessage) for m in run.sent_to_device(t2.id))


def test_a_visitor_waiting_gets_the_call_and_the_offer_then_media_connects() -> None:
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    run.feed(ev.DeviceOnline(tablet.id, ola.id))
    seat, joined = run.join(b.id)
    assert joined.refused is None
    assert isinstance(run.sent_to_seat(seat)[0], WaitingMessage)
    assert TabletMessage(ready=True) in run.sent_to_seat(seat)
    call_id = run.dial(tablet.id, b.id).call_id
    assert call_id is not None
    announced = [m for m in run.sent_to_seat(seat) if isinstance(m, fx.AnnounceCall)]
    assert [a.call_id for a in announced] == [call_id]
    run.feed(ev.DeviceSignal(tablet.id, offer(call_id)))
    assert run.sent_to_seat(seat)[-1] == offer(call_id)
    run.feed(ev.VisitorSignal(seat, answer(call_id)))
    assert run.sent_to_device(tablet.id)[-1] == answer(call_id)
    assert run.board.calls[call_id].machine.state is CallState.CONNECTED
    assert run.audited("call.connected")


def test_staff_end_during_a_dial_leaves_no_ghost_and_the_tablet_is_free() -> None:
    """Issue 11, defect 1: the end that comes while the dial is being written wins for good."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    now_booking = prison.book(prison.contact(ola.id), NOW - MINUTE)
    later = prison.book(prison.contact(ola.id), NOW + 2 * MINUTE, minutes=20)
    set_up = run.set_up(tablet.id, now_booking.id)
    assert set_up.call_id is not None
    facts = prison.facts(tablet.id, now_booking.id)  # read before the end, as the runner does
    run.feed(ev.StaffEnd(set_up.call_id, "staff-1"))
    dialled = run.feed(ev.Dial(tablet.id, now_booking.id, facts, "call-late"))
    assert set_up.call_id not in run.board.calls  # never live again
    # The set-up call never connected: the booking is open, the dial is a call of its own.
    assert dialled.call_id == "call-late"
    run.feed(ev.DeviceHangup(tablet.id, "call-late"))
    assert run.board.calls == {}
    run.later(minutes=2)
    assert refused_code(run.dial(tablet.id, later.id)) is None


def test_a_call_set_up_for_later_blocks_nothing_now_and_is_used_when_its_window_opens() -> None:
    """Issue 11, defect 3 (R12)."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    c = prison.contact(ola.id)
    ahead = prison.book(c, NOW + timedelta(hours=4))
    now_booking = prison.book(c, NOW - MINUTE)
    set_up = run.set_up(tablet.id, ahead.id)
    assert set_up.refused is None and set_up.call_id is not None
    dialled = run.dial(tablet.id, now_booking.id)
    assert dialled.refused is None
    run.feed(ev.DeviceHangup(tablet.id, dialled.call_id or ""))
    run.later(hours=4)
    again = run.dial(tablet.id, ahead.id)
    assert again.call_id == set_up.call_id  # the call staff set up, not a new one


def test_two_set_ups_whose_windows_meet_are_never_both_live() -> None:
    """R12 with one live call per tablet: the second set-up ahead is refused, and a
    set-up whose window opens during a dialled call waits for that call to end."""
    prison, run = world()
    prison.settings = replace(prison.settings, weekly_quota_minutes=10**6)  # R17 is not the point
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    c = prison.contact(ola.id)
    first = prison.book(c, NOW + timedelta(hours=4))
    second = prison.book(c, NOW + timedelta(hours=4, minutes=10))
    now_booking = prison.book(c, NOW - MINUTE, minutes=60)
    assert run.set_up(tablet.id, first.id).refused is None
    assert refused_code(run.set_up(tablet.id, second.id)) is Reason.CALL_ALREADY_LIVE
    ahead = prison.book(c, NOW + timedelta(minutes=20))
    waiting = run.set_up(tablet.id, ahead.id)
    dialled = run.dial(tablet.id, now_booking.id)
    assert waiting.refused is None and dialled.refused is None
    run.later(minutes=25)  # the set-up's window is open, the dialled call still under way
    holding = [c for c in run.board.calls.values() if run.board.board.holding(c, run.now)]
    assert [h.id for h in holding] == [dialled.call_id]
    run.feed(ev.DeviceHangup(tablet.id, dialled.call_id or ""))
    assert run.dial(tablet.id, ahead.id).call_id == waiting.call_id


def _remand(p: Prison, i: str, b: str) -> None:
    p.inmates[i] = replace(p.inmates[i], remand=True)


def _inactive(p: Prison, i: str, b: str) -> None:
    p.inmates[i] = replace(p.inmates[i], active=False)


def _suspended(p: Prison, i: str, b: str) -> None:
    r = Restriction("r1", NOW - MINUTE, NOW + timedelta(hours=3), RestrictionKind.SUSPEND)
    p.settings = replace(p.settings, restrictions=(r,))


def _quota_lowered(p: Prison, i: str, b: str) -> None:
    p.settings = replace(p.settings, weekly_quota_minutes=10)


def _held(p: Prison, i: str, b: str) -> None:
    p.set_state(b, BookingState.HELD)


def _cancelled(p: Prison, i: str, b: str) -> None:
    p.set_state(b, BookingState.CANCELLED)


def _over(p: Prison, i: str, b: str) -> None:
    booking = p.bookings[b]
    p.bookings[b] = replace(booking, start=NOW - timedelta(hours=1), end=NOW - MINUTE)


def _reassigned(p: Prison, i: str, b: str) -> None:
    for device_id, device in list(p.devices.items()):
        p.devices[device_id] = replace(device, inmate_id="somebody-else")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_remand, Reason.POLICE_CLEARANCE_MISSING),
        (_inactive, Reason.INMATE_INACTIVE),
        (_suspended, Reason.FACILITY_RESTRICTED),
        (_quota_lowered, Reason.QUOTA_EXHAUSTED),
        (_held, Reason.FACILITY_RESTRICTED),
        (_cancelled, Reason.BOOKING_NOT_ACTIVE),
        (_over, Reason.OUTSIDE_WINDOW),
        (_reassigned, Reason.DEVICE_NOT_ASSIGNED),
    ],
)
def test_set_up_refuses_with_the_reason_a_dial_would_give(
    change: Callable[[Prison, str, str], None], reason: Reason
) -> None:
    """Issue 11, defect 2: one policy for both (R11, R16, R17, R18, an inactive inmate)."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    change(prison, ola.id, b.id)
    assert refused_code(run.set_up(tablet.id, b.id)) is reason
    assert refused_code(run.dial(tablet.id, b.id)) is reason
    assert run.audited("call.set_up_refused") and run.audited("call.dial_refused")
    assert [m.code for m in run.sent_to_device(tablet.id) if isinstance(m, RefusedMessage)] == [
        reason
    ]
    assert run.board.calls == {}


def test_a_set_up_ahead_is_judged_for_its_window_and_a_clearance_given_by_now() -> None:
    prison, run = world()
    ola = prison.inmate(remand=True)
    tablet = prison.tablet(ola.id)
    cleared = PoliceClearance("Oslo PD", NOW - MINUTE)
    ahead = prison.book(prison.contact(ola.id), NOW + timedelta(hours=4), police_clearance=cleared)
    assert run.set_up(tablet.id, ahead.id).refused is None
    promised = PoliceClearance("Oslo PD", NOW + timedelta(hours=1))
    other = prison.book(prison.contact(ola.id), NOW + timedelta(hours=6), police_clearance=promised)
    assert refused_code(run.set_up(tablet.id, other.id)) is Reason.POLICE_CLEARANCE_MISSING


def test_one_live_call_per_tablet_and_per_inmate() -> None:
    prison, run = world()
    ola = prison.inmate()
    t1, t2 = prison.tablet(ola.id), prison.tablet(ola.id)
    b1 = prison.book(prison.contact(ola.id), NOW - MINUTE)
    b2 = prison.book(prison.contact(ola.id), NOW - MINUTE)
    assert run.dial(t1.id, b1.id).refused is None
    assert refused_code(run.dial(t2.id, b2.id)) is Reason.CALL_ALREADY_LIVE  # the inmate's
    assert refused_code(run.dial(t1.id, b2.id)) is Reason.CALL_ALREADY_LIVE  # the tablet's
    assert refused_code(run.set_up(t2.id, b1.id)) is Reason.CALL_ALREADY_LIVE  # the booking's


def test_a_call_that_never_connected_leaves_the_booking_open() -> None:
    """Issue 16, item 1: the inmate may call again inside the window; staff may set it up."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    seat, _ = run.join(b.id)
    first = run.dial(tablet.id, b.id).call_id
    assert first is not None
    run.feed(ev.DeviceHangup(tablet.id, first))
    # Nobody answered: the visitor is back in the waiting room, not at the end.
    assert isinstance(run.sent_to_seat(seat)[-1], WaitingMessage)
    assert prison.bookings[b.id].state is BookingState.BOOKED
    second = run.dial(tablet.id, b.id)
    assert second.refused is None and second.call_id != first
    assert second.call_id is not None
    assert run.board.calls[second.call_id].not_after == b.end  # R10: the window's end stays
    run.feed(ev.StaffEnd(second.call_id, "staff-1"))
    assert run.set_up(tablet.id, b.id).refused is None


def test_a_connected_call_uses_the_booking_even_before_the_store_says_so() -> None:
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    seat, _ = run.join(b.id)
    stale = prison.facts(tablet.id, b.id)  # read before the call ended
    call_id = run.dial(tablet.id, b.id).call_id or ""
    run.feed(ev.VisitorSignal(seat, answer(call_id)))
    run.feed(ev.VisitorHangup(seat, call_id))
    assert isinstance(run.sent_to_seat(seat)[-1], EndMessage)
    late = run.feed(ev.Dial(tablet.id, b.id, stale, "call-again"))
    assert refused_code(late) is Reason.BOOKING_NOT_ACTIVE
    _, joined = run.join(b.id)
    assert refused_code(joined) is Reason.BOOKING_USED


def test_a_restarted_tablet_gets_the_same_call_back_with_the_same_end() -> None:
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    seat, _ = run.join(b.id)
    call_id = run.dial(tablet.id, b.id).call_id or ""
    run.feed(ev.DeviceSignal(tablet.id, offer(call_id)))
    run.feed(ev.VisitorSignal(seat, answer(call_id)))
    run.later(minutes=3)
    again = run.dial(tablet.id, b.id)
    assert again.call_id == call_id
    grants = [m for m in run.sent_to_device(tablet.id) if isinstance(m, Grant)]
    assert [g.call_id for g in grants] == [call_id, call_id]
    assert grants[0].not_after == grants[1].not_after
    assert len(run.audited("call.granted_again")) == 1


def test_a_visitor_who_drops_comes_back_to_the_same_call() -> None:
    """Issue 16, item 5: the same call, the same end time."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    seat, _ = run.join(b.id)
    call_id = run.dial(tablet.id, b.id).call_id or ""
    run.feed(ev.DeviceSignal(tablet.id, offer(call_id)))
    run.feed(ev.VisitorSignal(seat, answer(call_id)))
    run.feed(ev.VisitorLeft(seat))
    assert run.board.calls[call_id].machine.state is CallState.RINGING
    back, joined = run.join(b.id)
    assert joined.refused is None
    [announced] = [m for m in run.sent_to_seat(back) if isinstance(m, fx.AnnounceCall)]
    assert announced.call_id == call_id and announced.not_after == b.end
    run.feed(ev.DeviceSignal(tablet.id, offer(call_id)))  # the tablet's renewed connection
    assert run.sent_to_seat(back)[-1] == offer(call_id)
    run.feed(ev.VisitorSignal(back, answer(call_id)))
    assert run.board.calls[call_id].machine.state is CallState.CONNECTED


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (BookingState.USED, Reason.BOOKING_USED),
        (BookingState.CANCELLED, Reason.BOOKING_CANCELLED),
        (BookingState.HELD, Reason.FACILITY_RESTRICTED),
    ],
)
def test_an_invite_for_a_booking_that_is_over_or_off_is_refused(
    state: BookingState, reason: Reason
) -> None:
    """Issue 12, item 6."""
    prison, run = world()
    ola = prison.inmate()
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    prison.set_state(b.id, state)
    _, joined = run.join(b.id)
    assert refused_code(joined) is reason
    assert run.board.seats == {}


def test_one_page_per_invite_and_only_around_the_window() -> None:
    prison, run = world()
    ola = prison.inmate()
    b = prison.book(prison.contact(ola.id), NOW + timedelta(hours=1))
    _, early = run.join(b.id)
    assert refused_code(early) is Reason.OUTSIDE_WINDOW
    run.later(minutes=50)
    _, first = run.join(b.id)
    _, second = run.join(b.id)
    assert first.refused is None and refused_code(second) is Reason.CONFLICT


def test_the_visitor_hears_when_the_tablet_is_ready_and_the_tablet_that_they_wait() -> None:
    """Issue 16, item 2."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    seat, _ = run.join(b.id)
    assert TabletMessage(ready=False) in run.sent_to_seat(seat)
    assert run.board.waiting_bookings() == {b.id}
    online = run.feed(ev.DeviceOnline(tablet.id, ola.id))
    assert run.sent_to_seat(seat)[-1] == TabletMessage(ready=True)
    assert fx.PushState(tablet.id) in online.effects
    run.feed(ev.LinkLost(tablet.id))
    assert run.sent_to_seat(seat)[-1] == TabletMessage(ready=False)
    run.feed(ev.DeviceOnline(tablet.id, ola.id))
    left = run.feed(ev.VisitorLeft(seat))
    assert fx.PushState(tablet.id) in left.effects and run.board.waiting_bookings() == set()


def test_warnings_then_the_end_at_the_window_s_end() -> None:
    """R10: warned at 5 and 1 minutes left, ended at the end, at both ends."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE, minutes=12)
    seat, _ = run.join(b.id)
    call_id = run.dial(tablet.id, b.id).call_id or ""
    run.feed(ev.VisitorSignal(seat, answer(call_id)))
    for expected in (5, 1):
        deadline = run.board.next_deadline()
        assert deadline == b.end - expected * MINUTE
        run.now = deadline
        run.feed(ev.Tick())
        assert run.sent_to_device(tablet.id)[-1] == WarningMessage(
            call_id=call_id, minutes_left=expected
        )
    run.now = run.board.next_deadline() or NOW
    assert run.now == b.end
    run.feed(ev.Tick())
    assert run.sent_to_seat(seat)[-1] == EndMessage(call_id=call_id, reason=EndReason.TIME_UP)
    assert run.board.next_deadline() is None


def test_a_restriction_ends_a_call_or_brings_its_end_forward() -> None:
    """R16."""
    prison, run = world()
    ola, kari = prison.inmate(), prison.inmate()
    t1, t2 = prison.tablet(ola.id), prison.tablet(kari.id)
    b1 = prison.book(prison.contact(ola.id), NOW - MINUTE, minutes=60)
    b2 = prison.book(prison.contact(kari.id), NOW - MINUTE, minutes=60)
    c1 = run.dial(t1.id, b1.id).call_id or ""
    c2 = run.dial(t2.id, b2.id).call_id or ""
    later = Restriction("r", NOW + 20 * MINUTE, NOW + timedelta(hours=2), RestrictionKind.SUSPEND)
    run.feed(ev.RestrictionsChanged(FacilitySettings(restrictions=(later,))))
    assert run.board.next_deadline() == NOW + 20 * MINUTE
    run.now = NOW + 20 * MINUTE
    run.feed(ev.Tick())
    assert run.board.calls == {}
    ends = [e for e in run.of(fx.Persist) if e.call.end_reason is not None]
    assert {(e.call.id, e.call.end_reason) for e in ends} == {
        (c1, EndReason.FACILITY_RESTRICTED),
        (c2, EndReason.FACILITY_RESTRICTED),
    }


def test_revoking_a_tablet_ends_its_calls_and_stopping_ends_all() -> None:
    prison, run = world()
    ola, kari = prison.inmate(), prison.inmate()
    t1, t2 = prison.tablet(ola.id), prison.tablet(kari.id)
    b1 = prison.book(prison.contact(ola.id), NOW - MINUTE)
    b2 = prison.book(prison.contact(kari.id), NOW + timedelta(hours=2))
    run.dial(t1.id, b1.id)
    run.set_up(t2.id, b2.id)
    run.feed(ev.Revoke(t1.id))
    assert [c.device_id for c in run.board.calls.values()] == [t2.id]
    stop = run.feed(ev.Stop())
    assert run.board.calls == {}
    assert not any(isinstance(e, fx.PushState) for e in stop.effects)
    reasons = {e.call.end_reason for e in run.of(fx.Persist) if e.call.end_reason}
    assert reasons == {EndReason.DEVICE_REVOKED, EndReason.SERVER_RESTARTED}


def test_a_breach_is_recorded_and_closes_the_booking() -> None:
    """R14."""
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id), NOW - MINUTE)
    call_id = run.dial(tablet.id, b.id).call_id or ""
    run.feed(ev.StaffEnd(call_id, "staff-7", breach=True, note="showed a weapon"))
    [breach] = run.of(fx.RecordBreach)
    assert breach.staff_id == "staff-7" and breach.note == "showed a weapon"
    assert prison.bookings[b.id].state is BookingState.USED
    refused = run.feed(ev.StaffEnd(call_id, "staff-7"))
    assert refused_code(refused) is Reason.CALL_NOT_LIVE
    assert run.audited("call.end_refused")


def _bridged(rules: Rules | None = None) -> tuple[Prison, Runner, str, str, str]:
    prison = Prison()
    run = Runner(prison, Switchboard(rules))
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id, control=ControlLevel.SIGHT_AND_HEARING), NOW - MINUTE)
    seat, _ = run.join(b.id)
    dialled = run.dial(tablet.id, b.id)
    call_id = dialled.call_id or ""
    assert fx.OpenBridge(call_id, Category.PERSONAL, b.end) in dialled.effects
    assert not any(isinstance(m, Grant) for m in run.sent_to_device(tablet.id))
    run.feed(ev.BridgeOpened(call_id))
    assert [m.call_id for m in run.sent_to_device(tablet.id) if isinstance(m, Grant)] == [call_id]
    return prison, run, tablet.id, seat, call_id


def test_a_controlled_call_goes_through_the_bridge_leg_by_leg() -> None:
    """Principle 3: the grant waits for the bridge; the bridge answers and offers."""
    _, run, tablet, seat, call_id = _bridged()
    asked = run.feed(ev.DeviceSignal(tablet, offer(call_id)))
    assert asked.effects == [fx.BridgeTabletOffer(call_id, "v=0 offer")]
    answered = run.feed(ev.BridgeAnswered(call_id, "v=0 bridge"))
    assert fx.BridgeOfferVisitor(call_id) in answered.effects
    run.feed(ev.BridgeOffered(call_id, "v=0 to visitor"))
    assert run.sent_to_seat(seat)[-1] == SdpMessage(
        call_id=call_id, kind="offer", sdp="v=0 to visitor"
    )
    took = run.feed(ev.VisitorSignal(seat, answer(call_id)))
    assert took.effects == [fx.BridgeVisitorAnswer(call_id, "v=0 answer")]
    run.feed(ev.BridgeConnected(call_id))
    assert run.board.calls[call_id].machine.state is CallState.CONNECTED
    run.feed(ev.VisitorLeft(seat))  # fail closed: no visitor leg, no call
    assert run.board.calls == {}
    assert fx.CloseBridge(call_id) in run.effects


def test_monitors_are_capped_and_an_offer_never_answered_is_dropped() -> None:
    """Issue 12, item 10; R6."""
    rules = Rules(max_monitors=2, monitor_answer_within=timedelta(seconds=30))
    _, run, _, _, call_id = _bridged(rules)
    video = frozenset({MediaKind.VIDEO})
    for n in (1, 2):
        assert run.feed(ev.AttachMonitor(call_id, "officer", video)).refused is None
        run.feed(ev.MonitorOffered(call_id, f"m{n}", "officer", video))
    full = run.feed(ev.AttachMonitor(call_id, "officer", video))
    assert refused_code(full) is Reason.MONITOR_LIMIT_REACHED
    assert run.audited("monitor.refused")[-1].details["reason"] == "monitor_limit_reached"
    assert run.feed(ev.AnswerMonitor(call_id, "m1", "officer")).refused is None
    run.feed(ev.MonitorAnswered(call_id, "m1"))
    assert refused_code(run.feed(ev.AnswerMonitor(call_id, "m2", "someone"))) is (
        Reason.CALL_NOT_LIVE
    )
    run.now = run.board.next_deadline() or NOW
    dropped = run.feed(ev.Tick())
    assert fx.DropMonitor(call_id, "m2") in dropped.effects
    assert list(run.board.calls[call_id].monitors) == ["m1"]


@pytest.mark.parametrize("category", [Category.DEFENCE_COUNSEL, Category.POLICE])
def test_r13_a_privileged_call_refuses_every_monitor_and_each_refusal_is_audited(
    category: Category,
) -> None:
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id, category=category), NOW - MINUTE)
    dialled = run.dial(tablet.id, b.id)
    assert not any(isinstance(e, fx.OpenBridge) for e in dialled.effects)
    for kinds in ({MediaKind.VIDEO}, {MediaKind.AUDIO}):
        out = run.feed(ev.AttachMonitor(dialled.call_id or "", "officer", frozenset(kinds)))
        assert refused_code(out) is Reason.PRIVILEGED_NO_MONITOR
    assert len(run.audited("monitor.refused")) == 2


def test_without_a_bridge_a_controlled_call_is_refused() -> None:
    prison = Prison()
    run = Runner(prison, Switchboard(Rules(bridge_available=False)))
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    b = prison.book(prison.contact(ola.id, control=ControlLevel.SIGHT), NOW - MINUTE)
    assert refused_code(run.dial(tablet.id, b.id)) is Reason.BRIDGE_UNAVAILABLE
    assert refused_code(run.set_up(tablet.id, b.id)) is Reason.BRIDGE_UNAVAILABLE


def test_a_booking_the_store_does_not_have_is_refused_as_not_found() -> None:
    prison, run = world()
    tablet = prison.tablet(prison.inmate().id)
    missing = run.feed(ev.Dial(tablet.id, "no-such", Reason.BOOKING_NOT_FOUND, "call-x"))
    assert refused_code(missing) is Reason.BOOKING_NOT_FOUND
    assert run.sent_to_device(tablet.id)[-1].code is Reason.BOOKING_NOT_FOUND
    assert run.board.calls == {}


def test_r13_a_privileged_call_s_end_asks_for_a_signed_tree_head() -> None:
    prison, run = world()
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    lawyer = prison.book(prison.contact(ola.id, Category.DEFENCE_COUNSEL), NOW - MINUTE)
    sister = prison.book(prison.contact(ola.id), NOW + 40 * MINUTE)
    ended = run.feed(ev.DeviceHangup(tablet.id, run.dial(tablet.id, lawyer.id).call_id or ""))
    assert fx.Checkpoint() in ended.effects
    run.later(minutes=40)
    ended = run.feed(ev.DeviceHangup(tablet.id, run.dial(tablet.id, sister.id).call_id or ""))
    assert fx.Checkpoint() not in ended.effects
