"""Contacts, their decisions (R6-R8), recorded breaches (R14) and e-mail confirmations (R3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Contact, Decision
from kiosk.store import schema as t
from kiosk.store.rows import columns, record

# What may change after the proposal (a changed category is a new contact: R2, R5).
CHANGING_COLUMNS = (
    "name",
    "email",
    "relation",
    "status",
    "email_confirmed",
    "application_received",
)


@dataclass(frozen=True, slots=True)
class BreachRecord:
    """R14: a breach recorded against a contact on one of its calls."""

    id: str
    call_id: str
    recorded_by: str
    recorded_at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class ContactRecord(Contact):
    """A contact as staff see it: with the breaches recorded against it (R14)."""

    breach_records: tuple[BreachRecord, ...] = ()


async def _decisions(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> dict[str, Decision]:
    ids = [r.decision_id for r in rows if r.decision_id is not None]
    if not ids:
        return {}
    found = await conn.execute(select(t.decisions).where(t.decisions.c.id.in_(ids)))
    return {d.id: record(Decision, d) for d in found.all()}


async def _contacts(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[Contact]:
    decisions = await _decisions(conn, rows)
    return [record(Contact, r, decision=decisions.get(r.decision_id)) for r in rows]


async def _contact_records(conn: AsyncConnection, rows: Sequence[Row[Any]]) -> list[ContactRecord]:
    decisions = await _decisions(conn, rows)
    breaches: dict[str, list[BreachRecord]] = {}
    if rows:
        found = await conn.execute(
            select(t.breaches)
            .where(t.breaches.c.contact_id.in_([r.id for r in rows]))
            .order_by(t.breaches.c.recorded_at, t.breaches.c.id)
        )
        for b in found.all():
            breaches.setdefault(b.contact_id, []).append(record(BreachRecord, b))
    return [
        record(
            ContactRecord,
            r,
            decision=decisions.get(r.decision_id),
            breach_records=tuple(breaches.get(r.id, ())),
        )
        for r in rows
    ]


def _of_inmate(inmate_id: str) -> Select[Any]:
    return (
        select(t.contacts)
        .where(t.contacts.c.inmate_id == inmate_id)
        .order_by(t.contacts.c.created_at, t.contacts.c.id)
    )


async def list_contacts(conn: AsyncConnection, inmate_id: str) -> list[Contact]:
    return await _contacts(conn, (await conn.execute(_of_inmate(inmate_id))).all())


async def get_contact(conn: AsyncConnection, contact_id: str) -> Contact | None:
    found = await get_contacts(conn, [contact_id])
    return found.get(contact_id)


async def get_contacts(conn: AsyncConnection, ids: Iterable[str]) -> dict[str, Contact]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = (await conn.execute(select(t.contacts).where(t.contacts.c.id.in_(wanted)))).all()
    return {c.id: c for c in await _contacts(conn, rows)}


async def list_contact_records(conn: AsyncConnection, inmate_id: str) -> list[ContactRecord]:
    """An inmate's contacts with their breaches (R14), as the staff API shows them."""
    return await _contact_records(conn, (await conn.execute(_of_inmate(inmate_id))).all())


async def get_contact_record(conn: AsyncConnection, contact_id: str) -> ContactRecord | None:
    rows = (await conn.execute(select(t.contacts).where(t.contacts.c.id == contact_id))).all()
    found = await _contact_records(conn, rows)
    return found[0] if found else None


async def insert_contact(conn: AsyncConnection, contact: Contact, now: datetime) -> None:
    await conn.execute(
        insert(t.contacts).values(
            **columns(contact, exclude=("decision",)), decision_id=None, created_at=now
        )
    )


async def update_contact(conn: AsyncConnection, contact_id: str, values: Mapping[str, Any]) -> None:
    if values:
        await conn.execute(update(t.contacts).where(t.contacts.c.id == contact_id).values(**values))


async def save_contact(conn: AsyncConnection, contact: Contact) -> None:
    """Store what the policy moved: status, confirmations, and the decision in force (R8)."""
    decision_id = contact.decision.id if contact.decision is not None else None
    await update_contact(
        conn, contact.id, {**columns(contact, *CHANGING_COLUMNS), "decision_id": decision_id}
    )


async def insert_decision(conn: AsyncConnection, decision: Decision) -> None:
    """Record a decision; ``save_contact`` puts it in force on its contact (R8)."""
    await conn.execute(insert(t.decisions).values(**columns(decision)))


# E-mail confirmations (R3) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmailConfirmation:
    """A confirmation link, stored as the SHA-256 of its token; it confirms once."""

    token_hash: str
    contact_id: str
    expires_at: datetime
    used_at: datetime | None = None

    def usable_at(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at


async def insert_confirmation(conn: AsyncConnection, confirmation: EmailConfirmation) -> None:
    await conn.execute(insert(t.email_confirmations).values(**columns(confirmation)))


async def find_confirmation(conn: AsyncConnection, token_hash: str) -> EmailConfirmation | None:
    query = select(t.email_confirmations).where(t.email_confirmations.c.token_hash == token_hash)
    row = (await conn.execute(query)).first()
    return None if row is None else record(EmailConfirmation, row)


async def use_confirmation(conn: AsyncConnection, token_hash: str, now: datetime) -> None:
    await conn.execute(
        update(t.email_confirmations)
        .where(t.email_confirmations.c.token_hash == token_hash)
        .values(used_at=now)
    )
