"""Interleavings of tablets, visitors, staff, the bridge and the clock, explored by hypothesis.

A small prison (two inmates, three tablets, a personal, a controlled and a
lawyer's contact each) and a switchboard; the machine dials, sets up, joins,
leaves, hangs up, ends, revokes, restricts and lets time pass in any order,
and after every step checks the promises the switchboard makes:

* an ended call is never live again, and its record is never written after its end;
* a call set up for a later window blocks nothing now: every ``call_already_live``
  refusal names a call that holds the tablet or the inmate now (judged here,
  not by the switchboard's own helper);
* at most one call holds a tablet, and one an inmate, at any moment;
* no live call outlives its window's end (R10); every grant is inside its window;
* monitors only on an open bridge of an unprivileged call, never more than allowed (R13);
* a seat and its call point at each other.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kiosk.domain.model import (
    Booking,
    CallState,
    Category,
    ControlLevel,
    FacilitySettings,
    MediaKind,
    Restriction,
    RestrictionKind,
)
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import Outcome, Rules, Switchboard
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev
from kiosk.wire.messages import SdpMessage

from .board_world import NOW, Prison, Runner
from .strategies import MINUTE

RULES = Rules(max_monitors=2, monitor_answer_within=timedelta(seconds=30))
KINDS = st.sampled_from([frozenset({MediaKind.VIDEO}), frozenset({MediaKind.AUDIO})])


class SwitchboardMachine(RuleBasedStateMachine):
    @initialize()
    def prison(self) -> None:
        # A quota nobody reaches: R17 is the policy's own tests' business.
        self.prison = Prison(settings=FacilitySettings(weekly_quota_minutes=10**6))
        self.run = Runner(self.prison, Switchboard(RULES))
        self.inmates = [self.prison.inmate().id for _ in range(2)]
        first, second = self.inmates
        self.tablets = [
            self.prison.tablet(first).id,
            self.prison.tablet(first).id,
            self.prison.tablet(second).id,
        ]
        self.contacts = [
            self.prison.contact(i, category, control).id
            for i in self.inmates
            for category, control in (
                (Category.PERSONAL, ControlLevel.NONE),
                (Category.PERSONAL, ControlLevel.SIGHT),
                (Category.DEFENCE_COUNSEL, ControlLevel.NONE),
            )
        ]
        # Each inmate: a personal and a controlled call open now, a call four hours ahead.
        for i in range(2):
            personal, controlled = (self.prison.contacts[c] for c in self.contacts[3 * i :][:2])
            self.prison.book(personal, NOW - 5 * MINUTE)
            self.prison.book(controlled, NOW - 5 * MINUTE)
            self.prison.book(personal, NOW + timedelta(hours=4))
        self.ended: set[str] = set()
        self.seen = 0  # effects already checked

    # --- the store's side ------------------------------------------------------------

    @rule(
        contact=st.integers(0, 5),
        start=st.one_of(st.integers(-20, 5), st.integers(30, 300)),  # open now, or ahead
        minutes=st.integers(5, 60),
    )
    def book(self, contact: int, start: int, minutes: int) -> None:
        c = self.prison.contacts[self.contacts[contact]]
        self.prison.book(c, self.run.now + start * MINUTE, minutes)

    @rule(suspend=st.booleans(), starts=st.integers(-10, 120), lasts=st.integers(1, 120))
    def restrict(self, suspend: bool, starts: int, lasts: int) -> None:
        start = self.run.now + starts * MINUTE
        kind = RestrictionKind.SUSPEND if suspend else RestrictionKind.LIMIT
        r = Restriction(f"r{starts}", start, start + lasts * MINUTE, kind, limit_minutes=15)
        self.prison.settings = replace(self.prison.settings, restrictions=(r,))
        self.run.feed(ev.RestrictionsChanged(self.prison.settings))

    # --- tablets -----------------------------------------------------------------------

    def draw_tablet_and_booking(self, data: st.DataObject) -> tuple[str, Booking]:
        """Mostly a tablet of the booking's inmate: the interesting dials are the allowed ones."""
        booking = self.prison.bookings[data.draw(st.sampled_from(sorted(self.prison.bookings)))]
        own = [d for d in self.tablets if self.prison.devices[d].inmate_id == booking.inmate_id]
        tablets = st.sampled_from(own) if own else st.sampled_from(self.tablets)
        device = data.draw(st.one_of(tablets, tablets, tablets, st.sampled_from(self.tablets)))
        return device, booking

    @precondition(lambda self: bool(self.prison.bookings))
    @rule(data=st.data())
    def dial(self, data: st.DataObject) -> None:
        device, booking = self.draw_tablet_and_booking(data)
        outcome = self.run.dial(device, booking.id)
        self.check_refusal(outcome, device, booking, dial=True)

    @precondition(lambda self: bool(self.prison.bookings))
    @rule(data=st.data())
    def set_up(self, data: st.DataObject) -> None:
        device, booking = self.draw_tablet_and_booking(data)
        outcome = self.run.set_up(device, booking.id)
        self.check_refusal(outcome, device, booking, dial=False)

    @precondition(lambda self: bool(self.run.board.calls))
    @rule(data=st.data())
    def tablet_offers(self, data: st.DataObject) -> None:
        call = self.run.board.calls[data.draw(st.sampled_from(sorted(self.run.board.calls)))]
        offer = SdpMessage(call_id=call.id, kind="offer", sdp="v=0")
        self.run.feed(ev.DeviceSignal(call.device_id, offer))

    @precondition(lambda self: bool(self.run.board.calls))
    @rule(data=st.data())
    def tablet_hangs_up(self, data: st.DataObject) -> None:
        call = self.run.board.calls[data.draw(st.sampled_from(sorted(self.run.board.calls)))]
        self.run.feed(ev.DeviceHangup(call.device_id, call.id))

    @rule(tablet=st.integers(0, 2), online=st.booleans())
    def link(self, tablet: int, online: bool) -> None:
        device = self.tablets[tablet]
        if online:
            self.run.feed(ev.DeviceOnline(device, self.prison.devices[device].inmate_id))
        else:
            self.run.feed(ev.LinkLost(device))

    @rule(tablet=st.integers(0, 2))
    def revoke(self, tablet: int) -> None:
        self.run.feed(ev.Revoke(self.tablets[tablet]))

    # --- visitors ------------------------------------------------------------------------

    @precondition(lambda self: bool(self.prison.bookings))
    @rule(data=st.data())
    def visitor_joins(self, data: st.DataObject) -> None:
        self.run.join(data.draw(st.sampled_from(sorted(self.prison.bookings))))

    @precondition(lambda self: bool(self.run.board.seats))
    @rule(data=st.data(), how=st.sampled_from(["leave", "answer", "hangup"]))
    def visitor_acts(self, data: st.DataObject, how: str) -> None:
        seat = self.run.board.seats[data.draw(st.sampled_from(sorted(self.run.board.seats)))]
        if how == "leave":
            self.run.feed(ev.VisitorLeft(seat.id))
        elif seat.call_id is not None and how == "answer":
            answer = SdpMessage(call_id=seat.call_id, kind="answer", sdp="v=0")
            self.run.feed(ev.VisitorSignal(seat.id, answer))
        elif seat.call_id is not None:
            self.run.feed(ev.VisitorHangup(seat.id, seat.call_id))

    # --- staff -------------------------------------------------------------------------

    @precondition(lambda self: bool(self.run.board.calls or self.ended))
    @rule(data=st.data(), breach=st.booleans())
    def staff_end(self, data: st.DataObject, breach: bool) -> None:
        known = sorted(self.run.board.calls) + sorted(self.ended)
        call_id = data.draw(st.sampled_from(known))
        outcome = self.run.feed(ev.StaffEnd(call_id, "staff-1", breach=breach))
        assert (outcome.refused is None) == (call_id not in self.ended)

    @precondition(lambda self: bool(self.run.board.calls))
    @rule(data=st.data(), kinds=KINDS, answer=st.booleans())
    def monitor(self, data: st.DataObject, kinds: frozenset[MediaKind], answer: bool) -> None:
        call_id = data.draw(st.sampled_from(sorted(self.run.board.calls)))
        if self.run.feed(ev.AttachMonitor(call_id, "officer", kinds)).refused is not None:
            return
        monitor_id = f"m{len(self.run.effects)}"
        self.run.feed(ev.MonitorOffered(call_id, monitor_id, "officer", kinds))
        if answer:
            assert self.run.feed(ev.AnswerMonitor(call_id, monitor_id, "officer")).refused is None
            self.run.feed(ev.MonitorAnswered(call_id, monitor_id))

    # --- the bridge ------------------------------------------------------------------

    @precondition(lambda self: any(c.bridge_asked for c in self.run.board.calls.values()))
    @rule(data=st.data(), what=st.sampled_from(["opened", "answered", "offered", "connected"]))
    def bridge(self, data: st.DataObject, what: str) -> None:
        asked = sorted(c.id for c in self.run.board.calls.values() if c.bridge_asked)
        call_id = data.draw(st.sampled_from(asked))
        event: ev.Event = {
            "opened": ev.BridgeOpened(call_id),
            "answered": ev.BridgeAnswered(call_id, "v=0"),
            "offered": ev.BridgeOffered(call_id, "v=0"),
            "connected": ev.BridgeConnected(call_id),
        }[what]
        self.run.feed(event)

    @precondition(lambda self: any(c.bridge_asked for c in self.run.board.calls.values()))
    @rule(data=st.data())
    def bridge_fails(self, data: st.DataObject) -> None:
        asked = sorted(c.id for c in self.run.board.calls.values() if c.bridge_asked)
        self.run.feed(ev.BridgeFailed(data.draw(st.sampled_from(asked))))

    # --- time ----------------------------------------------------------------------------

    @rule(minutes=st.integers(1, 60))
    def time_passes(self, minutes: int) -> None:
        self.run.later(minutes=minutes)
        self.run.feed(ev.Tick())

    @precondition(lambda self: self.run.board.next_deadline() is not None)
    @rule()
    def wake_at_the_deadline(self) -> None:
        deadline = self.run.board.next_deadline()
        assert deadline is not None
        self.run.now = max(self.run.now, deadline)  # one in the past is due now
        self.run.feed(ev.Tick())

    # --- the promises ----------------------------------------------------------------

    def holding(self, booking: Booking | None = None) -> list[tuple[str, str, str]]:
        """(call, tablet, inmate) of every call holding its tablet and inmate now,
        judged from the call's state and window (a set-up waits for its window)."""
        now = self.run.now
        calls = self.run.board.calls.values()
        active = (CallState.RINGING, CallState.CONNECTED)
        under_way = [c for c in calls if c.machine.state in active]
        out = [(c.id, c.device_id, c.inmate_id) for c in under_way]
        for c in calls:
            opened = c.machine.state is CallState.READY and c.machine.not_before <= now
            # A set-up whose window opened during a call dialled before it waits for that one.
            behind = any(
                o.device_id == c.device_id or o.inmate_id == c.inmate_id for o in under_way
            )
            if opened and not behind:
                out.append((c.id, c.device_id, c.inmate_id))
        return out

    def check_refusal(self, outcome: Outcome, device: str, booking: Booking, dial: bool) -> None:
        verb = "dial" if dial else "set-up"
        refused = outcome.refused
        event(f"{verb}: {'allowed' if refused is None else refused.reason.value}")
        if outcome.refused is None or outcome.refused.reason is not Reason.CALL_ALREADY_LIVE:
            return
        calls = self.run.board.calls.values()
        taken = [c for c in calls if c.booking_id == booking.id and c.device_id != device]
        if not dial:
            taken += [c for c in calls if c.booking_id == booking.id]
        judged_now = dial or booking.start <= self.run.now
        clash = [
            (call, tablet, inmate)
            for call, tablet, inmate in self.holding()
            if judged_now and (tablet == device or inmate == booking.inmate_id)
        ]
        set_ups = [
            c
            for c in calls
            if not dial
            and c.machine.state is CallState.READY
            and (c.device_id == device or c.inmate_id == booking.inmate_id)
            and c.machine.not_before < booking.end
            and booking.start < c.machine.not_after
        ]
        assert taken or clash or set_ups, "call_already_live, but nothing holds tablet or inmate"

    @invariant()
    def an_ended_call_is_never_live_again(self) -> None:
        if not hasattr(self, "run"):
            return
        for effect in self.run.effects[self.seen :]:
            if isinstance(effect, fx.Persist):
                assert effect.call.id not in self.ended, "a record written after its end"
                if effect.call.end_reason is not None:
                    self.ended.add(effect.call.id)
            if isinstance(effect, fx.SendGrant):
                g = effect.grant
                assert g.call_id not in self.ended, "a grant for an ended call"
                assert g.not_before <= self.run.now < g.not_after  # R10
        self.seen = len(self.run.effects)
        assert not self.ended & set(self.run.board.calls)

    @invariant()
    def one_call_holds_a_tablet_and_an_inmate(self) -> None:
        if not hasattr(self, "run"):
            return
        holding = self.holding()
        tablets = [t for _, t, _ in holding]
        inmates = [i for _, _, i in holding]
        assert len(tablets) == len(set(tablets)) and len(inmates) == len(set(inmates))

    @invariant()
    def no_call_outlives_its_window(self) -> None:
        if not hasattr(self, "run"):
            return
        for call in self.run.board.calls.values():
            assert call.not_after <= call.booking.end
            assert self.run.now < call.not_after or call.machine.state is CallState.READY

    @invariant()
    def monitors_only_where_the_rules_allow(self) -> None:
        if not hasattr(self, "run"):
            return
        for call in self.run.board.calls.values():
            if call.monitors:
                assert call.bridge_open and not call.record.category.privileged  # R13
            assert len(call.monitors) + call.monitors_asked <= RULES.max_monitors

    @invariant()
    def seats_and_calls_agree(self) -> None:
        if not hasattr(self, "run"):
            return
        board = self.run.board
        for call in board.calls.values():
            if call.seat is not None:
                assert board.seats[call.seat].call_id == call.id
        for seat in board.seats.values():
            if seat.call_id is not None:
                assert board.calls[seat.call_id].seat == seat.id


TestSwitchboard = SwitchboardMachine.TestCase
