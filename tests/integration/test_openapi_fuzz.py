"""The staff API exercised from its own OpenAPI document (issue 2, "Done means").

A live server (real aiohttp listener on loopback, real SQLite database filled
with the demo data) is driven by schemathesis over every operation with an
admin's bearer token: no 5xx, no undocumented status code, responses that
match their documented schema and content type. The run is bounded (a few
examples per operation, one worker, fixed seed) to stay within minutes.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.demo import start_demo
from kiosk.demo_seed import seed
from kiosk.domain.model import Role
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import API_PREFIX
from kiosk.signalling.app import OPERATIONS
from tests.integration.api_support import live_api

pytestmark = pytest.mark.timeout(420)

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


@pytest.fixture
async def demo(tmp_path: Path) -> Any:
    running = await start_demo(tmp_path / "demo", port=0, device_port=0)
    try:
        yield running
    finally:
        await running.close()


async def test_document_is_generated_from_the_route_table(demo: Any) -> None:
    async with aiohttp.ClientSession() as http:
        resp = await http.get(demo.server.api_url + "/openapi.json")
        doc = await resp.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    mounted = {(op.method, API_PREFIX + op.path) for op in demo.server.app[OPERATIONS]} | {
        ("GET", API_PREFIX + "/openapi.json")
    }
    assert documented == mounted
    routes = {
        (r.method, r.resource.canonical)
        for r in demo.server.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith(API_PREFIX)
        and r.method != "HEAD"
    }
    assert routes == mounted
    # Errors are documented with the one list of reason codes.
    error = doc["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    codes = doc["components"]["schemas"][error["$ref"].rsplit("/", 1)[1]]["enum"]
    assert set(codes) == {r.value for r in Reason}
    booking = doc["paths"][API_PREFIX + "/bookings"]["post"]
    assert {"201", "400", "401", "403", "404", "409", "413", "422"} <= set(booking["responses"])
    assert "facility_closed" in booking["responses"]["409"]["description"]
    assert "window_invalid" in booking["responses"]["422"]["description"]
    # Request bodies are closed: the same models refuse unknown fields.
    create = doc["components"]["schemas"]["BookingCreate"]
    assert create["additionalProperties"] is False


async def schemathesis(api_url: str, token: str, cwd: Path, examples: int) -> str:
    """Run schemathesis over every operation; its report, after asserting it passed."""
    assert SCHEMATHESIS.exists(), "schemathesis is a dev dependency (pyproject.toml)"
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", api_url + "/openapi.json",
        "-H", f"Authorization: Bearer {token}",
        "--checks", CHECKS,
        "--max-examples", str(examples),
        "--workers", "1",
        "--seed", "20261123",
        "--request-timeout", "20",
        "--no-shrink",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 360)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-6000:]
    assert "Tested: " in report
    return report


async def test_schemathesis_finds_no_server_error_and_no_undocumented_status(
    demo: Any, tmp_path: Path
) -> None:
    report = await schemathesis(demo.server.api_url, demo.info["api_token"], tmp_path, 5)
    selected = report.split("Selected: ", 1)[1].split("/", 1)[0]
    assert int(selected) >= len(demo.server.app[OPERATIONS])  # every operation was run
    assert "passed" in report and "failure" not in report.lower().split("summary")[-1]


@pytest.mark.postgres
@pytest.mark.parametrize("migrated_url", ["postgres"], indirect=True)
async def test_schemathesis_on_postgresql(tmp_path: Path, migrated_url: str) -> None:
    """The same on PostgreSQL, which refuses some values SQLite stores (NUL in text)."""
    async with live_api(tmp_path, migrated_url) as api:
        await seed(api.url, api.tokens[Role.ADMIN], api.server.context.clock())
        report = await schemathesis(api.url, api.tokens[Role.ADMIN], tmp_path, 3)
    assert "passed" in report
