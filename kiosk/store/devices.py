"""Tablets: registration, assignment, certificates and revocation (R18), tamper reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import Device
from kiosk.store import schema as t
from kiosk.store.rows import columns, record


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A row of ``devices``: the tablet, and when it was registered and last seen."""

    id: str
    serial: str
    model: str
    inmate_id: str | None
    revoked: bool
    certificate_serial: str | None
    registered_at: datetime
    last_seen_at: datetime | None = None

    @property
    def device(self) -> Device:
        return Device(
            id=self.id,
            serial=self.serial,
            inmate_id=self.inmate_id,
            revoked=self.revoked,
            certificate_serial=self.certificate_serial,
        )


async def list_devices(conn: AsyncConnection) -> list[DeviceRecord]:
    rows = await conn.execute(select(t.devices).order_by(t.devices.c.serial))
    return [record(DeviceRecord, r) for r in rows.all()]


async def count_in_service(conn: AsyncConnection) -> int:
    """Tablets registered and not revoked (R9: the capacity a facility really has)."""
    query = select(func.count()).select_from(t.devices).where(t.devices.c.revoked.is_(False))
    return int((await conn.execute(query)).scalar_one())


async def get_device(conn: AsyncConnection, device_id: str) -> DeviceRecord | None:
    row = (await conn.execute(select(t.devices).where(t.devices.c.id == device_id))).first()
    return None if row is None else record(DeviceRecord, row)


async def find_device(conn: AsyncConnection, id_or_serial: str) -> DeviceRecord | None:
    """A device by id or by hardware serial (the operator knows the serial)."""
    row = (
        await conn.execute(
            select(t.devices).where(
                (t.devices.c.id == id_or_serial) | (t.devices.c.serial == id_or_serial)
            )
        )
    ).first()
    return None if row is None else record(DeviceRecord, row)


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
        insert(t.devices).values(**columns(device), model=model, registered_at=now)
    )


async def device_for_certificate(conn: AsyncConnection, certificate_serial: str) -> Device | None:
    """The tablet a certificate is (ARCHITECTURE.md, Trust)."""
    query = select(t.devices).where(t.devices.c.certificate_serial == certificate_serial)
    row = (await conn.execute(query)).first()
    return None if row is None else record(DeviceRecord, row).device


async def certificate_revoked(conn: AsyncConnection, certificate_serial: str) -> bool:
    query = select(t.revoked_certificates.c.serial).where(
        t.revoked_certificates.c.serial == certificate_serial
    )
    return (await conn.execute(query)).first() is not None


async def identify_certificate(
    conn: AsyncConnection, certificate_serial: str
) -> tuple[Device | None, bool]:
    """The tablet a certificate is, and whether ``revoked_certificates`` lists it: one query."""
    revoked = (
        select(t.revoked_certificates.c.serial)
        .where(t.revoked_certificates.c.serial == certificate_serial)
        .exists()
    )
    query = select(t.devices, revoked.label("certificate_revoked")).where(
        t.devices.c.certificate_serial == certificate_serial
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None, False
    return record(DeviceRecord, row).device, bool(row.certificate_revoked)


async def touch_devices(conn: AsyncConnection, seen: Sequence[tuple[str, datetime]]) -> None:
    """Tablets seen on their links: (device id, when) each, in one statement."""
    if seen:
        await conn.execute(
            update(t.devices)
            .where(t.devices.c.id == bindparam("device_id"))
            .values(last_seen_at=bindparam("seen_at")),
            [{"device_id": d, "seen_at": at} for d, at in seen],
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
        if not await certificate_revoked(conn, device.certificate_serial):
            await conn.execute(
                insert(t.revoked_certificates).values(
                    serial=device.certificate_serial, revoked_at=now
                )
            )


# Tamper events (R18, USB guard) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class TamperEvent:
    """A tablet's report of tampering."""

    id: str
    device_id: str
    at: datetime
    kind: str
    details: dict[str, str]


async def insert_tamper_event(conn: AsyncConnection, event: TamperEvent) -> None:
    await conn.execute(insert(t.tamper_events).values(**columns(event)))


async def list_tamper_events(
    conn: AsyncConnection, device_id: str, limit: int = 200
) -> list[TamperEvent]:
    """A tablet's tamper reports, newest first."""
    rows = await conn.execute(
        select(t.tamper_events)
        .where(t.tamper_events.c.device_id == device_id)
        .order_by(t.tamper_events.c.at.desc(), t.tamper_events.c.id)
        .limit(limit)
    )
    return [
        record(TamperEvent, r, details={str(k): str(v) for k, v in dict(r.details or {}).items()})
        for r in rows
    ]
