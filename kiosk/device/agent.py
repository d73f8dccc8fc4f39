"""The tablet agent: the link, the call and the kiosk page's API around the pure session.

``TabletSession`` (kiosk/device/session.py) decides; this module carries out
its actions: messages go out on the ``Link``, media starts and stops in a
``Call``, events go to the page's WebSocket (``kiosk.device.ui_server``).
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
    await agent.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import BaseModel

from kiosk.crypto.tls import agent_client_context
from kiosk.device.call import Call, MediaCounters
from kiosk.device.link import Link, LinkTimers
from kiosk.device.media import (
    JpegEncoder,
    LocalMedia,
    MediaUnavailable,
    Speaker,
    open_media,
    pump,
)
from kiosk.device.page_peer import NoLiveCall, PageMedia
from kiosk.device.session import (
    Action,
    AddIce,
    ApplyAnswer,
    RenewCall,
    Send,
    Show,
    StartCall,
    StopCall,
    TabletSession,
)
from kiosk.domain.callstate import End, Warn
from kiosk.domain.reasons import EndReason
from kiosk.runtime.config import AgentSettings
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

Clock = Callable[[], float]

FRAME_REMOTE = 1  # first byte of a /api/frames message: the other end's video
FRAME_SELF = 2  # the tablet's own camera (self view)
MAX_UI_FPS = {FRAME_REMOTE: 15.0, FRAME_SELF: 10.0}  # the page needs no more
EVENT_QUEUE = 256
END_GRACE = 2.0  # s to wait for the server's end after the media went away
STOP_STEP_TIMEOUT = 5.0


def tablet_clock() -> float:
    """The agent's monotonic clock: CLOCK_BOOTTIME, which also counts time suspended.

    CLOCK_MONOTONIC (``time.monotonic``) stops while the machine sleeps: a
    tablet suspended mid-call would wake with its deadline still ahead by the
    time it slept. Both are immune to the wall clock being set.
    """
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class AgentError(Exception):
    """The agent cannot start (bad configuration, unreadable keys)."""


def load_grant_key(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise AgentError(f"cannot read the grant public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise AgentError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AgentError(f"{path} is not an Ed25519 public key")
    return key


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
        # The kiosk page captures and plays the call's media (page_peer.py); the agent
        # opens no camera or sound device. Synthetic sources only for a headless tablet.
        self.real_media = False
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
        self.call: Call | None = None
        self.last_call: Call | None = None  # kept after the end: tests and the bench read it
        self.calls_started = 0
        self._speaker: Speaker | None = None
        self._lock = asyncio.Lock()
        self._events: set[asyncio.Queue[dict[str, Any]]] = set()
        self._media_pages: set[asyncio.Queue[dict[str, Any]]] = set()  # pages that do media
        self._frames: set[asyncio.Queue[bytes]] = set()
        self._encoders = {FRAME_REMOTE: JpegEncoder(), FRAME_SELF: JpegEncoder()}
        self._frame_sent_at = {FRAME_REMOTE: 0.0, FRAME_SELF: 0.0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._usb_guard: asyncio.Task[None] | None = None
        self._ui: Any = None
        self.ui_port = settings.ui_port

    # --- life -----------------------------------------------------------------------------

    async def start(self) -> None:
        from kiosk.device.ui_server import UiServer

        self._ui = UiServer(self, self.settings.ui_host, self.settings.ui_port)
        self.ui_port = await self._ui.start()
        self.link.start()
        self._ticker = asyncio.create_task(self._tick(), name="agent countdown")
        if self.settings.usb_guard:
            self._usb_guard = asyncio.create_task(self._run_guard(), name="agent USB guard")
        log.info("agent started", ui_port=self.ui_port, synthetic_media=self.synthetic_media)

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
        for task in list(self._tasks):
            task.cancel()
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
            **self._page_media_event(),
        }
        return view

    def subscribe(self, media_page: bool = False) -> asyncio.Queue[dict[str, Any]]:
        """``media_page``: the subscriber is a kiosk page that captures and plays the
        call's media itself; while one is there, calls forward its media."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(EVENT_QUEUE)
        self._events.add(queue)
        if media_page:
            self._media_pages.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._events.discard(queue)
        self._media_pages.discard(queue)

    @property
    def page_media(self) -> PageMedia | None:
        call = self.call
        return call.media if call is not None and isinstance(call.media, PageMedia) else None

    def _page_media_event(self) -> dict[str, Any]:
        """Which call the page should connect its media to now (a new one on renewal)."""
        media = self.page_media
        if media is None or self.call is None:
            return {"page": None}
        return {"page": {"call_id": self.call.call_id, "epoch": self.calls_started}}

    async def page_offer(self, call_id: str, sdp: str) -> str:
        """As POST /api/media: the page's offer for the live call's media; the answer.

        Only for the live call under its accepted grant, in page mode (no grant, no
        media: principle 1); ``PageRefused`` otherwise.
        """
        async with self._lock:
            media = self.page_media
            if media is None or self.call is None or self.call.call_id != call_id:
                raise NoLiveCall("no live call takes the page's media")
            if self.session.live is None or self.session.live.grant.call_id != call_id:
                raise NoLiveCall("no live call takes the page's media")
            return await media.accept_page(sdp)

    def subscribe_frames(self) -> asyncio.Queue[bytes]:
        queue: asyncio.Queue[bytes] = asyncio.Queue(4)
        self._frames.add(queue)
        return queue

    def unsubscribe_frames(self, queue: asyncio.Queue[bytes]) -> None:
        self._frames.discard(queue)

    async def dial(self, booking_id: str) -> list[dict[str, Any]]:
        """As POST /api/dial. Returns the events it caused (a local refusal shows here)."""
        return await self._input(lambda m: self.session.dial(booking_id, m))

    async def hangup(self) -> list[dict[str, Any]]:
        return await self._input(self.session.hangup)

    async def dismiss(self) -> list[dict[str, Any]]:
        return await self._input(self.session.dismiss)

    @property
    def counters(self) -> MediaCounters | None:
        call = self.call or self.last_call
        return call.counters if call is not None else None

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

    def _later(self, step: Callable[[float], list[Action]]) -> None:
        """An input from a callback (the call's clock, its connection state)."""
        task = asyncio.ensure_future(self._input(step))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- actions --------------------------------------------------------------------------

    async def _carry_out(self, actions: list[Action]) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        for action in actions:
            if isinstance(action, Send):
                await self.link.send(action.message)
            elif isinstance(action, Show):
                event = dict(action.event)
                shown.append(event)
                self._publish(event)
            elif isinstance(action, StartCall):
                await self._start_call(action)
            elif isinstance(action, RenewCall):
                await self._renew_call(action)
            elif isinstance(action, ApplyAnswer):
                if self.call is not None and self.call.call_id == action.call_id:
                    await self._guard(self.call.apply_answer(action.sdp), action.call_id)
            elif isinstance(action, AddIce):
                if self.call is not None and self.call.call_id == action.call_id:
                    with contextlib.suppress(Exception):
                        await self.call.add_ice(
                            action.candidate, action.sdp_mid, action.sdp_mline_index
                        )
            elif isinstance(action, StopCall):
                await self._stop_call(action)
        return shown

    async def _start_call(self, action: StartCall) -> None:
        call_id = action.accepted.grant.call_id
        media: LocalMedia | PageMedia
        if self._media_pages or not self.synthetic_media:
            # The kiosk page is the camera, microphone and screen: forward its media.
            media = PageMedia(call_id, self.settings.page_media_host, self.clock)
        else:
            try:
                media = open_media(self.settings, self.synthetic_media)
            except MediaUnavailable:
                log.exception("camera or microphone unavailable", call_id=call_id)
                await self._carry_out(self.session.call_failed(call_id, self.clock()))
                return
        speaker = Speaker() if self.real_media and isinstance(media, LocalMedia) else None
        self._speaker = speaker
        call = Call(
            action.accepted,
            media,
            action.ice_servers,
            clock=self.clock,
            on_video=lambda frame: self._frame(FRAME_REMOTE, frame),
            on_audio=speaker.play if speaker is not None else None,
            on_time=lambda effect: self._later(self._call_time_step(call_id, effect)),
            on_state=lambda state: self._connection_state(call, state),
        )
        self.call = call
        self.calls_started += 1
        if isinstance(media, LocalMedia):
            self._spawn(pump(media.video_for_view(), lambda f: self._frame(FRAME_SELF, f)))
        else:
            self._publish({"type": "media", **self._page_media_event()})
        try:
            sdp = await call.make_offer()
        except Exception:
            log.exception("offer could not be made", call_id=call_id)
            await self._carry_out(self.session.call_failed(call_id, self.clock()))
            return
        await self._carry_out(self.session.offer_ready(call_id, sdp))

    async def _renew_call(self, action: RenewCall) -> None:
        """The old connection goes (not the call, not its deadline); a new one offers."""
        old = self.call
        if old is not None and old.call_id == action.accepted.grant.call_id:
            self.call = None
            await old.close(EndReason.CONNECTION_LOST, keep_deadline=True)
            if self._speaker is not None:
                self._speaker.close()
                self._speaker = None
        log.info("call offered again", call_id=action.accepted.grant.call_id)
        await self._start_call(StartCall(action.accepted, action.ice_servers))

    def _call_time_step(self, call_id: str, effect: Warn | End) -> Callable[[float], list[Action]]:
        return lambda mono: self.session.call_time(call_id, effect, mono)

    def _connection_state(self, call: Call, state: str) -> None:
        call_id = call.call_id
        if state in ("failed", "closed") and not call.closed:
            # The other end went away (ICE gave up, or it closed DTLS). The server's
            # end message, with its reason (staff end, revocation), usually follows
            # at once; wait for it briefly so the page shows the real reason.
            async def lost() -> None:
                await asyncio.sleep(END_GRACE)
                if self.call is call:  # not already ended, nor replaced by a renewal
                    await self._input(lambda mono: self.session.connection_lost(call_id, mono))

            self._spawn(lost())
            return
        self._later(lambda mono: self.session.call_connection(call_id, state, mono))

    async def _stop_call(self, action: StopCall) -> None:
        call = self.call
        if call is None or call.call_id != action.call_id:
            return
        self.call = None
        self.last_call = call
        await call.close(action.reason)
        if self._speaker is not None:
            self._speaker.close()
            self._speaker = None

    async def _guard(self, work: Any, call_id: str) -> None:
        try:
            await work
        except Exception:
            log.exception("call signalling failed", call_id=call_id)
            await self._carry_out(self.session.call_failed(call_id, self.clock()))

    # --- to the page ----------------------------------------------------------------------

    def _publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._events):
            if queue.full():  # a page that does not read loses the oldest, not the newest
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def _frame(self, kind: int, frame: Any) -> None:
        if not self._frames:
            return
        now = self.clock()
        if now - self._frame_sent_at[kind] < 1.0 / MAX_UI_FPS[kind]:
            return
        self._frame_sent_at[kind] = now
        try:
            data = bytes([kind]) + self._encoders[kind].encode(frame)
        except Exception:
            log.exception("frame could not be encoded for the page")
            return
        for queue in list(self._frames):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(data)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._input(self.session.tick)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
