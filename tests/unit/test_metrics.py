"""The metrics endpoint on a real aiohttp server: counters, gauges, access control."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from kiosk.domain.reasons import EndReason, Reason
from kiosk.runtime.config import Settings
from kiosk.signalling.context import SETTINGS
from kiosk.signalling.metrics import METRICS, Metrics, install, metrics_handler


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _own_address() -> str | None:
    """A non-loopback address of this machine (the scraper that is not local)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else str(address)


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(app: web.Application, host: str = "127.0.0.1") -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://{host}:{port}/metrics"

    yield start
    for runner in runners:
        await runner.cleanup()


async def _get(url: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status, dict(response.headers), await response.text()


async def test_counters_and_gauges_move_on_the_wire(serve: Serve) -> None:
    app = web.Application()
    metrics = install(app)
    live: list[str] = []
    metrics.bind(live_calls=lambda: len(live), devices_connected=lambda: 3)
    url = await serve(app)

    status, headers, text = await _get(url)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    before = _samples(text)
    # Every reason code is there from the start, at 0.
    for reason in Reason:
        assert before[("kiosk_refusals_total", (("reason", reason.value),))] == 0
    assert before[("kiosk_live_calls", ())] == 0
    assert before[("kiosk_call_setups_total", ())] == 0

    metrics.count("call_setups")
    metrics.count("call_setups")
    metrics.count("something_new")
    metrics.refusal(Reason.OUTSIDE_WINDOW)
    metrics.call_ended(EndReason.TIME_UP)
    live.append("call-1")

    status, _, text = await _get(url)
    after = _samples(text)
    assert after[("kiosk_call_setups_total", ())] == 2
    assert after[("kiosk_events_total", (("event", "something_new"),))] == 1
    assert after[("kiosk_refusals_total", (("reason", "outside_window"),))] == 1
    assert after[("kiosk_refusals_total", (("reason", "contact_not_approved"),))] == 0
    assert after[("kiosk_calls_ended_total", (("reason", "time_up"),))] == 1
    assert after[("kiosk_live_calls", ())] == 1
    assert after[("kiosk_devices_connected", ())] == 3
    assert metrics.value("kiosk_refusals_total", reason="outside_window") == 1


async def test_a_failing_gauge_source_does_not_fail_the_scrape(serve: Serve) -> None:
    app = web.Application()
    metrics = install(app)

    def broken() -> float:
        raise RuntimeError("supervisor stopped")

    metrics.bind(bridge_calls=broken)
    status, _, text = await _get(await serve(app))
    assert status == 200
    value = _samples(text)[("kiosk_bridge_calls", ())]
    assert value != value  # NaN: unknown, not a made-up 0


def test_two_servers_do_not_share_counters() -> None:
    a, b = Metrics(), Metrics()
    a.count("call_setups")
    assert a.value("kiosk_call_setups_total") == 1
    assert b.value("kiosk_call_setups_total") == 0


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError):
        Metrics().refusal("no_such_code")  # type: ignore[arg-type]


async def test_token_is_required_when_configured(serve: Serve) -> None:
    settings = Settings()
    settings.server.metrics_token = "s3cret-scraper-token"
    app = web.Application()
    app[SETTINGS] = settings
    install(app)
    url = await serve(app)

    status, headers, text = await _get(url)
    assert status == 401
    assert "kiosk_" not in text
    assert '"code": "not_authenticated"' in text
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = await _get(url, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, text = await _get(url, headers={"Authorization": "Bearer s3cret-scraper-token"})
    assert status == 200
    assert "kiosk_live_calls" in text


async def test_without_token_only_loopback_is_served(serve: Serve) -> None:
    address = _own_address()
    if address is None:
        pytest.skip("no non-loopback interface on this machine")
    app = web.Application()
    install(app)
    url = await serve(app, host=address)  # the peer is then this address, not 127.0.0.1
    status, _, text = await _get(url)
    assert status == 403
    assert '"code": "forbidden_role"' in text
    assert "kiosk_" not in text


async def test_handler_without_metrics_on_the_app_is_not_found(serve: Serve) -> None:
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler)
    status, _, text = await _get(await serve(app))
    assert status == 404
    assert METRICS not in app
    assert '"code": "not_found"' in text
