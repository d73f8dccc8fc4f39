"""What every part of the server shares: settings, database, audit chain, clock.

Built once per process by ``kiosk.signalling.server.start`` and stored on the
web application under typed keys, so that handlers, the device listener and
the call supervisor read the same objects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.config import Settings
from kiosk.signalling.auth import LoginLimiter

if TYPE_CHECKING:
    from kiosk.audit import AuditLog


def utc_now() -> datetime:
    return datetime.now(UTC)


# Called with a device id after the device was revoked (the call supervisor
# cuts its live connections there; ARCHITECTURE.md, Trust).
DeviceRevokedHook = Callable[[str], Awaitable[None]]


@dataclass
class ServerContext:
    settings: Settings
    engine: AsyncEngine
    audit: AuditLog
    clock: Callable[[], datetime] = utc_now
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    on_device_revoked: list[DeviceRevokedHook] = field(default_factory=list)

    async def device_revoked(self, device_id: str) -> None:
        for hook in self.on_device_revoked:
            await hook(device_id)


SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
CONTEXT = web.AppKey("context", ServerContext)
