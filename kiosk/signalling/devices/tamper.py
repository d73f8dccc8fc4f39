"""A tablet's tamper report (R18): kept with the device and in the audit chain."""

from __future__ import annotations

import uuid
from datetime import datetime

from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import ServerContext
from kiosk.store import devices as store_devices
from kiosk.store.db import write_transaction
from kiosk.wire.messages import TamperMessage

log = get_logger(__name__)


async def record_tamper(
    ctx: ServerContext, device_id: str, message: TamperMessage, now: datetime
) -> None:
    event_id = str(uuid.uuid4())
    kind = message.kind[:64]
    async with write_transaction(ctx.engine) as conn:
        await store_devices.insert_tamper_event(
            conn, store_devices.TamperEvent(event_id, device_id, now, kind, dict(message.details))
        )
        await ctx.audit.append(
            f"device:{device_id}",
            "device.tamper",
            {"device": device_id, "tamper_event": event_id},
            {"kind": kind},
            conn=conn,
        )
    log.warning("tablet reported tampering", device_id=device_id, kind=kind)
