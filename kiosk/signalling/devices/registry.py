"""Devices as the device listener sees them: a certificate serial and a row.

A device IS its certificate (ARCHITECTURE.md, Trust): the listener finds the
row by ``devices.certificate_serial`` (lowercase hex, ``authority.certificate_serial_text``)
and nothing the tablet says can change which device it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.crypto import revocation
from kiosk.domain.model import Device
from kiosk.store import devices as devices_store
from kiosk.store import schema as t
from kiosk.store.devices import insert_device
from kiosk.store.ids import new_id


def _device(row: object) -> Device:
    return Device(
        id=row.id,  # type: ignore[attr-defined]
        serial=row.serial,  # type: ignore[attr-defined]
        inmate_id=row.inmate_id,  # type: ignore[attr-defined]
        revoked=row.revoked,  # type: ignore[attr-defined]
        certificate_serial=row.certificate_serial,  # type: ignore[attr-defined]
    )


async def device_for_certificate(engine: AsyncEngine, certificate_serial: str) -> Device | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(t.devices).where(t.devices.c.certificate_serial == certificate_serial)
            )
        ).first()
    return None if row is None else _device(row)


async def identify(engine: AsyncEngine, certificate_serial: str) -> tuple[Device | None, bool]:
    """The device a certificate names and whether the database lists it as revoked.

    One query for both (a tablet connecting costs one round trip): the
    database's own revocation list is checked beside the CRL (defence in depth).
    """
    revoked = (
        select(t.revoked_certificates.c.serial)
        .where(t.revoked_certificates.c.serial == certificate_serial)
        .exists()
    )
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(t.devices, revoked.label("certificate_revoked"))
                .select_from(t.devices)
                .where(t.devices.c.certificate_serial == certificate_serial)
            )
        ).first()
    if row is None:
        return None, False  # unknown: refused whatever any list says
    return _device(row), bool(row.certificate_revoked)


async def touch_many(engine: AsyncEngine, seen: Sequence[tuple[str, datetime]]) -> None:
    """Write many devices' last-seen times in one transaction (``last_seen.LastSeen``)."""
    if not seen:
        return
    async with engine.begin() as conn:
        await conn.execute(
            update(t.devices)
            .where(t.devices.c.id == bindparam("device_id"))
            .values(last_seen_at=bindparam("seen_at")),
            [{"device_id": d, "seen_at": at} for d, at in seen],
        )


async def register_device(
    conn: AsyncConnection,
    serial: str,
    certificate_serial: str,
    now: datetime,
    *,
    inmate_id: str | None = None,
    model: str = "",
) -> Device:
    device = Device(
        id=new_id(),
        serial=serial,
        inmate_id=inmate_id,
        revoked=False,
        certificate_serial=certificate_serial,
    )
    await insert_device(conn, device, model, now)
    return device


async def revoke_device(
    conn: AsyncConnection, pki_dir: Path, device: Device, now: datetime
) -> None:
    """Mark the device revoked in the database and put its certificate on the CRL.

    The next handshake with that certificate fails; cutting a live connection
    is ``DeviceHub.revoke_device`` (call it after the transaction commits).
    """
    await devices_store.revoke_device(conn, device, now)
    if device.certificate_serial is not None:
        revocation.revoke(pki_dir, device.certificate_serial, now=now)
