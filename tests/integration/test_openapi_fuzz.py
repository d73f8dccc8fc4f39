"""The staff API's OpenAPI document is the route table's (issue 2); schemathesis walks it
in test_schemathesis.py (issue 17).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kiosk.demo import start_demo
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import API_PREFIX
from kiosk.signalling.app import OPERATIONS
from tests.harness import free_port

pytestmark = pytest.mark.timeout(420)

@pytest.fixture
async def demo(tmp_path: Path) -> Any:
    running = await start_demo(
        tmp_path / "demo", port=0, device_port=0, tablet_port=free_port()
    )
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
    # Issue 17: each status says its reason codes in the error body's schema ...
    conflict = booking["responses"]["409"]["content"]["application/json"]["schema"]["allOf"][1]
    codes = conflict["properties"]["error"]["properties"]["code"]["enum"]
    assert "facility_closed" in codes and "window_invalid" not in codes
    # ... the bounds the server keeps (years 1970-8999 as written) ...
    assert create["properties"]["start"]["pattern"] == "^(19[7-9][0-9]|[2-8][0-9]{3})-"
    # ... CSRF only with the session cookie, never as a parameter ...
    assert booking["security"] == [{"bearer": []}, {"session": [], "csrf": []}]
    assert all(p["in"] != "header" for i in doc["paths"].values() for o in i.values()
               for p in o.get("parameters", []))
    # ... and links from what is made to what uses it.
    made = doc["paths"][API_PREFIX + "/inmates"]["post"]["responses"]["201"]["links"]
    assert made["propose_contact"]["parameters"] == {"inmate_id": "$response.body#/id"}
    assert made["create_booking"]["requestBody"] == {"inmate_id": "$response.body#/id"}
