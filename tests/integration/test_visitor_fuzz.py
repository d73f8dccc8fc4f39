"""Random frames at the visitor endpoint: no crash, an answer or a close, others served.

Hypothesis generates frames — random bytes, random JSON, and messages of the
real types with wrong or extra fields — and sends them, one by one, to a
live server's ``/visit/v1`` after a valid join. Each must be answered with
``error{invalid_request}`` (or the socket closed after too many), and a
bystander visitor on the same server must keep getting pongs throughout.
The event loop with the sockets runs in a thread of its own so that
hypothesis can drive the examples synchronously.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk.wire import messages as p
from tests.conftest import examples
from tests.harness import World

pytestmark = pytest.mark.slow
T = TypeVar("T")

TYPES = ["join", "sdp", "ice", "hangup", "ping", "hello", "dial", "grant", "", "end"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={
        "call_id": json_values,
        "kind": st.sampled_from(["offer", "answer", "x", 1]),
        "sdp": st.text(max_size=200),
        "candidate": json_values,
        "seq": json_values,
        "token": st.text(max_size=40),
        "extra": json_values,
    },
).map(json.dumps)
frames = st.one_of(
    st.binary(max_size=300), json_values.map(json.dumps), message_like, st.text(max_size=300)
)


class Live:
    """A running world, a joined fuzzing socket and a bystander, on a loop in a thread."""

    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.world = World(root)
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.bystander: aiohttp.ClientWebSocketResponse | None = None
        self.closes = 0
        self.last_ping = 0.0

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def start(self) -> None:
        await self.world.start()
        inmate = await self.world.inmate()
        contacts = [
            await self.world.approved_contact(
                inmate, relation="sibling", name=f"C {n}", email=f"c{n}@example.org"
            )
            for n in range(2)
        ]
        bookings = [await self.world.booking(inmate, c, start_in=1) for c in contacts]
        self.tokens = [await self.world.invite_token(b["id"]) for b in bookings]
        self.http = aiohttp.ClientSession()
        self.bystander = await self._joined(self.tokens[1])
        # Keep reading, as a browser does: aiohttp answers the server's
        # heartbeat pings only while somebody reads the socket.
        self.pongs: asyncio.Queue[Any] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read_bystander())
        self.ws = await self._joined(self.tokens[0])

    async def _read_bystander(self) -> None:
        assert self.bystander is not None
        async for frame in self.bystander:
            await self.pongs.put(frame)
        await self.pongs.put(None)

    async def _joined(self, token: str) -> aiohttp.ClientWebSocketResponse:
        assert self.http is not None
        for _ in range(50):
            ws = await self.http.ws_connect(self.world.deployment.visit_ws)
            await ws.send_str(p.encode(p.JoinMessage(token=token)))
            first = p.parse_server_to_visitor((await ws.receive(timeout=10)).data)
            if isinstance(first, p.WaitingMessage):
                # Then whether the tablet is ready (issue 16): no tablet in this world.
                ready = p.parse_server_to_visitor((await ws.receive(timeout=10)).data)
                assert ready == p.TabletMessage(ready=False), ready
                return ws
            # The previous socket of this invite is still being let go (one session).
            await ws.close()
            await asyncio.sleep(0.1)
        raise AssertionError("could not join")

    async def send(self, frame: str | bytes) -> str:
        """Send one frame; 'error' for invalid_request, 'closed' if the server closed."""
        assert self.ws is not None
        if self.ws.closed:
            self.ws = await self._joined(self.tokens[0])
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)
        reply = await self.ws.receive(timeout=10)
        if reply.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            self.closes += 1
            self.ws = await self._joined(self.tokens[0])
            return "closed"
        message = p.parse_server_to_visitor(reply.data)
        if isinstance(message, p.ErrorMessage):
            return message.code.value
        return type(message).__name__

    async def bystander_ping(self, seq: int) -> bool:
        assert self.bystander is not None
        await self.bystander.send_str(p.encode(p.PingMessage(seq=seq)))
        frame = await asyncio.wait_for(self.pongs.get(), timeout=10)
        if frame is None:
            raise AssertionError("the server closed the bystander's socket")
        reply = p.parse_server_to_visitor(frame.data)
        if not (isinstance(reply, p.PongMessage) and reply.seq == seq):
            raise AssertionError(f"bystander got {reply!r}")
        return True

    async def stop(self) -> None:
        self.reader.cancel()
        for ws in (self.ws, self.bystander):
            if ws is not None:
                await ws.close()
        if self.http is not None:
            await self.http.close()
        await self.world.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = Live(tmp_path_factory.mktemp("fuzz"))
    live.run(live.start(), timeout=180)
    try:
        yield live
    finally:
        live.run(live.stop())
        live.loop.call_soon_threadsafe(live.loop.stop)
        live.thread.join(10)


@settings(max_examples=examples(150), suppress_health_check=list(HealthCheck))
@given(frame=frames)
def test_random_frames_get_invalid_request_or_a_close_and_others_go_on(
    live: Live, frame: str | bytes
) -> None:
    answer = live.run(live.send(frame))
    # A valid ping or a stray sdp for no call are answered too, and a fuzzer faster
    # than any page is told to slow down; nothing else.
    allowed = {"invalid_request", "closed", "call_not_live", "rate_limited", "PongMessage"}
    assert answer in allowed, answer
    # The bystander pings at an honest page's pace (well under the rate limit).
    if time.monotonic() - live.last_ping >= 0.2:
        live.last_ping = time.monotonic()
        assert live.run(live.bystander_ping(1)), "the bystander stopped being served"
    assert live.world.server is not None and live.world.server.alive()
