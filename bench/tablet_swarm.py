"""Many tablets in one process, for bench/connections.py: real mutual TLS 1.3, real WebSocket.

Each tablet connects with its own key and certificate (the TLS context the
agent uses, ``kiosk.crypto.tls.agent_client_context``), upgrades to a
WebSocket on ``/device/v1``, sends ``hello`` and a ``ping``, and then a
``ping`` every heartbeat interval, as the agent does; it reads whatever the
server sends and times each pong. Thousands of them must fit in a few
client processes beside the server on the same machine, so a tablet is a
small protocol object (TLS through ``ssl.MemoryBIO``, frames by hand) rather
than an aiohttp client, and all heartbeats come from one wheel.

Driven by bench/connections.py over stdin and stdout, one JSON object a line:
``{"cmd": "open", "upto": n}``, ``{"cmd": "mark"}``, ``{"cmd": "stats"}``,
``{"cmd": "close"}``, ``{"cmd": "quit"}``; each answered by one line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import ssl
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiosk.crypto import tls as tlsconfig  # noqa: E402

HELLO = b'{"type":"hello","version":1,"agent_version":"bench","calls":[]}'
WHEEL_SLOTS = 100  # the heartbeat wheel: one interval in this many slots
IN_FLIGHT = 48  # connections being set up at once, per process


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    mask = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return key + masked


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + (_mask(payload) if n else os.urandom(4))


class Tablet(asyncio.Protocol):
    """One tablet's link: TLS handshake, WebSocket upgrade, hello, pings, pongs."""

    def __init__(self, swarm: Swarm, index: int, ctx: ssl.SSLContext) -> None:
        self.swarm = swarm
        self.index = index
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=swarm.host)
        self.transport: asyncio.Transport | None = None
        self.handshaken = False
        self.upgraded = False
        self.buf = bytearray()
        self.seq = 0
        self.sent: dict[int, float] = {}
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- transport ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._handshake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.swarm.lost(self)
        if not self.ready.done():
            self.ready.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.incoming.write(data)
        if not self.handshaken:
            self._handshake()
            if not self.handshaken:
                return
        while True:
            try:
                chunk = self.tls.read(16384)
            except ssl.SSLWantReadError:
                break
            except (ssl.SSLZeroReturnError, ssl.SSLError):
                self._abort()
                return
            if not chunk:
                break
            self.buf += chunk
        self._flush()
        if not self.upgraded:
            self._read_upgrade()
        if self.upgraded:
            self._read_frames()

    def _handshake(self) -> None:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError:
            self._abort()
            return
        self.handshaken = True
        key = base64.b64encode(os.urandom(16)).decode()
        self._write(
            (
                f"GET /device/v1 HTTP/1.1\r\nHost: {self.swarm.host}:{self.swarm.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _write(self, data: bytes) -> None:
        try:
            self.tls.write(data)
        except ssl.SSLError:
            self._abort()
            return
        self._flush()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- WebSocket ----------------------------------------------------------------

    def _read_upgrade(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status = head.split(" ", 2)[1] if " " in head else "?"
        if status != "101":
            self.swarm.refused[status] = self.swarm.refused.get(status, 0) + 1
            self._abort()
            return
        self.upgraded = True
        self._write(client_frame(0x1, HELLO))
        self.ping()

    def _read_frames(self) -> None:
        buf = self.buf
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            n = buf[1] & 0x7F
            at = 2
            if n == 126:
                if len(buf) < 4:
                    return
                (n,) = struct.unpack_from("!H", buf, 2)
                at = 4
            elif n == 127:
                if len(buf) < 10:
                    return
                (n,) = struct.unpack_from("!Q", buf, 2)
                at = 10
            if len(buf) < at + n:
                return
            payload = bytes(buf[at : at + n])
            del buf[: at + n]
            self._frame(opcode, payload)

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 0x1:
            message = json.loads(payload)
            if message.get("type") == "pong":
                sent = self.sent.pop(message.get("seq"), None)
                if sent is not None:
                    self.swarm.pong(self, time.monotonic() - sent)
            else:
                self.swarm.others += 1
        elif opcode == 0x8:
            self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
            self._write(client_frame(0x8, payload[:2]))
            if self.transport is not None:
                self.transport.close()
        elif opcode == 0x9:
            self._write(client_frame(0xA, payload))

    def ping(self) -> None:
        if not self.upgraded or self.transport is None or self.transport.is_closing():
            return
        self.seq += 1
        self.sent[self.seq] = time.monotonic()
        if len(self.sent) > 8:  # pongs that never came: keep the memory bounded
            self.sent.pop(next(iter(self.sent)))
        self._write(client_frame(0x1, b'{"type":"ping","seq":%d}' % self.seq))

    def close(self) -> None:
        if self.upgraded and self.transport is not None and not self.transport.is_closing():
            self._write(client_frame(0x8, struct.pack("!H", 1000)))
        elif self.transport is not None:
            self.transport.close()


class Swarm:
    """This process's share of the tablets and the one wheel that makes them ping."""

    def __init__(self, certs: list[Path], ca: Path, host: str, port: int, interval: float) -> None:
        self.certs = certs
        self.ca = ca
        self.host = host
        self.port = port
        self.interval = interval
        self.tablets: dict[int, Tablet] = {}
        self.held: set[int] = set()
        self.wheel: list[set[Tablet]] = [set() for _ in range(WHEEL_SLOTS)]
        self.slot_of: dict[Tablet, int] = {}
        self.rtts: list[float] = []
        self.refused: dict[str, int] = {}
        self.failed = 0
        self.dropped = 0
        self.others = 0
        self.close_codes: dict[int, int] = {}
        self.next_index = 0

    def context(self, index: int) -> ssl.SSLContext:
        pem = self.certs[index]
        return tlsconfig.agent_client_context(self.ca, pem, pem)

    def pong(self, tablet: Tablet, rtt: float) -> None:
        self.rtts.append(rtt)
        if not tablet.ready.done():
            tablet.ready.set_result(True)
            self.held.add(tablet.index)
            slot = int(time.monotonic() / self.interval * WHEEL_SLOTS) % WHEEL_SLOTS
            self.wheel[slot].add(tablet)
            self.slot_of[tablet] = slot

    def lost(self, tablet: Tablet) -> None:
        if tablet.index in self.held:
            self.held.discard(tablet.index)
            if tablet.close_code is None:
                self.dropped += 1
        code = tablet.close_code if tablet.close_code is not None else 1006
        self.close_codes[code] = self.close_codes.get(code, 0) + 1
        slot = self.slot_of.pop(tablet, None)
        if slot is not None:
            self.wheel[slot].discard(tablet)
        self.tablets.pop(tablet.index, None)

    async def beat(self) -> None:
        """Every slot's tablets ping once per interval (one timer for them all)."""
        step = self.interval / WHEEL_SLOTS
        slot = int(time.monotonic() / step) % WHEEL_SLOTS
        while True:
            await asyncio.sleep(step - (time.monotonic() % step))
            slot = (slot + 1) % WHEEL_SLOTS
            for tablet in list(self.wheel[slot]):
                tablet.ping()

    async def connect(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        tablet = Tablet(self, index, self.context(index))
        self.tablets[index] = tablet
        try:
            await loop.create_connection(lambda: tablet, self.host, self.port)
            ok = await asyncio.wait_for(asyncio.shield(tablet.ready), 60)
        except (OSError, TimeoutError):
            ok = False
            tablet._abort()
        if not ok:
            self.failed += 1
            self.tablets.pop(index, None)

    async def open_upto(self, upto: int) -> dict[str, Any]:
        started = time.monotonic()
        failed = self.failed
        todo = list(range(self.next_index, min(upto, len(self.certs))))
        self.next_index = max(self.next_index, upto)
        queue = iter(todo)

        async def worker() -> None:
            for index in queue:
                await self.connect(index)

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
        return {
            "held": len(self.held),
            "opened": len(todo) - (self.failed - failed),
            "failed": self.failed - failed,
            "seconds": time.monotonic() - started,
            "refused": self.refused,
        }

    def stats(self) -> dict[str, Any]:
        rtts = sorted(self.rtts)
        return {
            "held": len(self.held),
            "dropped": self.dropped,
            "pongs": len(rtts),
            "rtts": rtts,
            "others": self.others,
        }

    async def close_all(self) -> dict[str, Any]:
        tablets = list(self.tablets.values())
        for tablet in tablets:
            tablet.close()
        if tablets:
            await asyncio.wait([t.closed for t in tablets], timeout=60)
        return {"held": len(self.held), "close_codes": self.close_codes}


async def serve(swarm: Swarm) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    beat = asyncio.create_task(swarm.beat())
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "open":
                reply = await swarm.open_upto(int(cmd["upto"]))
            elif cmd["cmd"] == "mark":
                swarm.rtts.clear()
                swarm.dropped = 0
                reply = {"held": len(swarm.held)}
            elif cmd["cmd"] == "stats":
                reply = swarm.stats()
            elif cmd["cmd"] == "close":
                reply = await swarm.close_all()
            else:
                break
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    finally:
        beat.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--certs", type=Path, required=True, help="a file listing PEM paths")
    parser.add_argument("--ca", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    certs = [Path(p) for p in args.certs.read_text().split()]
    asyncio.run(serve(Swarm(certs, args.ca, args.host, args.port, args.interval)))


if __name__ == "__main__":
    main()
