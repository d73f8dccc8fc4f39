"""Local enrolment: what the USB station does, without the USB (demo and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kiosk.crypto import keys
from kiosk.crypto.authority import certificate_serial_text, load_ca
from kiosk.crypto.pki import (
    DEVICE_DAYS,
    check_device_serial,
    issue_device_certificate,
    make_device_csr,
    new_ec_key,
    pem,
)


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    serial: str
    certificate_serial: str
    cert: Path
    key: Path
    ca_cert: Path
    grant_pub: Path


def enrol_local(
    pki_dir: Path,
    serial: str,
    out_dir: Path,
    *,
    days: int = DEVICE_DAYS,
    now: datetime | None = None,
) -> EnrolledDevice:
    """Enrol a tablet on this machine: what the USB station does, without the USB.

    The device key is made here and written only to ``out_dir`` (the agent's
    directory); the CA issues from a CSR exactly as over USB.
    """
    check_device_serial(serial)
    ca = load_ca(pki_dir)
    out = keys.ensure_private_dir(out_dir)
    key = new_ec_key()
    cert = issue_device_certificate(ca, make_device_csr(key, serial), serial, days=days, now=now)
    enrolled = EnrolledDevice(
        serial=serial,
        certificate_serial=certificate_serial_text(cert),
        cert=out / "device.pem",
        key=out / "device.key",
        ca_cert=out / "ca.pem",
        grant_pub=out / "grant.pub",
    )
    keys.save_private_key(enrolled.key, key)
    keys.write_public(enrolled.cert, pem(cert))
    keys.write_public(enrolled.ca_cert, ca.paths.ca_cert.read_bytes())
    keys.write_public(enrolled.grant_pub, ca.paths.grant_pub.read_bytes())
    return enrolled
