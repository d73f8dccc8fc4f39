"""The whole server process: web listener, device listener, the calls' runner.

``kiosk server`` runs this. The web listener (staff API, visitor endpoint,
metrics) and the device listener (mutual TLS) are separate sockets sharing
one :class:`ServerContext` and one :class:`CallRunner` (the switchboard). systemd is told
READY once both listen, and the watchdog is fed while the process is
healthy (issue 7).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from kiosk.crypto import authority, keys
from kiosk.runtime import heap, open_files, sdnotify
from kiosk.runtime.config import Settings
from kiosk.runtime.logs import get_logger
from kiosk.signalling import console
from kiosk.signalling import metrics as metrics_mod
from kiosk.signalling import server as web_server
from kiosk.signalling import web as web_pages
from kiosk.signalling.api.live import operations as live_operations
from kiosk.signalling.calls.bridged import Bridges
from kiosk.signalling.calls.ports import DeviceSender
from kiosk.signalling.calls.runner import CallRunner, CallsHolder
from kiosk.signalling.calls.writes import Fence
from kiosk.signalling.cluster.node import start_node
from kiosk.signalling.context import CONTEXT, utc_now
from kiosk.signalling.devices.listener import DeviceHub, DeviceListener, LinkTimers
from kiosk.signalling.mail import outbox as mail_outbox
from kiosk.signalling.visitors import endpoint as visitor
from kiosk.store.db import ping

log = get_logger(__name__)


@dataclass
class ServerProcess:
    web: web_server.Server
    calls: CallsHolder
    listener: DeviceListener
    metrics: metrics_mod.Metrics

    @property
    def hub(self) -> DeviceHub:
        return self.listener.hub

    async def healthy(self) -> bool:
        """Fed to systemd's watchdog: the database answers and both listeners are up."""
        if self.web.runner.server is None or self.listener.port == 0:
            return False
        async with asyncio.timeout(5):
            await ping(self.web.context.engine)
        return True

    async def close(self) -> None:
        sdnotify.stopping()
        await self.web.close()  # runs the clean-up below, then closes the audit chain


async def start(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    link_timers: LinkTimers | None = None,
) -> ServerProcess:
    paths = authority.PkiPaths(settings.pki_dir)
    if not paths.grant_key.exists():
        raise FileNotFoundError(f"no grant key in {settings.pki_dir}: run `kiosk admin ca init`")
    limit = open_files.ensure(settings.server.device_capacity)  # or OpenFilesError, at once
    log.info("open-file limit", limit=limit, device_capacity=settings.server.device_capacity)
    metrics = metrics_mod.Metrics()
    grant_key = keys.load_ed25519_private_key(paths.grant_key)
    calls = CallsHolder()
    holder: dict[str, DeviceListener] = {}

    async def devices_and_calls(app: web.Application) -> AsyncIterator[None]:
        # Runs after the shared context exists (database, audit chain).
        ctx = app[CONTEXT]
        hub = DeviceHub(ctx.engine, timers=link_timers, now=ctx.clock)
        if settings.cluster.enabled:
            # Issue 14: whichever node holds the lease runs the switchboard.
            def make_runner(devices: DeviceSender, fence: Fence) -> CallRunner:
                bridges = Bridges(metrics)
                return CallRunner(ctx, devices, grant_key, bridges=bridges, fence=fence)

            node = await start_node(ctx, hub, make_runner)
            calls.runner = node.front
            live_calls, bridge_calls = node.front.live_calls, node.bridge_calls
            bridge_monitors = node.bridge_monitors
        else:
            runner = CallRunner(ctx, hub, grant_key, bridges=Bridges(metrics), metrics=metrics)
            hub.handler = runner
            calls.runner = runner
            ctx.on_device_revoked.append(_cut_revoked(runner, hub))
            ctx.on_restrictions_changed.append(runner.restrictions_changed)
            ctx.on_tablets_changed.append(runner.tablets_changed)
            await runner.start()
            live_calls, bridge_calls = runner.live_calls, runner.bridge_calls
            bridge_monitors = runner.bridge_monitors
        listener = DeviceListener(
            hub,
            settings.pki_dir,
            settings.server.device_host,
            settings.server.device_port,
            backlog=settings.server.device_backlog,
        )
        await listener.start()
        holder["listener"] = listener
        metrics.bind(
            live_calls=live_calls,
            devices_connected=lambda: len(hub.device_ids()),
            bridge_calls=bridge_calls,
            bridge_monitors=bridge_monitors,
        )
        try:
            yield
        finally:
            if settings.cluster.enabled:
                await node.hand_over()
            else:
                await runner.stop()
            await listener.stop()
            if settings.cluster.enabled:
                await node.close()

    def configure(app: web.Application) -> None:
        app.cleanup_ctx.append(devices_and_calls)
        visitor.add_routes(app, calls)
        metrics_mod.install(app, metrics)
        # The visitor page, the e-mail confirmation page, and mails drained at shutdown.
        web_pages.add_routes(app)
        console.add_routes(app)  # the staff console under /console/
        mail_outbox.install(app, metrics)

    web = await web_server.start(
        settings, operations=live_operations(calls), configure=configure, clock=clock
    )
    assert calls.runner is not None  # set up by the clean-up context above
    process = ServerProcess(web, calls, holder["listener"], metrics)
    sdnotify.ready(f"web {web.base_url}, devices on port {process.listener.port}")
    return process


def _cut_revoked(runner: CallRunner, hub: DeviceHub) -> Callable[[str], Awaitable[None]]:
    async def cut(device_id: str) -> None:
        # Revoking a device ends its call and cuts its link at once (Trust).
        await runner.device_revoked(device_id)
        await hub.revoke_device(device_id)

    return cut


async def run(settings: Settings) -> None:
    process = await start(settings)
    heap.settle()
    watchdog = sdnotify.Watchdog(health=process.healthy)
    watchdog.start()
    try:
        await web_server.wait_for_stop_signal()
        log.info("stopping on signal")
    finally:
        await watchdog.stop()
        await process.close()
