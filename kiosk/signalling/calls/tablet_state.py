"""What a tablet shows, pushed the moment it changes (issue 11).

The state message: the inmate the tablet is assigned to, the contacts
callable today with their windows (and whether their visitor is waiting,
issue 16), and the tablet's current call. It is built from the store and
the switchboard when it is sent, so the newest facts win. One sender per
tablet keeps states in order; changes while one is being built make
exactly one more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.domain.model import Booking, BookingState, Contact, FacilitySettings
from kiosk.domain.switchboard import Switchboard
from kiosk.domain.week_view import quota_left, week_calls
from kiosk.domain.weeks import LIVE_BOOKING_STATES, week_bounds
from kiosk.runtime.logs import get_logger
from kiosk.signalling.calls.ports import DeviceSender
from kiosk.store.bookings import list_bookings
from kiosk.store.contacts import get_contacts
from kiosk.store.devices import get_device
from kiosk.store.facility import get_facility
from kiosk.store.inmates import get_inmate
from kiosk.wire import messages as p

log = get_logger(__name__)

MAX_CONTACTS = 64
AHEAD = timedelta(days=7)  # the inmate's week on the tablet (issue 16)


async def tablet_state(
    engine: AsyncEngine, board: Switchboard, device_id: str, now: datetime
) -> p.StateMessage | None:
    """The tablet's state now; None for a tablet the store does not know."""
    async with engine.connect() as conn:
        record = await get_device(conn, device_id)
        if record is None:
            return None
        device = record.device
        inmate = await get_inmate(conn, device.inmate_id) if device.inmate_id else None
        entries: list[p.ContactEntry] = []
        week: list[p.WeekEntry] = []
        quota: p.QuotaInfo | None = None
        if inmate is not None and not device.revoked:
            monday, next_monday = week_bounds(now)
            every = await list_bookings(
                conn,
                between=(min(monday, now - timedelta(hours=12)), max(next_monday, now + AHEAD)),
                inmate_id=inmate.id,
                states=LIVE_BOOKING_STATES,
            )
            contacts = await get_contacts(conn, [b.contact_id for b in every])
            facility = await get_facility(conn)
            if facility is not None:
                week, quota = _week(inmate.id, every, contacts, facility.settings, now)
            waiting = board.waiting_bookings()
            for b in every:
                contact = contacts.get(b.contact_id)
                if b.state is not BookingState.BOOKED or b.start >= now + timedelta(hours=24):
                    continue
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
                        visitor_waiting=b.id in waiting,
                    )
                )
    call = board.current_call(device_id, now)
    return p.StateMessage(
        server_time=now,
        device_id=device_id,
        inmate=p.InmateInfo(id=inmate.id, name=inmate.name[:200]) if inmate else None,
        contacts=entries[:MAX_CONTACTS],
        week=week,
        quota=quota,
        call=(
            p.CallInfo(
                call_id=call.id,
                state=call.machine.state.value,
                control=call.record.control,
                route=call.route,
                not_after=call.not_after,
            )
            if call is not None
            else None
        ),
    )


def _week(
    inmate_id: str,
    bookings: list[Booking],
    contacts: dict[str, Contact],
    settings: FacilitySettings,
    now: datetime,
) -> tuple[list[p.WeekEntry], p.QuotaInfo]:
    """Issue 16: the inmate's calls from now on, held ones with their reason; the time left."""
    ahead = [b for b in bookings if b.start < now + AHEAD]
    week = [
        p.WeekEntry(
            booking_id=c.booking.id,
            name=c.contact.name[:200],
            category=c.contact.category,
            start=c.booking.start,
            end=c.booking.end,
            held=c.booking.state is BookingState.HELD,
            held_reason=c.held_reason[:1024],
        )
        for c in week_calls(ahead, contacts, settings, now)
    ]
    categories = {cid: c.category for cid, c in contacts.items()}
    left, of = quota_left(inmate_id, bookings, categories, settings, now)
    return week, p.QuotaInfo(left_minutes=left, of_minutes=of)


class StatePusher:
    """Sends tablets their state soon, off the caller's path, in order, newest facts winning."""

    def __init__(
        self,
        engine: AsyncEngine,
        board: Switchboard,
        devices: DeviceSender,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.board = board
        self.devices = devices
        self.clock = clock
        self._due: set[str] = set()
        self._senders: dict[str, asyncio.Task[None]] = {}

    def push(self, device_id: str) -> None:
        """The state takes several reads to build; a dial must not keep the tablet's next
        message (its offer) waiting behind them."""
        self._due.add(device_id)
        sender = self._senders.get(device_id)
        if sender is None or sender.done():
            task = asyncio.get_running_loop().create_task(self._send(device_id))
            self._senders[device_id] = task

    async def _send(self, device_id: str) -> None:
        try:
            while device_id in self._due:
                self._due.discard(device_id)
                try:
                    state = await tablet_state(self.engine, self.board, device_id, self.clock())
                    if state is not None:
                        await self.devices.send(device_id, state)
                except Exception:
                    # The tablet asks again on its next hello; the server carries on.
                    log.exception("tablet state could not be sent", device_id=device_id)
        finally:
            if self._senders.get(device_id) is asyncio.current_task():
                del self._senders[device_id]

    async def drain(self) -> None:
        """Wait for the states being sent (tests, and a clean stop)."""
        while self._senders:
            await asyncio.gather(*self._senders.values(), return_exceptions=True)

    def stop(self) -> None:
        for task in self._senders.values():
            task.cancel()
