"""The runner's ordering of effects (kiosk/signalling/calls/order.py): what the switchboard
decided in order for one call is carried out in order, other calls go on meanwhile, and
a caller that goes away leaves nothing half done."""

from __future__ import annotations

import asyncio

from kiosk.signalling.calls.order import KeyedOrder


async def test_batches_of_one_call_run_in_the_order_they_were_queued() -> None:
    order = KeyedOrder()
    done: list[str] = []
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()  # the first batch's transaction waits (a lock, a busy database)
        done.append("dial")

    async def quick() -> None:
        done.append("end")

    first = order.queue({"call:1"}, slow)
    second = order.queue({"call:1", "device:a"}, quick)
    other = order.queue({"call:2"}, quick)
    await other  # another call is not held up
    assert done == ["end"]
    gate.set()
    await asyncio.gather(first, second)
    assert done == ["end", "dial", "end"]


async def test_a_caller_that_goes_away_leaves_its_batch_to_finish() -> None:
    order = KeyedOrder()
    done: list[str] = []
    gate = asyncio.Event()

    async def work() -> None:
        await gate.wait()
        done.append("written")

    async def caller() -> None:
        await asyncio.shield(order.queue({"call:1"}, work))

    task = asyncio.create_task(caller())
    await asyncio.sleep(0)
    task.cancel()  # the visitor's socket closed
    gate.set()
    await order.drain()
    assert done == ["written"]
