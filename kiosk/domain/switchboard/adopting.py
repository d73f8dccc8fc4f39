"""A cluster's new owner takes over the live calls of one that stopped or died (issue 14).

Each call is put back on the board as the store last recorded it: its
state, its window, when it connected. A peer-to-peer call's media never
passed through the server, so it goes on, and ends at its end time here. A
controlled call's media ran through its owner's bridge, which is gone: it
fails closed (``bridge_failed``), as it would on its own owner. Warnings
whose time has passed were given by the previous owner and are not given
again. Who is on the call (the tablet, the visitor's seat) comes back as
their nodes announce them to the new owner.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kiosk.domain import callstate as cs
from kiosk.domain.model import CallState, Route
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import LiveCall
from kiosk.domain.switchboard.ending import drive
from kiosk.domain.switchboard.events import Adopt
from kiosk.domain.switchboard.state import Board, Outcome

_DIALLED = frozenset({CallState.RINGING, CallState.CONNECTED})


def adopt(board: Board, event: Adopt, now: datetime) -> Outcome:
    out: list[fx.Effect] = []
    for adopted in event.calls:
        record = adopted.record
        if record.id in board.calls or not record.live or record.state is CallState.ENDED:
            continue
        warned = frozenset(
            m for m in cs.WARNINGS if now >= record.not_after - timedelta(minutes=m)
        )
        machine = cs.CallMachine(record.not_before, record.not_after, record.state, warned)
        call = LiveCall(
            record=record,
            booking=adopted.booking,
            machine=machine,
            granted=record.state in _DIALLED,
            connected_at=record.connected_at,
        )
        if record.state is CallState.READY:
            call.set_up_by = "adopted"  # set up ahead by staff: the tablet holds it
        board.calls[record.id] = call
        fields = {"call_id": record.id, "state": record.state.value}
        out.append(fx.Log("call adopted", fields))
        if record.route is Route.BRIDGE and call.granted:
            # Its bridge was its owner's: fail closed (principle 3).
            out += drive(board, call, cs.BridgeFailed(), now) or []
    return Outcome(out)
