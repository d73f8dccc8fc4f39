"""A small prison for driving the switchboard by hand: inmates, tablets, contacts, bookings.

It plays the store and the runner: it makes the facts an event carries, and
reads effects back (what each tablet and each visitor was sent).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import count
from typing import Any

from kiosk.domain.model import (
    Booking,
    BookingState,
    Category,
    Contact,
    ControlLevel,
    Device,
    FacilitySettings,
    Inmate,
)
from kiosk.domain.switchboard import CallFacts, InviteFacts, Outcome, Switchboard
from kiosk.domain.switchboard import effects as fx
from kiosk.domain.switchboard import events as ev

from .strategies import MINUTE, MONDAY, approved, booking, inmate

NOW = MONDAY + timedelta(hours=2)


@dataclass
class Prison:
    """The store's side of things, changed by the test as staff would."""

    settings: FacilitySettings = field(default_factory=FacilitySettings)
    inmates: dict[str, Inmate] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: count(1))

    def inmate(self, **kw: Any) -> Inmate:
        i = inmate(id=f"inmate-{next(self.ids):03}", **kw)
        self.inmates[i.id] = i
        return i

    def tablet(self, inmate_id: str | None) -> Device:
        n = next(self.ids)
        d = Device(id=f"device-{n:03}", serial=f"SN{n}", inmate_id=inmate_id)
        self.devices[d.id] = d
        return d

    def contact(
        self,
        inmate_id: str,
        category: Category = Category.PERSONAL,
        control: ControlLevel = ControlLevel.NONE,
    ) -> Contact:
        c = approved(category, control, inmate_id=inmate_id, id=f"contact-{next(self.ids):03}")
        self.contacts[c.id] = c
        return c

    def book(self, c: Contact, start: datetime, minutes: int = 30, **kw: Any) -> Booking:
        b = booking(c, start, minutes, **{"id": f"booking-{next(self.ids):03}", **kw})
        self.bookings[b.id] = b
        return b

    def set_state(self, booking_id: str, state: BookingState) -> None:
        self.bookings[booking_id] = replace(self.bookings[booking_id], state=state)

    def facts(self, device_id: str, booking_id: str) -> CallFacts:
        b = self.bookings[booking_id]
        week = tuple(x for x in self.bookings.values() if x.inmate_id == b.inmate_id)
        return CallFacts(
            device=self.devices[device_id],
            booking=b,
            inmate=self.inmates[b.inmate_id],
            contact=self.contacts[b.contact_id],
            settings=self.settings,
            week_bookings=week,
            categories={c.id: c.category for c in self.contacts.values()},
        )

    def invite(self, booking_id: str) -> InviteFacts:
        b = self.bookings[booking_id]
        return InviteFacts(
            invite_id=f"invite-{booking_id}",
            booking=b,
            contact=self.contacts[b.contact_id],
            valid_from=b.start - 15 * MINUTE,
            valid_until=b.end,
        )


class Runner:
    """Feeds a switchboard and keeps what it was told to send, as the real runner would."""

    def __init__(self, prison: Prison, board: Switchboard | None = None) -> None:
        self.prison = prison
        self.board = board or Switchboard()
        self.now = NOW
        self.effects: list[fx.Effect] = []
        self.call_ids = count(1)
        self.seat_ids = count(1)

    def feed(self, event: ev.Event) -> Outcome:
        outcome = self.board.handle(event, self.now)
        self.effects += outcome.effects
        for effect in outcome.effects:
            if isinstance(effect, fx.Persist) and effect.booking_used:
                self.prison.set_state(effect.call.booking_id, BookingState.USED)
        return outcome

    def dial(self, device_id: str, booking_id: str, nonce: str = "") -> Outcome:
        """``nonce``: the dial's; by default one of its own, as the tablet makes."""
        facts = self.prison.facts(device_id, booking_id)
        n = next(self.call_ids)
        return self.feed(ev.Dial(device_id, booking_id, facts, f"call-{n}", nonce or f"nonce-{n}"))

    def set_up(self, device_id: str, booking_id: str, staff: str = "staff-1") -> Outcome:
        facts = self.prison.facts(device_id, booking_id)
        return self.feed(
            ev.SetUp(staff, device_id, booking_id, facts, f"call-{next(self.call_ids)}")
        )

    def join(self, booking_id: str) -> tuple[str, Outcome]:
        seat = f"seat-{next(self.seat_ids)}"
        return seat, self.feed(ev.VisitorJoined(seat, self.prison.invite(booking_id)))

    def later(self, **kw: float) -> None:
        self.now += timedelta(**kw)

    def sent_to_device(self, device_id: str) -> list[Any]:
        out: list[Any] = []
        for e in self.effects:
            if isinstance(e, fx.SendDevice) and e.device_id == device_id:
                out.append(e.message)
            elif isinstance(e, fx.SendGrant) and e.grant.device_id == device_id:
                out.append(e.grant)
        return out

    def sent_to_seat(self, seat_id: str) -> list[Any]:
        out: list[Any] = []
        for e in self.effects:
            if isinstance(e, fx.SendVisitor) and e.seat_id == seat_id:
                out.append(e.message)
            elif isinstance(e, fx.AnnounceCall) and e.seat_id == seat_id:
                out.append(e)
        return out

    def audited(self, action: str) -> list[fx.Audit]:
        return [e for e in self.effects if isinstance(e, fx.Audit) and e.action == action]

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]
