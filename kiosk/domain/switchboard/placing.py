"""Placing a call: the tablet's dial and staff set-up (R12), one policy for both.

Both ask :func:`kiosk.domain.policy.place_call` with the same facts and the
switchboard's own answer to "is another call live on this tablet or for this
inmate now?", so a set-up refuses exactly as a dial would, with the same
reason code (issue 11). A call set up for a later window waits for it: it
holds its tablet and inmate only once the window has opened.

A dial finds, in this order: the tablet's own peer-to-peer call of this
booking that it lost (agent restarted, grant lost with the link): the same
call back with a fresh grant (``call.granted_again``); the call staff set up
for this booking on this tablet; or a new call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kiosk.domain import callstate as cs
from kiosk.domain import policy
from kiosk.domain.model import BookingState, CallRecord, CallState, Route
from kiosk.domain.policy import Deny, Purpose
from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard.calls import LiveCall
from kiosk.domain.switchboard.ending import machine_effects
from kiosk.domain.switchboard.events import Dial, SetUp
from kiosk.domain.switchboard.facts import CallFacts
from kiosk.domain.switchboard.legs import attach_waiting_seat
from kiosk.domain.switchboard.state import Board, Outcome
from kiosk.wire.grants import Grant
from kiosk.wire.messages import RefusedMessage


def dial(board: Board, event: Dial, now: datetime) -> Outcome:
    """The tablet asks to place the booked call (R9-R11, R13, R16-R18)."""
    facts = event.facts
    if isinstance(facts, Reason):
        return _refuse_dial(event, policy.deny(facts))
    facts = _fresh(board, facts)
    rejoin = next(
        (
            c
            for c in board.calls_on_device(event.device_id)
            if c.booking_id == facts.booking.id and c.route is Route.P2P and c.granted
        ),
        None,
    )
    set_up = next(
        (
            c
            for c in board.calls_on_device(event.device_id)
            if c.booking_id == facts.booking.id and c.machine.state is CallState.READY
        ),
        None,
    )
    existing = rejoin or set_up
    verdict = _verdict(board, facts, Purpose.DIAL, now, existing)
    if isinstance(verdict, Deny):
        return _refuse_dial(event, verdict)
    if rejoin is not None:
        rejoin.held_offer = None  # the lost agent's offer: its answer would fit nothing
        return Outcome(_grant(board, rejoin, now, again=True), call_id=rejoin.id)
    call = existing or _new_call(event.call_id, facts, now, now)
    happened = call.machine.handle(cs.Dial(), now)  # the policy checked the window
    out: list[fx.Effect] = [fx.Persist(call.snapshot(), new=existing is None)]
    out += machine_effects(board, call, happened, now, call.actor_device, "")
    if call.machine.ended:
        return Outcome(out, call_id=call.id)
    board.calls[call.id] = call
    out.append(fx.Count("call_setups"))
    if call.route is Route.BRIDGE:
        # The grant waits for the bridge: a controlled call never runs without it.
        call.bridge_asked = True
        out.append(fx.OpenBridge(call.id, call.record.category, call.not_after))
        return Outcome(out, call_id=call.id)
    return Outcome(out + _grant(board, call, now, again=False), call_id=call.id)


def grant_after_bridge(board: Board, call: LiveCall, now: datetime) -> list[fx.Effect]:
    """The bridge of a controlled call is up: now the tablet gets its grant."""
    call.bridge_open = True
    return _grant(board, call, now, again=False)


def _grant(board: Board, call: LiveCall, now: datetime, *, again: bool) -> list[fx.Effect]:
    # A fresh signature even when rejoining: the tablet anchors the grant's end on
    # its dial, which is only safe for a grant issued after that dial.
    call.granted = True
    record = call.record
    grant = Grant(
        call_id=call.id,
        device_id=call.device_id,
        inmate_id=call.inmate_id,
        contact_id=record.contact_id,
        category=record.category,
        route=call.route,
        control=record.control,
        not_before=call.machine.not_before,
        not_after=call.not_after,
        issued_at=now,
    )
    out: list[fx.Effect] = [
        fx.Audit(
            call.actor_device,
            "call.granted_again" if again else "call.granted",
            {**call.subjects(), "inmate": call.inmate_id, "contact": record.contact_id},
            {
                "route": call.route.value,
                "control": record.control.value,
                "category": record.category.value,
                "not_after": call.not_after.isoformat(),
            },
        ),
        fx.SendGrant(grant),
        fx.Log("call granted", {"call_id": call.id, "route": call.route.value}),
    ]
    if again:
        out.append(fx.Count("call_rejoins"))
    out += attach_waiting_seat(board, call)
    out.append(fx.PushState(call.device_id))
    return out


def set_up(board: Board, event: SetUp, now: datetime) -> Outcome:
    """R12: staff set the call up on the tablet, now or ahead of its window."""
    facts = event.facts
    if isinstance(facts, Reason):
        return _refuse_set_up(event, policy.deny(facts))
    facts = _fresh(board, facts)
    verdict = _verdict(board, facts, Purpose.SET_UP, now, None)
    if isinstance(verdict, Deny):
        return _refuse_set_up(event, verdict)
    call = _new_call(event.call_id, facts, now, max(now, facts.booking.start))
    call.set_up_by = event.staff_id
    board.calls[call.id] = call
    record = call.record
    return Outcome(
        [
            fx.Persist(call.snapshot(), new=True),
            fx.Audit(
                f"staff:{event.staff_id}",
                "call.set_up",
                call.subjects(),
                {"route": record.route.value, "control": record.control.value},
            ),
            fx.Log("call set up", {"call_id": call.id, "device_id": call.device_id}),
            fx.PushState(call.device_id),
        ],
        call_id=call.id,
    )


def _fresh(board: Board, facts: CallFacts) -> CallFacts:
    """The store may not yet say that a call of this process used the booking."""
    if facts.booking.id in board.spent and facts.booking.state is BookingState.BOOKED:
        return facts.with_booking_state(BookingState.USED)
    return facts


def _verdict(
    board: Board, facts: CallFacts, purpose: Purpose, now: datetime, existing: LiveCall | None
) -> policy.Verdict:
    booking = facts.booking
    # One call per booking; and on the tablet and for the inmate, one live call now.
    # A set-up ahead of its window is judged for then: nothing it could clash with is known.
    taken = any(c is not existing for c in board.calls_of_booking(booking.id))
    judged_now = purpose is Purpose.DIAL or booking.start <= now
    inmate_live = taken or (
        judged_now and board.holds(now, inmate_id=facts.inmate.id, but=existing)
    )
    device_live = judged_now and board.holds(now, device_id=facts.device.id, but=existing)
    if purpose is Purpose.SET_UP and board.overlaps_set_up(
        booking.start, booking.end, device_id=facts.device.id, inmate_id=facts.inmate.id
    ):
        inmate_live = True  # two set-ups would hold the tablet and inmate at once
    verdict = policy.place_call(
        policy.CallContext(facts, inmate_live, device_live, purpose), now
    )
    if verdict and _route(facts) is Route.BRIDGE and not board.rules.bridge_available:
        # Fail closed: a controlled call never runs unmonitored (principle 3).
        return policy.deny(Reason.BRIDGE_UNAVAILABLE)
    return verdict


def _route(facts: CallFacts) -> Route:
    return policy.route_for(facts.contact.category, facts.contact.control)


def _new_call(call_id: str, facts: CallFacts, now: datetime, begins: datetime) -> LiveCall:
    booking, contact = facts.booking, facts.contact
    # R10/R16: the window's end, brought forward by restrictions over the rest of it.
    not_after = policy.call_deadline(booking, facts.settings, begins)
    record = CallRecord(
        id=call_id,
        booking_id=booking.id,
        device_id=facts.device.id,
        inmate_id=facts.inmate.id,
        contact_id=contact.id,
        category=contact.category,
        route=_route(facts),
        control=contact.control,
        state=CallState.READY,
        not_before=booking.start,
        not_after=not_after,
        created_at=now,
    )
    # R10: a warning whose moment has passed when the call is made would say a wrong time.
    passed = frozenset(m for m in cs.WARNINGS if begins >= not_after - timedelta(minutes=m))
    machine = cs.CallMachine(booking.start, not_after, state=CallState.READY, warned=passed)
    return LiveCall(record=record, booking=booking, machine=machine)


def _refuse_dial(event: Dial, verdict: Deny) -> Outcome:
    reason = verdict.reason
    told = RefusedMessage(
        ref="dial", code=reason, message=(verdict.detail or MESSAGES.get(reason, ""))[:1024]
    )
    actor = f"device:{event.device_id}"
    return _refused(
        actor, "call.dial_refused", event.device_id, event.booking_id, verdict,
        [fx.SendDevice(event.device_id, told)],
    )


def _refuse_set_up(event: SetUp, verdict: Deny) -> Outcome:
    actor = f"staff:{event.staff_id}"
    return _refused(actor, "call.set_up_refused", event.device_id, event.booking_id, verdict, [])


def _refused(
    actor: str,
    action: str,
    device_id: str,
    booking_id: str,
    verdict: Deny,
    told: list[fx.Effect],
) -> Outcome:
    """Every refusal to place a call: audited, counted, said (the same for dial and set-up)."""
    reason = verdict.reason.value
    what = "dial" if action == "call.dial_refused" else "set-up"
    return Outcome(
        [
            fx.Audit(
                actor, action, {"device": device_id, "booking": booking_id}, {"reason": reason}
            ),
            fx.CountRefusal(verdict.reason),
            fx.Log(f"{what} refused", {"booking_id": booking_id, "reason": reason}),
            *told,
        ],
        refused=verdict,
    )
