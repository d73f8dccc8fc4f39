"""Driving one call's state machine, and what its end sets off.

``drive`` feeds an event of :mod:`kiosk.domain.callstate` to a call's machine
and turns the machine's effects into the switchboard's: warnings to both
ends (R10), the breach record (R14), and at the end the record, the audit
entry, both ends told, the bridge closed and the booking used or left open
(issue 16: a call that never connected leaves it open).
"""

from __future__ import annotations

from datetime import datetime

from kiosk.domain import callstate as cs
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import LiveCall, booking_reopens, uses_booking
from kiosk.domain.switchboard.state import Board
from kiosk.wire.messages import EndMessage, WaitingMessage, WarningMessage


def drive(
    board: Board,
    call: LiveCall,
    event: cs.Event,
    now: datetime,
    actor: str = "system",
    note: str = "",
) -> list[fx.Effect] | None:
    """Apply ``event`` to the call; None when its state does not allow it (nothing happens)."""
    try:
        happened = call.machine.handle(event, now)
    except cs.InvalidTransition:
        return None
    return machine_effects(board, call, happened, now, actor, note)


def tick(board: Board, call: LiveCall, now: datetime) -> list[fx.Effect]:
    """Time passes for one call: a restriction's start, a warning, the end (R10, R16)."""
    if call.restrict_at is not None and now >= call.restrict_at:
        return drive(board, call, cs.Restrict(), now) or []
    return machine_effects(board, call, call.machine.tick(now), now, "system", "")


def machine_effects(
    board: Board,
    call: LiveCall,
    happened: list[cs.Effect],
    now: datetime,
    actor: str,
    note: str,
) -> list[fx.Effect]:
    out: list[fx.Effect] = []
    for effect in happened:
        if isinstance(effect, cs.Warn):
            out += _warn(board, call, effect.minutes_left)
        elif isinstance(effect, cs.RecordBreach):
            # R14: against the contact and the inmate, with the staff member's note.
            out.append(fx.RecordBreach(call.snapshot(now), effect.staff_id, note))
        elif isinstance(effect, cs.End):
            out += finish(board, call, now, actor)
    return out


def _warn(board: Board, call: LiveCall, minutes_left: int) -> list[fx.Effect]:
    if not call.granted:
        return []  # the tablet does not know a call it has not dialled
    warning = WarningMessage(call_id=call.id, minutes_left=minutes_left)
    out: list[fx.Effect] = [fx.SendDevice(call.device_id, warning)]
    if call.seat is not None:
        out.append(fx.SendVisitor(call.seat, warning))
    return out


def finish(board: Board, call: LiveCall, now: datetime, actor: str) -> list[fx.Effect]:
    """The call has ended (its machine says why): off the board, recorded, both ends told."""
    reason = call.machine.end_reason
    assert reason is not None
    board.calls.pop(call.id, None)
    record = call.snapshot(now)
    used = uses_booking(call.connected_at, reason)
    if used:
        board.spent[call.booking_id] = call.booking.end
    out: list[fx.Effect] = [
        fx.Persist(record, booking_used=used),
        fx.Audit(
            actor,
            "call.ended",
            call.subjects(),
            {"reason": reason.value, "connected_seconds": record.connected_seconds},
        ),
        fx.CountEnd(reason),
        fx.Log("call ended", {"call_id": call.id, "reason": reason.value}),
    ]
    if record.category.privileged:
        out.append(fx.Checkpoint())  # R13: its receipt needs a signed tree head
    end = EndMessage(call_id=call.id, reason=reason)
    if call.granted or call.set_up_by is not None:
        out.append(fx.SendDevice(call.device_id, end))
    seat = board.seats.get(call.seat or "")
    if seat is not None:
        seat.call_id = None
        if booking_reopens(call.connected_at, reason) and now < call.booking.end:
            # Issue 16: nobody spoke yet; the visitor waits on for the next try.
            out.append(fx.SendVisitor(seat.id, waiting_message(call)))
        else:
            out.append(fx.SendVisitor(seat.id, end))
    if call.bridge_asked:
        out.append(fx.CloseBridge(call.id))
    for monitor_id, monitor in call.monitors.items():
        out.append(
            fx.Audit(
                f"staff:{monitor.staff_id}",
                "monitor.detached",
                {"call": call.id, "monitor": monitor_id},
                {"why": "call_ended"},
            )
        )
    call.monitors.clear()
    if not board.stopping:
        out.append(fx.PushState(call.device_id))
        out += [fx.PushState(d) for d in board.devices_of(call.inmate_id) if d != call.device_id]
    return out


def waiting_message(call: LiveCall) -> WaitingMessage:
    record = call.record
    return WaitingMessage(
        start=call.booking.start,
        end=call.booking.end,
        control=record.control,
        category=record.category,
        privileged=record.category.privileged,
    )
