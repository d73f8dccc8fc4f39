"""TURN: per-call credentials in coturn's shared-secret scheme, against a real coturn.

A coturn server (Debian's package) runs on loopback with the same
``use-auth-secret`` scheme a deployment uses (systemd/turnserver.conf.template).
Two aiortc peers with ``iceTransportPolicy=relay`` may use nothing but relayed
candidates: media flowing between them proves the credentials work and the
call went through the relay. A credential past its expiry is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
)
from aiortc.mediastreams import MediaStreamError

from kiosk.device.media import PatternTrack
from kiosk.runtime.config import TurnSettings
from kiosk.signalling.calls.turn import ice_servers_for_call
from tests.harness import free_port

SECRET = "test-shared-secret-0123456789"
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"


def _wait_for_stun(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until coturn answers a STUN binding request on its UDP port (RFC 5389)."""
    request = struct.pack(">HHI", 0x0001, 0, 0x2112A442) + os.urandom(12)
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            assert proc.poll() is None, "coturn exited"
            sock.sendto(request, ("127.0.0.1", port))
            with contextlib.suppress(TimeoutError, ConnectionRefusedError):
                answer = sock.recv(2048)
                if answer[8:20] == request[8:20]:
                    return
    raise AssertionError(f"coturn did not answer on port {port} in {timeout} s")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    # Test-only: everything here is on loopback, so loopback peers are allowed.
    # The deployment template denies loopback, private and link-local peers.
    config = tmp_path / "turnserver.conf"
    config.write_text(
        "\n".join(
            [
                f"listening-port={port}",
                "listening-ip=127.0.0.1",
                "relay-ip=127.0.0.1",
                f"min-port={free_port()}",
                "max-port=65000",
                "use-auth-secret",
                f"static-auth-secret={SECRET}",
                "realm=kiosk.test",
                "fingerprint",
                "no-tcp-relay",
                "no-cli",
                "no-tls",
                "no-dtls",
                "allow-loopback-peers",
                "no-multicast-peers",
                f"pidfile={tmp_path / 'turn.pid'}",
                f"log-file={tmp_path / 'turn.log'}",
                "simple-log",
            ]
        )
        + "\n"
    )
    proc = subprocess.Popen(
        [TURNSERVER, "-c", str(config), "--no-stdout-log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_stun(port, proc)
        yield port
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def _servers(port: int, expires: datetime) -> list[RTCIceServer]:
    settings = TurnSettings(urls=[f"turn:127.0.0.1:{port}?transport=udp"], shared_secret=SECRET)
    return [
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in ice_servers_for_call(settings, "call-1", expires)
    ]


async def _relay_call(port: int, expires: datetime) -> tuple[int, str, str]:
    config = RTCConfiguration(
        iceServers=_servers(port, expires), iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    caller.addTrack(PatternTrack())
    frames = 0
    got = asyncio.Event()
    pulls: list[asyncio.Future[None]] = []

    @callee.on("track")
    def on_track(track: object) -> None:
        async def pull() -> None:
            nonlocal frames
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()  # type: ignore[attr-defined]
                    frames += 1
                    if frames >= 10:
                        got.set()

        pulls.append(asyncio.ensure_future(pull()))

    try:
        await caller.setLocalDescription(await caller.createOffer())
        offer = caller.localDescription
        await callee.setRemoteDescription(offer)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(got.wait(), timeout=20)
        return frames, offer.sdp, callee.localDescription.sdp
    finally:
        await caller.close()
        await callee.close()
        for pull in pulls:
            pull.cancel()


async def test_a_relay_only_call_completes_with_per_call_credentials(coturn: int) -> None:
    frames, offer, answer = await _relay_call(coturn, datetime.now(UTC) + timedelta(minutes=5))
    assert frames >= 10
    # Nothing but relayed candidates was offered or answered.
    for sdp in (offer, answer):
        candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate")]
        assert candidates and all(" typ relay" in c for c in candidates)


async def test_a_credential_past_the_calls_end_is_refused(coturn: int) -> None:
    frames, offer, _ = await _relay_call(coturn, datetime.now(UTC) - timedelta(seconds=1))
    assert frames == 0
    assert " typ relay" not in offer  # coturn gave no allocation
