"""The programs work inside the seccomp sandbox their units ask for, and it is really there.

``tests/systemd_sandbox.py`` installs the filters a unit's ``SystemCallFilter=``,
``MemoryDenyWriteExecute=``, ``RestrictAddressFamilies=`` and
``NoNewPrivileges=`` give (as systemd 252 builds them) and then runs a command.
Under them: the server answers the notify protocol and its API; the bridge
and the tablet's call carry real aiortc media; enrolment runs end to end over
a pty; the gadget script builds its gadget; Chromium keeps its own sandbox
and shows a loopback page. Two negative
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
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.harness import Deployment

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


def run_tests(unit: str, *selection: str) -> None:
    """Run some of the project's own integration tests with the unit's sandbox."""
    result = subprocess.run(
        sandboxed(unit, PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection),
        capture_output=True,
        text=True,
        timeout=360,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    tail = (result.stdout + result.stderr)[-6000:]
    assert result.returncode == 0, tail
    assert f"{len(selection)} passed" in result.stdout, tail


def test_tablet_call_media_in_the_agents_sandbox() -> None:
    run_tests(
        "kiosk-agent.service",
        "tests/integration/test_agent_call.py::test_media_flows_both_ways_and_the_grant_ends_the_call",
    )


def test_bridge_media_in_the_servers_sandbox() -> None:
    run_tests(
        "kiosk-server.service",
        "tests/integration/test_bridge.py::test_legs_receive_each_others_moving_video_and_tone",
    )


def test_enrolment_in_the_stations_sandbox() -> None:
    # Station and tablet processes both inherit it; both units forbid W^X and
    # allow the same system calls (the tablet's unit further forbids the network).
    run_tests(
        "kiosk-provision.service",
        "tests/integration/test_enrolment_pty.py::test_enrolled_tablet_is_registered_and_accepted_by_the_server",
    )


def test_gadget_script_in_the_gadget_units_sandbox() -> None:
    run_tests(
        "kiosk-usb-gadget.service",
        "tests/integration/test_usb_gadget_script.py::test_start_builds_our_cdc_acm_gadget",
    )


# --- the server itself, as its unit starts it --------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"kiosk-notify-{uuid.uuid4().hex}"
    sock.bind(b"\0" + name.encode())
    sock.setblocking(False)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


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
