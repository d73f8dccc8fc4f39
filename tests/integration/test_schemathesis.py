"""The staff API walked by schemathesis from its own OpenAPI document (issue 17).

A live server (kiosk/signalling/process.py: the web listener with the calls'
switchboard, on loopback) on SQLite and on PostgreSQL, every schemathesis check on
(tests/integration/schemathesis.toml), the examples, fuzzing and stateful phases:
the stateful phase follows the document's links, from an inmate to its contacts,
their decision, a booking, a call and its monitors. A fixed seed and a few
examples per operation keep a run to about a minute. Zero failures means the
server never answers 5xx, answers only the statuses and reason codes the document
declares for the operation, in the declared shape, accepts what the schema calls
well formed (or refuses it by a rule: 409, 422) and refuses what it does not.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from kiosk.crypto import pki
from kiosk.domain.model import Role
from kiosk.signalling import process
from kiosk.signalling.app import OPERATIONS
from tests.integration.api_support import LiveApi, add_role_users, settings_for

pytestmark = pytest.mark.timeout(400)

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20261203
EXAMPLES = 2  # per operation and phase


@pytest.fixture
async def live(tmp_path: Path, migrated_url: str) -> AsyncIterator[LiveApi]:
    settings = settings_for(tmp_path, migrated_url, device_port=0)
    pki.init_ca(settings.pki_dir, ["127.0.0.1"])
    proc = await process.start(settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            api = LiveApi(server=proc.web, http=http)
            await add_role_users(api)
            yield api
    finally:
        await proc.close()


async def run_schemathesis(api: LiveApi, cwd: Path) -> str:
    """schemathesis over every operation, as the admin (monitors as an officer); its report."""
    assert SCHEMATHESIS.exists(), "schemathesis is a dev dependency (pyproject.toml)"
    env = {**os.environ, "KIOSK_OFFICER_TOKEN": api.tokens[Role.OFFICER]}
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", api.url + "/openapi.json",
        "-H", f"Authorization: Bearer {api.tokens[Role.ADMIN]}",
        "--checks", "all",
        "--phases", "examples,fuzzing,stateful",
        "--max-examples", str(EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "20",
        "--no-shrink",
        "--no-color",
        "--output-truncate", "false",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=cwd, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 360)
    report = out.decode(errors="replace")
    assert proc.returncode == 0, report[-12000:]
    return report


async def test_schemathesis_finds_the_server_as_its_document_says(
    live: LiveApi, tmp_path: Path
) -> None:
    report = await run_schemathesis(live, tmp_path)
    summary = report.rsplit("SUMMARY", 1)[-1]
    links = re.search(r"API Links:.*", report)
    print(summary, links.group(0) if links else "")  # cases, links and the seed, for the record
    assert f"Seed: {SEED}" in summary
    selected = int(re.search(r"Selected: (\d+)/", summary).group(1))  # type: ignore[union-attr]
    assert selected >= len(live.server.app[OPERATIONS])  # every operation, and the document
    assert "✅ Stateful" in summary, summary
    assert re.search(r"\d+ generated, \d+ passed", summary), summary
    # The stateful phase went from one thing to the next by the document's links.
    covered = re.search(r"API Links:\s+(\d+) covered", report)
    assert covered is not None and int(covered.group(1)) >= 3, report[-4000:]
