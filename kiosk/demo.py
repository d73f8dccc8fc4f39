"""``kiosk demo``: the whole system on one machine with SQLite, for trying it out.

``start_demo(data_dir)`` makes the data directory (database, CA and keys),
starts the server on loopback, creates a staff member per role with a random
password and an admin API token, and fills a demo facility *through the staff
API itself* (so every rule applies to the demo data as to real data):
inmates (one on remand, one minor), contacts of every category with
decisions, controlled ones among them, and bookings over the rest of today,
some starting now so that a call can be made at once. It then writes
``demo.json`` (API.md) and returns a :class:`Demo` that later parts (the
simulated tablet, visitor invites) extend.

Re-running on the same directory starts over: the database and
``demo.json`` are made afresh (the bookings are "today"), while the CA and
signing keys are kept. A directory that holds a database but not the
demo's marker file (``.kiosk-demo``) is not a demo directory and is refused,
so that the demo never wipes real data.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from kiosk.crypto import keys
from kiosk.demo_seed import ApiClient, DemoError, seed
from kiosk.domain.model import Role
from kiosk.runtime.config import Settings
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.server import Server, wait_for_stop_signal
from kiosk.store.db import write_transaction

if TYPE_CHECKING:
    from kiosk.device.agent import Agent
    from kiosk.signalling.process import ServerProcess

log = get_logger(__name__)

DEMO_FILE = "demo.json"
DB_FILE = "kiosk.sqlite3"
DEMO_MARKER = ".kiosk-demo"  # made by the demo: only such a directory is ever wiped
TABLET_UI_PORT = 8080  # where the simulated tablet serves its kiosk page (AgentSettings.ui_port)
STAFF = {
    Role.OFFICER: ("officer", "Demo Officer"),
    Role.VISIT_OFFICE: ("visitoffice", "Demo Visit Office"),
    Role.ADMIN: ("admin", "Demo Admin"),
}
# The login demo.json names: the officer sets up, ends and monitors calls.
MAIN_ROLE = Role.OFFICER


@dataclass
class Demo:
    data_dir: Path
    settings: Settings
    server: Server
    process: ServerProcess
    info: dict[str, Any] = field(default_factory=dict)
    agent: Agent | None = None  # the simulated tablet
    tablet_id: str = ""

    @property
    def demo_file(self) -> Path:
        return self.data_dir / DEMO_FILE

    def write_info(self) -> None:
        """demo.json holds passwords and a token: 0600, written atomically."""
        keys.write_secret(self.demo_file, (json.dumps(self.info, indent=2) + "\n").encode())

    async def close(self) -> None:
        if self.agent is not None:
            await self.agent.stop()
        await self.process.close()


def demo_settings(
    data_dir: Path, host: str = "127.0.0.1", port: int = 8000, device_port: int = 8444
) -> Settings:
    return Settings.model_validate(
        {
            "server": {
                "data_dir": str(data_dir),
                "web_host": host,
                "web_port": port,
                "device_host": host,
                "device_port": device_port,
                # One simulated tablet and whatever a visitor's browser brings:
                # the demo needs no raised open-file limit to start anywhere.
                "device_capacity": 100,
            },
            # Mails to visitors land as files in DIR/mail instead of going out.
            "mail": {"transport": "folder", "folder": str(data_dir / "mail")},
            "log": {"format": "console"},
        }
    )


def prepare_dir(data_dir: Path) -> Path:
    """Make ``data_dir`` (0700); start the demo database over if it is a demo directory."""
    data_dir = Path(os.path.abspath(data_dir))
    marker = data_dir / DEMO_MARKER
    if (data_dir / DB_FILE).exists() and not marker.exists():
        raise DemoError(f"{data_dir} holds a database but is not a demo directory")
    keys.ensure_private_dir(data_dir)
    marker.touch()
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm", DEMO_FILE):
        (data_dir / name).unlink(missing_ok=True)
    return data_dir


async def start_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device_port: int = 8444,
    tablet_port: int = TABLET_UI_PORT,
) -> Demo:
    """The whole server process (web and device listeners, the calls' runner) with demo data."""
    from kiosk.crypto import pki, revocation
    from kiosk.signalling.process import start

    data_dir = prepare_dir(data_dir)
    settings = demo_settings(data_dir, host, port, device_port)
    revocation.ensure_crl(pki.init_ca(settings.pki_dir, hosts=[host, "localhost"]))
    process = await start(settings)
    server = process.web
    demo = Demo(data_dir=data_dir, settings=settings, server=server, process=process)
    try:
        ctx = server.context
        now = ctx.clock()
        passwords: dict[Role, str] = {}
        staff_ids: dict[Role, str] = {}
        async with write_transaction(ctx.engine) as conn:
            for role, (username, display) in STAFF.items():
                passwords[role] = secrets.token_urlsafe(12)
                staff_ids[role] = await auth.add_staff(
                    conn, ctx.audit, username, display, role, passwords[role], now
                )
            token = await auth.issue_api_token(conn, ctx.audit, staff_ids[Role.ADMIN], "demo", now)
        seeded = await seed(server.api_url, token, now)
        demo.agent = await start_tablet(
            demo, seeded["inmates"][0]["id"], host, process.listener.port, tablet_port
        )
        invites = await issue_invites(server.api_url, token, seeded["bookings"])
        demo.info = {
            "staff_url": server.base_url + "/console/",
            "staff_user": STAFF[MAIN_ROLE][0],
            "staff_password": passwords[MAIN_ROLE],
            "api_token": token,
            "api_url": server.api_url,
            "tablet_ui_url": f"http://127.0.0.1:{tablet_port}/",
            "invites": invites,
            "tablet": {"device_id": demo.tablet_id, "inmate_id": seeded["inmates"][0]["id"]},
            "staff": [
                {"username": STAFF[r][0], "password": passwords[r], "role": r.value} for r in STAFF
            ],
            "inmates": seeded["inmates"],
            "bookings": seeded["bookings"],
        }
        demo.write_info()
    except BaseException:
        await process.close()
        raise
    return demo


TABLET_SERIAL = "DEMO-TABLET-1"


async def start_tablet(
    demo: Demo, inmate_id: str, host: str, device_port: int, tablet_port: int
) -> Agent:
    """One simulated tablet: enrolled locally, assigned to ``inmate_id``, synthetic media."""
    from kiosk.crypto import local_enrolment
    from kiosk.device.agent import Agent
    from kiosk.runtime.config import AgentSettings
    from kiosk.signalling.devices.registry import register_device

    ctx = demo.server.context
    enrolled = local_enrolment.enrol_local(
        demo.settings.pki_dir, TABLET_SERIAL, demo.data_dir / "tablet"
    )
    async with write_transaction(ctx.engine) as conn:
        device = await register_device(
            conn,
            TABLET_SERIAL,
            enrolled.certificate_serial,
            ctx.clock(),
            inmate_id=inmate_id,
            model="simulated",
        )
        await ctx.audit.append(
            "system",
            "device.registered",
            {"device": device.id, "certificate": enrolled.certificate_serial},
            conn=conn,
        )
        await ctx.audit.append(
            "system", "device.assigned", {"device": device.id, "inmate": inmate_id}, conn=conn
        )
    demo.tablet_id = device.id
    shown = f"[{host}]" if ":" in host else host
    agent = Agent(
        AgentSettings(
            server_url=f"wss://{shown}:{device_port}/device/v1",
            ca_cert=enrolled.ca_cert,
            cert=enrolled.cert,
            key=enrolled.key,
            grant_public_key=enrolled.grant_pub,
            ui_port=tablet_port,
            usb_guard=False,  # a simulated tablet on this machine
        ),
        synthetic_media=True,
    )
    await agent.start()
    return agent


async def issue_invites(
    api_url: str, token: str, bookings: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """An invite link per booking, as API.md's demo.json lists them."""
    out = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        call = ApiClient(http, api_url, token)
        for booking in bookings:
            invite = await call("POST", f"/bookings/{booking['id']}/invites")
            out.append(
                {
                    "contact_id": booking["contact_id"],
                    "booking_id": booking["id"],
                    "category": booking["category"],
                    "url": invite["url"],
                    "start": booking["start"],
                    "end": booking["end"],
                }
            )
    return out


ROLE_NAMES = {Role.OFFICER: "officer", Role.VISIT_OFFICE: "visit office", Role.ADMIN: "admin"}


def welcome(info: dict[str, Any], data_dir: Path, demo_file: Path) -> list[str]:
    """What the demo prints: where everything is, every staff login, how to start a call."""
    lines = [
        f"kiosk demo is running (data in {data_dir})",
        f"  staff console: {info['staff_url']}",
        "  staff logins:",
    ]
    for login in info["staff"]:
        role = ROLE_NAMES.get(Role(login["role"]), login["role"])
        lines.append(f"    {role + ':':14} {login['username']} / {login['password']}")
    lines += [
        f"  API:           {info['api_url']}  (token in {demo_file})",
        f"  tablet UI:     {info['tablet_ui_url']}",
        "                 (the inmate's tablet: its Call button starts a call with a visitor",
        "                 whose invite below is open in a browser)",
    ]
    for invite in info["invites"]:
        lines.append(f"  visitor ({invite['category']}, {invite['start']}): {invite['url']}")
    return lines


async def run_demo(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    device_port: int = 8444,
    tablet_port: int = TABLET_UI_PORT,
) -> None:
    demo = await start_demo(
        data_dir, host=host, port=port, device_port=device_port, tablet_port=tablet_port
    )
    try:
        for line in welcome(demo.info, demo.data_dir, demo.demo_file):
            print(line, flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await wait_for_stop_signal()
    finally:
        await demo.close()
