"""The agent's live call: opening the camera and microphone, the ``Call``, its renewals and end.

The session (kiosk/device/session.py) decides when a call starts, is
offered again, gets its answer and ICE, and stops; this carries those
actions out, and turns what the call reports (its clock, its connection
state, a failure) back into inputs for the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from kiosk.device.actions import Action, AddIce, ApplyAnswer, RenewCall, StartCall, StopCall
from kiosk.device.call import Call, MediaCounters
from kiosk.device.grant_key import Clock
from kiosk.device.media import LocalMedia, MediaUnavailable, Speaker, open_media, pump
from kiosk.device.page_feed import FRAME_REMOTE, FRAME_SELF, PageFeed
from kiosk.device.session import TabletSession
from kiosk.domain.callstate import End, Warn
from kiosk.domain.reasons import EndReason
from kiosk.runtime.config import AgentSettings
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

Step = Callable[[float], list[Action]]
END_GRACE = 2.0  # s to wait for the server's end after the media went away


class CallRunner:
    def __init__(
        self,
        settings: AgentSettings,
        session: TabletSession,
        feed: PageFeed,
        *,
        synthetic_media: bool,
        real_media: bool,
        clock: Clock,
        carry_out: Callable[[list[Action]], Awaitable[Any]],
        run_input: Callable[[Step], Awaitable[Any]],
    ) -> None:
        """``carry_out``: actions, from within an input; ``run_input``: a new input."""
        self.settings = settings
        self.session = session
        self.feed = feed
        self.synthetic_media = synthetic_media
        self.real_media = real_media
        self.clock = clock
        self._carry_out = carry_out
        self._run_input = run_input
        self.call: Call | None = None
        self.last_call: Call | None = None  # kept after the end: tests and the bench read it
        self.calls_started = 0
        self._media: LocalMedia | None = None
        self._speaker: Speaker | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def counters(self) -> MediaCounters | None:
        call = self.call or self.last_call
        return call.counters if call is not None else None

    async def start(self, action: StartCall) -> None:
        call_id = action.accepted.grant.call_id
        try:
            media = open_media(self.settings, self.synthetic_media)
        except MediaUnavailable:
            log.exception("camera or microphone unavailable", call_id=call_id)
            await self._carry_out(self.session.call_failed(call_id, self.clock()))
            return
        self._media = media
        speaker = Speaker() if self.real_media else None
        self._speaker = speaker
        call = Call(
            action.accepted,
            media,
            action.ice_servers,
            clock=self.clock,
            on_video=lambda frame: self.feed.frame(FRAME_REMOTE, frame),
            on_audio=speaker.play if speaker is not None else None,
            on_time=lambda effect: self._later(self._call_time_step(call_id, effect)),
            on_state=lambda state: self._connection_state(call, state),
        )
        self.call = call
        self.calls_started += 1
        self._spawn(pump(media.video_for_view(), lambda f: self.feed.frame(FRAME_SELF, f)))
        try:
            sdp = await call.make_offer()
        except Exception:
            log.exception("offer could not be made", call_id=call_id)
            await self._carry_out(self.session.call_failed(call_id, self.clock()))
            return
        await self._carry_out(self.session.offer_ready(call_id, sdp))

    async def renew(self, action: RenewCall) -> None:
        """The old connection goes (not the call, not its deadline); a new one offers."""
        old = self.call
        if old is not None and old.call_id == action.accepted.grant.call_id:
            self.call = None
            await old.close(EndReason.CONNECTION_LOST, keep_deadline=True)
            self._close_speaker()
        log.info("call offered again", call_id=action.accepted.grant.call_id)
        await self.start(StartCall(action.accepted, action.ice_servers))

    async def apply_answer(self, action: ApplyAnswer) -> None:
        if self.call is not None and self.call.call_id == action.call_id:
            await self._guard(self.call.apply_answer(action.sdp), action.call_id)

    async def add_ice(self, action: AddIce) -> None:
        if self.call is not None and self.call.call_id == action.call_id:
            with contextlib.suppress(Exception):
                await self.call.add_ice(action.candidate, action.sdp_mid, action.sdp_mline_index)

    async def stop(self, action: StopCall) -> None:
        call = self.call
        if call is None or call.call_id != action.call_id:
            return
        self.call = None
        self.last_call = call
        await call.close(action.reason)
        self._close_speaker()

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _close_speaker(self) -> None:
        if self._speaker is not None:
            self._speaker.close()
            self._speaker = None

    def _call_time_step(self, call_id: str, effect: Warn | End) -> Step:
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
                    await self._run_input(
                        lambda mono: self.session.connection_lost(call_id, mono))

            self._spawn(lost())
            return
        self._later(lambda mono: self.session.call_connection(call_id, state, mono))

    async def _guard(self, work: Any, call_id: str) -> None:
        try:
            await work
        except Exception:
            log.exception("call signalling failed", call_id=call_id)
            await self._carry_out(self.session.call_failed(call_id, self.clock()))

    def _later(self, step: Step) -> None:
        """An input from a callback (the call's clock, its connection state)."""
        self._spawn(self._run_input(step))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
