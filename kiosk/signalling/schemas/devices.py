"""Tablets, their certificates and tamper reports (R18).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from kiosk.signalling.schemas.base import Id, Request, Response


def _certificate_serial(value: str) -> str:
    # RFC 5280: a positive integer of at most 20 octets (159 bits as a positive
    # DER integer); anything else is no certificate the CA could have issued.
    if not 0 < int(value, 16) < 2**159:
        raise ValueError("a certificate serial is a positive number of at most 159 bits")
    return value.lower()


# The same rule as a pattern, for the OpenAPI document: leading zeros, then at most 39
# significant hex digits, or 40 beginning 1-7 (below 2**159); never zero.
SERIAL_PATTERN = r"^0*([1-9a-fA-F][0-9a-fA-F]{0,38}|[1-7][0-9a-fA-F]{39})$"

CertificateSerial = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=SERIAL_PATTERN),
    AfterValidator(_certificate_serial),
]


class DeviceRegister(Request):
    serial: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    model: Annotated[str, StringConstraints(max_length=100)] = ""
    certificate_serial: CertificateSerial | None = None


class DeviceCertificate(Request):
    """Re-provisioning: the tablet's new certificate; the old one is revoked."""

    certificate_serial: CertificateSerial


class DeviceAssign(Request):
    inmate_id: Id | None


class DeviceOut(Response):
    id: str
    serial: str
    model: str
    inmate_id: str | None
    revoked: bool
    certificate_serial: str | None
    registered_at: datetime
    last_seen_at: datetime | None


class DeviceList(Response):
    items: list[DeviceOut]


class TamperEventOut(Response):
    """A tablet's report of tampering (R18, USB guard)."""

    id: str
    device_id: str
    at: datetime
    kind: str
    details: dict[str, str]


class TamperEventList(Response):
    items: list[TamperEventOut]
