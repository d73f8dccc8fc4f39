"""The two legs of a call: the tablet's and the visitor's signalling, and presence.

A visitor's page takes a seat in the waiting room of its booking; when the
call is granted the seat is attached to it and told (``AnnounceCall``), and
the tablet's offer is passed on (held until the visitor is there). A
controlled call's SDP goes to the bridge instead, which answers the tablet
and offers to the visitor once both are there.

Presence (issue 16): the visitor is told whether the inmate's tablet is
ready (on line and assigned to the inmate), and the tablet's state says
which bookings' visitors are waiting.
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain import callstate as cs
from kiosk.domain.model import BookingState, Route
from kiosk.domain.policy import deny
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import LiveCall, Seat
from kiosk.domain.switchboard.ending import drive
from kiosk.domain.switchboard.events import (
    DeviceHangup,
    DeviceSignal,
    VisitorHangup,
    VisitorJoined,
    VisitorSignal,
)
from kiosk.domain.switchboard.state import Board, Outcome
from kiosk.wire.messages import (
    ErrorMessage,
    MediaMessage,
    RefusedMessage,
    SdpMessage,
    TabletMessage,
    WaitingMessage,
)

# Issue 12: an invite for a booking that is over or off says so, in words.
NOT_JOINABLE = {
    BookingState.USED: Reason.BOOKING_USED,
    BookingState.CANCELLED: Reason.BOOKING_CANCELLED,
    BookingState.HELD: Reason.FACILITY_RESTRICTED,  # R16
}

# --- the tablet ----------------------------------------------------------------------


def device_signal(board: Board, event: DeviceSignal, now: datetime) -> Outcome:
    message = event.message
    call = board.calls.get(message.call_id)
    if call is None or call.device_id != event.device_id or not call.granted:
        refused = RefusedMessage(
            ref=message.type, code=Reason.CALL_NOT_LIVE, message="The call is not live."
        )
        return Outcome([fx.SendDevice(event.device_id, refused)])
    if isinstance(message, MediaMessage):
        # Issue 16: said to the other side whatever the route (it carries no media itself).
        told: list[fx.Effect] = []
        if call.seat is not None:
            told.append(fx.SendVisitor(call.seat, message))
        return Outcome(told, call_id=call.id)
    if call.route is Route.BRIDGE:
        # aiortc puts every candidate in its SDP: trickled ICE is not needed by the bridge.
        if isinstance(message, SdpMessage) and message.kind == "offer":
            return Outcome([fx.BridgeTabletOffer(call.id, message.sdp)], call_id=call.id)
        return Outcome(call_id=call.id)
    if isinstance(message, SdpMessage) and message.kind == "offer":
        call.held_offer = message
    if call.seat is not None:
        return Outcome([fx.SendVisitor(call.seat, message)], call_id=call.id)
    return Outcome(call_id=call.id)


def device_hangup(board: Board, event: DeviceHangup, now: datetime) -> Outcome:
    call = board.calls.get(event.call_id)
    if call is None or call.device_id != event.device_id:
        return Outcome()
    return Outcome(drive(board, call, cs.Hangup(), now, call.actor_device) or [], call_id=call.id)


def presence(board: Board, inmate_id: str | None, before: bool) -> list[fx.Effect]:
    """Tell the waiting visitors of ``inmate_id`` if their tablet's readiness changed."""
    if inmate_id is None:
        return []
    ready = board.tablet_ready(inmate_id)
    if ready == before:
        return []
    return [
        fx.SendVisitor(s.id, TabletMessage(ready=ready))
        for s in board.seats.values()
        if s.inmate_id == inmate_id
    ]


# --- the visitor ---------------------------------------------------------------------


def visitor_joined(board: Board, event: VisitorJoined, now: datetime) -> Outcome:
    facts = event.facts
    if facts is None:
        return Outcome(refused=deny(Reason.NOT_FOUND, "This invitation is not valid."))
    booking = facts.booking
    state = BookingState.USED if booking.id in board.spent else booking.state
    if state in NOT_JOINABLE:
        return Outcome(refused=deny(NOT_JOINABLE[state]))
    if not facts.valid_at(now):
        return Outcome(refused=deny(Reason.OUTSIDE_WINDOW))
    if any(s.invite_id == facts.invite_id for s in board.seats.values()):
        # One page at a time: a second tab or a forwarded link cannot take over a call.
        return Outcome(refused=deny(Reason.CONFLICT, "This invitation is already in use."))
    seat = Seat(event.seat_id, facts.invite_id, booking.id, facts.contact.id, booking.inmate_id)
    board.seats[seat.id] = seat
    contact = facts.contact
    out: list[fx.Effect] = [
        fx.Audit(
            seat.actor,
            "visitor.joined",
            {"booking": booking.id, "contact": contact.id, "invite": facts.invite_id},
        ),
        fx.SendVisitor(
            seat.id,
            WaitingMessage(
                start=booking.start,
                end=booking.end,
                control=contact.control,
                category=contact.category,
                privileged=contact.category.privileged,
            ),
        ),
        fx.SendVisitor(seat.id, TabletMessage(ready=board.tablet_ready(seat.inmate_id))),
    ]
    call = next(
        (c for c in board.calls_of_booking(booking.id) if c.granted and c.seat is None), None
    )
    if call is not None:
        out += _attach(call, seat)
    out += [fx.PushState(d) for d in board.devices_of(seat.inmate_id)]
    return Outcome(out, call_id=call.id if call is not None else None)


def visitor_left(board: Board, seat_id: str, now: datetime) -> Outcome:
    seat = board.seats.pop(seat_id, None)
    if seat is None:
        return Outcome()
    out: list[fx.Effect] = [fx.PushState(d) for d in board.devices_of(seat.inmate_id)]
    call = board.calls.get(seat.call_id or "")
    if call is None or call.seat != seat.id:
        return Outcome(out)
    call.seat = None
    call.held_offer = None
    if call.route is Route.BRIDGE:
        # Fail closed: a bridged call without its visitor leg is over.
        return Outcome((drive(board, call, cs.BridgeFailed(), now) or []) + out, call_id=call.id)
    # Peer to peer: the call waits inside its window for the visitor to come back.
    moved = drive(board, call, cs.LegLost(), now)
    if moved is not None:
        out = [fx.Persist(call.snapshot()), *moved, *out]
    return Outcome(out, call_id=call.id)


def visitor_signal(board: Board, event: VisitorSignal, now: datetime) -> Outcome:
    message = event.message
    seat = board.seats.get(event.seat_id)
    call = board.calls.get(seat.call_id or "") if seat is not None else None
    if call is None or message.call_id != call.id:
        return Outcome([fx.SendVisitor(event.seat_id, ErrorMessage.of(Reason.CALL_NOT_LIVE))])
    if isinstance(message, MediaMessage):
        # Issue 16: the tablet is told whatever the route (it carries no media itself).
        return Outcome([fx.SendDevice(call.device_id, message)], call_id=call.id)
    if call.route is Route.BRIDGE:
        if isinstance(message, SdpMessage) and message.kind == "answer":
            return Outcome([fx.BridgeVisitorAnswer(call.id, message.sdp)], call_id=call.id)
        return Outcome(call_id=call.id)
    out: list[fx.Effect] = [fx.SendDevice(call.device_id, message)]
    if isinstance(message, SdpMessage) and message.kind == "answer":
        out += connected(board, call, now)
    return Outcome(out, call_id=call.id)


def visitor_hangup(board: Board, event: VisitorHangup, now: datetime) -> Outcome:
    seat = board.seats.get(event.seat_id)
    call = board.calls.get(event.call_id)
    if seat is None or call is None or call.seat != seat.id:
        return Outcome()
    return Outcome(drive(board, call, cs.Hangup(), now, seat.actor) or [], call_id=call.id)


def connected(board: Board, call: LiveCall, now: datetime) -> list[fx.Effect]:
    """Both legs agreed their media: the call is connected (again, after a lost leg)."""
    moved = drive(board, call, cs.Answer(), now)
    if moved is None:
        return []  # already connected: a renewed connection's answer
    if call.connected_at is None:
        call.connected_at = now
    return [
        fx.Persist(call.snapshot()),
        fx.Audit("system", "call.connected", {"call": call.id}, {"route": call.route.value}),
        *moved,
    ]


# --- seats and calls -----------------------------------------------------------------


def attach_waiting_seat(board: Board, call: LiveCall) -> list[fx.Effect]:
    """The call is granted: its visitor, if waiting (or already on it), is told."""
    seat = board.seats.get(call.seat or "")
    if seat is None:
        seat = next((s for s in board.seats_of_booking(call.booking_id) if s.call_id is None), None)
    if seat is None:
        return []
    return _attach(call, seat)


def _attach(call: LiveCall, seat: Seat) -> list[fx.Effect]:
    call.seat = seat.id
    seat.call_id = call.id
    out: list[fx.Effect] = [
        fx.AnnounceCall(seat.id, call.id, call.record.control, call.route, call.not_after)
    ]
    if call.route is Route.BRIDGE:
        out += offer_visitor_leg(call)
    elif call.held_offer is not None:
        out.append(fx.SendVisitor(seat.id, call.held_offer))
    return out


def offer_visitor_leg(call: LiveCall) -> list[fx.Effect]:
    """The bridge offers to the visitor once the tablet's leg is up, whichever came first."""
    if call.seat is None or call.visitor_offered or not call.tablet_answered:
        return []
    call.visitor_offered = True
    return [fx.BridgeOfferVisitor(call.id)]
