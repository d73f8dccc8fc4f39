"""The names behind ids, for screens that show records by id (the audit log)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.store import schema as t

# The kind of id, and the table and column that name it.
NAMED = {
    "inmate": (t.inmates, t.inmates.c.name),
    "contact": (t.contacts, t.contacts.c.name),
    "staff": (t.staff, t.staff.c.display_name),
    "device": (t.devices, t.devices.c.serial),
}


async def names_of(conn: AsyncConnection, ids: Mapping[str, Collection[str]]) -> dict[str, str]:
    """``{id: name}`` for the ids of each kind given (kinds as in ``NAMED``)."""
    out: dict[str, str] = {}
    for kind, wanted in ids.items():
        if kind not in NAMED or not wanted:
            continue
        table, name = NAMED[kind]
        rows = await conn.execute(select(table.c.id, name).where(table.c.id.in_(list(wanted))))
        out.update({row[0]: row[1] for row in rows})
    return out
