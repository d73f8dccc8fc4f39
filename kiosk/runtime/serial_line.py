"""A serial line in raw mode: the enrolment cable, as both ends open it."""

from __future__ import annotations

import termios
import tty


def set_raw(fd: int) -> None:
    """Raw mode (no echo, no line discipline), 8N1, no flow control: bytes pass unchanged.

    115200 baud for a real UART; a USB CDC-ACM line (the gadget and the
    station's ``ttyACM``) ignores the speed.
    """
    tty.setraw(fd, termios.TCSANOW)
    attrs = termios.tcgetattr(fd)
    attrs[2] = (attrs[2] & ~(termios.CRTSCTS | termios.PARENB | termios.CSTOPB)) | (
        termios.CLOCAL | termios.CREAD | termios.CS8
    )
    attrs[0] &= ~(termios.IXON | termios.IXOFF | termios.IXANY)
    attrs[4] = attrs[5] = termios.B115200
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
