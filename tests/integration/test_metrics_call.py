"""The metrics endpoint during a real call: a refusal, a set-up, a live call, its end.

The same processes as the calls tests (``kiosk server``, ``kiosk agent``, an
aiortc visitor); the test scrapes ``GET /metrics`` of the running server, as
Prometheus would, at each step and checks the numbers moved by exactly what
happened.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import World, wait_until

# The counters are the server's totals: a world of its own.
pytestmark = [pytest.mark.slow, pytest.mark.fresh_world]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(w: World) -> Samples:
    url = f"http://127.0.0.1:{w.deployment.web_port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _live(w: World, expected: float) -> Any:
    async def check() -> bool:
        return value(await scrape(w), "kiosk_live_calls") == expected

    return check


async def test_counters_move_through_a_call(world: World) -> None:
    start = await scrape(world)
    assert value(start, "kiosk_live_calls") == 0
    assert value(start, "kiosk_devices_connected") == 0

    inmate = await world.inmate()
    contact = await world.approved_contact(inmate)
    early = await world.booking(inmate, contact, start_in=3600)
    booking = await world.booking(inmate, contact, start_in=2)
    tablet = await world.tablet(inmate, "TAB-METRICS")

    online = await scrape(world)
    assert value(online, "kiosk_devices_connected") == 1

    # A refusal, counted under its reason code.
    await tablet.dial(early["id"])

    async def refused() -> bool:
        samples = await scrape(world)
        return value(samples, "kiosk_refusals_total", reason="outside_window") == 1

    await wait_until(refused, timeout=20, what="outside_window counted")

    # A call: set up, live while it runs.
    visitor = await world.visitor(await world.invite_token(booking["id"]))
    await wait_until(lambda: visitor.waiting is not None, what="the waiting room")
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    status, _ = await tablet.dial(booking["id"])
    assert status == 202
    await wait_until(_live(world, 1), timeout=30, what="one live call")
    during = await scrape(world)
    assert value(during, "kiosk_call_setups_total") == value(start, "kiosk_call_setups_total") + 1
    await wait_until(
        lambda: visitor.received.video > 10, timeout=40, what="media at the visitor"
    )

    # The tablet hangs up: no live call, one more ended call with its reason.
    url = f"http://127.0.0.1:{tablet.ui_port}/api/hangup"
    async with tablet.http.post(url, json={}) as resp:
        assert resp.status < 300, await resp.text()
    await wait_until(_live(world, 0), timeout=30, what="no live call")
    after = await scrape(world)
    ended = sum(v for (name, _), v in after.items() if name == "kiosk_calls_ended_total")
    ended_before = sum(v for (name, _), v in start.items() if name == "kiosk_calls_ended_total")
    assert ended == ended_before + 1
    assert value(after, "kiosk_calls_ended_total", reason="hangup") == 1
    # Nothing else was refused on the way.
    refusals = sum(v for (name, _), v in after.items() if name == "kiosk_refusals_total")
    assert refusals == 1
