"""Writes the umockdev device descriptions in this directory (run it from here).

The descriptions are checked in; this script only shows where their binary
``descriptors`` attributes come from, byte by byte, per the USB 2.0 spec
(chapter 9): a device descriptor followed by every configuration with its
interfaces and endpoints, as the kernel exposes them in sysfs before a
device is authorized.
"""

from __future__ import annotations

import struct

PCI = "/devices/pci0000:00/0000:00:14.0"


def device(vid: int, pid: int, cls: int = 0, sub: int = 0, proto: int = 0, nconf: int = 1) -> bytes:
    return struct.pack(
        "<BBHBBBBHHHBBBB", 18, 1, 0x0200, cls, sub, proto, 64, vid, pid, 0x0100, 1, 2, 3, nconf
    )


def config(value: int, body: bytes, nifaces: int) -> bytes:
    return struct.pack("<BBHBBBBB", 9, 2, 9 + len(body), nifaces, value, 0, 0x80, 250) + body


def iface(num: int, alt: int, neps: int, cls: int, sub: int, proto: int) -> bytes:
    return struct.pack("<BBBBBBBBB", 9, 4, num, alt, neps, cls, sub, proto, 0)


def ep(addr: int, attr: int, size: int, interval: int) -> bytes:
    return struct.pack("<BBBBHB", 7, 5, addr, attr, size, interval)


IAD_VIDEO = bytes([8, 0x0B, 0, 2, 0x0E, 3, 0, 2])  # interface association: video
UVC_HEADER = bytes([13, 0x24, 1, 0x00, 0x01, 0x0D, 0, 0x80, 0x8D, 0x5B, 0x00, 1, 1])
HID = bytes([9, 0x21, 0x11, 0x01, 0, 1, 0x22, 0x3F, 0])
KEYBOARD_IFACE = iface(0, 0, 1, 0x03, 1, 1) + HID + ep(0x81, 3, 8, 10)  # HID, boot, keyboard

CAMERA_BODY = (
    IAD_VIDEO
    + iface(0, 0, 1, 0x0E, 1, 0)  # video control
    + UVC_HEADER
    + ep(0x83, 3, 16, 6)
    + iface(1, 0, 0, 0x0E, 2, 0)  # video streaming, alt 0 and 1
    + iface(1, 1, 1, 0x0E, 2, 0)
    + ep(0x81, 5, 0x1400, 1)
)
CAMERA = device(0x0BDA, 0x58F4, 0xEF, 2, 1) + config(1, CAMERA_BODY, 2)
# The same camera with a keyboard interface added: the classic BadUSB clone.
CLONE_HID = device(0x0BDA, 0x58F4, 0xEF, 2, 1) + config(
    1, CAMERA_BODY + iface(2, 0, 1, 0x03, 1, 1) + HID + ep(0x84, 3, 8, 10), 3
)
# A clone hiding the keyboard in a second configuration.
CLONE_CONFIG2 = (
    device(0x0BDA, 0x58F4, 0xEF, 2, 1, nconf=2)
    + config(1, CAMERA_BODY, 2)
    + config(2, KEYBOARD_IFACE, 1)
)
KEYBOARD = device(0x046D, 0xC31C) + config(1, KEYBOARD_IFACE, 1)
ACM_BODY = (
    bytes([8, 0x0B, 0, 2, 2, 2, 1, 0])
    + iface(0, 0, 1, 0x02, 2, 1)  # CDC ACM control
    + ep(0x82, 3, 8, 10)
    + iface(1, 0, 2, 0x0A, 0, 0)  # CDC data
    + ep(0x81, 2, 512, 0)
    + ep(0x01, 2, 512, 0)
)
GADGET = device(0x1D6B, 0x0104, 0xEF, 2, 1) + config(1, ACM_BODY, 2)
FTDI = device(0x0403, 0x6001) + config(
    1, iface(0, 0, 2, 0xFF, 0xFF, 0xFF) + ep(0x81, 2, 64, 0) + ep(0x02, 2, 64, 0), 1
)
ROOT_HUB = device(0x1D6B, 0x0002, 9, 0, 1) + config(
    1, iface(0, 0, 1, 9, 0, 0) + ep(0x81, 3, 4, 12), 1
)


def usb_device(
    path: str,
    vid: str,
    pid: str,
    desc: bytes,
    *,
    product: str,
    manufacturer: str,
    serial: str | None = None,
    authorized: int = 1,
    devnum: int = 2,
    extra: str = "",
) -> str:
    node = f"bus/usb/001/{devnum:03d}"
    lines = [
        f"P: {PCI}/{path}",
        f"N: {node}",
        f"E: DEVNAME=/dev/{node}",
        "E: DEVTYPE=usb_device",
        "E: DRIVER=usb",
        "E: SUBSYSTEM=usb",
        "E: BUSNUM=001",
        f"E: DEVNUM={devnum:03d}",
        f"E: ID_VENDOR_ID={vid}",
        f"E: ID_MODEL_ID={pid}",
        f"A: idVendor={vid}",
        f"A: idProduct={pid}",
        f"A: product={product}",
        f"A: manufacturer={manufacturer}",
    ]
    if serial:
        lines.append(f"A: serial={serial}")
    lines += [
        f"A: authorized={authorized}",
        "A: busnum=1",
        f"A: devnum={devnum}",
        f"H: descriptors={desc.hex()}",
    ]
    return "\n".join(lines) + "\n" + extra


def gadget_tty(port: str, tty: str, minor: int, serial: str, devnum: int, product: str) -> str:
    # Parents first, as the kernel adds them: a monitor hearing about the tty can
    # already read the USB device's attributes.
    return usb_device(
        f"usb1/{port}", "1d6b", "0104", GADGET, product=product, manufacturer="Kiosk",
        serial=serial, devnum=devnum,
    ) + f"""
P: {PCI}/usb1/{port}/{port}:1.0
E: DEVTYPE=usb_interface
E: DRIVER=cdc_acm
E: SUBSYSTEM=usb
A: bInterfaceClass=02
A: bInterfaceSubClass=02
A: bInterfaceProtocol=01
A: bInterfaceNumber=00

P: {PCI}/usb1/{port}/{port}:1.0/tty/{tty}
N: {tty}
E: DEVNAME=/dev/{tty}
E: SUBSYSTEM=tty
E: MAJOR=166
E: MINOR={minor}
"""


FILES = {
    "controller.umockdev": usb_device(
        "usb1", "1d6b", "0002", ROOT_HUB, product="xHCI Host Controller",
        manufacturer="Linux xhci-hcd", serial="0000:00:14.0", devnum=1,
        extra="A: authorized_default=1\n",
    )
    + f"\nP: {PCI}\nE: DRIVER=xhci_hcd\nE: SUBSYSTEM=pci\nA: class=0x0c0330\n",
    "camera.umockdev": usb_device(
        "usb1/1-1", "0bda", "58f4", CAMERA, product="Integrated Camera",
        manufacturer="Realtek", serial="200901010001", devnum=2,
    ),
    "camera-clone-hid.umockdev": usb_device(
        "usb1/1-2", "0bda", "58f4", CLONE_HID, product="Integrated Camera",
        manufacturer="Realtek", serial="200901010001", devnum=3,
    ),
    "keyboard.umockdev": usb_device(
        "usb1/1-3", "046d", "c31c", KEYBOARD, product="USB Keyboard",
        manufacturer="Logitech", devnum=4,
    ),
    "camera-clone-second-config.umockdev": usb_device(
        "usb1/1-5", "0bda", "58f4", CLONE_CONFIG2, product="Integrated Camera",
        manufacturer="Realtek", serial="200901010001", devnum=6,
    ),
    "camera-other-serial.umockdev": usb_device(
        "usb1/1-6", "0bda", "58f4", CAMERA, product="Integrated Camera",
        manufacturer="Realtek", serial="999999999999", devnum=7,
    ),
    "truncated.umockdev": usb_device(
        "usb1/1-7", "0bda", "58f4", CAMERA[:40], product="Integrated Camera",
        manufacturer="Realtek", serial="200901010001", devnum=8,
    ),
    "gadget-tty.umockdev": gadget_tty("1-4", "ttyACM0", 0, "KT-0001", 5, "Kiosk enrolment"),
    "gadget-tty-2.umockdev": gadget_tty("1-8", "ttyACM1", 1, "KT-0002", 9, "Kiosk enrolment"),
    # Our vendor/product ids but another product string: someone else's gadget.
    "foreign-gadget-tty.umockdev": gadget_tty(
        "1-10", "ttyACM2", 2, "OTHER-1", 11, "Multifunction Composite Gadget"
    ),
    "ftdi-tty.umockdev": usb_device(
        "usb1/1-9", "0403", "6001", FTDI, product="FT232R USB UART", manufacturer="FTDI",
        serial="A50285BI", devnum=10,
    )
    + f"""
P: {PCI}/usb1/1-9/1-9:1.0
E: DEVTYPE=usb_interface
E: DRIVER=ftdi_sio
E: SUBSYSTEM=usb
A: bInterfaceClass=ff
A: bInterfaceNumber=00

P: {PCI}/usb1/1-9/1-9:1.0/ttyUSB0
E: DRIVER=ftdi_sio
E: SUBSYSTEM=usb-serial

P: {PCI}/usb1/1-9/1-9:1.0/ttyUSB0/tty/ttyUSB0
N: ttyUSB0
E: DEVNAME=/dev/ttyUSB0
E: SUBSYSTEM=tty
E: MAJOR=188
E: MINOR=0
""",
}

if __name__ == "__main__":
    for name, text in FILES.items():
        with open(name, "w") as fh:
            fh.write(text)
