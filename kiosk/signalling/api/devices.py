"""Tablets: list, register, assign to an inmate, revoke (ARCHITECTURE.md, Trust; R18)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.crypto import authority, revocation
from kiosk.domain.access import Action
from kiosk.domain.model import Device
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiError, ApiRequest, OperationTable, not_found
from kiosk.signalling.api.work import reading, writing
from kiosk.signalling.schemas import devices as s
from kiosk.store import devices as devices_store
from kiosk.store.devices import DeviceRecord, device_serial_taken, find_device, insert_device
from kiosk.store.ids import new_id
from kiosk.store.inmates import get_inmate

if TYPE_CHECKING:
    from kiosk.audit.log import AuditLog

table = OperationTable("devices")


async def revoke_device(
    conn: AsyncConnection,
    audit: AuditLog,
    device_ref: str,
    actor: str,
    now: datetime,
    pki_dir: Path | None = None,
) -> DeviceRecord:
    """Mark a tablet revoked and its certificate serial refused; audited in ``conn``'s transaction.

    Shared by the API and ``kiosk admin device revoke``. Cutting its live
    connections is the calls' runner's (``ServerContext.on_device_revoked``).
    """
    record = await find_device(conn, device_ref)
    if record is None:
        raise not_found("device")
    if record.device.revoked:
        raise ApiError(Reason.DEVICE_REVOKED, "The tablet is already revoked.")
    await devices_store.revoke_device(conn, record.device, now)
    subjects = {"device": record.device.id}
    if record.device.certificate_serial:
        subjects["certificate"] = record.device.certificate_serial
    await audit.append(actor, "device.revoked", subjects, conn=conn)
    if pki_dir is not None and record.device.certificate_serial:
        # The handshake refuses it from the CRL (ARCHITECTURE.md, Trust); no CA, no CRL.
        if (pki_dir / authority.CA_CERT).exists():
            await revocation.revoke_off_loop(pki_dir, record.device.certificate_serial, now)
    updated = await devices_store.get_device(conn, record.device.id)
    assert updated is not None
    return updated


@table.route("GET", "/devices", Action.DEVICE_READ, summary="List tablets", response=s.DeviceList)
async def list_devices(req: ApiRequest) -> s.DeviceList:
    async with reading(req) as work:
        records = await devices_store.list_devices(work.conn)
    return s.DeviceList(items=[s.DeviceOut.model_validate(r) for r in records])


@table.route(
    "POST",
    "/devices",
    Action.DEVICE_WRITE,
    summary="Register a tablet",
    body=s.DeviceRegister,
    response=s.DeviceOut,
    status=201,
    refusals=(Reason.CONFLICT,),
)
async def register_device(req: ApiRequest) -> s.DeviceOut:
    body = req.body_as(s.DeviceRegister)
    cert_serial = body.certificate_serial.lower() if body.certificate_serial else None
    async with writing(req) as work:
        if await device_serial_taken(work.conn, body.serial, cert_serial):
            raise ApiError(Reason.CONFLICT, "A tablet with that serial is already registered.")
        device = Device(id=new_id(), serial=body.serial, certificate_serial=cert_serial)
        await insert_device(work.conn, device, body.model, req.now)
        await work.audit("device.registered", {"device": device.id})
        record = await devices_store.get_device(work.conn, device.id)
    return s.DeviceOut.model_validate(record)  # just written: never None


@table.route(
    "GET", "/devices/{device_id}", Action.DEVICE_READ, summary="Read a tablet", response=s.DeviceOut
)
async def get_device(req: ApiRequest) -> s.DeviceOut:
    async with reading(req) as work:
        record = await work.load(devices_store.get_device, req.params["device_id"], "device")
    return s.DeviceOut.model_validate(record)


@table.route(
    "GET",
    "/devices/{device_id}/tamper-events",
    Action.DEVICE_READ,
    summary="A tablet's tamper reports, newest first (R18)",
    response=s.TamperEventList,
)
async def list_tamper_events(req: ApiRequest) -> s.TamperEventList:
    async with reading(req) as work:
        record = await work.load(devices_store.get_device, req.params["device_id"], "device")
        events = await devices_store.list_tamper_events(work.conn, record.id)
    return s.TamperEventList(items=[s.TamperEventOut.model_validate(e) for e in events])


@table.route(
    "PUT",
    "/devices/{device_id}/assignment",
    Action.DEVICE_WRITE,
    summary="Assign a tablet to an inmate, or take it back (null)",
    body=s.DeviceAssign,
    response=s.DeviceOut,
    refusals=(Reason.DEVICE_REVOKED, Reason.INMATE_INACTIVE),
)
async def assign_device(req: ApiRequest) -> s.DeviceOut:
    body = req.body_as(s.DeviceAssign)
    async with writing(req) as work:
        record = await work.load(devices_store.get_device, req.params["device_id"], "device")
        if record.revoked:
            raise ApiError(Reason.DEVICE_REVOKED)
        subjects = {"device": record.id}
        if body.inmate_id is not None:
            inmate = await work.load(get_inmate, body.inmate_id, "inmate")
            if not inmate.active:
                raise ApiError(Reason.INMATE_INACTIVE)
            subjects["inmate"] = inmate.id
        await devices_store.assign_device(work.conn, record.id, body.inmate_id)
        work.tablets_changed(devices=[record.id])  # the next inmate sees only theirs
        await work.audit(
            "device.assigned" if body.inmate_id else "device.unassigned", subjects
        )
    return s.DeviceOut.model_validate(replace(record, inmate_id=body.inmate_id))


@table.route(
    "POST",
    "/devices/{device_id}/revoke",
    Action.DEVICE_WRITE,
    summary="Revoke a tablet: its certificate is refused from now on and live calls are cut",
    response=s.DeviceOut,
    refusals=(Reason.DEVICE_REVOKED,),
)
async def revoke(req: ApiRequest) -> s.DeviceOut:
    async with writing(req) as work:
        record = await work.load(devices_store.get_device, req.params["device_id"], "device")
        updated = await revoke_device(
            work.conn,
            req.ctx.audit,
            record.id,
            req.staff.actor,
            req.now,
            pki_dir=req.ctx.settings.pki_dir,
        )
    await req.ctx.device_revoked(updated.id)
    return s.DeviceOut.model_validate(updated)


@table.route(
    "POST",
    "/devices/{device_id}/certificate",
    Action.DEVICE_WRITE,
    summary="Re-provision a tablet (by id or hardware serial): a new certificate, the old revoked",
    body=s.DeviceCertificate,
    response=s.DeviceOut,
    refusals=(Reason.CONFLICT,),
)
async def replace_certificate(req: ApiRequest) -> s.DeviceOut:
    """The provisioning station calls this when re-provisioning was asked for explicitly
    (issue 6): the old certificate goes on the CRL and its live link is cut."""
    body = req.body_as(s.DeviceCertificate)
    new_serial = body.certificate_serial.lower()
    async with writing(req) as work:
        record = await work.load(find_device, req.params["device_id"], "device")
        old = record.certificate_serial
        if old == new_serial or await device_serial_taken(work.conn, "", new_serial):
            raise ApiError(Reason.CONFLICT, "That certificate is already registered.")
        await devices_store.replace_certificate(work.conn, record.device, new_serial, req.now)
        subjects = {"device": record.id, "certificate": new_serial}
        if old:
            subjects["old_certificate"] = old
        await work.audit("device.reprovisioned", subjects)
        if old and (req.ctx.settings.pki_dir / authority.CA_CERT).exists():
            await revocation.revoke_off_loop(req.ctx.settings.pki_dir, old, req.now)
        updated = await work.load(devices_store.get_device, record.id, "device")
    if old:
        await req.ctx.device_revoked(updated.id)
    return s.DeviceOut.model_validate(updated)
