"""The switchboard: the set of live calls as one pure object (ARCHITECTURE.md).

Like h11's connection: events and ``now`` go in (:meth:`Switchboard.handle`),
effects come out, and :meth:`next_deadline` says when to wake it with a
``Tick``. It holds every rule about the set: one live call per tablet and
per inmate (a call set up ahead blocks nothing until its window opens), the
call set up in advance (R12), the rejoin of a lost tablet, the visitor
waiting and the offer held for them, the monitors of a call. Each call's own
life is its :class:`~kiosk.domain.callstate.CallMachine`.

Nothing here awaits: one event is one synchronous step, so no two steps
interleave. An ended call is off the board for good; an event naming it is
refused or ignored.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain import callstate as cs
from kiosk.domain import policy
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev
from kiosk.domain.switchboard import legs, monitors, placing
from kiosk.domain.switchboard.adopting import adopt
from kiosk.domain.switchboard.calls import LiveCall, Seat
from kiosk.domain.switchboard.ending import drive, tick
from kiosk.domain.switchboard.state import Board, Outcome, Rules
from kiosk.wire.messages import SdpMessage


class Switchboard:
    """Feed it events with ``now``; carry out the effects it returns."""

    def __init__(self, rules: Rules | None = None) -> None:
        self.board = Board(rules=rules or Rules())

    # --- the one way in ------------------------------------------------------------------

    def handle(self, event: ev.Event, now: datetime) -> Outcome:
        """Apply ``event`` at ``now``: time first (a call past its end ends), then the event."""
        timed = self._tick(ev.Tick(), now) if not isinstance(event, ev.Tick) else Outcome()
        outcome = self._dispatch(event, now)
        outcome.effects[:0] = timed.effects
        return outcome

    def _dispatch(self, event: ev.Event, now: datetime) -> Outcome:
        b = self.board
        match event:
            case ev.Dial():
                return placing.dial(b, event, now)
            case ev.SetUp():
                return placing.set_up(b, event, now)
            case ev.DeviceOnline():
                return self._online(event, now)
            case ev.DeviceAssigned():
                return self._assigned(event, now)
            case ev.LinkLost():
                return self._link_lost(event, now)
            case ev.DeviceSignal():
                return legs.device_signal(b, event, now)
            case ev.DeviceHangup():
                return legs.device_hangup(b, event, now)
            case ev.Revoke():
                return self._revoke(event, now)
            case ev.VisitorJoined():
                return legs.visitor_joined(b, event, now)
            case ev.VisitorLeft():
                return legs.visitor_left(b, event.seat_id, now)
            case ev.VisitorSignal():
                return legs.visitor_signal(b, event, now)
            case ev.VisitorHangup():
                return legs.visitor_hangup(b, event, now)
            case ev.StaffEnd():
                return self._staff_end(event, now)
            case ev.AttachMonitor():
                return monitors.attach(b, event, now)
            case ev.MonitorOffered():
                return monitors.offered(b, event, now)
            case ev.MonitorFailed():
                return monitors.failed(b, event, now)
            case ev.AnswerMonitor():
                return monitors.answer(b, event, now)
            case ev.MonitorAnswered():
                return monitors.answered(b, event, now)
            case ev.MonitorGone():
                return monitors.gone(b, event, now)
            case ev.RestrictionsChanged():
                return self._restrictions(event, now)
            case ev.BridgeOpened():
                return self._bridge_opened(event, now)
            case ev.BridgeAnswered():
                return self._bridge_answered(event, now)
            case ev.BridgeOffered():
                return self._bridge_offered(event, now)
            case ev.BridgeConnected():
                return self._bridge_connected(event, now)
            case ev.BridgeFailed():
                return self._bridge_failed(event, now)
            case ev.Tick():
                return self._tick(event, now)
            case ev.Adopt():
                return adopt(b, event, now)
            case ev.Stop():
                return self._stop(event, now)
        raise TypeError(f"not a switchboard event: {event!r}")  # pragma: no cover

    def next_deadline(self) -> datetime | None:
        """When to feed the next ``Tick``: a warning, an end, a restriction, a monitor's wait."""
        due: list[datetime] = []
        for call in self.board.calls.values():
            deadline = call.machine.next_deadline()
            if deadline is not None:
                due.append(deadline)
            if call.restrict_at is not None:
                due.append(call.restrict_at)
            due += [m.answer_by for m in call.monitors.values() if m.answer_by is not None]
        return min(due, default=None)

    # --- what the world may read -----------------------------------------------------

    @property
    def calls(self) -> dict[str, LiveCall]:
        return self.board.calls

    @property
    def seats(self) -> dict[str, Seat]:
        return self.board.seats

    def current_call(self, device_id: str, now: datetime) -> LiveCall | None:
        return self.board.current_call(device_id, now)

    def waiting_bookings(self) -> frozenset[str]:
        """Bookings whose visitor has joined (the waiting room or the call)."""
        return frozenset(s.booking_id for s in self.board.seats.values())

    # --- events handled here ---------------------------------------------------------

    def _online(self, event: ev.DeviceOnline, now: datetime) -> Outcome:
        before = self._ready(event.inmate_id)
        self.board.online[event.device_id] = event.inmate_id
        out = legs.presence(self.board, event.inmate_id, before)
        return Outcome([fx.PushState(event.device_id), *out])

    def _assigned(self, event: ev.DeviceAssigned, now: datetime) -> Outcome:
        out: list[fx.Effect] = [fx.PushState(event.device_id)]
        if event.device_id not in self.board.online:
            return Outcome(out)
        previous = self.board.online[event.device_id]
        before = (self._ready(previous), self._ready(event.inmate_id))
        self.board.online[event.device_id] = event.inmate_id
        out += legs.presence(self.board, previous, before[0])
        out += legs.presence(self.board, event.inmate_id, before[1])
        return Outcome(out)

    def _link_lost(self, event: ev.LinkLost, now: datetime) -> Outcome:
        if event.device_id not in self.board.online:
            return Outcome()
        inmate_id = self.board.online.pop(event.device_id)
        out = legs.presence(self.board, inmate_id, True)
        # A controlled call's media runs through the server: without the link the tablet
        # ends it itself (principle 3), and so does the server. Peer to peer goes on.
        for call in list(self.board.calls_on_device(event.device_id)):
            if call.bridge_open:
                out += drive(self.board, call, cs.BridgeFailed(), now) or []
        return Outcome(out)

    def _ready(self, inmate_id: str | None) -> bool:
        return inmate_id is not None and self.board.tablet_ready(inmate_id)

    def _revoke(self, event: ev.Revoke, now: datetime) -> Outcome:
        out: list[fx.Effect] = []
        for call in list(self.board.calls_on_device(event.device_id)):
            out += drive(self.board, call, cs.Revoke(), now) or []
        return Outcome(out)

    def _staff_end(self, event: ev.StaffEnd, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        actor = f"staff:{event.staff_id}"
        if call is None:
            verdict = policy.deny(Reason.CALL_NOT_LIVE)
            audit = fx.Audit(
                actor, "call.end_refused", {"call": event.call_id}, {"reason": "call_not_live"}
            )
            return Outcome([audit, fx.CountRefusal(verdict.reason)], refused=verdict)
        machine_event = cs.StaffEnd(staff_id=event.staff_id, breach=event.breach)
        return Outcome(
            drive(self.board, call, machine_event, now, actor, event.note) or [], call_id=call.id
        )

    def _restrictions(self, event: ev.RestrictionsChanged, now: datetime) -> Outcome:
        """R16: a restriction over the rest of a call ends it when it begins."""
        out: list[fx.Effect] = []
        for call in list(self.board.calls.values()):
            begins = max(now, call.machine.not_before)
            deadline = policy.call_deadline(call.booking, event.settings, begins)
            if deadline <= begins:
                out += drive(self.board, call, cs.Restrict(), now) or []
            else:
                call.restrict_at = deadline if deadline < call.not_after else None
        return Outcome(out)

    def _bridge_opened(self, event: ev.BridgeOpened, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        if call is None:
            return Outcome([fx.CloseBridge(event.call_id)])
        return Outcome(placing.grant_after_bridge(self.board, call, now), call_id=call.id)

    def _bridge_answered(self, event: ev.BridgeAnswered, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        if call is None:
            return Outcome()
        call.tablet_answered = True
        answer = SdpMessage(call_id=call.id, kind="answer", sdp=event.sdp)
        out: list[fx.Effect] = [fx.SendDevice(call.device_id, answer)]
        return Outcome(out + legs.offer_visitor_leg(call), call_id=call.id)

    def _bridge_offered(self, event: ev.BridgeOffered, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        if call is None or call.seat is None:
            return Outcome()
        offer = SdpMessage(call_id=call.id, kind="offer", sdp=event.sdp)
        return Outcome([fx.SendVisitor(call.seat, offer)], call_id=call.id)

    def _bridge_connected(self, event: ev.BridgeConnected, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        if call is None:
            return Outcome()
        return Outcome(legs.connected(self.board, call, now), call_id=call.id)

    def _bridge_failed(self, event: ev.BridgeFailed, now: datetime) -> Outcome:
        call = self.board.calls.get(event.call_id)
        if call is None:
            return Outcome()
        return Outcome(drive(self.board, call, cs.BridgeFailed(), now) or [], call_id=call.id)

    def _tick(self, event: ev.Tick, now: datetime) -> Outcome:
        out: list[fx.Effect] = []
        for call in list(self.board.calls.values()):
            out += tick(self.board, call, now)
            out += monitors.overdue(call, now)
        for booking_id, end in list(self.board.spent.items()):
            if end <= now:  # a past window can be dialled by nobody: forget it
                del self.board.spent[booking_id]
        return Outcome(out)

    def _stop(self, event: ev.Stop, now: datetime) -> Outcome:
        """The server stops: every call ends (a stopping server cannot supervise them)."""
        self.board.stopping = True
        out: list[fx.Effect] = []
        for call in list(self.board.calls.values()):
            out += drive(self.board, call, cs.ServerRestart(), now) or []
        return Outcome(out)
