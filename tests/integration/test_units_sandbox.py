"""The programs work inside the seccomp sandbox their units ask for, and it is really there.

``tests/systemd_sandbox.py`` installs the filters a unit's ``SystemCallFilter=``,
``MemoryDenyWriteExecute=``, ``RestrictAddressFamilies=`` and
``NoNewPrivileges=`` give (as systemd 252 builds them) and then runs a command.
The real programs run under them, each once: the server answers the notify
protocol and its API; the server's bridge and the tablet's agent carry a
controlled call's real aiortc media; the station and the tablet's enrolment
service enrol a tablet over a pty; the gadget script builds its gadget;
Chromium keeps its own sandbox and shows a loopback page. Two negative
controls show why the kiosk UI's unit allows ``chroot`` and leaves W^X off.

These found two settings the score alone would have got wrong: W^X breaks
aiortc's DTLS (a cffi callback), and ICE needs netlink (getifaddrs).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from kiosk.crypto import pki
from kiosk.domain.model import Role
from tests.harness import Deployment, World, wait_until
from tests.integration.api_support import live_api
from tests.integration.test_controlled import _OFFICERS, _controlled_call
from tests.integration.test_enrolment_pty import SERIAL, enrol_over_pty, make_deployment
from tests.integration.test_usb_gadget_script import run as run_gadget_script

pytest.importorskip("seccomp", reason="python3-seccomp (Debian) is needed for the sandbox")

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
PY = sys.executable
CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd is needed"),
]


def sandboxed(unit: str | Path, *command: str) -> list[str]:
    path = unit if isinstance(unit, Path) else UNITS / unit
    return [PY, "-m", "tests.systemd_sandbox", str(path), "--", *command]


PROBE = r"""
import errno, json, mmap, os, socket
out = {}
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    out["write+exec memory"] = "allowed"
except OSError as e:
    out["write+exec memory"] = errno.errorcode[e.errno]
for name, kind in (("AF_PACKET", socket.SOCK_RAW), ("AF_NETLINK", socket.SOCK_RAW),
                   ("AF_INET", socket.SOCK_DGRAM)):
    try:
        socket.socket(getattr(socket, name), kind, 0).close()
        out[name] = "allowed"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
try:
    os.setuid(os.getuid())
    out["setuid"] = "allowed"
except OSError as e:
    out["setuid"] = errno.errorcode[e.errno]
print(json.dumps(out))
"""

EXPECTED = {
    # unit: (write+exec memory, AF_PACKET, AF_NETLINK, AF_INET, setuid)
    "kiosk-server.service": ("allowed", "EAFNOSUPPORT", "allowed", "allowed", "EPERM"),
    "kiosk-agent.service": ("allowed", "EAFNOSUPPORT", "allowed", "allowed", "EPERM"),
    "kiosk-kiosk-ui.service": ("allowed", "EAFNOSUPPORT", "EAFNOSUPPORT", "allowed", "allowed"),
    "kiosk-enrol.service": ("EPERM", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT", "EPERM"),
    "kiosk-provision.service": ("EPERM", "EAFNOSUPPORT", "allowed", "allowed", "EPERM"),
    "kiosk-usb-gadget.service": ("EPERM", "EAFNOSUPPORT", "EAFNOSUPPORT", "EAFNOSUPPORT", "EPERM"),
}


@pytest.mark.parametrize("unit", sorted(EXPECTED))
def test_the_sandbox_is_installed(unit: str) -> None:
    result = subprocess.run(
        sandboxed(unit, PY, "-c", PROBE), capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    keys = ("write+exec memory", "AF_PACKET", "AF_NETLINK", "AF_INET", "setuid")
    assert tuple(seen[k] for k in keys) == EXPECTED[unit], seen


def prefix(unit: str) -> list[str]:
    """What runs a command inside ``unit``'s sandbox (see ``spawn``'s ``prefix``)."""
    return sandboxed(unit)


# --- the real programs, each under its own unit's filters, doing their real work ----------


async def test_a_controlled_call_with_server_and_tablet_each_in_its_sandbox(
    tmp_path: Path,
) -> None:
    """The server (with its bridge) and the tablet's agent, each under its unit's filters,
    carry a controlled call's real media both ways: W^X would break aiortc's DTLS (a cffi
    callback) and ICE needs netlink (getifaddrs), in both programs."""
    world = World(
        tmp_path,
        server_prefix=prefix("kiosk-server.service"),
        agent_prefix=prefix("kiosk-agent.service"),
    )
    await world.start()
    try:
        # As tests/integration/test_controlled.py sets one up: booked, dialled, media through
        # the bridge at the visitor, the call connected.
        tablet, visitor, _ = await _controlled_call(world, "sight_and_hearing", "TAB-SANDBOX")
        assert visitor.call is not None and visitor.call.route.value == "bridge"

        async def media_at_the_tablet() -> bool:
            media = (await tablet.state()).get("media") or {}
            return media.get("video_received", 0) > 20 and media.get("audio_received", 0) > 20

        await wait_until(media_at_the_tablet, timeout=60, what="the visitor's media at the tablet")
    finally:
        officer = _OFFICERS.pop(id(world), None)
        if officer is not None:
            await officer.close()
        await world.close()


async def test_enrolment_with_station_and_tablet_each_in_its_sandbox(tmp_path: Path) -> None:
    """The station (network to the server's API, the serial line) and the tablet's enrolment
    service (the serial line only, no network at all) under their units' filters."""
    pki.init_ca(tmp_path / "pki", ["127.0.0.1"])
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    async with live_api(tmp_path, db_url) as api:
        d = await make_deployment(tmp_path, api_url=api.url, token=api.tokens[Role.ADMIN])
        o = await enrol_over_pty(
            d,
            station_prefix=prefix("kiosk-provision.service"),
            device_prefix=prefix("kiosk-enrol.service"),
        )
        assert (o.station_rc, o.device_rc) == (0, 0), (o.station_out, o.device_err)
        assert "Summary: 1 enrolled, 0 refused" in o.station_out
        assert (d.agent_dir / "provisioned").exists()
        status, listing = await api.call("GET", "/devices")
        assert status == 200 and [row["serial"] for row in listing["items"]] == [SERIAL]


def test_gadget_script_in_the_gadget_units_sandbox(tmp_path: Path) -> None:
    done = run_gadget_script(tmp_path, "KT-0001", prefix=prefix("kiosk-usb-gadget.service"))
    assert done.returncode == 0, done.stderr
    gadget = tmp_path / "config" / "usb_gadget" / "kiosk"
    assert (gadget / "strings" / "0x409" / "serialnumber").read_text().strip() == "KT-0001"
    assert (gadget / "UDC").read_text().strip() == "fe980000.usb"


# --- the server itself, as its unit starts it --------------------------------------------


async def _wait_field(sock: socket.socket, field: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        while field not in (await loop.sock_recv(sock, 4096)).decode().split("\n"):
            pass


async def test_server_in_its_sandbox(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    deployment = Deployment(tmp_path)
    deployment.setup()
    env = deployment.env()
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000")
    command = sandboxed("kiosk-server.service", PY, "-m", "kiosk", "server", "--config",
                        str(deployment.config))
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    log.close()
    try:
        await _wait_field(sock, "READY=1", 120)
        await _wait_field(sock, "WATCHDOG=1", 30)
        base = f"http://127.0.0.1:{deployment.web_port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/api/v1/openapi.json") as response:
                assert response.status == 200
            async with session.get(base + "/metrics") as response:
                assert response.status == 200
                assert "kiosk_live_calls" in await response.text()
        proc.send_signal(signal.SIGTERM)
        await _wait_field(sock, "STOPPING=1", 60)
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --- Chromium in the kiosk UI's sandbox ----------------------------------------------------


@pytest.fixture
def page_server() -> Iterator[str]:
    """A loopback page, as the agent serves the kiosk UI."""
    directory = Path(tempfile.mkdtemp(prefix="kiosk-page-"))
    (directory / "index.html").write_text(
        "<!doctype html><title>kiosk</title><p id=marker>kiosk page "
        "<script>document.getElementById('marker').dataset.js = String(6 * 7)</script>"
    )
    port_probe = socket.socket()
    port_probe.bind(("127.0.0.1", 0))
    port = port_probe.getsockname()[1]
    port_probe.close()
    proc = subprocess.Popen(
        [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    # Chromium refuses to run as root with its sandbox on: it runs as nobody,
    # as the unit runs it as an unprivileged dynamic user.
    home = Path(tempfile.mkdtemp(prefix="kiosk-ui-"))
    home.chmod(0o755)
    profile = home / "profile"
    profile.mkdir()
    shutil.chown(profile, "nobody", "nogroup")
    try:
        yield profile
    finally:
        shutil.rmtree(home, ignore_errors=True)


def chromium_in(
    unit: str | Path, profile: Path, url: str, *, until: str | None = None, timeout: float = 120
) -> tuple[str, str]:
    """Chromium's --dump-dom of ``url`` and its log; stopped early once the log shows ``until``."""
    assert CHROMIUM is not None
    command = sandboxed(
        unit,
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        "env", f"HOME={profile}",
        CHROMIUM, "--headless", "--disable-gpu", f"--user-data-dir={profile}",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--dump-dom", url,
    )  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # the browser's children are killed with it
    )
    assert proc.stdout is not None and proc.stderr is not None
    log: list[str] = []
    seen = threading.Event()

    def read_log() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            if until is not None and until in line:
                seen.set()
        seen.set()  # end of output

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    out = ""
    try:
        if until is None:
            out = proc.stdout.read()
            proc.wait(timeout)
        else:
            seen.wait(timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        reader.join(30)
    return out, "".join(log)


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (UNITS / "kiosk-kiosk-ui.service").read_text()
    assert old in text
    path = tmp_path / "kiosk-kiosk-ui.service"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None or shutil.which("setpriv") is None, reason="no chromium")
def test_chromium_with_its_own_sandbox_runs_in_the_ui_units_sandbox(
    page_server: str, nobody_home: Path, tmp_path: Path
) -> None:
    shown, log = chromium_in("kiosk-kiosk-ui.service", nobody_home, page_server)
    assert 'data-js="42"' in shown, log[-3000:]
    assert "--no-sandbox" not in (UNITS / "kiosk-kiosk-ui.service").read_text()

    # Without chroot, Chromium's namespace sandbox cannot start its zygote.
    no_chroot = _variant(
        tmp_path, "SystemCallFilter=@system-service chroot", "SystemCallFilter=@system-service"
    )
    _, log = chromium_in(no_chroot, nobody_home, page_server, until="sys_chroot", timeout=90)
    assert 'Check failed: sys_chroot("/proc/self/fdinfo/") == 0' in log, log[-3000:]

    # With W^X, V8 cannot reserve the memory it compiles JavaScript into.
    (tmp_path / "wx").mkdir()
    wx = _variant(tmp_path / "wx", "MemoryDenyWriteExecute=no", "MemoryDenyWriteExecute=yes")
    _, log = chromium_in(wx, nobody_home, page_server, until="CodeRange", timeout=90)
    assert "Failed to reserve virtual memory for CodeRange" in log, log[-3000:]
