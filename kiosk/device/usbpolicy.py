"""Which USB devices the tablet lets in: pure decisions, no sysfs.

The guard (``kiosk.device.usbguard``) sets ``authorized_default=0`` on every
host controller, so the kernel configures no new device on its own; it then
asks ``decide`` about each one. A device is authorized only if a rule of the
allow list (``[agent] usb_allow``) matches its vendor, product, serial (where
the rule gives one) and the EXACT set of interface classes over all its
configurations. A clone of an allowed camera that adds a keyboard interface
(a "BadUSB" device) therefore fails on the interface set.

The interface classes come from the raw ``descriptors`` sysfs attribute,
which the kernel fills in before authorization (an unauthorized device has no
interface directories yet); ``parse_descriptors`` reads it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TAMPER_KIND = "usb_device_refused"

_HEX4 = re.compile(r"^[0-9a-fA-F]{4}$")

# USB descriptor types (USB 2.0 spec, table 9-5).
_DEVICE = 1
_CONFIGURATION = 2
_INTERFACE = 4


class DescriptorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Descriptors:
    vendor: str  # four lower-case hex digits
    product: str
    device_class: int
    interfaces: frozenset[int]  # bInterfaceClass of every interface, every alt setting


def parse_descriptors(data: bytes) -> Descriptors:
    """The device descriptor and every configuration's interface classes."""
    if len(data) < 18 or data[0] != 18 or data[1] != _DEVICE:
        raise DescriptorError("no device descriptor")
    (device_class,) = struct.unpack_from("<B", data, 4)
    vendor, product = struct.unpack_from("<HH", data, 8)
    classes: set[int] = set()
    configurations = 0
    i = 18
    while i < len(data):
        if i + 2 > len(data):
            raise DescriptorError("truncated descriptor header")
        length, kind = data[i], data[i + 1]
        if length < 2 or i + length > len(data):
            raise DescriptorError(f"bad descriptor length {length} at offset {i}")
        if kind == _CONFIGURATION:
            configurations += 1
        elif kind == _INTERFACE:
            if length < 9:
                raise DescriptorError("short interface descriptor")
            classes.add(data[i + 5])
        i += length
    if configurations == 0:
        raise DescriptorError("no configuration descriptor")
    return Descriptors(f"{vendor:04x}", f"{product:04x}", device_class, frozenset(classes))


@dataclass(frozen=True, slots=True)
class AllowRule:
    name: str
    vendor: str
    product: str
    interfaces: frozenset[int]
    serial: str | None = None


def _class_code(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{2}", value):
        return int(value, 16)
    raise ValueError(f'interface class {value!r}: two hex digits, e.g. "0e"')


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[AllowRule, ...]:
    """``[agent] usb_allow``: ``{name, vendor, product, interfaces, serial?}`` each."""
    rules = []
    for n, item in enumerate(raw):
        unknown = set(item) - {"name", "vendor", "product", "interfaces", "serial"}
        if unknown:
            raise ValueError(f"usb_allow[{n}]: unknown keys {sorted(unknown)}")
        vendor, product = str(item.get("vendor", "")), str(item.get("product", ""))
        if not _HEX4.fullmatch(vendor) or not _HEX4.fullmatch(product):
            raise ValueError(f"usb_allow[{n}]: vendor and product are four hex digits")
        interfaces = item.get("interfaces")
        if not isinstance(interfaces, list) or not interfaces:
            raise ValueError(f"usb_allow[{n}]: interfaces must list every interface class")
        serial = item.get("serial")
        if serial is not None and not isinstance(serial, str):
            raise ValueError(f"usb_allow[{n}]: serial must be text")
        rules.append(
            AllowRule(
                name=str(item.get("name") or f"rule {n}"),
                vendor=vendor.lower(),
                product=product.lower(),
                interfaces=frozenset(_class_code(c) for c in interfaces),
                serial=serial,
            )
        )
    return tuple(rules)


@dataclass(frozen=True, slots=True)
class UsbDevice:
    """What the guard read from sysfs about one device."""

    name: str  # sysfs name, e.g. "1-2"
    descriptors: Descriptors | None  # None: unreadable or malformed
    serial: str | None
    product_name: str = ""
    problem: str = ""  # why ``descriptors`` is None


@dataclass(frozen=True, slots=True)
class Authorize:
    rule: str

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str  # not_on_allow_list | serial_mismatch | interfaces_differ | bad_descriptors
    details: Mapping[str, str]

    def __bool__(self) -> bool:
        return False

    @property
    def kind(self) -> str:
        return TAMPER_KIND


Decision = Authorize | Refuse


def classes_text(classes: Iterable[int]) -> str:
    return ",".join(f"{c:02x}" for c in sorted(classes))


def decide(device: UsbDevice, rules: Sequence[AllowRule]) -> Decision:
    """Deny by default: authorized only by a rule matching in every respect."""
    details = {
        "device": device.name,
        "serial": device.serial or "",
        "product_name": device.product_name,
    }
    d = device.descriptors
    if d is None:
        return Refuse("bad_descriptors", {**details, "problem": device.problem})
    details |= {"vendor": d.vendor, "product": d.product, "interfaces": classes_text(d.interfaces)}
    same_model = [r for r in rules if (r.vendor, r.product) == (d.vendor, d.product)]
    if not same_model:
        return Refuse("not_on_allow_list", details)
    same_serial = [r for r in same_model if r.serial is None or r.serial == device.serial]
    if not same_serial:
        return Refuse("serial_mismatch", details)
    for rule in same_serial:
        if rule.interfaces == d.interfaces:
            return Authorize(rule.name)
    expected = " or ".join(classes_text(r.interfaces) for r in same_serial)
    return Refuse("interfaces_differ", {**details, "expected_interfaces": expected})
