"""Contacts, their decisions (R6-R8) and recorded breaches (R14).
"""


from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import (
    Category,
    Contact,
    ContactStatus,
    ControlLevel,
    Decision,
    Ground,
    Outcome,
    Relation,
)
from kiosk.store import schema as t

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
