"""Enrolment end to end over a real serial line: a pty pair in raw mode between a
station process (``kiosk-provision enrol``) and a tablet process
(``python -m kiosk.device.enrol_serial``), both real subprocesses; the operator
answers on the station's stdin.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kiosk.crypto import authority, keys, pki, revocation
from kiosk.device.agent import Agent
from kiosk.domain.model import Role
from kiosk.runtime.config import AgentProgramSettings, load
from kiosk.signalling.devices.listener import DeviceHub, DeviceListener
from provisioning.cli import KEY_FILE
from provisioning.console import Console
from provisioning.inventory import Inventory
from tests.harness import wait_until
from tests.integration.api_support import LiveApi, live_api

SERIAL = "KT-0001"
PY = sys.executable
TIMEOUT = 60


@dataclass
class Deployment:
    root: Path
    config: Path
    stations_pem: Path
    agent_dir: Path
    pki_dir: Path


def write_station_config(root: Path, api_url: str, token: str) -> Path:
    config = root / "station.toml"
    config.write_text(
        f"""
[pki]
dir = "{root / "pki"}"
[log]
level = "warning"
[station]
data_dir = "{root / "station"}"
api_url = "{api_url}"
api_token = "{token}"
device_server_url = "wss://127.0.0.1:8444/device/v1"
facility_id = "romerike"
"""
    )
    return config


async def provision(
    config: Path, *args: str, stdin: bytes = b"", prefix: Sequence[str] = ()
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *prefix,
        PY,
        "-m",
        "provisioning.cli",
        "--config",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def make_deployment(
    root: Path, *, api_url: str = "http://127.0.0.1:9/api/v1", token: str = "unused"
) -> Deployment:
    """A CA, a station with its key and inventory, and the tablet image's pinned key.

    The CLI is what staff use; ``test_station_cli_sets_up_key_and_inventory``
    runs it. The other tests set up the same files in-process to stay quick.
    """
    pki.init_ca(root / "pki")
    config = write_station_config(root, api_url, token)
    Inventory(root / "station").add(SERIAL, model="Tab-10", now=datetime.now(UTC))
    key = keys.load_or_create_ed25519(root / "station" / KEY_FILE)
    stations = root / "stations.pem"
    stations.write_bytes(keys.public_key_pem(key.public_key()))
    return Deployment(root, config, stations, root / "agent", root / "pki")


@dataclass
class Outcome:
    station_rc: int
    station_out: str
    device_rc: int
    device_err: str


async def enrol_over_pty(
    d: Deployment,
    *,
    answer: bytes = b"y\n",
    station_args: tuple[str, ...] = (),
    device_args: tuple[str, ...] = (),
    stations_pem: Path | None = None,
    station_prefix: Sequence[str] = (),
    device_prefix: Sequence[str] = (),
) -> Outcome:
    """``*_prefix``: run that side inside another command (a unit's sandbox)."""
    master, slave = os.openpty()  # a real serial line; both ends set raw by the programs
    try:
        device = await asyncio.create_subprocess_exec(
            *device_prefix,
            PY,
            "-m",
            "kiosk.device.enrol_serial",
            "--fd",
            str(master),
            "--dir",
            str(d.agent_dir),
            "--station-keys",
            str(stations_pem or d.stations_pem),
            "--serial",
            SERIAL,
            "--model",
            "Tab-10",
            "--once",
            *device_args,
            pass_fds=[master],
            stderr=asyncio.subprocess.PIPE,
        )
        os.close(master)
        master = -1
        station = provision(
            d.config, "enrol", os.ttyname(slave), *station_args, stdin=answer,
            prefix=station_prefix,
        )
        station_rc, station_out, _ = await station
        _, device_err = await asyncio.wait_for(device.communicate(), TIMEOUT)
        assert device.returncode is not None
        return Outcome(station_rc, station_out, device.returncode, device_err.decode())
    finally:
        if master >= 0:
            os.close(master)
        os.close(slave)


def assert_refused(o: Outcome, code: str, *, by: str) -> None:
    """Both programs fail, both show the code and the refusing side's words."""
    assert o.station_rc == 1 and o.device_rc == 1, (o.station_out, o.device_err)
    if by == "station":
        assert f"FAILED {SERIAL}: refused: [{code}]" in o.station_out, o.station_out
        assert f"refused by the station: [{code}]" in o.device_err, o.device_err
    else:
        assert f"refused by the tablet: [{code}]" in o.station_out, o.station_out
        assert f"refused: [{code}]" in o.device_err, o.device_err
    assert "Summary: 0 enrolled, 1 refused" in o.station_out


def assert_nothing_installed(agent_dir: Path) -> None:
    present = sorted(p.name for p in agent_dir.iterdir()) if agent_dir.exists() else []
    assert "provisioned" not in present and "device.key" not in present
    assert ".staging" not in present  # a failed session leaves nothing half-written


async def test_serial_not_in_the_inventory(tmp_path: Path) -> None:
    d = await make_deployment(tmp_path)
    rc, _, err = await provision(d.config, "inventory", "remove", SERIAL)
    assert rc == 0, err
    o = await enrol_over_pty(d)
    assert_refused(o, "serial_not_in_inventory", by="station")
    assert "not in the station's inventory" in o.device_err
    assert_nothing_installed(d.agent_dir)


async def test_operator_says_the_case_shows_another_serial(tmp_path: Path) -> None:
    d = await make_deployment(tmp_path)
    o = await enrol_over_pty(d, answer=b"n\n")
    assert f"Is {SERIAL} the serial printed on the case?" in o.station_out
    assert_refused(o, "operator_rejected", by="station")
    assert_nothing_installed(d.agent_dir)


async def test_bundle_from_a_station_the_tablet_does_not_pin(tmp_path: Path) -> None:
    d = await make_deployment(tmp_path)
    other = await make_deployment(tmp_path / "other")  # another deployment's station key
    o = await enrol_over_pty(d, stations_pem=other.stations_pem)
    assert_refused(o, "bad_bundle_signature", by="device")
    assert_nothing_installed(d.agent_dir)


async def test_tablet_already_provisioned_refuses_a_plain_enrolment(tmp_path: Path) -> None:
    d = await make_deployment(tmp_path)
    d.agent_dir.mkdir(mode=0o700)
    (d.agent_dir / "provisioned").write_text("{}")
    o = await enrol_over_pty(d)
    assert_refused(o, "already_provisioned", by="device")


async def test_station_refuses_a_tablet_it_already_enrolled(tmp_path: Path) -> None:
    d = await make_deployment(tmp_path)
    Inventory(tmp_path / "station").mark_enrolled(
        SERIAL, certificate_serial="abc123", device_id="dev-old", now=datetime.now(UTC)
    )
    o = await enrol_over_pty(d)
    assert_refused(o, "already_provisioned", by="station")
    assert "abc123" in o.device_err


async def test_server_unreachable_means_not_provisioned(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: nothing listens; registration fails, the tablet
    # discards what it staged and never leaves enrolment mode.
    d = await make_deployment(tmp_path)
    o = await enrol_over_pty(d)
    assert_refused(o, "registration_failed", by="station")
    assert_nothing_installed(d.agent_dir)
    # The certificate that went over the line is revoked: a tablet that kept it
    # could not use it.
    issued = re.search(r"certificate ([0-9a-f]+) issued", o.station_out)
    assert issued is not None
    assert issued.group(1) in revocation.revoked_serials(d.pki_dir)


async def test_station_cli_sets_up_key_and_inventory(tmp_path: Path) -> None:
    """`key` makes the station's key (0600 in a 0700 directory) and prints the public
    half for the tablet image; `inventory add/list/remove` keep the expected serials."""
    config = write_station_config(tmp_path, "http://127.0.0.1:9/api/v1", "unused")
    rc, out, err = await provision(config, "key")
    assert rc == 0, err
    key = tmp_path / "station" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert out.split("\n", 1)[1].encode() == key.with_suffix(".pub").read_bytes()
    rc, out, err = await provision(config, "inventory", "add", SERIAL, "--model", "Tab-10")
    assert (rc, out.strip()) == (0, f"added {SERIAL}"), err
    rc, out, err = await provision(config, "inventory", "add", SERIAL)
    assert rc == 1 and "already in the inventory" in err
    rc, out, err = await provision(config, "inventory", "add", "bad serial/../x")
    assert rc == 1 and "as printed on the case" in err
    rc, out, err = await provision(config, "inventory", "list")
    assert rc == 0 and f"{SERIAL}" in out and "expected" in out
    inventory = json.loads((tmp_path / "station" / "inventory.json").read_text())
    assert [t["serial"] for t in inventory["tablets"]] == [SERIAL]


@pytest.fixture(autouse=True)
def _quiet_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIOSK_LOG__LEVEL", "warning")


# --- the whole way: enrolled over the line, registered, accepted by the server --------


async def _accepted_by_device_listener(api: LiveApi, agent_dir: Path, pki_dir: Path) -> str:
    """Start the real tablet agent from what enrolment wrote (its environment file, as
    the agent unit's EnvironmentFile= reads it); the device id the listener accepts."""
    env = dict(
        line.split("=", 1) for line in (agent_dir / "enrolment.env").read_text().splitlines()
    )
    hub = DeviceHub(api.server.context.engine)
    listener = DeviceListener(hub, pki_dir, "127.0.0.1", 0)
    await listener.start()
    try:
        env["KIOSK_AGENT__SERVER_URL"] = env["KIOSK_AGENT__SERVER_URL"].replace(
            ":8444/", f":{listener.port}/"
        )
        settings = load(AgentProgramSettings, environ={**env, "KIOSK_AGENT__UI_PORT": "0"})
        agent = Agent(settings.agent, synthetic_media=True)
        await agent.start()
        try:
            await wait_until(hub.device_ids, timeout=30, what="the agent's link accepted")
            (device_id,) = hub.device_ids()
            return device_id
        finally:
            await agent.stop()
    finally:
        await listener.stop()


async def test_enrolled_tablet_is_registered_and_accepted_by_the_server(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "pki", ["127.0.0.1"])
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    async with live_api(tmp_path, db_url) as api:
        d = await make_deployment(tmp_path, api_url=api.url, token=api.tokens[Role.ADMIN])
        o = await enrol_over_pty(d)
        assert (o.station_rc, o.device_rc) == (0, 0), (o.station_out, o.device_err)
        assert "Summary: 1 enrolled, 0 refused" in o.station_out
        assert f"Is {SERIAL} the serial printed on the case?" in o.station_out

        # The tablet: its own key 0600 in a 0700 directory, the marker written.
        agent = d.agent_dir
        assert stat.S_IMODE(agent.stat().st_mode) == 0o700
        assert stat.S_IMODE((agent / "device.key").stat().st_mode) == 0o600
        marker = json.loads((agent / "provisioned").read_text())
        assert not (agent / ".staging").exists()
        env = dict(
            line.split("=", 1) for line in (agent / "enrolment.env").read_text().splitlines()
        )
        assert env["KIOSK_AGENT__DEVICE_ID"] == marker["device_id"]
        # What the agent will load: the [agent] settings from the environment file.
        agent_settings = load(AgentProgramSettings, environ={**env, "KIOSK_AGENT__SERVER_URL": "wss://x/"})
        assert agent_settings.agent.key == agent / "device.key"
        assert agent_settings.agent.device_id == marker["device_id"]

        # The server: one device row with the certificate the tablet holds.
        status, listing = await api.call("GET", "/devices")
        assert status == 200
        (row,) = listing["items"]
        cert = x509.load_pem_x509_certificate((agent / "device.pem").read_bytes())
        assert row["serial"] == SERIAL and row["model"] == "Tab-10"
        assert row["certificate_serial"] == authority.certificate_serial_text(cert)
        assert marker["device_id"] == row["id"]
        record = Inventory(tmp_path / "station").get(SERIAL)
        assert record is not None and record.device_id == row["id"]
        assert record.certificate_serial == row["certificate_serial"]

        # The tablet connects with its new certificate and is accepted.
        assert await _accepted_by_device_listener(api, agent, d.pki_dir) == row["id"]

        # Plugged in again: the tablet refuses (already provisioned), its files untouched.
        before = (agent / "device.pem").read_bytes()
        o = await enrol_over_pty(d)
        assert o.device_rc == 1 and o.station_rc == 1
        assert "refused by the tablet: [already_provisioned]" in o.station_out
        assert (agent / "device.pem").read_bytes() == before


async def test_reprovisioning_asked_for_gives_a_new_identity_and_revokes_the_old(
    tmp_path: Path,
) -> None:
    """Re-provisioning asked for explicitly: the tablet gets a new certificate, the server
    takes it for the same device row and revokes the old one (its CRL), audited."""
    pki.init_ca(tmp_path / "pki", ["127.0.0.1"])
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    async with live_api(tmp_path, db_url) as api:
        d = await make_deployment(tmp_path, api_url=api.url, token=api.tokens[Role.ADMIN])
        first = await enrol_over_pty(d)
        assert (first.station_rc, first.device_rc) == (0, 0), first.station_out
        old = x509.load_pem_x509_certificate((d.agent_dir / "device.pem").read_bytes())
        o = await enrol_over_pty(d, station_args=("--reprovision",))
        assert (o.station_rc, o.device_rc) == (0, 0), o.station_out
        new = x509.load_pem_x509_certificate((d.agent_dir / "device.pem").read_bytes())
        assert new.serial_number != old.serial_number
        revoked = revocation.revoked_serials(d.pki_dir)
        assert authority.certificate_serial_text(old) in revoked
        assert authority.certificate_serial_text(new) not in revoked
        status, listing = await api.call("GET", "/devices")
        assert status == 200
        (row,) = listing["items"]  # the same tablet, one row
        assert row["certificate_serial"] == authority.certificate_serial_text(new)
        assert not row["revoked"]
        status, audit = await api.call("GET", "/audit")
        assert any(e["action"] == "device.reprovisioned" for e in audit["items"])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_console_keeps_one_line_per_tablet_on_a_terminal() -> None:
    """On a terminal each tablet's line is rewritten in place (cursor up, clear line);
    a question stops the redraw until it is answered."""
    out = _Terminal()
    answers = asyncio.StreamReader()
    console = Console(out, answers)
    console.progress("ttyACM0", "greeting the tablet")
    console.progress("ttyACM1", "greeting the tablet")
    console.progress("ttyACM0", "tablet KT-0001 answered")
    assert out.getvalue().endswith(
        "\x1b[2F\x1b[2K[ttyACM0] tablet KT-0001 answered\n\x1b[2K[ttyACM1] greeting the tablet\n"
    )
    asking = asyncio.ensure_future(console.ask("ttyACM0", "Is KT-0001 on the case?"))
    await asyncio.sleep(0)
    console.progress("ttyACM1", "tablet KT-0002 answered")  # held back while asking
    assert out.getvalue().endswith("[ttyACM0] Is KT-0001 on the case? [y/N] ")
    answers.feed_data(b"yes\n")
    assert await asyncio.wait_for(asking, 5) is True
    assert out.getvalue().endswith(
        "[ttyACM0] answer: yes\n"
        "\x1b[2K[ttyACM0] tablet KT-0001 answered\n\x1b[2K[ttyACM1] tablet KT-0002 answered\n"
    )
    answers.feed_data(b"\n")  # just Enter: no
    assert await console.ask("ttyACM1", "Is KT-0002 on the case?") is False


def test_the_ca_refusals_reach_the_protocol_as_reasons(tmp_path: Path) -> None:
    """kiosk.crypto.pki checks the CSR again when it issues; its codes become the protocol's."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from kiosk.domain.reasons import Reason
    from kiosk.enrolment.station import IssueRefused
    from kiosk.enrolment.tablet import build_csr
    from provisioning.station import pki_issuer

    issue = pki_issuer(pki.init_ca(tmp_path / "pki"))
    key = ec.generate_private_key(ec.SECP256R1())
    issued = issue(build_csr(key, SERIAL), SERIAL)
    cert = x509.load_pem_x509_certificate(issued.certificate_pem.encode())
    assert issued.serial == authority.certificate_serial_text(cert)
    assert cert.public_key() == key.public_key()
    with pytest.raises(IssueRefused) as refused:
        issue(build_csr(key, "KT-OTHER"), SERIAL)
    assert refused.value.reason is Reason.CSR_SUBJECT_MISMATCH
    der = bytearray(build_csr(key, SERIAL).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 1
    with pytest.raises(IssueRefused) as refused:
        issue(x509.load_der_x509_csr(bytes(der)), SERIAL)
    assert refused.value.reason is Reason.BAD_CSR_SIGNATURE
    other = build_csr(ec.generate_private_key(ec.SECP384R1()), SERIAL)
    with pytest.raises(IssueRefused) as refused:
        issue(other, SERIAL)
    assert refused.value.reason is Reason.INVALID_REQUEST
