"""The bus between a cluster's nodes: subjects, publish, subscribe, request and reply.

NATS carries it (``NatsBus``, the nats-py client); nothing home-made carries
messages between processes. ``LocalBus`` is the same contract inside one
process, for a node's own parts and for tests of the routing without a
server. Subjects (ARCHITECTURE.md, "Storage and scale"):

- ``kiosk.device.<id>.send`` / ``.cut``: to the node holding a tablet's link;
- ``kiosk.visitor.<seat>.send`` / ``.close``: to the node holding a visitor's page;
- ``kiosk.calls``: requests for the owner of the live calls;
- ``kiosk.call.<id>``: staff requests about one call, for its owner;
- ``kiosk.owner.new`` / ``.released``: the owner changed, or is handing over.

A subscription's handler sees its messages one at a time, in the order they
were published, unless it is ``concurrent``; what it returns is the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[str, bytes], Awaitable[bytes | None]]


class NoOwner(Exception):
    """Nobody answered a request: no node subscribes to the subject now (a handover)."""


class Subscription(Protocol):
    async def unsubscribe(self) -> None: ...


class Bus(Protocol):
    async def publish(self, subject: str, data: bytes) -> None: ...

    async def subscribe(
        self, subject: str, handler: Handler, *, concurrent: bool = False
    ) -> Subscription: ...

    async def request(self, subject: str, data: bytes, within: float) -> bytes: ...

    async def close(self) -> None: ...


def matches(pattern: str, subject: str) -> bool:
    """NATS wildcards: ``*`` one token, ``>`` the rest."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)


class _Worker:
    """One subscription's handler, fed in order (or each message on its own task)."""

    def __init__(self, handler: Handler, concurrent: bool) -> None:
        self.handler = handler
        self.concurrent = concurrent
        self.queue: asyncio.Queue[tuple[str, bytes, asyncio.Future[bytes | None] | None]]
        self.queue = asyncio.Queue()
        self.task = asyncio.create_task(self._run())
        self.tasks: set[asyncio.Task[None]] = set()

    def put(self, subject: str, data: bytes, reply: asyncio.Future[bytes | None] | None) -> None:
        self.queue.put_nowait((subject, data, reply))

    async def _run(self) -> None:
        while True:
            subject, data, reply = await self.queue.get()
            if self.concurrent:
                task = asyncio.create_task(self._one(subject, data, reply))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            else:
                await self._one(subject, data, reply)

    async def _one(
        self, subject: str, data: bytes, reply: asyncio.Future[bytes | None] | None
    ) -> None:
        try:
            answer = await self.handler(subject, data)
        except Exception as exc:
            log.exception("bus message handler failed", subject=subject)
            if reply is not None and not reply.done():
                reply.set_exception(exc)
            return
        if reply is not None and not reply.done():
            reply.set_result(answer)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class LocalBus:
    """The bus inside one process."""

    def __init__(self) -> None:
        self._subs: list[tuple[str, _Worker]] = []

    async def publish(self, subject: str, data: bytes) -> None:
        for pattern, worker in list(self._subs):
            if matches(pattern, subject):
                worker.put(subject, data, None)

    async def subscribe(
        self, subject: str, handler: Handler, *, concurrent: bool = False
    ) -> Subscription:
        entry = (subject, _Worker(handler, concurrent))
        self._subs.append(entry)
        bus = self

        class _Sub:
            async def unsubscribe(self) -> None:
                if entry in bus._subs:
                    bus._subs.remove(entry)
                    await entry[1].stop()

        return _Sub()

    async def request(self, subject: str, data: bytes, within: float) -> bytes:
        worker = next((w for p, w in self._subs if matches(p, subject)), None)
        if worker is None:
            raise NoOwner(subject)
        reply: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        worker.put(subject, data, reply)
        async with asyncio.timeout(within):
            return await reply or b""

    async def close(self) -> None:
        for _, worker in self._subs:
            await worker.stop()
        self._subs.clear()


class NatsBus:
    """The bus over NATS: one connection per node, reconnecting for ever."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc

    @classmethod
    async def connect(cls, url: str, name: str) -> NatsBus:
        import nats

        servers = [u.strip() for u in url.split(",") if u.strip()]

        async def disconnected() -> None:
            log.warning("bus connection lost; reconnecting", node=name)

        async def reconnected() -> None:
            log.info("bus connection restored", node=name)

        nc = await nats.connect(
            servers=servers,
            name=name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.25,
            connect_timeout=5,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )
        log.info("bus connected", node=name, servers=",".join(servers))
        return cls(nc)

    async def publish(self, subject: str, data: bytes) -> None:
        await self.nc.publish(subject, data)

    async def subscribe(
        self, subject: str, handler: Handler, *, concurrent: bool = False
    ) -> Subscription:
        worker = _Worker(handler, concurrent)

        async def deliver(msg: Any) -> None:
            if not msg.reply:
                worker.put(msg.subject, msg.data, None)
                return
            reply: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            worker.put(msg.subject, msg.data, reply)
            task = asyncio.create_task(_respond(msg, reply))
            worker.tasks.add(task)
            task.add_done_callback(worker.tasks.discard)

        sub = await self.nc.subscribe(subject, cb=deliver)

        class _Sub:
            async def unsubscribe(self) -> None:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                await worker.stop()

        return _Sub()

    async def request(self, subject: str, data: bytes, within: float) -> bytes:
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        try:
            msg = await self.nc.request(subject, data, timeout=within)
        except (NoRespondersError, NatsTimeout) as exc:
            raise NoOwner(subject) from exc
        return bytes(msg.data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.drain()


async def _respond(msg: Any, reply: asyncio.Future[bytes | None]) -> None:
    try:
        answer = await reply
    except Exception:
        answer = b'{"failed": true}'
    with contextlib.suppress(Exception):
        await msg.respond(answer or b"")
