"""The tablet agent: the link, the call and the kiosk page's API around the pure session.

``TabletSession`` (kiosk/device/session.py) decides; this module carries out
its actions: messages go out on the ``Link``, media starts and stops in a
``Call`` (kiosk/device/call_runner.py), events go to the page's WebSocket
(``kiosk.device.ui_server``, fed by kiosk/device/page_feed.py).
Every input — a server message, the link going up or down, a tap on the page,
the call's own clock — is handled one at a time under one lock, so the
session sees them in order.

In-process use (tests, the demo)::

    agent = Agent(settings.agent, synthetic_media=True)
    await agent.start()            # link + loopback UI; agent.ui_port is bound
    agent.view()                   # what GET /api/state returns
    queue = agent.subscribe()      # the events WS /api/events sends
    await agent.dial(booking_id)   # as POST /api/dial
    await agent.hangup()           # as POST /api/hangup
    await agent.controls(call_id, audio=False, video=True)  # as POST /api/controls
    await agent.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from kiosk.crypto.tls import agent_client_context
from kiosk.device.actions import (
    Action,
    AddIce,
    ApplyAnswer,
    RenewCall,
    Send,
    Show,
    StartCall,
    StopCall,
)
from kiosk.device.call import Call, MediaCounters
from kiosk.device.call_runner import CallRunner
from kiosk.device.grant_key import AgentError, Clock, load_grant_key, tablet_clock
from kiosk.device.link import Link, LinkTimers
from kiosk.device.page_feed import PageFeed
from kiosk.device.page_peer import address_on_this_machine
from kiosk.device.session import TabletSession
from kiosk.device.ui_server import UiServer
from kiosk.domain.reasons import EndReason
from kiosk.runtime.config import AgentSettings
from kiosk.runtime.logs import get_logger
from kiosk.wire.messages import GrantRefusedMessage

log = get_logger(__name__)

STOP_STEP_TIMEOUT = 5.0


class Agent:
    def __init__(
        self,
        settings: AgentSettings,
        *,
        synthetic_media: bool = False,
        clock: Clock = tablet_clock,
    ) -> None:
        self.settings = settings
        self.synthetic_media = synthetic_media
        self.clock = clock
        self.session = TabletSession(load_grant_key(settings.grant_public_key), settings.device_id)
        try:
            ssl_context = agent_client_context(settings.ca_cert, settings.cert, settings.key)
        except (OSError, ValueError) as exc:
            raise AgentError(f"cannot load the tablet's TLS credentials: {exc}") from exc
        self.link = Link(
            settings.server_url,
            ssl_context,
            LinkTimers(
                heartbeat_interval=settings.heartbeat_interval,
                reconnect_min=settings.reconnect_min,
                reconnect_max=settings.reconnect_max,
            ),
            on_up=self._link_up,
            on_down=self._link_down,
            on_message=self._server_message,
            on_heartbeat=self._heartbeat,
        )
        self.feed = PageFeed(clock)
        self.calls = CallRunner(
            settings, self.session, self.feed,
            synthetic_media=synthetic_media, clock=clock,
            carry_out=self._carry_out, run_input=self._input,
        )
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._usb_guard: asyncio.Task[None] | None = None
        self._ui: UiServer | None = None
        self.ui_port = settings.ui_port

    # --- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._ui = UiServer(self, self.settings.ui_host, self.settings.ui_port)
        self.ui_port = await self._ui.start()
        self.link.start()
        self._ticker = asyncio.create_task(self._tick(), name="agent countdown")
        if self.settings.usb_guard:
            self._usb_guard = asyncio.create_task(self._run_guard(), name="agent USB guard")
        log.info("agent started", ui_port=self.ui_port, synthetic_media=self.synthetic_media)
        if not address_on_this_machine(self.settings.page_media_host):
            # The kiosk page cannot connect its media: calls would have none (docs/deploy.md).
            log.warning("the kiosk page's media address is not on lo",
                        page_media_host=self.settings.page_media_host)

    async def _run_guard(self) -> None:
        """R18: only allow-listed USB devices; refusals go to the server as tamper events."""
        from kiosk.device.usbguard import guard_service

        try:
            await guard_service(self.settings.usb_allow, self.link.send)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A tablet whose USB cannot be locked is not fit for calls: say so loudly.
            log.exception("USB guard failed")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._usb_guard is not None:
            self._usb_guard.cancel()
        if self.session.live is not None:
            # The agent going away takes the call with it: hang up, so the server
            # ends it too rather than waiting for the window's end.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.hangup(), 5.0)
        # Each step bounded: a stuck peer or socket must not keep the agent from exiting.
        steps: list[tuple[str, Any]] = []
        if self.call is not None:
            steps.append(("call", self.call.close(EndReason.CONNECTION_LOST)))
        steps.append(("link", self.link.stop()))
        if self._ui is not None:
            steps.append(("page API", self._ui.stop()))
        for name, step in steps:
            try:
                await asyncio.wait_for(step, STOP_STEP_TIMEOUT)
            except Exception as exc:  # TimeoutError included: log it and go on stopping
                log.warning("agent stop step failed", step=name, error=type(exc).__name__)
        self.calls.cancel_tasks()
        log.info("agent stopped")

    # --- what the page (and tests) use ------------------------------------------------

    def view(self) -> dict[str, Any]:
        view = self.session.view(self.clock())
        counters = self.counters
        # What arrived from the other end in the current call: the page shows
        # "connecting" until media flows, and tests read it.
        view["media"] = {
            "video_received": counters.video_frames if counters else 0,
            "audio_received": counters.audio_frames if counters else 0,
            **self.calls.page_target(),
            # A kiosk page that captures the media is open: a call started now takes its media.
            "page_open": self.feed.media_page,
        }
        return view

    def subscribe(self, media_page: bool = False) -> asyncio.Queue[dict[str, Any]]:
        return self.feed.subscribe(media_page)

    async def page_offer(self, call_id: str, sdp: str) -> str:
        """As POST /api/media: the page's offer for the live call's media; the answer."""
        async with self._lock:
            return await self.calls.page_offer(call_id, sdp)

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.feed.unsubscribe(queue)

    async def dial(self, booking_id: str) -> list[dict[str, Any]]:
        """As POST /api/dial. Returns the events it caused (a local refusal shows here)."""
        return await self._input(lambda m: self.session.dial(booking_id, m))

    async def hangup(self) -> list[dict[str, Any]]:
        return await self._input(self.session.hangup)

    async def dismiss(self) -> list[dict[str, Any]]:
        return await self._input(self.session.dismiss)

    async def controls(self, call_id: str, audio: bool, video: bool) -> list[dict[str, Any]]:
        """As POST /api/controls: the page's microphone and camera on or off (issue 16)."""
        return await self._input(lambda m: self.session.controls(call_id, audio, video, m))

    @property
    def call(self) -> Call | None:
        return self.calls.call

    @property
    def last_call(self) -> Call | None:
        """Kept after the end: tests and the bench read it."""
        return self.calls.last_call

    @property
    def calls_started(self) -> int:
        return self.calls.calls_started

    @property
    def counters(self) -> MediaCounters | None:
        return self.calls.counters

    # --- inputs ---------------------------------------------------------------------------

    async def _input(self, step: Callable[[float], list[Action]]) -> list[dict[str, Any]]:
        async with self._lock:
            actions = step(self.clock())
            return await self._carry_out(actions)

    async def _link_up(self) -> None:
        await self._input(self.session.link_up)

    async def _link_down(self) -> None:
        await self._input(self.session.link_down)

    async def _server_message(self, message: BaseModel) -> None:
        await self._input(lambda m: self.session.server_message(message, m))

    async def _heartbeat(self) -> None:
        await self._input(self.session.ping)

    # --- actions --------------------------------------------------------------------------

    async def _carry_out(self, actions: list[Action]) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        for action in actions:
            if isinstance(action, Send):
                if isinstance(action.message, GrantRefusedMessage):
                    log.warning("the tablet refused a grant", call_id=action.message.call_id,
                                reason=action.message.reason.value)
                await self.link.send(action.message)
            elif isinstance(action, Show):
                event = dict(action.event)
                shown.append(event)
                self.feed.publish(event)
            elif isinstance(action, StartCall):
                await self.calls.start(action)
            elif isinstance(action, RenewCall):
                await self.calls.renew(action)
            elif isinstance(action, ApplyAnswer):
                await self.calls.apply_answer(action)
            elif isinstance(action, AddIce):
                await self.calls.add_ice(action)
            elif isinstance(action, StopCall):
                await self.calls.stop(action)
        return shown

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._input(self.session.tick)
