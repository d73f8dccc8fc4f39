"""``kiosk agent`` as an operator runs it: starts, serves its page API, stops on SIGTERM.

No server here: the agent must come up and keep trying with its backoff
while the server is unreachable (a tablet booted before the network).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from kiosk.crypto import local_enrolment, pki
from tests.harness import ROOT, free_port, wait_until

pytestmark = pytest.mark.timeout(120)


def agent_config(tmp: Path, ui_port: int, extra: str = "") -> Path:
    pki_dir = tmp / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    e = local_enrolment.enrol_local(pki_dir, "SN-CLI-1", tmp / "agent")
    config = tmp / "agent.toml"
    config.write_text(
        f"""[agent]
server_url = "wss://127.0.0.1:{free_port()}/device/v1"
ca_cert = "{e.ca_cert}"
cert = "{e.cert}"
key = "{e.key}"
grant_public_key = "{e.grant_pub}"
ui_port = {ui_port}
reconnect_min = 0.05
reconnect_max = 0.2
{extra}
[log]
format = "json"
"""
    )
    return config


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiosk", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


async def test_agent_runs_offline_serves_its_page_api_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = agent_config(tmp_path, port)
    log = (tmp_path / "agent.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "agent", "--config", str(config),
                             "--synthetic-media"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            body = None
            while body is None:
                assert proc.poll() is None, (tmp_path / "agent.log").read_text()
                assert time.monotonic() < deadline, "the page API did not come up"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/state") as resp:
                        body = await resp.json()
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.2)
            assert body["link"] == "offline" and body["phase"] == "idle"
            async with http.post(f"http://127.0.0.1:{port}/api/dial",
                                 json={"booking_id": "b-1"}) as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "device_not_connected"
        # Several reconnect attempts with the short test backoff, as its log tells.
        log_path = tmp_path / "agent.log"
        await wait_until(
            lambda: log_path.read_text().count("link attempt failed") >= 3,
            timeout=30,
            what="three reconnect attempts",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "agent.log").read_text()
    assert output.count("link attempt failed") >= 2  # it kept trying, with backoff
    assert "BEGIN" not in output  # no key material in the log


BAD = [('ui_host = "0.0.0.0"', "loopback only"), ("bogus = 1", "agent.bogus")]
# The agent opens no camera: an old setting for one is refused by name.
BAD.append(('video_device = "/dev/video0"', "video_device"))


@pytest.mark.parametrize(("extra", "expected"), BAD)
def test_bad_configuration_is_one_line_on_stderr_and_exit_1(
    tmp_path: Path, extra: str, expected: str
) -> None:
    result = run(["agent", "--config", str(agent_config(tmp_path, free_port(), extra))])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_missing_keys_are_refused_with_the_path(tmp_path: Path) -> None:
    config = agent_config(tmp_path, free_port())
    (tmp_path / "agent" / "device.key").unlink()
    result = run(["agent", "--config", str(config)])
    assert result.returncode == 1
    assert "TLS credentials" in result.stderr and len(result.stderr.strip().splitlines()) == 1
