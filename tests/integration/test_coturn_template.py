"""The coturn template, rendered and run by the real coturn: what it relays and what not.

The test renders ``systemd/turnserver.conf.template`` as docs/deploy.md does,
starts Debian's ``turnserver`` with it on this machine's own (non-loopback)
address, authenticates with a credential minted by the server's own code
(``kiosk.signalling.calls.turn``), allocates a relay and asks for permissions
(RFC 8656 CreatePermission) towards loopback, private and link-local peers:
coturn must answer 403. No packet leaves the machine: a permission is local
state of the TURN server.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aioice import stun
from aioice.turn import UDP_TRANSPORT, make_integrity_key

from kiosk.signalling.calls.turn import turn_credential

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "systemd" / "turnserver.conf.template"
TURNSERVER = shutil.which("turnserver")
REALM = "turn.kiosk.test"

pytestmark = pytest.mark.skipif(TURNSERVER is None, reason="coturn is not installed")


def own_address() -> str | None:
    """This machine's address on its own interface (not loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # a UDP connect sends nothing
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def render(address: str, secret: str, port: int, tls_port: int, tmp: Path) -> str:
    text = TEMPLATE.read_text()
    for name, value in {
        "@REALM@": REALM,
        "@STATIC_AUTH_SECRET@": secret,
        "@LISTENING_IP@": address,
        "@RELAY_IP@": address,
        "@EXTERNAL_IP@": address,
        "@TLS_CERT@": str(tmp / "absent.pem"),
        "@TLS_KEY@": str(tmp / "absent.key"),
    }.items():
        assert name in text, name
        text = text.replace(name, value)
    assert "@" not in "".join(
        line for line in text.splitlines() if not line.startswith("#")
    ), "a placeholder is left"
    # Only what a test run needs differently: its own ports, files and log.
    text = text.replace("listening-port=3478", f"listening-port={port}")
    text = text.replace("tls-listening-port=5349", f"tls-listening-port={tls_port}")
    text = text.replace("\nsyslog\n", "\n")
    return text + f"\nlog-file=stdout\nsimple-log\npidfile={tmp / 'turnserver.pid'}\n"


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[tuple[tuple[str, int], str]]:
    address = own_address()
    if address is None:
        pytest.skip("no non-loopback interface")
    assert TURNSERVER is not None
    secret = secrets.token_hex(32)
    port = free_udp_port(address)
    conf = tmp_path / "turnserver.conf"
    conf.write_text(render(address, secret, port, free_udp_port(address), tmp_path))
    log = (tmp_path / "turnserver.log").open("wb")
    proc = subprocess.Popen(
        [TURNSERVER, "-c", str(conf), "--min-port", "40000", "--max-port", "40999"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        yield (address, port), secret
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


class Client(asyncio.DatagramProtocol):
    """A minimal TURN client over UDP: one transaction at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.replies: asyncio.Queue[stun.Message] = asyncio.Queue()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.replies.put_nowait(stun.parse_message(data))

    async def request(
        self, message: stun.Message, server: tuple[str, int], key: bytes | None = None
    ) -> stun.Message:
        if key is not None:
            message.add_message_integrity(key)
        message.add_fingerprint()
        assert self.transport is not None
        for _ in range(20):  # retransmit until coturn is up and answers
            self.transport.sendto(bytes(message), server)
            try:
                while True:
                    reply = await asyncio.wait_for(self.replies.get(), 0.5)
                    if reply.transaction_id == message.transaction_id:
                        return reply
            except TimeoutError:
                continue
        raise AssertionError("no answer from coturn")


async def allocate(
    client: Client, server: tuple[str, int], username: str, password: str
) -> tuple[bytes, dict[str, object]]:
    first = await client.request(
        stun.Message(
            stun.Method.ALLOCATE,
            stun.Class.REQUEST,
            attributes={"REQUESTED-TRANSPORT": UDP_TRANSPORT},
        ),
        server,
    )
    assert first.message_class == stun.Class.ERROR
    assert first.attributes["ERROR-CODE"][0] == 401
    realm = first.attributes["REALM"]
    assert realm == REALM
    key = make_integrity_key(username, realm, password)
    auth = {"USERNAME": username, "REALM": realm, "NONCE": first.attributes["NONCE"]}
    reply = await client.request(
        stun.Message(
            stun.Method.ALLOCATE,
            stun.Class.REQUEST,
            attributes={"REQUESTED-TRANSPORT": UDP_TRANSPORT, **auth},
        ),
        server,
        key,
    )
    return key, {"reply": reply, **auth}


async def permission(
    client: Client, server: tuple[str, int], key: bytes, auth: dict[str, object], peer: str
) -> int:
    """0 if the permission was granted, else coturn's error code."""
    reply = await client.request(
        stun.Message(
            stun.Method.CREATE_PERMISSION,
            stun.Class.REQUEST,
            attributes={
                "XOR-PEER-ADDRESS": (peer, 9),
                "USERNAME": auth["USERNAME"],
                "REALM": auth["REALM"],
                "NONCE": auth["NONCE"],
            },
        ),
        server,
        key,
    )
    if reply.message_class == stun.Class.RESPONSE:
        return 0
    return int(reply.attributes["ERROR-CODE"][0])


async def new_client() -> Client:
    loop = asyncio.get_running_loop()
    address = own_address()
    assert address is not None
    _, protocol = await loop.create_datagram_endpoint(Client, local_addr=(address, 0))
    return protocol


@pytest.fixture
async def client() -> Client:
    return await new_client()


async def test_relays_only_to_public_peers(
    turn: tuple[tuple[str, int], str], client: Client
) -> None:
    server, secret = turn
    username, password = turn_credential(
        secret, "call-1", datetime.now(UTC) + timedelta(minutes=30)
    )
    key, auth = await allocate(client, server, username, password)
    reply = auth["reply"]
    assert isinstance(reply, stun.Message)
    assert reply.message_class == stun.Class.RESPONSE, reply.attributes
    relayed = reply.attributes["XOR-RELAYED-ADDRESS"]
    assert relayed[0] == server[0]

    refused = [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.5.4",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata services live here
        "100.64.0.1",
        "0.0.0.1",
        "240.0.0.1",
    ]
    for peer in refused:
        assert await permission(client, server, key, auth, peer) == 403, peer
    # Not a blanket refusal: a public peer and the server's own relay address are allowed.
    assert await permission(client, server, key, auth, "93.184.216.34") == 0
    assert await permission(client, server, key, auth, server[0]) == 0


async def test_expired_or_forged_credentials_are_refused(
    turn: tuple[tuple[str, int], str],
) -> None:
    server, secret = turn
    client = await new_client()  # one client (5-tuple) per attempt
    expired_user, expired_password = turn_credential(
        secret, "call-2", datetime.now(UTC) - timedelta(minutes=1)
    )
    _, auth = await allocate(client, server, expired_user, expired_password)
    reply = auth["reply"]
    assert isinstance(reply, stun.Message)
    assert reply.message_class == stun.Class.ERROR
    assert reply.attributes["ERROR-CODE"][0] == 401

    forged_user, forged_password = turn_credential(
        "not-the-secret", "call-3", datetime.now(UTC) + timedelta(minutes=30)
    )
    client = await new_client()
    _, auth = await allocate(client, server, forged_user, forged_password)
    reply = auth["reply"]
    assert isinstance(reply, stun.Message)
    assert reply.message_class == stun.Class.ERROR
    assert reply.attributes["ERROR-CODE"][0] == 401
