"""The store's typed records on both engines: what is written comes back, typed, the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.domain.model import (
    Booking,
    CallState,
    Category,
    Contact,
    ContactStatus,
    ControlLevel,
    Device,
    Initiation,
    Inmate,
    LocationKind,
    Relation,
    Route,
)
from kiosk.domain.reasons import EndReason
from kiosk.store import calls, devices
from kiosk.store.bookings import insert_booking
from kiosk.store.contacts import get_contact_record, insert_contact
from kiosk.store.db import write_transaction
from kiosk.store.facility import ensure_facility
from kiosk.store.ids import new_id
from kiosk.store.inmates import insert_inmate

NOW = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


async def a_booked_contact(conn: AsyncConnection) -> tuple[Booking, str]:
    """An inmate, an approved-looking contact, a booking and a tablet: what a call names."""
    facility = await ensure_facility(conn)
    inmate = Inmate(id=new_id(), facility_id=facility.id, name="Ola")
    await insert_inmate(conn, inmate, NOW)
    contact = Contact(
        id=new_id(),
        inmate_id=inmate.id,
        name="Kari",
        email="kari@example.org",
        category=Category.PERSONAL,
        relation=Relation.PARENT,
        status=ContactStatus.APPROVED,
    )
    await insert_contact(conn, contact, NOW)
    booking = Booking(
        id=new_id(),
        inmate_id=inmate.id,
        contact_id=contact.id,
        start=NOW,
        end=NOW + timedelta(minutes=30),
        location_kind=LocationKind.CELL,
        location="cell",
        initiation=Initiation.STAFF,
    )
    await insert_booking(conn, booking, "staff-1", NOW)
    device = Device(id=new_id(), serial=f"SN-{new_id()[:8]}")
    await devices.insert_device(conn, device, "", NOW)
    return booking, device.id


def a_call(booking: Booking, device_id: str) -> calls.CallRecord:
    return calls.CallRecord(
        id=new_id(),
        booking_id=booking.id,
        device_id=device_id,
        inmate_id=booking.inmate_id,
        contact_id=booking.contact_id,
        category=Category.PERSONAL,
        route=Route.P2P,
        control=ControlLevel.NONE,
        state=CallState.READY,
        not_before=booking.start,
        not_after=booking.end,
        created_at=NOW,
    )


async def test_a_call_row_comes_back_as_written_and_moves_through_its_states(
    engine: AsyncEngine,
) -> None:
    async with write_transaction(engine) as conn:
        booking, device_id = await a_booked_contact(conn)
        call = a_call(booking, device_id)
        await calls.insert_call(conn, call)
    async with engine.connect() as conn:
        stored = await calls.get_call(conn, call.id)
        assert stored == call
        assert stored is not None and stored.live
        assert isinstance(stored.state, CallState) and isinstance(stored.route, Route)
        assert await calls.unfinished_calls(conn) == [call]
        assert await calls.get_call(conn, "no-such-call") is None

    connected = NOW + timedelta(minutes=1)
    ended = NOW + timedelta(minutes=11)
    async with write_transaction(engine) as conn:
        await calls.set_call_state(conn, call.id, CallState.CONNECTED, connected)
        await calls.end_call(conn, call.id, EndReason.HANGUP, ended, 600)
    async with engine.connect() as conn:
        done = await calls.get_call(conn, call.id)
        assert done is not None
        assert (done.state, done.connected_at, done.ended_at) == (
            CallState.ENDED,
            connected,
            ended,
        )
        assert (done.end_reason, done.connected_seconds, done.live) == (
            EndReason.HANGUP,
            600,
            False,
        )
        assert await calls.unfinished_calls(conn) == []
        assert await calls.list_calls(conn, live=False) == [done]
        assert await calls.list_calls(conn, live=True) == []
        assert await calls.list_calls(conn, inmate_id=booking.inmate_id) == [done]


async def test_a_breach_is_recorded_against_the_calls_contact(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        booking, device_id = await a_booked_contact(conn)
        call = a_call(booking, device_id)
        await calls.insert_call(conn, call)
        await calls.record_breach(conn, "breach-1", call, "staff-1", NOW, "showed a note")
    async with engine.connect() as conn:
        contact = await get_contact_record(conn, booking.contact_id)
        assert contact is not None and contact.breaches == 1  # R14
        (breach,) = contact.breach_records
        assert (breach.call_id, breach.recorded_by, breach.note) == (
            call.id,
            "staff-1",
            "showed a note",
        )


async def test_tamper_events_come_back_newest_first(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        _, device_id = await a_booked_contact(conn)
        first = devices.TamperEvent("t1", device_id, NOW, "usb_device", {"vendor": "0781"})
        later = devices.TamperEvent("t2", device_id, NOW + timedelta(seconds=5), "case", {})
        await devices.insert_tamper_event(conn, first)
        await devices.insert_tamper_event(conn, later)
    async with engine.connect() as conn:
        assert await devices.list_tamper_events(conn, device_id) == [later, first]
