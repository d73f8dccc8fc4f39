"""A cluster's new owner adopts the live calls of the one that died (issue 14)."""

from __future__ import annotations

from kiosk.domain.model import ControlLevel, Route
from kiosk.domain.reasons import EndReason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev
from kiosk.wire.messages import EndMessage, SdpMessage

from .board_world import NOW, Prison, Runner
from .strategies import MINUTE


def _connected_call(control: ControlLevel) -> tuple[Prison, Runner, str, str]:
    """A call connected on the old owner's switchboard; its stored record and booking."""
    prison = Prison()
    old = Runner(prison)
    ola = prison.inmate()
    tablet = prison.tablet(ola.id)
    booking = prison.book(prison.contact(ola.id, control=control), NOW - MINUTE, minutes=10)
    old.feed(ev.DeviceOnline(tablet.id, ola.id))
    seat, _ = old.join(booking.id)
    call_id = old.dial(tablet.id, booking.id).call_id
    assert call_id is not None
    if control is ControlLevel.NONE:
        old.feed(ev.DeviceSignal(tablet.id, SdpMessage(call_id=call_id, kind="offer", sdp="o")))
        old.feed(ev.VisitorSignal(seat, SdpMessage(call_id=call_id, kind="answer", sdp="a")))
    else:
        old.feed(ev.BridgeOpened(call_id))
        old.feed(ev.BridgeConnected(call_id))
    return prison, old, call_id, tablet.id


def _stored(old: Runner, prison: Prison, call_id: str) -> ev.Adopted:
    record = [e.call for e in old.of(fx.Persist) if e.call.id == call_id][-1]
    return ev.Adopted(record, prison.bookings[record.booking_id])


def test_a_peer_to_peer_call_goes_on_under_its_new_owner_and_ends_at_its_time_once() -> None:
    prison, old, call_id, tablet = _connected_call(ControlLevel.NONE)
    new = Runner(prison)
    new.now = NOW + 2 * MINUTE
    new.feed(ev.Adopt((_stored(old, prison, call_id),)))
    assert set(new.board.calls) == {call_id}
    assert not new.audited("call.ended")
    new.now = new.board.next_deadline() or NOW
    assert new.now < prison.bookings[new.board.calls[call_id].booking_id].end  # a warning
    new.feed(ev.Tick())
    new.now = prison.bookings[new.board.calls[call_id].booking_id].end
    new.feed(ev.Tick())
    [ended] = new.audited("call.ended")
    assert ended.details["reason"] == EndReason.TIME_UP.value
    assert EndMessage(call_id=call_id, reason=EndReason.TIME_UP) in new.sent_to_device(tablet)
    assert not new.board.calls


def test_a_visitor_seated_again_on_the_new_owner_is_on_the_adopted_call() -> None:
    prison, old, call_id, _ = _connected_call(ControlLevel.NONE)
    new = Runner(prison)
    new.feed(ev.Adopt((_stored(old, prison, call_id),)))
    seat, joined = new.join(new.board.calls[call_id].booking_id)
    assert joined.refused is None and joined.call_id == call_id
    assert new.board.calls[call_id].seat == seat


def test_a_controlled_call_fails_closed_when_its_owner_and_bridge_are_gone() -> None:
    prison, old, call_id, tablet = _connected_call(ControlLevel.SIGHT)
    assert old.board.calls[call_id].route is Route.BRIDGE
    new = Runner(prison)
    new.feed(ev.Adopt((_stored(old, prison, call_id),)))
    assert not new.board.calls
    [ended] = new.audited("call.ended")
    assert ended.details["reason"] == EndReason.BRIDGE_FAILED.value
    assert EndMessage(call_id=call_id, reason=EndReason.BRIDGE_FAILED) in (
        new.sent_to_device(tablet)
    )
