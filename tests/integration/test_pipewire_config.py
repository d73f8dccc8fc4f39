"""The tablet's PipeWire configuration, loaded by the real PipeWire daemon.

``systemd/pipewire-echo-cancel.conf`` must give the echo-cancelled source and
sink the agent uses (``kiosk_aec_source``, ``kiosk_aec_sink``, set in
kiosk-agent.service), with the WebRTC canceller; ``pipewire-pulse-kiosk.conf``
must put the PulseAudio socket where the agent unit points ``PULSE_SERVER``.
The daemons run in a private runtime directory with the distribution's
configuration plus our fragments, exactly as /etc/pipewire/*.conf.d/ adds them.
A negative control: a canceller library that does not exist gives no nodes,
so the nodes seen are the module's doing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
PIPEWIRE = shutil.which("pipewire")
PW_DUMP = shutil.which("pw-dump")
PIPEWIRE_PULSE = shutil.which("pipewire-pulse")
SHARE = Path("/usr/share/pipewire")

pytestmark = pytest.mark.skipif(
    PIPEWIRE is None or PW_DUMP is None or PIPEWIRE_PULSE is None,
    reason="PipeWire is not installed (Debian: pipewire pipewire-bin pipewire-pulse "
    "libspa-0.2-modules)",
)


class Daemons:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "conf"
        self.run = root / "run"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pulse_socket = root / "pulse" / "native"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEWIRE", "PULSE"))}
        env.update(
            XDG_RUNTIME_DIR=str(self.run),
            PIPEWIRE_RUNTIME_DIR=str(self.run),
            PIPEWIRE_CONFIG_DIR=str(self.conf),
            DBUS_SESSION_BUS_ADDRESS="disabled:",
        )
        return env

    def configure(self, echo_cancel: str) -> None:
        (self.conf / "pipewire.conf.d").mkdir(parents=True)
        (self.conf / "pipewire-pulse.conf.d").mkdir(parents=True)
        self.run.mkdir(mode=0o700)
        self.pulse_socket.parent.mkdir(mode=0o700)
        for name in ("pipewire.conf", "pipewire-pulse.conf", "client.conf", "client-rt.conf"):
            shutil.copy(SHARE / name, self.conf / name)
        (self.conf / "pipewire.conf.d" / "60-kiosk-echo-cancel.conf").write_text(echo_cancel)
        pulse = (UNITS / "pipewire-pulse-kiosk.conf").read_text()
        assert "unix:/run/kiosk-audio/native" in pulse
        (self.conf / "pipewire-pulse.conf.d" / "60-kiosk.conf").write_text(
            pulse.replace("/run/kiosk-audio/native", str(self.pulse_socket))
        )

    def start(self, program: str, log: str) -> None:
        with (self.root / log).open("wb") as out:
            self.procs.append(
                subprocess.Popen(
                    [program], env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def wait_for(self, path: Path, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            for proc in self.procs:
                assert proc.poll() is None, (self.root / "pipewire.log").read_text()[-3000:]
            assert time.monotonic() < deadline, f"{path} did not appear"
            time.sleep(0.05)

    def answers(self) -> bool:
        """The daemon is up and answers a client (pw-dump) on its socket."""
        if PW_DUMP is None or not (self.run / "pipewire-0").exists():
            return False
        result = subprocess.run([PW_DUMP], env=self.env(), capture_output=True, text=True,
                                timeout=30)
        return result.returncode == 0 and bool(result.stdout.strip())

    def nodes(self) -> dict[str, str]:
        assert PW_DUMP is not None
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(
                [PW_DUMP], env=self.env(), capture_output=True, text=True, timeout=30
            )
            if result.returncode == 0 and result.stdout.strip():
                break
            assert time.monotonic() < deadline, result.stderr
            time.sleep(0.2)
        out = {}
        for obj in json.loads(result.stdout):
            props = (obj.get("info") or {}).get("props") or {}
            if "node.name" in props:
                out[props["node.name"]] = props.get("media.class", "")
        return out

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Daemons]:
    d = Daemons(tmp_path)
    try:
        yield d
    finally:
        d.stop()


def agent_audio_names() -> tuple[str, str]:
    text = (UNITS / "kiosk-agent.service").read_text()
    source = re.search(r"PULSE_SOURCE=(\S+)", text)
    sink = re.search(r"PULSE_SINK=(\S+)", text)
    assert source and sink
    return source.group(1), sink.group(1)


def test_echo_cancel_gives_the_agents_source_and_sink_and_pulse_its_socket(
    daemons: Daemons,
) -> None:
    config = (UNITS / "pipewire-echo-cancel.conf").read_text()
    assert "library.name = aec/libspa-aec-webrtc" in config
    daemons.configure(config)
    daemons.start(str(PIPEWIRE), "pipewire.log")
    daemons.wait_for(daemons.run / "pipewire-0")
    nodes = daemons.nodes()
    source, sink = agent_audio_names()
    assert nodes.get(source) == "Audio/Source", nodes
    assert nodes.get(sink) == "Audio/Sink", nodes

    # The PulseAudio server the agent talks to, on the socket its unit names.
    daemons.start(str(PIPEWIRE_PULSE), "pipewire-pulse.log")
    daemons.wait_for(daemons.pulse_socket)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(str(daemons.pulse_socket))


def test_a_canceller_that_does_not_exist_gives_no_nodes(daemons: Daemons) -> None:
    config = (UNITS / "pipewire-echo-cancel.conf").read_text()
    daemons.configure(config.replace("aec/libspa-aec-webrtc", "aec/libspa-aec-missing"))
    daemons.start(str(PIPEWIRE), "pipewire.log")
    # The daemon refuses the configuration outright (it exits), or it comes up and
    # answers: either is a state to wait for, not a time.
    deadline = time.monotonic() + 30
    while daemons.procs[0].poll() is None and not daemons.answers():
        assert time.monotonic() < deadline, "pipewire neither exited nor answered"
        time.sleep(0.1)
    if daemons.procs[0].poll() is not None:
        return
    source, sink = agent_audio_names()
    nodes = daemons.nodes()
    assert source not in nodes and sink not in nodes, nodes
