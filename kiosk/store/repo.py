"""Queries of the staff API and the mapping between rows and domain types: the one place.

Every function takes an open ``AsyncConnection``; the caller decides the
transaction (a write and its audit entry share one). Queries are SQLAlchemy
Core expressions, so every value is a bound parameter: names full of quotes
and semicolons are stored as written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import (
    Appeal,
    AppealBy,
    AppealState,
    Booking,
    BookingState,
    Category,
    Closure,
    Contact,
    ContactStatus,
    ControlLevel,
    Decision,
    Device,
    Facility,
    FacilitySettings,
    Ground,
    Initiation,
    Inmate,
    LocationKind,
    Outcome,
    PoliceClearance,
    Relation,
    Restriction,
    RestrictionKind,
    Role,
)
from kiosk.store import schema as t


def new_id() -> str:
    return str(uuid.uuid4())


# Facility -------------------------------------------------------------------

SETTING_COLUMNS = (
    "contact_limit",
    "weekly_quota_minutes",
    "parent_weekly_quota_minutes",
    "tablets",
    "rooms",
    "monitoring_staff",
    "max_call_minutes",
)


def _closure(row: Row[Any]) -> Closure:
    return Closure(
        id=row.id, start=row.start, end=row.end, order_deadline=row.order_deadline, note=row.note
    )


def _restriction(row: Row[Any]) -> Restriction:
    return Restriction(
        id=row.id,
        start=row.start,
        end=row.end,
        kind=RestrictionKind(row.kind),
        limit_minutes=row.limit_minutes,
        note=row.note,
    )


async def get_facility(conn: AsyncConnection) -> Facility | None:
    """The deployment's facility (one per server) with its closures and restrictions."""
    row = (await conn.execute(select(t.facilities).order_by(t.facilities.c.id).limit(1))).first()
    if row is None:
        return None
    closures = (
        await conn.execute(
            select(t.closures)
            .where(t.closures.c.facility_id == row.id)
            .order_by(t.closures.c.start, t.closures.c.id)
        )
    ).all()
    restrictions = (
        await conn.execute(
            select(t.restrictions)
            .where(t.restrictions.c.facility_id == row.id)
            .order_by(t.restrictions.c.start, t.restrictions.c.id)
        )
    ).all()
    settings = FacilitySettings(
        contact_limit=row.contact_limit,
        weekly_quota_minutes=row.weekly_quota_minutes,
        parent_weekly_quota_minutes=row.parent_weekly_quota_minutes,
        tablets=row.tablets,
        rooms=tuple(row.rooms),
        monitoring_staff=row.monitoring_staff,
        max_call_minutes=row.max_call_minutes,
        closures=tuple(_closure(r) for r in closures),
        restrictions=tuple(_restriction(r) for r in restrictions),
    )
    return Facility(id=row.id, name=row.name, timezone=row.timezone, settings=settings)


async def lock_facility(conn: AsyncConnection) -> None:
    """Serialise facility-wide checks (R9 capacity) between writers on PostgreSQL."""
    await conn.execute(select(t.facilities.c.id).with_for_update())


async def ensure_facility(conn: AsyncConnection, name: str = "Facility") -> Facility:
    """The facility, created with default settings when the database has none."""
    facility = await get_facility(conn)
    if facility is not None:
        return facility
    defaults = FacilitySettings()
    await conn.execute(
        insert(t.facilities).values(
            id=new_id(),
            name=name,
            rooms=list(defaults.rooms),
            **{c: getattr(defaults, c) for c in SETTING_COLUMNS if c != "rooms"},
        )
    )
    facility = await get_facility(conn)
    assert facility is not None
    return facility


async def update_facility(
    conn: AsyncConnection, facility_id: str, values: Mapping[str, Any]
) -> None:
    if values:
        await conn.execute(
            update(t.facilities).where(t.facilities.c.id == facility_id).values(**values)
        )


async def insert_closure(conn: AsyncConnection, facility_id: str, closure: Closure) -> None:
    await conn.execute(
        insert(t.closures).values(
            id=closure.id,
            facility_id=facility_id,
            start=closure.start,
            end=closure.end,
            order_deadline=closure.order_deadline,
            note=closure.note,
        )
    )


async def delete_closure(conn: AsyncConnection, closure_id: str) -> bool:
    result = await conn.execute(delete(t.closures).where(t.closures.c.id == closure_id))
    return bool(result.rowcount)


async def insert_restriction(
    conn: AsyncConnection, facility_id: str, restriction: Restriction
) -> None:
    await conn.execute(
        insert(t.restrictions).values(
            id=restriction.id,
            facility_id=facility_id,
            start=restriction.start,
            end=restriction.end,
            kind=restriction.kind.value,
            limit_minutes=restriction.limit_minutes,
            note=restriction.note,
        )
    )


async def get_restriction(conn: AsyncConnection, restriction_id: str) -> Restriction | None:
    row = (
        await conn.execute(select(t.restrictions).where(t.restrictions.c.id == restriction_id))
    ).first()
    return None if row is None else _restriction(row)


async def delete_restriction(conn: AsyncConnection, restriction_id: str) -> bool:
    result = await conn.execute(delete(t.restrictions).where(t.restrictions.c.id == restriction_id))
    return bool(result.rowcount)


# Staff, sessions and tokens -------------------------------------------------


@dataclass(frozen=True, slots=True)
class StaffRecord:
    id: str
    username: str
    display_name: str
    role: Role
    active: bool
    password_hash: str


def _staff(row: Row[Any]) -> StaffRecord:
    return StaffRecord(
        id=row.id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        active=row.active,
        password_hash=row.password_hash,
    )


async def insert_staff(
    conn: AsyncConnection,
    username: str,
    display_name: str,
    password_hash: str,
    role: Role,
    now: datetime,
) -> str:
    staff_id = new_id()
    await conn.execute(
        insert(t.staff).values(
            id=staff_id,
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            role=role.value,
            active=True,
            created_at=now,
        )
    )
    return staff_id


async def get_staff(conn: AsyncConnection, staff_id: str) -> StaffRecord | None:
    row = (await conn.execute(select(t.staff).where(t.staff.c.id == staff_id))).first()
    return None if row is None else _staff(row)


async def get_staff_by_username(conn: AsyncConnection, username: str) -> StaffRecord | None:
    row = (await conn.execute(select(t.staff).where(t.staff.c.username == username))).first()
    return None if row is None else _staff(row)


async def list_staff(conn: AsyncConnection) -> list[StaffRecord]:
    rows = await conn.execute(select(t.staff).order_by(t.staff.c.username))
    return [_staff(r) for r in rows.all()]


async def update_staff(conn: AsyncConnection, staff_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.staff).where(t.staff.c.id == staff_id).values(**values))


async def delete_staff_sessions(conn: AsyncConnection, staff_id: str) -> None:
    await conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.staff_id == staff_id))


async def set_staff_password(conn: AsyncConnection, staff_id: str, password_hash: str) -> None:
    await conn.execute(
        update(t.staff).where(t.staff.c.id == staff_id).values(password_hash=password_hash)
    )


async def insert_session(
    conn: AsyncConnection,
    token_hash: str,
    staff_id: str,
    csrf_hash: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    await conn.execute(
        insert(t.staff_sessions).values(
            token_hash=token_hash,
            staff_id=staff_id,
            csrf_token=csrf_hash,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def find_session(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> tuple[StaffRecord, str] | None:
    """The live session's staff member and CSRF hash; expired sessions are not found."""
    row = (
        await conn.execute(
            select(t.staff, t.staff_sessions.c.csrf_token)
            .join(t.staff_sessions, t.staff_sessions.c.staff_id == t.staff.c.id)
            .where(t.staff_sessions.c.token_hash == token_hash)
            .where(t.staff_sessions.c.expires_at > now)
        )
    ).first()
    return None if row is None else (_staff(row), row.csrf_token)


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    await conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.token_hash == token_hash))


async def delete_expired_sessions(conn: AsyncConnection, now: datetime) -> None:
    await conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.expires_at <= now))


async def insert_api_token(
    conn: AsyncConnection,
    token_hash: str,
    staff_id: str,
    label: str,
    now: datetime,
    expires_at: datetime | None,
) -> None:
    await conn.execute(
        insert(t.api_tokens).values(
            token_hash=token_hash,
            staff_id=staff_id,
            label=label,
            created_at=now,
            expires_at=expires_at,
            revoked=False,
        )
    )


# A token's public id: the start of its hash, never the token. 64 bits of a hash
# of a random secret say nothing of it, and are plenty to tell tokens apart.
TOKEN_ID_LENGTH = 16


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    id: str
    staff_id: str
    username: str
    label: str
    created_at: datetime
    expires_at: datetime | None
    revoked: bool


async def list_api_tokens(conn: AsyncConnection) -> list[ApiTokenRecord]:
    rows = await conn.execute(
        select(t.api_tokens, t.staff.c.username)
        .join(t.staff, t.api_tokens.c.staff_id == t.staff.c.id)
        .order_by(t.api_tokens.c.created_at, t.api_tokens.c.token_hash)
    )
    return [
        ApiTokenRecord(
            id=r.token_hash[:TOKEN_ID_LENGTH],
            staff_id=r.staff_id,
            username=r.username,
            label=r.label,
            created_at=r.created_at,
            expires_at=r.expires_at,
            revoked=bool(r.revoked),
        )
        for r in rows
    ]


async def revoke_api_token(conn: AsyncConnection, token_id: str) -> ApiTokenRecord | None:
    """Revoke the one token whose id is ``token_id``; None if no single token has it."""
    matches = [tok for tok in await list_api_tokens(conn) if tok.id == token_id]
    if len(matches) != 1:
        return None
    await conn.execute(
        update(t.api_tokens)
        .where(t.api_tokens.c.token_hash.startswith(token_id, autoescape=True))
        .values(revoked=True)
    )
    return matches[0]


async def find_api_token(
    conn: AsyncConnection, token_hash: str, now: datetime
) -> StaffRecord | None:
    row = (
        await conn.execute(
            select(t.staff)
            .join(t.api_tokens, t.api_tokens.c.staff_id == t.staff.c.id)
            .where(t.api_tokens.c.token_hash == token_hash)
            .where(t.api_tokens.c.revoked.is_(False))
            .where((t.api_tokens.c.expires_at.is_(None)) | (t.api_tokens.c.expires_at > now))
        )
    ).first()
    return None if row is None else _staff(row)


# Inmates --------------------------------------------------------------------


def _inmate(row: Row[Any]) -> Inmate:
    return Inmate(
        id=row.id,
        facility_id=row.facility_id,
        name=row.name,
        remand=row.remand,
        minor=row.minor,
        active=row.active,
    )


async def list_inmates(conn: AsyncConnection, active: bool | None = None) -> list[Inmate]:
    query = select(t.inmates).order_by(t.inmates.c.name, t.inmates.c.id)
    if active is not None:
        query = query.where(t.inmates.c.active.is_(active))
    return [_inmate(r) for r in (await conn.execute(query)).all()]


async def get_inmate(
    conn: AsyncConnection, inmate_id: str, *, for_update: bool = False
) -> Inmate | None:
    """``for_update`` locks the row on PostgreSQL (SQLite's write transaction already does),
    so that two requests counting the inmate's contacts (R2) cannot both pass."""
    query = select(t.inmates).where(t.inmates.c.id == inmate_id)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    return None if row is None else _inmate(row)


async def insert_inmate(conn: AsyncConnection, inmate: Inmate, now: datetime) -> None:
    await conn.execute(
        insert(t.inmates).values(
            id=inmate.id,
            facility_id=inmate.facility_id,
            name=inmate.name,
            remand=inmate.remand,
            minor=inmate.minor,
            active=inmate.active,
            created_at=now,
        )
    )


async def update_inmate(conn: AsyncConnection, inmate_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.inmates).where(t.inmates.c.id == inmate_id).values(**values))


# Contacts, decisions, breaches ------------------------------------------------


def _decision(row: Row[Any]) -> Decision:
    return Decision(
        id=row.id,
        contact_id=row.contact_id,
        outcome=Outcome(row.outcome),
        control=ControlLevel(row.control),
        grounds=tuple(Ground(g) for g in row.grounds),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        note=row.note,
    )


def _contact(row: Row[Any], decision: Decision | None) -> Contact:
    return Contact(
        id=row.id,
        inmate_id=row.inmate_id,
        name=row.name,
        email=row.email,
        category=Category(row.category),
        relation=Relation(row.relation),
        status=ContactStatus(row.status),
        cleared_for_visits=row.cleared_for_visits,
        email_confirmed=row.email_confirmed,
        application_received=row.application_received,
        decision=decision,
        breaches=row.breaches,
    )


async def _contacts(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Contact]:
    ids = [r.decision_id for r in rows if r.decision_id is not None]
    decisions: dict[str, Decision] = {}
    if ids:
        found = await conn.execute(select(t.decisions).where(t.decisions.c.id.in_(ids)))
        decisions = {d.id: _decision(d) for d in found.all()}
    return [_contact(r, decisions.get(r.decision_id) if r.decision_id else None) for r in rows]


async def list_contacts(conn: AsyncConnection, inmate_id: str) -> list[Contact]:
    rows = (
        await conn.execute(
            select(t.contacts)
            .where(t.contacts.c.inmate_id == inmate_id)
            .order_by(t.contacts.c.created_at, t.contacts.c.id)
        )
    ).all()
    return await _contacts(conn, rows)


async def get_contact(conn: AsyncConnection, contact_id: str) -> Contact | None:
    row = (await conn.execute(select(t.contacts).where(t.contacts.c.id == contact_id))).first()
    if row is None:
        return None
    return (await _contacts(conn, [row]))[0]


async def get_contacts(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Contact]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(t.contacts).where(t.contacts.c.id.in_(wanted)))).all()
    return {c.id: c for c in await _contacts(conn, rows)}


async def insert_contact(conn: AsyncConnection, contact: Contact, now: datetime) -> None:
    await conn.execute(
        insert(t.contacts).values(
            id=contact.id,
            inmate_id=contact.inmate_id,
            name=contact.name,
            email=contact.email,
            category=contact.category.value,
            relation=contact.relation.value,
            status=contact.status.value,
            cleared_for_visits=contact.cleared_for_visits,
            email_confirmed=contact.email_confirmed,
            application_received=contact.application_received,
            decision_id=None,
            breaches=contact.breaches,
            created_at=now,
        )
    )


async def update_contact(conn: AsyncConnection, contact_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.contacts).where(t.contacts.c.id == contact_id).values(**values))


async def insert_decision(conn: AsyncConnection, decision: Decision) -> None:
    """Record a decision and put it in force on its contact (R8)."""
    await conn.execute(
        insert(t.decisions).values(
            id=decision.id,
            contact_id=decision.contact_id,
            outcome=decision.outcome.value,
            control=decision.control.value,
            grounds=[g.value for g in decision.grounds],
            decided_by=decision.decided_by,
            decided_at=decision.decided_at,
            note=decision.note,
        )
    )
    status = (
        ContactStatus.APPROVED if decision.outcome is Outcome.APPROVE else ContactStatus.REFUSED
    )
    await update_contact(
        conn, decision.contact_id, {"decision_id": decision.id, "status": status.value}
    )


@dataclass(frozen=True, slots=True)
class BreachRecord:
    id: str
    call_id: str
    recorded_by: str
    recorded_at: datetime
    note: str


async def list_breaches(conn: AsyncConnection, contact_id: str) -> list[BreachRecord]:
    """R14: breaches recorded against this contact, shown at later assessments."""
    rows = (
        await conn.execute(
            select(t.breaches)
            .where(t.breaches.c.contact_id == contact_id)
            .order_by(t.breaches.c.recorded_at)
        )
    ).all()
    return [
        BreachRecord(
            id=r.id,
            call_id=r.call_id,
            recorded_by=r.recorded_by,
            recorded_at=r.recorded_at,
            note=r.note,
        )
        for r in rows
    ]


# Appeals --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppealRecord:
    appeal: Appeal
    result_decision_id: str | None
    decided_at: datetime | None


def _appeal(row: Row[Any]) -> AppealRecord:
    return AppealRecord(
        appeal=Appeal(
            id=row.id,
            contact_id=row.contact_id,
            decision_id=row.decision_id,
            by=AppealBy(row.by),
            filed_at=row.filed_at,
            text=row.text,
            state=AppealState(row.state),
        ),
        result_decision_id=row.result_decision_id,
        decided_at=row.decided_at,
    )


async def insert_appeal(conn: AsyncConnection, appeal: Appeal) -> None:
    await conn.execute(
        insert(t.appeals).values(
            id=appeal.id,
            contact_id=appeal.contact_id,
            decision_id=appeal.decision_id,
            by=appeal.by.value,
            filed_at=appeal.filed_at,
            text=appeal.text,
            state=appeal.state.value,
        )
    )


async def get_appeal(conn: AsyncConnection, appeal_id: str) -> AppealRecord | None:
    row = (await conn.execute(select(t.appeals).where(t.appeals.c.id == appeal_id))).first()
    return None if row is None else _appeal(row)


async def list_appeals(conn: AsyncConnection, contact_id: str) -> list[AppealRecord]:
    rows = (
        await conn.execute(
            select(t.appeals)
            .where(t.appeals.c.contact_id == contact_id)
            .order_by(t.appeals.c.filed_at, t.appeals.c.id)
        )
    ).all()
    return [_appeal(r) for r in rows]


async def close_appeal(
    conn: AsyncConnection,
    appeal_id: str,
    state: AppealState,
    result_decision_id: str | None,
    now: datetime,
) -> None:
    await conn.execute(
        update(t.appeals)
        .where(t.appeals.c.id == appeal_id)
        .values(state=state.value, result_decision_id=result_decision_id, decided_at=now)
    )


# Bookings -------------------------------------------------------------------


def _booking(row: Row[Any]) -> Booking:
    clearance = None
    if row.police_cleared_by is not None and row.police_cleared_at is not None:
        clearance = PoliceClearance(
            cleared_by=row.police_cleared_by, cleared_at=row.police_cleared_at
        )
    return Booking(
        id=row.id,
        inmate_id=row.inmate_id,
        contact_id=row.contact_id,
        start=row.start,
        end=row.end,
        location_kind=LocationKind(row.location_kind),
        location=row.location,
        initiation=Initiation(row.initiation),
        state=BookingState(row.state),
        police_clearance=clearance,
        control=ControlLevel(row.control),
    )


async def insert_booking(
    conn: AsyncConnection, booking: Booking, created_by: str, now: datetime
) -> None:
    clearance = booking.police_clearance
    await conn.execute(
        insert(t.bookings).values(
            id=booking.id,
            inmate_id=booking.inmate_id,
            contact_id=booking.contact_id,
            start=booking.start,
            end=booking.end,
            location_kind=booking.location_kind.value,
            location=booking.location,
            initiation=booking.initiation.value,
            state=booking.state.value,
            control=booking.control.value,
            police_cleared_by=clearance.cleared_by if clearance else None,
            police_cleared_at=clearance.cleared_at if clearance else None,
            created_by=created_by,
            created_at=now,
        )
    )


async def get_booking(conn: AsyncConnection, booking_id: str) -> Booking | None:
    row = (await conn.execute(select(t.bookings).where(t.bookings.c.id == booking_id))).first()
    return None if row is None else _booking(row)


async def list_bookings(
    conn: AsyncConnection,
    *,
    between: tuple[datetime, datetime] | None = None,
    inmate_id: str | None = None,
    states: Iterable[BookingState] | None = None,
    limit: int = 1000,
) -> list[Booking]:
    """Bookings overlapping ``between``, of ``inmate_id``, in ``states``; by start."""
    query = select(t.bookings)
    if between is not None:
        start, end = between
        query = query.where(and_(t.bookings.c.start < end, t.bookings.c.end > start))
    if inmate_id is not None:
        query = query.where(t.bookings.c.inmate_id == inmate_id)
    if states is not None:
        query = query.where(t.bookings.c.state.in_([s.value for s in states]))
    query = query.order_by(t.bookings.c.start, t.bookings.c.id).limit(limit)
    return [_booking(r) for r in (await conn.execute(query)).all()]


async def set_booking_state(
    conn: AsyncConnection, booking_ids: Iterable[str], state: BookingState
) -> None:
    ids = list(booking_ids)
    if ids:
        await conn.execute(
            update(t.bookings).where(t.bookings.c.id.in_(ids)).values(state=state.value)
        )


async def set_police_clearance(
    conn: AsyncConnection, booking_id: str, clearance: PoliceClearance
) -> None:
    """R11: record who at the police cleared the call, and when."""
    await conn.execute(
        update(t.bookings)
        .where(t.bookings.c.id == booking_id)
        .values(police_cleared_by=clearance.cleared_by, police_cleared_at=clearance.cleared_at)
    )


async def contact_categories(
    conn: AsyncConnection, contact_ids: Iterable[str]
) -> dict[str, Category]:
    ids = list(set(contact_ids))
    if not ids:
        return {}
    rows = await conn.execute(
        select(t.contacts.c.id, t.contacts.c.category).where(t.contacts.c.id.in_(ids))
    )
    return {r.id: Category(r.category) for r in rows.all()}


# Calls ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    booking_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: str
    route: str
    control: str
    state: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    connected_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    connected_seconds: int


def _call(row: Row[Any]) -> CallRecord:
    return CallRecord(**{f: getattr(row, f) for f in CallRecord.__slots__})


async def get_call(conn: AsyncConnection, call_id: str) -> CallRecord | None:
    row = (await conn.execute(select(t.calls).where(t.calls.c.id == call_id))).first()
    return None if row is None else _call(row)


async def list_calls(
    conn: AsyncConnection,
    *,
    live: bool | None = None,
    inmate_id: str | None = None,
    between: tuple[datetime, datetime] | None = None,
    limit: int = 1000,
) -> list[CallRecord]:
    query = select(t.calls)
    if live is True:
        query = query.where(t.calls.c.ended_at.is_(None))
    elif live is False:
        query = query.where(t.calls.c.ended_at.is_not(None))
    if inmate_id is not None:
        query = query.where(t.calls.c.inmate_id == inmate_id)
    if between is not None:
        start, end = between
        query = query.where(and_(t.calls.c.not_before < end, t.calls.c.not_after > start))
    query = query.order_by(t.calls.c.created_at.desc(), t.calls.c.id).limit(limit)
    return [_call(r) for r in (await conn.execute(query)).all()]


# Devices --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device: Device
    model: str
    registered_at: datetime
    last_seen_at: datetime | None


def _device(row: Row[Any]) -> DeviceRecord:
    return DeviceRecord(
        device=Device(
            id=row.id,
            serial=row.serial,
            inmate_id=row.inmate_id,
            revoked=row.revoked,
            certificate_serial=row.certificate_serial,
        ),
        model=row.model,
        registered_at=row.registered_at,
        last_seen_at=row.last_seen_at,
    )


async def list_devices(conn: AsyncConnection) -> list[DeviceRecord]:
    rows = await conn.execute(select(t.devices).order_by(t.devices.c.serial))
    return [_device(r) for r in rows.all()]


async def get_device(conn: AsyncConnection, device_id: str) -> DeviceRecord | None:
    row = (await conn.execute(select(t.devices).where(t.devices.c.id == device_id))).first()
    return None if row is None else _device(row)


async def find_device(conn: AsyncConnection, id_or_serial: str) -> DeviceRecord | None:
    """A device by id or by hardware serial (the operator knows the serial)."""
    row = (
        await conn.execute(
            select(t.devices).where(
                (t.devices.c.id == id_or_serial) | (t.devices.c.serial == id_or_serial)
            )
        )
    ).first()
    return None if row is None else _device(row)


async def device_serial_taken(
    conn: AsyncConnection, serial: str, certificate_serial: str | None
) -> bool:
    cond = t.devices.c.serial == serial
    if certificate_serial is not None:
        cond = cond | (t.devices.c.certificate_serial == certificate_serial)
    count = (await conn.execute(select(func.count()).select_from(t.devices).where(cond))).scalar()
    return bool(count)


async def insert_device(conn: AsyncConnection, device: Device, model: str, now: datetime) -> None:
    await conn.execute(
        insert(t.devices).values(
            id=device.id,
            serial=device.serial,
            model=model,
            inmate_id=device.inmate_id,
            revoked=device.revoked,
            certificate_serial=device.certificate_serial,
            registered_at=now,
        )
    )


async def assign_device(conn: AsyncConnection, device_id: str, inmate_id: str | None) -> None:
    await conn.execute(
        update(t.devices).where(t.devices.c.id == device_id).values(inmate_id=inmate_id)
    )


async def replace_certificate(
    conn: AsyncConnection, device: Device, certificate_serial: str, now: datetime
) -> None:
    """Re-provisioning: the old certificate is refused from now on, the new one is the tablet."""
    if device.certificate_serial is not None:
        await revoke_device(conn, device, now)
    await conn.execute(
        update(t.devices)
        .where(t.devices.c.id == device.id)
        .values(certificate_serial=certificate_serial, revoked=False)
    )


async def revoke_device(conn: AsyncConnection, device: Device, now: datetime) -> None:
    """Mark the tablet revoked and its certificate serial refused from now on."""
    await conn.execute(update(t.devices).where(t.devices.c.id == device.id).values(revoked=True))
    if device.certificate_serial is not None:
        known = (
            await conn.execute(
                select(t.revoked_certificates.c.serial).where(
                    t.revoked_certificates.c.serial == device.certificate_serial
                )
            )
        ).first()
        if known is None:
            await conn.execute(
                insert(t.revoked_certificates).values(
                    serial=device.certificate_serial, revoked_at=now
                )
            )


# Audit ----------------------------------------------------------------------


async def list_audit(conn: AsyncConnection, after_seq: int, limit: int) -> list[Row[Any]]:
    rows = await conn.execute(
        select(t.audit_entries)
        .where(t.audit_entries.c.seq > after_seq)
        .order_by(t.audit_entries.c.seq)
        .limit(limit)
    )
    return list(rows.all())


async def count_rows(conn: AsyncConnection, table_name: str) -> int:
    """Rows in a table of the schema (tests and the demo check what was written)."""
    table = t.metadata.tables[table_name]
    return int((await conn.execute(select(func.count()).select_from(table))).scalar() or 0)
