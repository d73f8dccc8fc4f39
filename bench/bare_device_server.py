"""The baseline for bench/connections.py: a bare aiohttp mutual-TLS WebSocket server.

The same TLS settings as the device listener (``kiosk.crypto.tls``: TLS 1.3
only, client certificate required against the deployment CA and its CRL),
the same WebSocket settings, the same listen backlog; it answers each
``ping`` with a ``pong`` and nothing else: no database, no identity, no
supervisor. What the kiosk server costs beyond this is what it adds.

Run by the bench: ``bare_device_server.py --pki DIR --port N --backlog N``;
prints ``ready`` once listening and stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiohttp import WSMsgType, web  # noqa: E402

from kiosk.crypto.tls import device_listener_context  # noqa: E402
from kiosk.wire.messages import MAX_MESSAGE_BYTES  # noqa: E402


async def device(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(
        max_msg_size=MAX_MESSAGE_BYTES, compress=False, autoping=True, heartbeat=None, timeout=2.0
    )
    await ws.prepare(request)
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            continue
        message = json.loads(msg.data)
        if message.get("type") == "ping":
            pong = {"type": "pong", "seq": message["seq"], "server_time": datetime.now(UTC)}
            await ws.send_str(json.dumps(pong, default=datetime.isoformat))
    return ws


async def serve(pki: Path, host: str, port: int, backlog: int) -> None:
    app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
    app.router.add_get("/device/v1", device)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(
        runner, host, port, ssl_context=device_listener_context(pki), backlog=backlog
    )
    await site.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(args.pki, args.host, args.port, args.backlog))


if __name__ == "__main__":
    main()
