"""The bus contract in one process (kiosk/signalling/cluster/bus.py): subjects with NATS
wildcards, messages in order, a request answered by its subscriber or by nobody."""

from __future__ import annotations

import asyncio

import pytest

from kiosk.signalling.cluster.bus import LocalBus, NoOwner, matches


@pytest.mark.parametrize(
    ("pattern", "subject", "hit"),
    [
        ("kiosk.device.*.send", "kiosk.device.d1.send", True),
        ("kiosk.device.*.send", "kiosk.device.d1.cut", False),
        ("kiosk.device.d1.*", "kiosk.device.d1.cut", True),
        ("kiosk.call.*", "kiosk.call.c1", True),
        ("kiosk.call.*", "kiosk.calls", False),
        ("kiosk.>", "kiosk.visitor.s1.send", True),
        ("kiosk.>", "kiosk", False),
        ("kiosk.calls", "kiosk.calls", True),
    ],
)
def test_subjects_match_as_nats_matches_them(pattern: str, subject: str, hit: bool) -> None:
    assert matches(pattern, subject) is hit


async def test_messages_arrive_in_order_and_requests_are_answered() -> None:
    bus = LocalBus()
    got: list[bytes] = []
    done = asyncio.Event()

    async def tablet(subject: str, data: bytes) -> None:
        got.append(data)
        if len(got) == 50:
            done.set()

    async def owner(subject: str, data: bytes) -> bytes:
        return b"ok:" + data

    with pytest.raises(NoOwner):
        await bus.request("kiosk.calls", b"x", within=1)
    await bus.subscribe("kiosk.device.d1.*", tablet)
    sub = await bus.subscribe("kiosk.calls", owner, concurrent=True)
    for i in range(50):
        await bus.publish("kiosk.device.d1.send", str(i).encode())
    await bus.publish("kiosk.device.d2.send", b"not for d1")
    async with asyncio.timeout(10):
        await done.wait()
    assert got == [str(i).encode() for i in range(50)]
    assert await bus.request("kiosk.calls", b"dial", within=5) == b"ok:dial"
    await sub.unsubscribe()
    with pytest.raises(NoOwner):  # between owners: nobody answers
        await bus.request("kiosk.calls", b"x", within=1)
    await bus.close()
