"""The station's end of the enrolment cable: a tty in raw mode, read and written without
blocking the event loop (the tablet's end is ``kiosk.device.enrol_serial``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import time

from kiosk.runtime.serial_line import set_raw


class LineClosed(Exception):
    """The tablet went away (unplugged, or its end of the line closed)."""


class SerialPort:
    """A tty in raw mode (no echo, no line discipline): bytes pass unchanged."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        set_raw(fd)
        # fcntl, not os.set_blocking: that is ioctl(FIONBIO), which umockdev's
        # emulated tty nodes refuse.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._loop = asyncio.get_running_loop()

    @classmethod
    def open(cls, path: str) -> SerialPort:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    async def open_when_ready(cls, path: str, wait: float = 3.0) -> SerialPort:
        """Open a tty just announced by udev, retrying briefly: its node can lag the
        event (udev rules still setting permissions, the ACM driver still binding)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return cls.open(path)
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    async def read(self) -> bytes:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                await self._readable()
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # the other end of the line is gone
                    raise LineClosed(str(exc)) from exc
                raise
            if not data:
                raise LineClosed("end of file")
            return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                await self._writable()
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise LineClosed(str(exc)) from exc
                raise
            view = view[n:]

    async def _readable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_reader(self.fd, _wake, ready)
        try:
            await ready
        finally:
            self._loop.remove_reader(self.fd)

    async def _writable(self) -> None:
        ready: asyncio.Future[None] = self._loop.create_future()
        self._loop.add_writer(self.fd, _wake, ready)
        try:
            await ready
        finally:
            self._loop.remove_writer(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)
