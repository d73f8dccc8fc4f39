"""systemd/usb-gadget-setup.sh against a directory standing in for configfs.

configfs itself needs the kernel's libcomposite and a USB device controller;
here a plain directory takes its place, so this checks what the script writes
(ids, strings, function, binding) and how it refuses, not the kernel's side.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "systemd" / "usb-gadget-setup.sh"


def run(
    tmp: Path, serial: str | None, *, udc: bool = True, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """The script's ``start``; ``prefix`` runs it inside another command (a unit's sandbox)."""
    (tmp / "config" / "usb_gadget").mkdir(parents=True, exist_ok=True)
    (tmp / "udc").mkdir(exist_ok=True)
    if udc:
        (tmp / "udc" / "fe980000.usb").touch()
    serial_file = tmp / "product_serial"
    if serial is not None:
        serial_file.write_bytes(serial.encode() + b"\x00\n")
    env = dict(
        os.environ,
        KIOSK_GADGET_CONFIGFS=str(tmp / "config"),
        KIOSK_GADGET_UDC_DIR=str(tmp / "udc"),
        KIOSK_GADGET_SERIAL_FILES=f"{tmp / 'missing'} {serial_file}",
    )
    return subprocess.run(
        [*prefix, "/bin/sh", str(SCRIPT), "start"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


def test_start_builds_our_cdc_acm_gadget(tmp_path: Path) -> None:
    done = run(tmp_path, "KT-0001")
    assert done.returncode == 0, done.stderr
    g = tmp_path / "config" / "usb_gadget" / "kiosk"

    def read(name: str) -> str:
        return (g / name).read_text().strip()

    # The ids the station matches ([station] gadget_vendor / gadget_product / _name).
    assert (read("idVendor"), read("idProduct")) == ("0x1d6b", "0x0104")
    assert read("strings/0x409/product") == "Kiosk enrolment"
    assert read("strings/0x409/serialnumber") == "KT-0001"
    assert (g / "functions" / "acm.usb0").is_dir()
    assert os.readlink(g / "configs" / "c.1" / "acm.usb0") == str(g / "functions" / "acm.usb0")
    assert read("UDC") == "fe980000.usb"


@pytest.mark.parametrize("serial", ["KT 0001", "KT/../1", "x" * 65, ""])
def test_a_serial_the_ca_would_refuse_stops_the_gadget(tmp_path: Path, serial: str) -> None:
    done = run(tmp_path, serial)
    assert done.returncode == 1
    assert "usb-gadget-setup:" in done.stderr
    assert not (tmp_path / "config" / "usb_gadget" / "kiosk").exists()


def test_no_device_controller_is_a_clear_error(tmp_path: Path) -> None:
    done = run(tmp_path, "KT-0001", udc=False)
    assert done.returncode == 1
    assert "no USB device controller" in done.stderr


def test_usage(tmp_path: Path) -> None:
    done = subprocess.run(["/bin/sh", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "usage" in done.stderr
