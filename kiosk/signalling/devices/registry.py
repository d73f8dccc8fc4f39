"""Devices as the device listener sees them: a certificate serial and a row.

A device IS its certificate (ARCHITECTURE.md, Trust): the listener finds the
row by ``devices.certificate_serial`` (lowercase hex, ``authority.certificate_serial_text``)
and nothing the tablet says can change which device it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kiosk.crypto import revocation
from kiosk.domain.model import Device
from kiosk.store import devices as devices_store
from kiosk.store.devices import insert_device
from kiosk.store.ids import new_id


async def device_for_certificate(engine: AsyncEngine, certificate_serial: str) -> Device | None:
    async with engine.connect() as conn:
        return await devices_store.device_for_certificate(conn, certificate_serial)


async def identify(engine: AsyncEngine, certificate_serial: str) -> tuple[Device | None, bool]:
    """The device a certificate names and whether the database lists it as revoked.

    One query for both (a tablet connecting costs one round trip): the
    database's own revocation list is checked beside the CRL (defence in depth).
    An unknown certificate is refused whatever any list says.
    """
    async with engine.connect() as conn:
        return await devices_store.identify_certificate(conn, certificate_serial)


async def touch_many(engine: AsyncEngine, seen: Sequence[tuple[str, datetime]]) -> None:
    """Write many devices' last-seen times in one transaction (``last_seen.LastSeen``)."""
    if seen:
        async with engine.begin() as conn:
            await devices_store.touch_devices(conn, seen)


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
        await revocation.revoke_off_loop(pki_dir, device.certificate_serial, now)
