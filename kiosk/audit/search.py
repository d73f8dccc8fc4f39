"""The audit chain read as a log: newest first, narrowed to a call, an inmate, a contact,
a staff member or an action (issue 16).

An inmate's or a contact's entries are those that name them, and those of their
bookings, calls and appeals (a call's own entries name the call, its tablet and
its booking only).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Select, String, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.audit.chain import Entry
from kiosk.audit.sql import ENTRY_COLUMNS, row_entry
from kiosk.store import schema as t


@dataclass(frozen=True, slots=True)
class LogFilter:
    call: str = ""
    inmate: str = ""
    contact: str = ""
    staff: str = ""
    action: str = ""  # an action ("call.ended") or its family ("call")


def _subject(kind: str) -> ColumnElement[str]:
    subject: ColumnElement[str] = t.audit_entries.c.subjects[kind].as_string()
    return subject


def _named(kind: str, ids: Select[tuple[str]] | str) -> ColumnElement[bool]:
    subject = _subject(kind)
    return subject == ids if isinstance(ids, str) else subject.in_(ids)


def _about(kind: str, key: str) -> ColumnElement[bool]:
    """Entries naming the inmate or contact ``key``, or one of their bookings, calls, appeals."""
    bookings = select(t.bookings.c.id).where(t.bookings.c[f"{kind}_id"] == key)
    calls = select(t.calls.c.id).where(t.calls.c[f"{kind}_id"] == key)
    found = [_named(kind, key), _named("booking", bookings), _named("call", calls)]
    if kind == "contact":
        found.append(_named("appeal", select(t.appeals.c.id).where(t.appeals.c.contact_id == key)))
    else:
        contacts = select(t.contacts.c.id).where(t.contacts.c.inmate_id == key)
        found.append(_named("contact", contacts))
    return or_(*found)


def _where(f: LogFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if f.call:
        out.append(_named("call", f.call))
    if f.inmate:
        out.append(_about("inmate", f.inmate))
    if f.contact:
        out.append(_about("contact", f.contact))
    if f.staff:
        out.append(t.audit_entries.c.actor == f"staff:{f.staff}")
    if f.action:
        family = f.action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        action = t.audit_entries.c.action.cast(String)
        out.append(or_(action == f.action, action.like(f"{family}.%", escape="\\")))
    return out


async def search(
    conn: AsyncConnection,
    f: LogFilter,
    *,
    after_seq: int = 0,
    before_seq: int | None = None,
    newest_first: bool = False,
    limit: int = 100,
) -> list[Entry]:
    """Up to ``limit`` entries matching ``f`` between the two sequence numbers (exclusive),
    newest or oldest first."""
    where = [*_where(f), t.audit_entries.c.seq > after_seq]
    if before_seq is not None:
        where.append(t.audit_entries.c.seq < before_seq)
    seq = t.audit_entries.c.seq
    query = select(*ENTRY_COLUMNS).order_by(seq.desc() if newest_first else seq).limit(limit)
    query = query.where(and_(*where))
    return [row_entry(r) for r in await conn.execute(query)]
