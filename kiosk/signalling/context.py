"""What every part of the server shares: settings, database, audit chain, clock.

Built once per process by ``kiosk.signalling.server.start`` and stored on the
web application under typed keys, so that handlers, the device listener and
the calls' runner read the same objects.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.domain.login_throttle import LoginThrottle
from kiosk.runtime.config import Settings

if TYPE_CHECKING:
    from kiosk.audit.log import AuditLog


def utc_now() -> datetime:
    return datetime.now(UTC)


# Called with a device id after the device was revoked (the calls' runner
# cuts its live connections there; ARCHITECTURE.md, Trust).
DeviceRevokedHook = Callable[[str], Awaitable[None]]
# Called with tablets and inmates whose tablets' view changed (issue 11): the
# runner pushes those tablets their state at once.
TabletsChangedHook = Callable[[Iterable[str], Iterable[str]], Awaitable[None]]


@dataclass(eq=False)  # one per process, compared and hashed by identity
class ServerContext:
    settings: Settings
    engine: AsyncEngine
    audit: AuditLog
    clock: Callable[[], datetime] = utc_now
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    on_device_revoked: list[DeviceRevokedHook] = field(default_factory=list)
    # Called after the facility's restrictions changed (R16: the switchboard
    # ends or shortens the live calls a restriction covers).
    on_restrictions_changed: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_tablets_changed: list[TabletsChangedHook] = field(default_factory=list)
    # Called after a commit that put mail in the outbox (issue 12): its worker wakes.
    on_mail_queued: list[Callable[[], None]] = field(default_factory=list)
    # The key visitors' invite tokens are derived with (issue 16); the default, fresh
    # per process, only serves contexts built without the server's keys.
    invite_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def mail_queued(self) -> None:
        for hook in self.on_mail_queued:
            hook()

    async def device_revoked(self, device_id: str) -> None:
        for hook in self.on_device_revoked:
            await hook(device_id)

    async def restrictions_changed(self) -> None:
        for hook in self.on_restrictions_changed:
            await hook()

    async def tablets_changed(
        self, *, devices: Iterable[str] = (), inmates: Iterable[str] = ()
    ) -> None:
        """What a tablet shows changed: its assignment, or an inmate's contacts, decisions
        or bookings. Call after the change is committed."""
        devices, inmates = list(devices), list(inmates)
        for hook in self.on_tablets_changed:
            await hook(devices, inmates)


INVITE_KEY_PURPOSE = b"kiosk visitor invite links v1"

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
AUDIT: web.AppKey[AuditLog] = web.AppKey("audit")
CONTEXT = web.AppKey("context", ServerContext)


@asynccontextmanager
async def open_context(
    settings: Settings, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[ServerContext]:
    """The database (upgraded, with a facility row) and the audit chain, closed on exit.

    The audit chain closes with a signed checkpoint of its newest entry.
    The server and the one-shot admin commands open it the same way.
    """
    from kiosk.audit.keys import load_signing_key, log_origin
    from kiosk.audit.log import AuditLog
    from kiosk.crypto.keys import derived_secret
    from kiosk.store.db import make_engine, upgrade, write_transaction
    from kiosk.store.facility import ensure_facility

    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        signing_key = load_signing_key(settings.pki_dir)
        audit = AuditLog(
            engine,
            signing_key,
            checkpoint_every=settings.audit.checkpoint_every,
            clock=clock,
            origin=log_origin(settings.audit.origin, settings.server.public_url),
        )
        async with write_transaction(engine) as conn:
            await ensure_facility(conn)
        try:
            throttle = LoginThrottle(timedelta(seconds=settings.web.login_delay_seconds))
            yield ServerContext(
                settings=settings, engine=engine, audit=audit, clock=clock,
                login_throttle=throttle,
                invite_key=derived_secret(signing_key, INVITE_KEY_PURPOSE),
            )
        finally:
            await audit.close()
    finally:
        await engine.dispose()
