"""Tablets: registration, assignment, certificates and revocation (R18).
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.model import (
    Device,
)
from kiosk.store import schema as t

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
