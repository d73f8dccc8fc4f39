"""The station's udev detection under umockdev, not skipped.

Device descriptions are in ``tests/devices``: our gadget's tty (1d6b:0104,
product "Kiosk enrolment", serial = the tablet's serial) twice, an FTDI
serial adapter, and a gadget with our ids but another product string.

Enumeration runs under ``umockdev-run``. Hot-plug runs under
``umockdev-wrapper``: a process holds a ``UMockdev.Testbed`` and starts the
real ``kiosk-provision watch`` as its child (the child sees the testbed's
sysfs, /dev and uevents); the testbed backs each emulated ``/dev/ttyACM*``
with a pty, whose other end goes to a real tablet process
(``kiosk.device.enrol_serial``). Two tablets enrol at once against the real
staff API.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kiosk.crypto import pki
from kiosk.domain.model import Role
from tests.integration.api_support import live_api
from tests.integration.test_enrolment_pty import make_deployment

DEVICES = Path(__file__).resolve().parent.parent / "devices"
ROOT = Path(__file__).resolve().parents[2]
MODULE = "tests.integration.test_station_umockdev"


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), KIOSK_LOG__LEVEL="warning")


def test_present_gadgets_are_found_and_nothing_else() -> None:
    launcher = ["umockdev-run"]
    for name in (
        "controller.umockdev",
        "gadget-tty.umockdev",
        "gadget-tty-2.umockdev",
        "ftdi-tty.umockdev",
        "foreign-gadget-tty.umockdev",
    ):
        launcher += ["-d", str(DEVICES / name)]
    proc = subprocess.run(
        [*launcher, "--", sys.executable, "-m", MODULE, "present"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["all_ttys"] == ["ttyACM0", "ttyACM1", "ttyACM2", "ttyUSB0"]
    assert found["gadgets"] == [
        {"devnode": "/dev/ttyACM0", "usb_serial": "KT-0001"},
        {"devnode": "/dev/ttyACM1", "usb_serial": "KT-0002"},
    ]


async def test_two_tablets_plugged_in_enrol_at_once(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "pki", ["127.0.0.1"])
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'kiosk.sqlite3'}"
    async with live_api(tmp_path, db_url) as api:
        d = await make_deployment(tmp_path, api_url=api.url, token=api.tokens[Role.ADMIN])
        from datetime import UTC, datetime

        from provisioning.inventory import Inventory

        Inventory(tmp_path / "station").add("KT-0002", model="Tab-10", now=datetime.now(UTC))
        job = {
            "config": str(d.config),
            "agent_root": str(tmp_path / "tablets"),
            "stations_pem": str(d.stations_pem),
        }
        proc = await asyncio.create_subprocess_exec(
            "umockdev-wrapper",
            sys.executable,
            "-m",
            MODULE,
            "hotplug",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=_env(),
        )
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(job).encode()), 240)
        assert proc.returncode == 0, err.decode()[-3000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
        station = result["station_out"]
        assert result["station_rc"] == 0, (station, result["device_errs"])
        assert "Summary: 2 enrolled, 0 refused" in station
        for tty, serial in (("ttyACM0", "KT-0001"), ("ttyACM1", "KT-0002")):
            assert f"[{tty}] tablet found (USB serial {serial})" in station
            assert f"[{tty}] Is {serial} the serial printed on the case?" in station
            assert f"[{tty}] DONE {serial}" in station
        # The FTDI adapter and someone else's gadget are never touched.
        assert "ttyUSB0" not in station and "ttyACM2" not in station
        assert result["device_rcs"] == [0, 0], result["device_errs"]
        status, listing = await api.call("GET", "/devices")
        assert status == 200
        assert sorted(r["serial"] for r in listing["items"]) == ["KT-0001", "KT-0002"]
        for serial in ("KT-0001", "KT-0002"):
            assert (tmp_path / "tablets" / serial / "provisioned").exists()


# --- inside the sandbox ------------------------------------------------------


def _present() -> dict[str, Any]:
    import pyudev

    from provisioning.station import GadgetIds, GadgetWatcher

    context = pyudev.Context()
    ttys = sorted(str(d.sys_name) for d in context.list_devices(subsystem="tty"))
    watcher = GadgetWatcher(GadgetIds("1d6b", "0104", "Kiosk enrolment"), context)
    gadgets = [{"devnode": g.devnode, "usb_serial": g.usb_serial} for g in watcher.present()]
    return {"all_ttys": ttys, "gadgets": gadgets}


def _hotplug(job: dict[str, Any]) -> dict[str, Any]:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()
    testbed.add_from_string((DEVICES / "controller.umockdev").read_text())
    station = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provisioning.cli",
            "--config",
            job["config"],
            "watch",
            "--count",
            "2",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert station.stdin is not None and station.stdout is not None
    station.stdin.write(b"y\ny\n")  # the operator reads both cases and says yes
    station.stdin.flush()
    # Said once the station hears udev's events: a gadget added from now on is seen.
    assert b"Waiting for tablets" in station.stdout.readline()
    for name in ("ftdi-tty.umockdev", "foreign-gadget-tty.umockdev"):
        testbed.add_from_string((DEVICES / name).read_text())
    tablets = []
    for name, tty, serial in (
        ("gadget-tty.umockdev", "/dev/ttyACM0", "KT-0001"),
        ("gadget-tty-2.umockdev", "/dev/ttyACM1", "KT-0002"),
    ):
        testbed.add_from_string((DEVICES / name).read_text())  # plugged in: "add" uevents
        master = testbed.get_dev_fd(tty)  # the tablet's end of the emulated serial line
        tablets.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kiosk.device.enrol_serial",
                    "--fd",
                    str(master),
                    "--dir",
                    str(Path(job["agent_root"]) / serial),
                    "--station-keys",
                    job["stations_pem"],
                    "--serial",
                    serial,
                    "--model",
                    "Tab-10",
                    "--once",
                ],
                pass_fds=[master],
                stderr=subprocess.PIPE,
            )
        )
    station_out, _ = station.communicate(timeout=180)
    errs = []
    for tablet in tablets:
        _, err = tablet.communicate(timeout=60)
        errs.append(err.decode())
    return {
        "station_rc": station.returncode,
        "station_out": station_out.decode(),
        "device_rcs": [t.returncode for t in tablets],
        "device_errs": errs,
    }


if __name__ == "__main__":
    if sys.argv[1] == "present":
        print(json.dumps(_present()))
    else:
        print(json.dumps(_hotplug(json.loads(sys.stdin.read()))))
