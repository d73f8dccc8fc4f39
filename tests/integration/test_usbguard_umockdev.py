"""The USB guard's decisions against emulated sysfs (umockdev), not skipped.

Device descriptions are in ``tests/devices`` (see ``generate.py`` there for the
descriptor bytes): an xHCI controller, an allowed camera, its clone with an
added HID keyboard interface, a clone hiding the keyboard in a second
configuration, the camera with another serial, a plain keyboard and a device
with truncated descriptors.

Enumeration runs under ``umockdev-run``; hot-plug under ``umockdev-wrapper``
with a ``UMockdev.Testbed`` made before pyudev loads libudev. The sandboxed
part runs in a subprocess (this module's ``__main__``) and prints what it
read back from the testbed's sysfs; the test asserts on that.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kiosk.wire.messages import parse_device_message

DEVICES = Path(__file__).resolve().parent.parent / "devices"
ROOT = Path(__file__).resolve().parents[2]
USB1 = "/sys/devices/pci0000:00/0000:00:14.0/usb1"

RULES = [
    {
        "name": "front camera",
        "vendor": "0bda",
        "product": "58f4",
        "serial": "200901010001",
        "interfaces": ["0e"],
    }
]


def sandboxed(launcher: list[str], scenario: str, timeout: float = 60) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), KIOSK_LOG__LEVEL="warning")
    proc = subprocess.run(
        [*launcher, sys.executable, "-m", "tests.integration.test_usbguard_umockdev", scenario],
        input=json.dumps(RULES),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def umockdev_run(*files: str) -> list[str]:
    launcher = ["umockdev-run"]
    for name in files:
        launcher += ["-d", str(DEVICES / name)]
    return [*launcher, "--"]


def assert_tamper_messages_valid(tamper: list[dict[str, Any]]) -> None:
    """What the guard reports is what the agent sends: a valid protocol tamper message."""
    for event in tamper:
        message = parse_device_message(json.dumps({"type": "tamper", **event}))
        assert message.type == "tamper"


def test_guard_at_start_locks_controllers_and_judges_present_devices() -> None:
    out = sandboxed(
        umockdev_run(
            "controller.umockdev",
            "camera.umockdev",
            "camera-clone-hid.umockdev",
            "keyboard.umockdev",
            "camera-clone-second-config.umockdev",
            "camera-other-serial.umockdev",
            "truncated.umockdev",
        ),
        "scan",
    )
    assert out["before"] == {
        "usb1/authorized_default": "1",
        **{f"{d}/authorized": "1" for d in ("1-1", "1-2", "1-3", "1-5", "1-6", "1-7")},
    }
    assert out["after"] == {
        "usb1/authorized_default": "0",  # no device is configured by default any more
        "1-1/authorized": "1",  # the allowed camera
        "1-2/authorized": "0",  # camera + keyboard interface
        "1-3/authorized": "0",  # a keyboard nobody allowed (plugged in before the guard)
        "1-5/authorized": "0",  # camera with a keyboard in configuration 2
        "1-6/authorized": "0",  # the right camera model, another serial
        "1-7/authorized": "0",  # descriptors cut short
    }
    assert out["decisions"] == {
        "1-1": "authorized:front camera",
        "1-2": "interfaces_differ",
        "1-3": "not_on_allow_list",
        "1-5": "interfaces_differ",
        "1-6": "serial_mismatch",
        "1-7": "bad_descriptors",
    }
    by_device = {t["details"]["device"]: t for t in out["tamper"]}
    assert set(by_device) == {"1-2", "1-3", "1-5", "1-6", "1-7"}
    assert all(t["kind"] == "usb_device_refused" for t in out["tamper"])
    clone = by_device["1-2"]["details"]
    assert clone["interfaces"] == "03,0e" and clone["expected_interfaces"] == "0e"
    assert clone["vendor"] == "0bda" and clone["serial"] == "200901010001"
    assert by_device["1-3"]["details"]["product_name"] == "USB Keyboard"
    assert_tamper_messages_valid(out["tamper"])


def test_guard_judges_hot_plugged_devices() -> None:
    out = sandboxed(["umockdev-wrapper"], "hotplug")
    assert out["locked"] == "0"
    assert out["plugged"] == {
        "camera.umockdev": {"authorized": "1", "decision": "authorized:front camera"},
        "camera-clone-hid.umockdev": {"authorized": "0", "decision": "interfaces_differ"},
        "keyboard.umockdev": {"authorized": "0", "decision": "not_on_allow_list"},
    }
    assert [t["details"]["device"] for t in out["tamper"]] == ["1-2", "1-3"]
    assert_tamper_messages_valid(out["tamper"])


def test_guard_refuses_everything_with_an_empty_allow_list() -> None:
    global RULES
    saved, RULES = RULES, []
    try:
        out = sandboxed(umockdev_run("controller.umockdev", "camera.umockdev"), "scan")
    finally:
        RULES = saved
    assert out["after"]["1-1/authorized"] == "0"
    assert out["decisions"] == {"1-1": "not_on_allow_list"}


def test_guard_command_reads_the_allow_list_from_the_agent_settings(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        "[agent]\nusb_allow = [\n"
        '  {name = "front camera", vendor = "0bda", product = "58f4", '
        'serial = "200901010001", interfaces = ["0e"]},\n]\n'
    )
    launcher = umockdev_run("controller.umockdev", "camera.umockdev", "camera-clone-hid.umockdev")
    proc = subprocess.run(
        [*launcher, sys.executable, "-m", "kiosk.device.usbguard", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), KIOSK_LOG__LEVEL="warning"),
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0] == {"locked": ["usb1"]}
    assert lines[1] == {"device": "1-1", "authorized": True, "rule": "front camera"}
    assert lines[2]["device"] == "1-2" and lines[2]["authorized"] is False
    assert lines[2]["reason"] == "interfaces_differ"


def test_guard_command_refuses_a_bad_allow_list(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nusb_allow = [{vendor = "0bda", product = "58f4"}]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "kiosk.device.usbguard", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "interfaces must list every interface class" in proc.stderr


def test_guard_service_reports_refusals_as_tamper_messages_once_the_link_is_up() -> None:
    out = sandboxed(["umockdev-wrapper"], "service")
    assert out["authorized"] == {"1-1": "1", "1-2": "0", "1-3": "0"}
    # The link was down for the first try: the report waited, nothing was lost.
    assert out["tries"] >= 3
    assert [(m["type"], m["kind"], m["details"]["device"]) for m in out["sent"]] == [
        ("tamper", "usb_device_refused", "1-2"),
        ("tamper", "usb_device_refused", "1-3"),
    ]


# --- inside the sandbox ------------------------------------------------------


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def _label(decision: Any) -> str:
    from kiosk.device.usbpolicy import Authorize

    return f"authorized:{decision.rule}" if isinstance(decision, Authorize) else decision.reason


def _scan(rules: list[dict[str, Any]]) -> dict[str, Any]:
    from kiosk.device.usbguard import UsbGuard

    names = [p for p in sorted(os.listdir(USB1)) if p.startswith("1-")]
    snapshot = lambda: {  # noqa: E731
        "usb1/authorized_default": _read(f"{USB1}/authorized_default"),
        **{f"{n}/authorized": _read(f"{USB1}/{n}/authorized") for n in names},
    }
    before = snapshot()
    tamper: list[dict[str, Any]] = []
    guard = UsbGuard.from_settings(rules, lambda k, d: tamper.append({"kind": k, "details": d}))
    decisions = {name: _label(d) for name, d in guard.start()}
    return {"before": before, "after": snapshot(), "decisions": decisions, "tamper": tamper}


def _hotplug(rules: list[dict[str, Any]]) -> dict[str, Any]:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()  # before pyudev loads libudev
    testbed.add_from_string((DEVICES / "controller.umockdev").read_text())
    sys_dir = testbed.get_sys_dir()  # the testbed's own files, read without the preload

    def attribute(syspath: str, name: str) -> str:
        return Path(sys_dir, syspath.removeprefix("/sys/"), name).read_text().strip()

    from kiosk.device.usbguard import UsbGuard

    tamper: list[dict[str, Any]] = []
    guard = UsbGuard.from_settings(rules, lambda k, d: tamper.append({"kind": k, "details": d}))
    plugged: dict[str, dict[str, str]] = {}

    async def run() -> str:
        judged: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        async def consume() -> None:
            async for item in guard.watch():
                await judged.put(item)

        task = asyncio.ensure_future(consume())
        # watch() listens first, then locks: once locked, no uevent can be missed.
        for _ in range(200):
            if attribute(USB1, "authorized_default") == "0":
                break
            await asyncio.sleep(0.05)
        locked = attribute(USB1, "authorized_default")
        for name in ("camera.umockdev", "camera-clone-hid.umockdev", "keyboard.umockdev"):
            # As the kernel shows a new device once authorized_default is 0.
            text = (DEVICES / name).read_text().replace("A: authorized=1", "A: authorized=0")
            syspath = "/sys" + text.split("\n", 1)[0].removeprefix("P: ")
            testbed.add_from_string(text)  # the testbed sends the "add" uevent itself
            name_in_sysfs = syspath.rsplit("/", 1)[1]
            while True:
                device, decision = await asyncio.wait_for(judged.get(), 10)
                if device == name_in_sysfs:
                    break
            plugged[name] = {
                "authorized": attribute(syspath, "authorized"),
                "decision": _label(decision),
            }
        task.cancel()
        return locked

    locked = asyncio.run(run())
    return {"locked": locked, "plugged": plugged, "tamper": tamper}


def _service(rules: list[dict[str, Any]]) -> dict[str, Any]:
    import gi

    gi.require_version("UMockdev", "1.0")
    from gi.repository import UMockdev

    testbed = UMockdev.Testbed.new()  # before pyudev loads libudev
    testbed.add_from_string((DEVICES / "controller.umockdev").read_text())
    sys_dir = testbed.get_sys_dir()

    from kiosk.device.usbguard import guard_service

    sent: list[dict[str, Any]] = []
    tries = 0

    async def send(message: Any) -> bool:
        nonlocal tries
        tries += 1
        if tries == 1:
            return False  # the link is still down
        sent.append(message.model_dump())
        return True

    async def run() -> dict[str, str]:
        service = asyncio.ensure_future(guard_service(rules, send))
        for _ in range(200):
            if Path(sys_dir, USB1.removeprefix("/sys/"), "authorized_default").read_text() == "0":
                break
            await asyncio.sleep(0.05)
        for name in ("camera.umockdev", "camera-clone-hid.umockdev", "keyboard.umockdev"):
            text = (DEVICES / name).read_text().replace("A: authorized=1", "A: authorized=0")
            testbed.add_from_string(text)
        for _ in range(100):
            if len(sent) == 2:
                break
            await asyncio.sleep(0.1)
        service.cancel()
        return {
            n: Path(sys_dir, USB1.removeprefix("/sys/"), n, "authorized").read_text().strip()
            for n in ("1-1", "1-2", "1-3")
        }

    authorized = asyncio.run(run())
    return {"authorized": authorized, "sent": sent, "tries": tries}


if __name__ == "__main__":
    _rules = json.loads(sys.stdin.read())
    _result = {"scan": _scan, "hotplug": _hotplug, "service": _service}[sys.argv[1]](_rules)
    print(json.dumps(_result))
