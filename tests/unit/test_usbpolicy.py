"""The USB allow-list decisions (pure): exact interface sets, serials, bad descriptors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.device.usbpolicy import (
    Authorize,
    DescriptorError,
    Descriptors,
    Refuse,
    UsbDevice,
    decide,
    parse_descriptors,
    parse_rules,
)
from tests.devices.generate import (
    CAMERA,
    CLONE_CONFIG2,
    CLONE_HID,
    GADGET,
    KEYBOARD,
    config,
    device,
    iface,
)

RULES = parse_rules(
    [
        {"name": "camera", "vendor": "0BDA", "product": "58f4", "interfaces": ["0e"]},
        {
            "name": "reader",
            "vendor": "072f",
            "product": "2200",
            "serial": "R-1",
            "interfaces": [11, "ff"],
        },
    ]
)


def usb(desc: bytes, serial: str | None = None) -> UsbDevice:
    return UsbDevice("1-1", parse_descriptors(desc), serial, "x")


def test_descriptors_give_vendor_product_and_every_interface_class() -> None:
    assert parse_descriptors(CAMERA) == Descriptors("0bda", "58f4", 0xEF, frozenset({0x0E}))
    assert parse_descriptors(CLONE_HID).interfaces == {0x0E, 0x03}
    assert parse_descriptors(CLONE_CONFIG2).interfaces == {0x0E, 0x03}  # every configuration
    assert parse_descriptors(KEYBOARD).interfaces == {0x03}
    assert parse_descriptors(GADGET).interfaces == {0x02, 0x0A}


def test_allowed_camera_is_authorized_by_its_rule() -> None:
    assert decide(usb(CAMERA), RULES) == Authorize("camera")


@pytest.mark.parametrize("clone", [CLONE_HID, CLONE_CONFIG2], ids=["added", "second-config"])
def test_a_clone_with_a_keyboard_interface_is_refused(clone: bytes) -> None:
    decision = decide(usb(clone), RULES)
    assert isinstance(decision, Refuse) and not decision
    assert decision.reason == "interfaces_differ"
    assert decision.details["interfaces"] == "03,0e"
    assert decision.details["expected_interfaces"] == "0e"
    assert decision.kind == "usb_device_refused"


def test_a_device_with_fewer_interfaces_is_refused_too() -> None:
    rules = parse_rules(
        [{"vendor": "0bda", "product": "58f4", "interfaces": ["0e", "01"], "name": "cam+mic"}]
    )
    assert decide(usb(CAMERA), rules) == Refuse(
        "interfaces_differ",
        {
            "device": "1-1",
            "serial": "",
            "product_name": "x",
            "vendor": "0bda",
            "product": "58f4",
            "interfaces": "0e",
            "expected_interfaces": "01,0e",
        },
    )


def test_unknown_device_is_refused() -> None:
    decision = decide(usb(KEYBOARD), RULES)
    assert isinstance(decision, Refuse) and decision.reason == "not_on_allow_list"


def test_serial_must_match_where_the_rule_gives_one() -> None:
    # A smart-card reader: CCID (0b) plus a vendor-specific (ff) interface.
    desc = device(0x072F, 0x2200) + config(
        1, iface(0, 0, 0, 0x0B, 0, 0) + iface(1, 0, 0, 0xFF, 0, 0), 2
    )
    assert decide(usb(desc, "R-1"), RULES) == Authorize("reader")
    refused = decide(usb(desc, "R-2"), RULES)
    assert isinstance(refused, Refuse) and refused.reason == "serial_mismatch"
    refused = decide(usb(desc, None), RULES)
    assert isinstance(refused, Refuse) and refused.reason == "serial_mismatch"


def test_unreadable_descriptors_are_refused() -> None:
    decision = decide(UsbDevice("1-7", None, None, "", "truncated"), RULES)
    assert isinstance(decision, Refuse) and decision.reason == "bad_descriptors"


@pytest.mark.parametrize("cut", [0, 10, 18, 20, 40])
def test_truncated_descriptors_raise_a_descriptor_error(cut: int) -> None:
    with pytest.raises(DescriptorError):
        parse_descriptors(CAMERA[:cut])


@pytest.mark.parametrize(
    "raw",
    [
        [{"vendor": "0bda", "product": "58f4"}],  # no interfaces: would allow any
        [{"vendor": "bda", "product": "58f4", "interfaces": ["0e"]}],
        [{"vendor": "0bda", "product": "58f4", "interfaces": ["e"]}],
        [{"vendor": "0bda", "product": "58f4", "interfaces": ["0e"], "class": 3}],
        [{"vendor": "0bda", "product": "58f4", "interfaces": ["0e"], "serial": 5}],
    ],
)
def test_bad_rules_are_refused_at_start(raw: list[dict[str, object]]) -> None:
    with pytest.raises(ValueError):
        parse_rules(raw)


@given(st.binary(max_size=512))
def test_any_descriptor_bytes_parse_or_raise_descriptor_error(data: bytes) -> None:
    try:
        parsed = parse_descriptors(data)
    except DescriptorError:
        return
    decide(UsbDevice("1-1", parsed, None), RULES)


@given(st.integers(min_value=18, max_value=len(CLONE_HID) - 1), st.integers(0, 255))
def test_a_corrupted_clone_is_never_authorized(pos: int, value: int) -> None:
    data = bytearray(CLONE_HID)
    data[pos] = value
    try:
        parsed = parse_descriptors(bytes(data))
    except DescriptorError:
        return
    if 0x03 in parsed.interfaces:
        assert not decide(UsbDevice("1-2", parsed, None), RULES)
