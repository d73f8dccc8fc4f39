"""The switchboard's runner: the thin I/O around the pure set of live calls.

Every tablet message, visitor message, staff request and bridge report
becomes an event for :class:`~kiosk.domain.switchboard.Switchboard`; its
effects are carried out by the :class:`Applier`, each event's writes in one
transaction with their audit entries, in the order the switchboard decided
them for each call (``order.KeyedOrder``). One ``loop.call_at`` timer wakes
the switchboard at its ``next_deadline()``: warnings, ends, restrictions,
monitors never answered. No polling, no timer per call.

The tablet ends a call by its own clock too (ARCHITECTURE.md principle 1);
this is the server's half of "both enforce".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from kiosk.domain.model import MediaKind
from kiosk.domain.policy import Deny
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard import Outcome, Rules, Switchboard
from kiosk.domain.switchboard import events as ev
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls import facts, writes
from kiosk.signalling.calls.apply import Applier, count, effect_keys
from kiosk.signalling.calls.order import KeyedOrder
from kiosk.signalling.calls.ports import (
    BridgePort,
    Calls,
    DeviceSender,
    VisitorLeg,
    WaitingVisitor,
)
from kiosk.signalling.calls.tablet_state import StatePusher
from kiosk.signalling.context import ServerContext
from kiosk.signalling.devices.grant_refusal import record_grant_refusal
from kiosk.signalling.devices.tamper import record_tamper
from kiosk.signalling.metrics import Metrics
from kiosk.store.facility import get_facility
from kiosk.wire import messages as p

log = get_logger(__name__)


class CallRefused(Exception):
    """A refusal with its reason code; the API and the visitor endpoint show it."""

    def __init__(self, verdict: Deny, audited: bool = True) -> None:
        super().__init__(verdict.message)
        self.reason = verdict.reason
        self.detail = verdict.message
        self.audited = audited  # the switchboard recorded it in the audit chain


class CallRunner:
    def __init__(
        self,
        ctx: ServerContext,
        devices: DeviceSender,
        grant_key: Ed25519PrivateKey,
        *,
        bridges: BridgePort | None = None,
        metrics: Metrics | None = None,
        rules: Rules | None = None,
        fence: writes.Fence | None = None,
    ) -> None:
        self.ctx = ctx
        self.fence = fence  # a cluster's owner: its writes hold the lease (issue 14)
        self.clock: Callable[[], datetime] = ctx.clock
        self.metrics = metrics
        self.bridges = bridges
        limits = ctx.settings.calls
        self.board = Switchboard(
            rules
            or Rules(
                bridge_available=bridges is not None,
                max_monitors=limits.max_monitors,
                monitor_answer_within=timedelta(seconds=limits.monitor_answer_seconds),
            )
        )
        self.pusher = StatePusher(ctx.engine, self.board, devices, self.clock)
        self.applier = Applier(ctx, devices, bridges, self.pusher, grant_key, self.clock, fence)
        self._order = KeyedOrder()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: datetime | None = None
        if bridges is not None:
            bridges.bind(self.feed)

    # --- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Close out the calls a previous process left live, with the right reason."""
        for call in await writes.close_out(self.ctx, self.clock()):
            reason = call.end_reason.value if call.end_reason else ""
            log.info("call closed out after restart", call_id=call.id, reason=reason)

    async def stop(self) -> None:
        """End every live call: a stopping server cannot supervise them (fail closed)."""
        await self.feed(ev.Stop())
        await self.hand_over()

    async def adopt(self, calls: Iterable[ev.Adopted]) -> None:
        """A cluster's new owner: the live calls of the one before are this runner's now."""
        await self.feed(ev.Adopt(tuple(calls)))

    async def hand_over(self) -> None:
        """Stop supervising without ending the calls: the next owner adopts them (issue 14).
        The bridges close (their calls fail closed where they are adopted)."""
        await self._order.drain()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pusher.stop()
        if self.bridges is not None:
            await self.bridges.close_all()

    # --- the one way in --------------------------------------------------------------

    async def feed(self, event: ev.Event) -> Outcome:
        """Hand ``event`` to the switchboard and carry out what it decides, in order."""
        outcome = self.board.handle(event, self.clock())
        count(self.metrics, outcome.effects)
        keys = effect_keys(outcome.effects)
        if outcome.call_id is not None:
            keys.add(f"call:{outcome.call_id}")
        self._rearm()
        if outcome.effects:
            follow = await asyncio.shield(self._order.queue(keys, lambda: self._apply(outcome)))
            for event_after in follow:
                await self.feed(event_after)
        return outcome

    async def _apply(self, outcome: Outcome) -> list[ev.Event]:
        try:
            return await self.applier.apply(outcome.effects)
        except Exception:
            # The decision stands in memory; the next transition writes the whole record again.
            log.exception("call effects could not be carried out")
            return []

    def _rearm(self) -> None:
        """One timer for the whole switchboard, at its next deadline."""
        deadline = self.board.next_deadline()
        if deadline == self._timer_at and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, (deadline - self.clock()).total_seconds())
        self._timer = loop.call_at(loop.time() + delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        task = asyncio.get_running_loop().create_task(self.feed(ev.Tick()))
        task.add_done_callback(_log_failure)

    # --- tablets (the device listener's handler) --------------------------------------

    async def on_connect(self, device_id: str) -> None:
        inmate_id = await facts.device_inmate(self.ctx.engine, device_id)
        await self.feed(ev.DeviceOnline(device_id, inmate_id))

    async def on_disconnect(self, device_id: str) -> None:
        # A p2p call's media does not pass the server: the link dropping does not end it.
        log.info("tablet link closed", device_id=device_id)
        await self.feed(ev.LinkLost(device_id))

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        if isinstance(message, p.DialMessage):
            loaded = await facts.call_facts(self.ctx.engine, device_id, message.booking_id)
            call_id = str(uuid.uuid4())
            await self.feed(
                ev.Dial(device_id, message.booking_id, loaded, call_id, message.nonce)
            )
        elif isinstance(message, p.SdpMessage | p.IceMessage | p.MediaMessage):
            await self.feed(ev.DeviceSignal(device_id, message))
        elif isinstance(message, p.HangupMessage):
            await self.feed(ev.DeviceHangup(device_id, message.call_id))
        elif isinstance(message, p.TamperMessage):
            await record_tamper(self.ctx, device_id, message, self.clock())
        elif isinstance(message, p.GrantRefusedMessage):
            await record_grant_refusal(self.ctx, device_id, message)
        elif isinstance(message, p.HelloMessage):
            self.pusher.push(device_id)

    # --- visitors ------------------------------------------------------------------------

    async def visitor_join(self, token: str, leg: VisitorLeg, seat_id: str = "") -> str:
        """Seat a visitor's page in the waiting room; CallRefused says why not."""
        seat_id = seat_id or str(uuid.uuid4())
        invite = await facts.invite_facts(self.ctx.engine, token)
        self.applier.legs[seat_id] = leg
        outcome = await self.feed(ev.VisitorJoined(seat_id, invite))
        if outcome.refused is not None:
            del self.applier.legs[seat_id]
            raise CallRefused(outcome.refused, audited=False)
        return seat_id

    async def visitor_left(self, seat_id: str) -> None:
        await self.feed(ev.VisitorLeft(seat_id))
        self.applier.legs.pop(seat_id, None)

    async def visitor_message(self, seat_id: str, message: BaseModel) -> None:
        if isinstance(message, p.HangupMessage):
            await self.feed(ev.VisitorHangup(seat_id, message.call_id))
        elif isinstance(message, p.SdpMessage | p.IceMessage | p.MediaMessage):
            await self.feed(ev.VisitorSignal(seat_id, message))

    # --- staff -------------------------------------------------------------------------

    async def set_up(self, booking_id: str, device_id: str, staff_id: str) -> str:
        """R12: set the call up on the tablet; the same policy as the tablet's dial."""
        loaded = await facts.call_facts(self.ctx.engine, device_id, booking_id)
        call_id = str(uuid.uuid4())
        outcome = await self.feed(ev.SetUp(staff_id, device_id, booking_id, loaded, call_id))
        if outcome.refused is not None:
            raise CallRefused(outcome.refused)
        return call_id

    async def end(self, call_id: str, staff_id: str, note: str, breach: bool) -> None:
        outcome = await self.feed(ev.StaffEnd(call_id, staff_id, breach, note))
        if outcome.refused is not None:
            raise CallRefused(outcome.refused)

    async def attach_monitor(
        self, call_id: str, staff_id: str, kinds: frozenset[MediaKind]
    ) -> tuple[str, str]:
        """A staff monitor asks for ``kinds`` (R6, R13): the monitor's id and the bridge's offer."""
        asked = await self.feed(ev.AttachMonitor(call_id, staff_id, kinds))
        if asked.refused is not None:
            raise CallRefused(asked.refused)
        try:
            assert self.bridges is not None  # the switchboard allows monitors on bridges only
            monitor_id, sdp = await self.bridges.add_monitor(call_id, kinds)
        except Exception as exc:
            log.warning("monitor could not be offered", call_id=call_id, detail=str(exc)[:200])
            failed = await self.feed(ev.MonitorFailed(call_id, staff_id, kinds))
            assert failed.refused is not None
            raise CallRefused(failed.refused) from None
        offered = await self.feed(ev.MonitorOffered(call_id, monitor_id, staff_id, kinds))
        if offered.refused is not None:
            await self.bridges.remove_monitor(call_id, monitor_id)
            raise CallRefused(offered.refused)
        return monitor_id, sdp

    async def monitor_answer(self, call_id: str, monitor_id: str, staff_id: str, sdp: str) -> None:
        asked = await self.feed(ev.AnswerMonitor(call_id, monitor_id, staff_id))
        if asked.refused is not None:
            raise CallRefused(asked.refused)
        try:
            assert self.bridges is not None
            await self.bridges.monitor_answer(call_id, monitor_id, sdp)
        except Exception as exc:
            await self.feed(ev.MonitorGone(call_id, monitor_id, "answer_refused"))
            verdict = Deny(Reason.INVALID_REQUEST, str(exc)[:500])
            raise CallRefused(verdict, audited=False) from None
        await self.feed(ev.MonitorAnswered(call_id, monitor_id))

    # --- what else changes the calls or what a tablet shows ------------------------------

    async def device_revoked(self, device_id: str) -> None:
        await self.feed(ev.Revoke(device_id))

    async def restrictions_changed(self) -> None:
        """R16: a restriction over the rest of a live call ends or shortens it."""
        async with self.ctx.engine.connect() as conn:
            facility = await get_facility(conn)
        if facility is not None:
            await self.feed(ev.RestrictionsChanged(facility.settings))
        for device_id in list(self.board.board.online):
            self.pusher.push(device_id)  # held bookings leave the tablets' lists

    async def tablets_changed(self, devices: Iterable[str], inmates: Iterable[str]) -> None:
        """Something a tablet shows changed (issue 11): its assignment, a contact, a decision,
        a booking of its inmate. Push those tablets their state now."""
        for device_id in set(devices):
            inmate_id = await facts.device_inmate(self.ctx.engine, device_id)
            await self.feed(ev.DeviceAssigned(device_id, inmate_id))
        for inmate_id in set(inmates):
            for device_id in self.board.board.devices_of(inmate_id):
                self.pusher.push(device_id)

    async def waiting_visitors(self) -> list[WaitingVisitor]:
        return [
            WaitingVisitor(s.booking_id, s.contact_id, s.inmate_id, s.call_id is not None)
            for s in sorted(self.board.seats.values(), key=lambda seat: seat.booking_id)
        ]

    # --- for the metrics ---------------------------------------------------------------

    def live_calls(self) -> int:
        return len(self.board.calls)

    def bridge_calls(self) -> int:
        return sum(1 for c in self.board.calls.values() if c.bridge_open)

    def bridge_monitors(self) -> int:
        return sum(len(c.monitors) for c in self.board.calls.values())


class CallsHolder:
    """The calls (the runner, or a cluster node's front door), once the server's context
    exists: the routes are made before it is."""

    def __init__(self) -> None:
        self.runner: Calls | None = None

    def __call__(self) -> Calls:
        if self.runner is None:
            raise RuntimeError("the calls' runner is not running")
        return self.runner


def _log_failure(task: asyncio.Task[Outcome]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("switchboard timer failed", error=str(task.exception()))
