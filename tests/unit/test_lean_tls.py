"""The device listener's TLS protocol reads into one buffer for all connections.

asyncio's own gives each connection 256 KiB (Python 3.11's sslproto): this
guards that the small, shared buffer is really what the socket transport is
handed, so that a change of asyncio's internals shows here, not as 2.5 GiB.
"""

from __future__ import annotations

import asyncio
import ssl

from kiosk.signalling.devices.tls_accept import READ_SIZE, LeanTls


async def test_every_connection_reads_into_the_one_shared_buffer() -> None:
    loop = asyncio.get_running_loop()
    shared = memoryview(bytearray(READ_SIZE))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    made = [
        LeanTls(shared, loop, asyncio.Protocol(), ctx, loop.create_future(), server_side=True)
        for _ in range(3)
    ]
    for tls in made:
        for want in (-1, 1, READ_SIZE, 10 * READ_SIZE):
            buf = tls.get_buffer(want)
            assert buf.obj is shared.obj and len(buf) == READ_SIZE
    assert LeanTls.max_size == READ_SIZE <= 16 * 1024
