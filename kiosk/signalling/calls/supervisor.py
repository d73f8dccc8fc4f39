"""The call supervisor: live calls driven by the pure state machine.

It owns every live call of this server process: it checks a dial against the
policy, signs the grant, relays SDP and ICE between the legs, tells both ends
of warnings and of the end, ends calls at their end time, on staff end, on
hang-up, on device revocation and on facility restrictions, and persists
each transition so that a restarted server closes out the calls it lost
with the right reason. Every event goes into the audit chain.

The tablet enforces the end by its own clock as well (ARCHITECTURE.md
principle 1); the supervisor is the server's half of "both enforce".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain import callstate as cs
from kiosk.domain import policy
from kiosk.domain.model import (
    Booking,
    BookingState,
    CallState,
    Contact,
    ControlLevel,
    Inmate,
    MediaKind,
    Route,
)
from kiosk.domain.reasons import MESSAGES, EndReason, Reason
from kiosk.domain.weeks import LIVE_BOOKING_STATES, week_bounds
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls.turn import ice_servers_for_call
from kiosk.signalling.context import ServerContext
from kiosk.signalling.metrics import Metrics
from kiosk.signalling.visitors import invites as inv
from kiosk.store import calls as store_calls
from kiosk.store import devices as store_devices
from kiosk.store.bookings import contact_categories, get_booking, list_bookings, set_booking_state
from kiosk.store.contacts import get_contact, get_contacts
from kiosk.store.db import write_transaction
from kiosk.store.devices import get_device
from kiosk.store.facility import get_facility
from kiosk.store.inmates import get_inmate
from kiosk.wire import messages as p
from kiosk.wire.grants import Grant, sign_grant

log = get_logger(__name__)


class SupervisorError(Exception):
    """A refusal with a reason code; the API maps it to an HTTP error."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or MESSAGES.get(reason, reason.value))
        self.reason = reason
        self.detail = detail or MESSAGES.get(reason, reason.value)


class DeviceSender(Protocol):
    """The device listener's side: send to a connected tablet, cut a revoked one."""

    async def send(self, device_id: str, message: BaseModel) -> bool: ...

    def connected(self, device_id: str) -> bool: ...


class Leg(Protocol):
    """A visitor's connection (browser or test visitor) as the supervisor sees it."""

    async def send(self, message: BaseModel) -> None: ...

    async def close(self) -> None: ...


# A bridge for controlled calls (issue 5). None: controlled calls are refused,
# never carried peer to peer (ARCHITECTURE.md principle 3: fail closed).
BridgeFactory = Callable[["Supervisor", "LiveCall"], Awaitable[Any]]


@dataclass
class LiveCall:
    id: str
    booking: Booking
    inmate: Inmate
    contact: Contact
    device_id: str
    route: Route
    control: ControlLevel
    machine: cs.CallMachine
    grant: p.GrantDocument | None = None
    ice_servers: list[p.IceServer] = field(default_factory=list)
    held_offer: p.SdpMessage | None = None  # the tablet's offer, waiting for the visitor
    visitor: VisitorSession | None = None
    connected_at: datetime | None = None
    timer: asyncio.Task[None] | None = None
    bridge: Any = None
    monitors: dict[str, Any] = field(default_factory=dict)
    restrict_at: datetime | None = None  # R16: a restriction declared during the call

    def stored(self, now: datetime) -> store_calls.CallRecord:
        return store_calls.CallRecord(
            id=self.id,
            booking_id=self.booking.id,
            device_id=self.device_id,
            inmate_id=self.inmate.id,
            contact_id=self.contact.id,
            category=self.contact.category,
            route=self.route,
            control=self.control,
            state=self.machine.state,
            not_before=self.machine.not_before,
            not_after=self.machine.not_after,
            created_at=now,
            connected_at=self.connected_at,
        )


@dataclass(eq=False)
class VisitorSession:
    invite: inv.Invite
    leg: Leg
    call_id: str | None = None


def _actor_device(device_id: str) -> str:
    return f"device:{device_id}"


class Supervisor:
    def __init__(
        self,
        grant_key: Ed25519PrivateKey,
        bridge_factory: BridgeFactory | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.grant_key = grant_key
        self.bridge_factory = bridge_factory
        self.metrics = metrics
        self.calls: dict[str, LiveCall] = {}
        self._by_device: dict[str, str] = {}
        self._visitors: dict[str, VisitorSession] = {}  # invite id -> the one active session
        self._lock = asyncio.Lock()
        self._closing = False
        self._state_due: set[str] = set()  # devices whose state changed since it was last sent
        self._state_senders: dict[str, asyncio.Task[None]] = {}

    def bind(self, ctx: ServerContext, devices: DeviceSender) -> None:
        """Attach to the process's shared context and device listener (at start-up)."""
        self.ctx = ctx
        self.devices = devices

    # --- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        """Close out the calls a previous process left live, with the right reason."""
        now = self.ctx.clock()
        async with write_transaction(self.ctx.engine) as conn:
            for call in await store_calls.unfinished_calls(conn):
                # The tablet ended it by its own clock if the window is over;
                # otherwise this server's restart ended it.
                reason = EndReason.TIME_UP if now >= call.not_after else EndReason.SERVER_RESTARTED
                ended_at = min(now, call.not_after)
                seconds = _seconds(call.connected_at, ended_at)
                await store_calls.end_call(conn, call.id, reason, ended_at, seconds)
                await set_booking_state(conn, [call.booking_id], BookingState.USED)
                await self.ctx.audit.append(
                    "system",
                    "call.closed_out",
                    {"call": call.id, "device": call.device_id, "booking": call.booking_id},
                    {"reason": reason.value, "state": call.state.value},
                    conn=conn,
                )
                log.info("call closed out after restart", call_id=call.id, reason=reason.value)

    async def stop(self) -> None:
        """End every live call: a stopping server cannot supervise them (fail closed)."""
        self._closing = True
        for live in list(self.calls.values()):
            await self._event(live, cs.ServerRestart())
        for task in list(self._state_senders.values()):
            task.cancel()

    # --- tablets ------------------------------------------------------------

    async def on_connect(self, device_id: str) -> None:
        self.push_state(device_id)

    async def on_disconnect(self, device_id: str) -> None:
        # A p2p call's media does not pass the server: the link to the server
        # dropping does not end it. The tablet ends it on time by itself.
        log.info("tablet link closed", device_id=device_id)

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        if isinstance(message, p.DialMessage):
            await self.dial(device_id, message.booking_id)
        elif isinstance(message, p.SdpMessage | p.IceMessage):
            await self._from_device(device_id, message)
        elif isinstance(message, p.HangupMessage):
            live = self._device_call(device_id, message.call_id)
            if live is not None:
                await self._event(live, cs.Hangup(), actor=_actor_device(device_id))
        elif isinstance(message, p.TamperMessage):
            await self.tamper(device_id, message.kind, dict(message.details))
        elif isinstance(message, p.HelloMessage):
            self.push_state(device_id)

    def push_state(self, device_id: str) -> None:
        """Send the tablet its state soon, off the caller's path.

        The state takes several reads to build; a dial must not keep the
        tablet's next message (its offer) waiting behind them. One sender per
        tablet, so states leave in order; changes while one is being built
        make exactly one more, built after them (the newest state wins).
        """
        self._state_due.add(device_id)
        sender = self._state_senders.get(device_id)
        if sender is None or sender.done():
            task = asyncio.get_running_loop().create_task(self._send_states(device_id))
            self._state_senders[device_id] = task

    async def _send_states(self, device_id: str) -> None:
        try:
            while device_id in self._state_due:
                self._state_due.discard(device_id)
                try:
                    await self.send_state(device_id)
                except Exception:
                    # The tablet asks again on its next hello; the server carries on.
                    log.exception("tablet state could not be sent", device_id=device_id)
        finally:
            if self._state_senders.get(device_id) is asyncio.current_task():
                del self._state_senders[device_id]

    async def send_state(self, device_id: str) -> None:
        """Build and send the tablet's state now (``push_state`` is the usual way)."""
        now = self.ctx.clock()
        async with self.ctx.engine.connect() as conn:
            record = await get_device(conn, device_id)
            if record is None:
                return
            inmate = (
                await get_inmate(conn, record.device.inmate_id)
                if record.device.inmate_id
                else None
            )
            entries: list[p.ContactEntry] = []
            if inmate is not None and not record.device.revoked:
                day_start = now - timedelta(hours=12)
                bookings = await list_bookings(
                    conn,
                    between=(day_start, now + timedelta(hours=24)),
                    inmate_id=inmate.id,
                    states=[BookingState.BOOKED],
                )
                contacts = await get_contacts(conn, [b.contact_id for b in bookings])
                for b in bookings:
                    contact = contacts.get(b.contact_id)
                    if contact is None or not contact.approved or b.end <= now:
                        continue
                    entries.append(
                        p.ContactEntry(
                            contact_id=contact.id,
                            name=contact.name[:200],
                            category=contact.category,
                            control=contact.control,
                            booking_id=b.id,
                            start=b.start,
                            end=b.end,
                            callable_now=b.start <= now < b.end,
                        )
                    )
        live = self.calls.get(self._by_device.get(device_id, ""))
        message = p.StateMessage(
            server_time=now,
            device_id=device_id,
            inmate=p.InmateInfo(id=inmate.id, name=inmate.name[:200]) if inmate else None,
            contacts=entries[:64],
            call=(
                p.CallInfo(
                    call_id=live.id,
                    state=live.machine.state.value,
                    control=live.control,
                    route=live.route,
                    not_after=live.machine.not_after,
                )
                if live
                else None
            ),
        )
        await self.devices.send(device_id, message)

    async def _refuse_dial(
        self, device_id: str, booking_id: str, reason: Reason, detail: str = ""
    ) -> None:
        await self.ctx.audit.append(
            _actor_device(device_id),
            "call.dial_refused",
            {"device": device_id, "booking": booking_id},
            {"reason": reason.value},
        )
        log.info("dial refused", device_id=device_id, reason=reason.value)
        self._count_refusal(reason)
        await self.devices.send(
            device_id,
            p.RefusedMessage(
                ref="dial", code=reason, message=(detail or MESSAGES.get(reason, ""))[:1024]
            ),
        )

    async def dial(self, device_id: str, booking_id: str) -> LiveCall | None:
        """The tablet asks to place the booked call (R9-R11, R13, R16-R18)."""
        async with self._lock:
            now = self.ctx.clock()
            async with self.ctx.engine.connect() as conn:
                world = await self._load_world(conn, device_id, booking_id)
            if isinstance(world, Reason):
                await self._refuse_dial(device_id, booking_id, world)
                return None
            device, booking, inmate, contact, settings, week, categories = world
            rejoin = self._call_to_rejoin(device_id, booking.id)
            existing = rejoin or self._ready_call_for(booking.id)
            inmate_live = any(
                c.inmate.id == inmate.id and c is not existing for c in self.calls.values()
            )
            device_live = device_id in self._by_device and (
                existing is None or self._by_device[device_id] != existing.id
            )
            verdict = policy.dial(
                policy.DialContext(
                    inmate=inmate,
                    contact=contact,
                    booking=booking,
                    device=device,
                    settings=settings,
                    inmate_has_live_call=inmate_live,
                    device_has_live_call=device_live,
                    week_bookings=week,
                    categories=categories,
                ),
                now,
            )
            if isinstance(verdict, policy.Deny):
                await self._refuse_dial(device_id, booking_id, verdict.reason, verdict.detail)
                return None
            route = policy.route_for(contact.category, contact.control)
            if route is Route.BRIDGE and self.bridge_factory is None:
                # Fail closed: a controlled call never runs unmonitored (principle 3).
                await self._refuse_dial(device_id, booking_id, Reason.BRIDGE_UNAVAILABLE)
                return None
            live = existing or self._new_call(device_id, booking, inmate, contact, route, settings)
            if rejoin is None:
                live.machine.handle(cs.Dial(), now)
            else:
                live.held_offer = None  # the lost agent's offer: its answer would fit nothing
            # A fresh signature even when rejoining: the tablet anchors the grant's end
            # on its dial, which is only safe for a grant issued after that dial.
            grant = Grant(
                call_id=live.id,
                device_id=device_id,
                inmate_id=inmate.id,
                contact_id=contact.id,
                category=contact.category,
                route=route,
                control=live.control,
                not_before=live.machine.not_before,
                not_after=live.machine.not_after,
                issued_at=now,
            )
            live.grant = p.GrantDocument.of(sign_grant(grant, self.grant_key))
            live.ice_servers = [
                p.IceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in ice_servers_for_call(self.ctx.settings.turn, live.id, grant.not_after)
            ]
            async with write_transaction(self.ctx.engine) as conn:
                if existing is None:
                    await store_calls.insert_call(conn, live.stored(now))
                elif rejoin is None:
                    await store_calls.set_call_state(conn, live.id, live.machine.state)
                await self.ctx.audit.append(
                    _actor_device(device_id),
                    "call.granted" if rejoin is None else "call.granted_again",
                    {
                        "call": live.id,
                        "device": device_id,
                        "inmate": inmate.id,
                        "contact": contact.id,
                        "booking": booking.id,
                    },
                    {
                        "route": route.value,
                        "control": live.control.value,
                        "category": contact.category.value,
                        "not_after": grant.not_after.isoformat(),
                    },
                    conn=conn,
                )
            self.calls[live.id] = live
            self._by_device[device_id] = live.id
            self._count("call_setups" if rejoin is None else "call_rejoins")
            if route is Route.BRIDGE and self.bridge_factory is not None:
                try:
                    live.bridge = await self.bridge_factory(self, live)
                except Exception:
                    log.exception("bridge could not be set up", call_id=live.id)
                    await self._event(live, cs.BridgeFailed())
                    return None
            self._rearm(live)  # a set-up (R12) or rejoined call has one already
            log.info("call granted", call_id=live.id, route=route.value, control=live.control.value)
        await self.devices.send(
            device_id, p.GrantMessage(grant=live.grant, ice_servers=live.ice_servers)
        )
        if live.visitor is None:
            self._attach_waiting_visitor(live)
        if live.visitor is not None:
            await self._announce_call(live)
        self.push_state(device_id)
        return live

    def _new_call(
        self,
        device_id: str,
        booking: Booking,
        inmate: Inmate,
        contact: Contact,
        route: Route,
        settings: Any,
    ) -> LiveCall:
        # R10/R16: the window's end, brought forward by restrictions over the rest of it.
        not_after = policy.call_deadline(booking, settings, self.ctx.clock())
        return LiveCall(
            id=str(uuid.uuid4()),
            booking=booking,
            inmate=inmate,
            contact=contact,
            device_id=device_id,
            route=route,
            control=contact.control,
            machine=cs.CallMachine(booking.start, not_after, state=CallState.READY),
        )

    async def _load_world(self, conn: AsyncConnection, device_id: str, booking_id: str) -> Any:
        record = await get_device(conn, device_id)
        if record is None:
            return Reason.DEVICE_NOT_ASSIGNED
        booking = await get_booking(conn, booking_id)
        if booking is None:
            return Reason.BOOKING_NOT_FOUND
        inmate = await get_inmate(conn, booking.inmate_id)
        contact = await get_contact(conn, booking.contact_id)
        facility = await get_facility(conn)
        if inmate is None or contact is None or facility is None:
            return Reason.BOOKING_NOT_FOUND
        # A tablet asking about another inmate's booking learns nothing about it.
        if record.device.inmate_id != inmate.id and not record.device.revoked:
            return Reason.DEVICE_NOT_ASSIGNED
        start, end = week_bounds(booking.start)
        week = await list_bookings(
            conn, between=(start, end), inmate_id=inmate.id, states=LIVE_BOOKING_STATES
        )
        categories = await contact_categories(conn, [b.contact_id for b in week])
        return record.device, booking, inmate, contact, facility.settings, week, categories

    def _call_to_rejoin(self, device_id: str, booking_id: str) -> LiveCall | None:
        """This tablet's own p2p call for this booking, if it dials it again.

        A tablet that dials a call the server holds live no longer has it: the
        grant was lost with the link, or the agent restarted. It gets the same
        call back, with a fresh grant, and its new offer goes to the visitor
        (whose page answers a new offer with a new connection). A bridged call
        never gets here: losing the tablet's link ended it (principle 3).
        """
        live = self.calls.get(self._by_device.get(device_id, ""))
        if (
            live is None
            or live.booking.id != booking_id
            or live.route is not Route.P2P
            or live.grant is None
            or live.machine.ended
        ):
            return None
        return live

    def _ready_call_for(self, booking_id: str) -> LiveCall | None:
        for live in self.calls.values():
            if live.booking.id == booking_id and live.machine.state is CallState.READY:
                return live
        return None

    def _device_call(self, device_id: str, call_id: str) -> LiveCall | None:
        live = self.calls.get(call_id)
        if live is None or live.device_id != device_id:
            return None
        return live

    async def _from_device(self, device_id: str, message: p.SdpMessage | p.IceMessage) -> None:
        live = self._device_call(device_id, message.call_id)
        if live is None or live.machine.ended:
            await self.devices.send(
                device_id,
                p.RefusedMessage(
                    ref=message.type,
                    code=Reason.CALL_NOT_LIVE,
                    message=MESSAGES[Reason.CALL_NOT_LIVE],
                ),
            )
            return
        if live.route is Route.BRIDGE:
            await live.bridge.from_tablet(message)
            return
        if isinstance(message, p.SdpMessage) and message.kind == "offer":
            live.held_offer = message
        if live.visitor is not None:
            await live.visitor.leg.send(message)

    # --- visitors --------------------------------------------------------------

    async def visitor_join(self, token: str, leg: Leg) -> VisitorSession:
        now = self.ctx.clock()
        async with self.ctx.engine.connect() as conn:
            invite = await inv.find_invite(conn, token)
            booking = await get_booking(conn, invite.booking_id) if invite else None
            contact = await get_contact(conn, invite.contact_id) if invite else None
        if invite is None or booking is None or contact is None:
            raise SupervisorError(Reason.NOT_FOUND, "This invitation is not valid.")
        if booking.state in (BookingState.CANCELLED, BookingState.HELD):
            raise SupervisorError(Reason.BOOKING_NOT_ACTIVE)
        if not invite.valid_at(now):
            raise SupervisorError(Reason.OUTSIDE_WINDOW)
        if invite.id in self._visitors:
            # One active session at a time: a second tab or a forwarded link
            # cannot take over a call in progress.
            raise SupervisorError(Reason.CONFLICT, "This invitation is already in use.")
        session = VisitorSession(invite=invite, leg=leg)
        self._visitors[invite.id] = session
        await self.ctx.audit.append(
            f"visitor:{contact.id}",
            "visitor.joined",
            {"booking": booking.id, "contact": contact.id, "invite": invite.id},
        )
        await leg.send(
            p.WaitingMessage(
                start=booking.start,
                end=booking.end,
                control=contact.control,
                category=contact.category,
                privileged=contact.category.privileged,
            )
        )
        live = next(
            (c for c in self.calls.values() if c.booking.id == booking.id and not c.machine.ended),
            None,
        )
        if live is not None and live.visitor is None and live.grant is not None:
            live.visitor = session
            session.call_id = live.id
            await self._announce_call(live)
        return session

    def _attach_waiting_visitor(self, live: LiveCall) -> None:
        for session in self._visitors.values():
            if session.invite.booking_id == live.booking.id and session.call_id is None:
                live.visitor = session
                session.call_id = live.id
                return

    async def _announce_call(self, live: LiveCall) -> None:
        assert live.visitor is not None
        await live.visitor.leg.send(
            p.VisitorCallMessage(
                call_id=live.id,
                control=live.control,
                route=live.route,
                not_after=live.machine.not_after,
                server_time=self.ctx.clock(),
                ice_servers=live.ice_servers,
            )
        )
        if live.route is Route.BRIDGE:
            await live.bridge.visitor_joined(live.visitor)
        elif live.held_offer is not None:
            await live.visitor.leg.send(live.held_offer)

    async def on_visitor_message(self, session: VisitorSession, message: BaseModel) -> None:
        live = self.calls.get(session.call_id or "")
        if isinstance(message, p.HangupMessage):
            if live is not None and message.call_id == live.id:
                await self._event(live, cs.Hangup(), actor=f"visitor:{session.invite.contact_id}")
            return
        if not isinstance(message, p.SdpMessage | p.IceMessage):
            return
        if live is None or message.call_id != live.id or live.machine.ended:
            await session.leg.send(p.ErrorMessage.of(Reason.CALL_NOT_LIVE))
            return
        if live.route is Route.BRIDGE:
            await live.bridge.from_visitor(message)
            return
        await self.devices.send(live.device_id, message)
        if isinstance(message, p.SdpMessage) and message.kind == "answer":
            await self.connected(live)

    async def connected(self, live: LiveCall) -> None:
        """Both legs have agreed their media: the call is connected."""
        now = self.ctx.clock()
        try:
            effects = live.machine.handle(cs.Answer(), now)
        except cs.InvalidTransition:
            return
        if live.connected_at is None:
            live.connected_at = now
        async with write_transaction(self.ctx.engine) as conn:
            await store_calls.set_call_state(conn, live.id, live.machine.state, live.connected_at)
            await self.ctx.audit.append(
                "system",
                "call.connected",
                {"call": live.id},
                {"route": live.route.value},
                conn=conn,
            )
        await self._apply(live, effects)

    async def visitor_left(self, session: VisitorSession) -> None:
        if self._visitors.get(session.invite.id) is session:
            del self._visitors[session.invite.id]
        live = self.calls.get(session.call_id or "")
        if live is not None and live.visitor is session:
            live.visitor = None
            live.held_offer = None
            if live.route is Route.BRIDGE and live.bridge is not None:
                # Fail closed: a bridged call without its visitor leg is over.
                await self._event(live, cs.BridgeFailed())
                return
            with contextlib.suppress(cs.InvalidTransition):
                effects = live.machine.handle(cs.LegLost(), self.ctx.clock())
                await self._apply(live, effects)

    # --- staff ---------------------------------------------------------------

    async def set_up(self, booking_id: str, device_id: str, staff_id: str) -> LiveCall:
        """R12: staff set the call up on the tablet in advance, then hand it over."""
        async with self._lock:
            async with self.ctx.engine.connect() as conn:
                world = await self._load_world(conn, device_id, booking_id)
            if isinstance(world, Reason):
                raise SupervisorError(world)
            device, booking, inmate, contact, settings, _week, _cats = world
            if device.revoked:
                raise SupervisorError(Reason.DEVICE_REVOKED)
            if device.inmate_id != inmate.id:
                raise SupervisorError(Reason.DEVICE_NOT_ASSIGNED)
            if booking.state is not BookingState.BOOKED:
                raise SupervisorError(Reason.BOOKING_NOT_ACTIVE)
            if not contact.approved:
                raise SupervisorError(Reason.CONTACT_NOT_APPROVED)
            now = self.ctx.clock()
            if now >= booking.end:
                raise SupervisorError(Reason.OUTSIDE_WINDOW)
            if device_id in self._by_device or any(
                c.inmate.id == inmate.id for c in self.calls.values()
            ):
                raise SupervisorError(Reason.CALL_ALREADY_LIVE)
            route = policy.route_for(contact.category, contact.control)
            if route is Route.BRIDGE and self.bridge_factory is None:
                raise SupervisorError(Reason.BRIDGE_UNAVAILABLE)
            live = self._new_call(device_id, booking, inmate, contact, route, settings)
            async with write_transaction(self.ctx.engine) as conn:
                await store_calls.insert_call(conn, live.stored(now))
                await self.ctx.audit.append(
                    f"staff:{staff_id}",
                    "call.set_up",
                    {"call": live.id, "device": device_id, "booking": booking.id},
                    {"route": route.value, "control": live.control.value},
                    conn=conn,
                )
            self.calls[live.id] = live
            self._by_device[device_id] = live.id
            self._arm(live)
        self.push_state(device_id)
        return live

    async def end(self, call_id: str, staff_id: str, note: str, breach: bool) -> LiveCall:
        live = self.calls.get(call_id)
        if live is None:
            raise SupervisorError(Reason.CALL_NOT_LIVE)
        await self._event(
            live,
            cs.StaffEnd(staff_id=staff_id, breach=breach),
            actor=f"staff:{staff_id}",
            note=note,
        )
        return live

    async def device_revoked(self, device_id: str) -> None:
        live = self.calls.get(self._by_device.get(device_id, ""))
        if live is not None:
            await self._event(live, cs.Revoke(), actor="system")

    async def restrictions_changed(self) -> None:
        """R16: a restriction over the rest of a live call ends it when it begins."""
        now = self.ctx.clock()
        async with self.ctx.engine.connect() as conn:
            facility = await get_facility(conn)
        if facility is None:
            return
        for live in list(self.calls.values()):
            deadline = policy.call_deadline(live.booking, facility.settings, now)
            if deadline <= now:
                await self._event(live, cs.Restrict(), actor="system")
            elif deadline < live.machine.not_after:
                live.restrict_at = deadline
                self._rearm(live)

    async def tamper(self, device_id: str, kind: str, details: dict[str, str]) -> None:
        now = self.ctx.clock()
        async with write_transaction(self.ctx.engine) as conn:
            event_id = str(uuid.uuid4())
            await store_devices.insert_tamper_event(
                conn, store_devices.TamperEvent(event_id, device_id, now, kind, details)
            )
            await self.ctx.audit.append(
                _actor_device(device_id),
                "device.tamper",
                {"device": device_id, "tamper_event": event_id},
                {"kind": kind[:64]},
                conn=conn,
            )
        log.warning("tablet reported tampering", device_id=device_id, kind=kind)

    async def attach_monitor(
        self, call_id: str, staff_id: str, kinds: frozenset[MediaKind]
    ) -> tuple[str, str]:
        """A staff monitor asks for ``kinds`` of a live call (R6, R13).

        Returns the monitor id and the bridge's SDP offer. Every refusal is
        audited; a privileged call is refused before anything else is looked at.
        """
        live = self.calls.get(call_id)
        if live is None:
            raise SupervisorError(Reason.CALL_NOT_LIVE)
        verdict = policy.attach_monitor(live.contact.category, live.control, kinds)
        subjects = {"call": live.id, "inmate": live.inmate.id, "contact": live.contact.id}
        details: dict[str, Any] = {"kinds": sorted(k.value for k in kinds)}
        if isinstance(verdict, policy.Deny):
            await self.ctx.audit.append(
                f"staff:{staff_id}",
                "monitor.refused",
                subjects,
                {**details, "reason": verdict.reason.value},
            )
            self._count_refusal(verdict.reason)
            log.warning("monitor refused", call_id=live.id, reason=verdict.reason.value)
            raise SupervisorError(verdict.reason, verdict.message)
        if live.route is not Route.BRIDGE or live.bridge is None:
            # R13 and principle 3: only a bridged call can be monitored at all.
            raise SupervisorError(Reason.BRIDGE_UNAVAILABLE)
        try:
            monitor_id, sdp = await live.bridge.add_monitor(kinds)
        except Exception as exc:
            # The bridge closing under the request (the call is ending) or failing to
            # offer: a refusal with its reason, audited, never a 500 (fail closed).
            log.warning("monitor could not be offered", call_id=live.id, detail=str(exc)[:200])
            await self.ctx.audit.append(
                f"staff:{staff_id}",
                "monitor.refused",
                subjects,
                {**details, "reason": Reason.BRIDGE_UNAVAILABLE.value},
            )
            self._count_refusal(Reason.BRIDGE_UNAVAILABLE)
            raise SupervisorError(Reason.BRIDGE_UNAVAILABLE) from None
        live.monitors[monitor_id] = staff_id
        await self.ctx.audit.append(
            f"staff:{staff_id}",
            "monitor.attached",
            {**subjects, "monitor": monitor_id},
            details,
        )
        self._count("monitor_attachments")
        log.info("monitor attached", call_id=live.id, monitor_id=monitor_id)
        return monitor_id, sdp

    async def monitor_answer(self, call_id: str, monitor_id: str, staff_id: str, sdp: str) -> None:
        live = self.calls.get(call_id)
        if live is None or live.bridge is None or live.monitors.get(monitor_id) != staff_id:
            raise SupervisorError(Reason.CALL_NOT_LIVE)
        try:
            await live.bridge.monitor_answer(monitor_id, sdp)
        except Exception as exc:
            live.monitors.pop(monitor_id, None)
            raise SupervisorError(Reason.INVALID_REQUEST, str(exc)[:500]) from None

    async def monitor_gone(self, live: LiveCall, monitor_id: str) -> None:
        staff_id = live.monitors.pop(monitor_id, None)
        if staff_id is None:
            return
        await self.ctx.audit.append(
            f"staff:{staff_id}",
            "monitor.detached",
            {"call": live.id, "monitor": monitor_id},
        )

    # --- transitions --------------------------------------------------------------

    async def end_for(self, live: LiveCall, event: cs.Event) -> None:
        """End ``live`` for ``event`` (used by the bridge when it fails: fail closed)."""
        if live.id in self.calls:
            await self._event(live, event)

    async def _event(
        self, live: LiveCall, event: cs.Event, actor: str = "system", note: str = ""
    ) -> None:
        try:
            effects = live.machine.handle(event, self.ctx.clock())
        except cs.InvalidTransition:
            return
        await self._apply(live, effects, actor=actor, note=note)

    async def _apply(
        self, live: LiveCall, effects: list[cs.Effect], actor: str = "system", note: str = ""
    ) -> None:
        for effect in effects:
            if isinstance(effect, cs.Warn):
                warning = p.WarningMessage(call_id=live.id, minutes_left=effect.minutes_left)
                await self.devices.send(live.device_id, warning)
                if live.visitor is not None:
                    await live.visitor.leg.send(warning)
            elif isinstance(effect, cs.RecordBreach):
                await self._record_breach(live, effect.staff_id, note)
            elif isinstance(effect, cs.End):
                await self._finish(live, effect.reason, actor)

    async def _record_breach(self, live: LiveCall, staff_id: str, note: str) -> None:
        now = self.ctx.clock()
        breach_id = str(uuid.uuid4())
        async with write_transaction(self.ctx.engine) as conn:
            await store_calls.record_breach(conn, breach_id, live.stored(now), staff_id, now, note)
            await self.ctx.audit.append(
                f"staff:{staff_id}",
                "call.breach_recorded",
                {
                    "call": live.id,
                    "inmate": live.inmate.id,
                    "contact": live.contact.id,
                    "breach": breach_id,
                },
                conn=conn,
            )

    async def _finish(self, live: LiveCall, reason: EndReason, actor: str) -> None:
        now = self.ctx.clock()
        ended_at = min(now, live.machine.not_after)
        seconds = _seconds(live.connected_at, ended_at)
        self.calls.pop(live.id, None)
        if self._by_device.get(live.device_id) == live.id:
            del self._by_device[live.device_id]
        if self.metrics is not None:
            # Counted with the live-call gauge's drop, so no scrape sees one without the other.
            self.metrics.call_ended(reason)
        if live.timer is not None and live.timer is not asyncio.current_task():
            live.timer.cancel()
        async with write_transaction(self.ctx.engine) as conn:
            await store_calls.end_call(conn, live.id, reason, ended_at, seconds)
            await set_booking_state(conn, [live.booking.id], BookingState.USED)
            await self.ctx.audit.append(
                actor,
                "call.ended",
                {"call": live.id, "device": live.device_id, "booking": live.booking.id},
                {"reason": reason.value, "connected_seconds": seconds},
                conn=conn,
            )
        if live.contact.category.privileged:
            await self.ctx.audit.checkpoint_now()  # R13: its receipt needs a signed tree head
        log.info("call ended", call_id=live.id, reason=reason.value)
        end = p.EndMessage(call_id=live.id, reason=reason)
        await self.devices.send(live.device_id, end)
        if live.visitor is not None:
            with contextlib.suppress(Exception):
                await live.visitor.leg.send(end)
            live.visitor.call_id = None
        if live.bridge is not None:
            with contextlib.suppress(Exception):
                await live.bridge.close()
        for monitor_id in list(live.monitors):
            await self.monitor_gone(live, monitor_id)
        if not self._closing:
            self.push_state(live.device_id)

    def _arm(self, live: LiveCall) -> None:
        live.timer = asyncio.get_running_loop().create_task(self._run_timer(live))

    def _rearm(self, live: LiveCall) -> None:
        if live.timer is not None:
            live.timer.cancel()
        self._arm(live)

    async def _run_timer(self, live: LiveCall) -> None:
        """Wake at each warning, at a restriction's start and at the window's end (R10, R16)."""
        while not live.machine.ended:
            deadline = live.machine.next_deadline()
            if deadline is None:
                return
            if live.restrict_at is not None:
                deadline = min(deadline, live.restrict_at)
            delay = (deadline - self.ctx.clock()).total_seconds()
            if delay > 0:
                await asyncio.sleep(min(delay, 30.0))
                continue
            try:
                if live.restrict_at is not None and self.ctx.clock() >= live.restrict_at:
                    await self._event(live, cs.Restrict())
                    return
                await self._apply(live, live.machine.tick(self.ctx.clock()))
            except Exception:
                log.exception("call timer failed", call_id=live.id)

    # --- metrics ----------------------------------------------------------------

    def _count(self, name: str) -> None:
        if self.metrics is not None:
            self.metrics.count(name)

    def _count_refusal(self, reason: Reason) -> None:
        if self.metrics is not None:
            self.metrics.refusal(reason)


def _seconds(connected_at: datetime | None, ended_at: datetime) -> int:
    if connected_at is None:
        return 0
    return max(0, int((ended_at - connected_at).total_seconds()))
