"""A small sd_notify client: tell the service manager we are ready, alive or stopping.

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service: a unix datagram
socket, either a path or an abstract name written with a leading ``@``. Each
datagram is newline-separated ``KEY=VALUE`` fields (sd_notify(3)). Without the
variable every call is a no-op that returns ``False``, so the same code runs
under systemd, in tests and in a terminal.

The watchdog pings at half of ``WATCHDOG_USEC`` (the interval sd_watchdog_enabled(3)
recommends) and only while a health callback says the process can still do its
job, so a wedged event loop or a dead database gets the service restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
from collections.abc import Awaitable, Callable, Mapping

from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

Health = Callable[[], bool | Awaitable[bool]]


def _address(environ: Mapping[str, str]) -> str | bytes | None:
    name = environ.get("NOTIFY_SOCKET", "")
    if not name:
        return None
    if name.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the '@'.
        return b"\0" + name[1:].encode()
    if name.startswith("/"):
        return name
    return None  # vsock and other forms are not used on our hosts


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``fields`` (e.g. ``"READY=1"``, ``"STATUS=…"``) in one datagram.

    Returns True if the datagram was sent; False if there is no notify socket
    or it could not be reached (never raises: notification is best effort).
    """
    env = os.environ if environ is None else environ
    address = _address(env)
    if address is None or not fields:
        return False
    for field in fields:
        if "=" not in field or "\n" in field:
            raise ValueError(f"not a KEY=VALUE notify field: {field!r}")
    payload = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError as exc:
        log.warning("service manager notification failed", error=str(exc))
        return False
    return True


def ready(status: str | None = None) -> bool:
    """The service has finished starting (listeners bound, database reachable)."""
    fields = ["READY=1"]
    if status:
        fields.append(f"STATUS={status}")
    return notify(*fields)


def stopping(status: str | None = None) -> bool:
    """The service is shutting down cleanly."""
    fields = ["STOPPING=1"]
    if status:
        fields.append(f"STATUS={status}")
    return notify(*fields)


def status(text: str) -> bool:
    """A one-line status shown by ``systemctl status``."""
    return notify(f"STATUS={text}")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WATCHDOG_USEC``), or None if no watchdog is set.

    ``WATCHDOG_PID``, when present, names the process the watchdog is meant for;
    a child that inherited the environment must not ping on its parent's behalf.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


class Watchdog:
    """Pings ``WATCHDOG=1`` at half of ``WATCHDOG_USEC`` while ``health()`` is True.

    ``start()`` returns immediately; the pings run as a task on the running loop.
    When ``health()`` returns False (or raises) the ping is skipped, so systemd
    sees a silent watchdog and restarts the service (``Restart=on-failure``).
    """

    def __init__(
        self,
        health: Health | None = None,
        *,
        interval: float | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._health = health
        self._environ = environ
        self.interval = interval if interval is not None else watchdog_interval(environ)
        self.pings = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    async def _healthy(self) -> bool:
        if self._health is None:
            return True
        try:
            result = self._health()
            if inspect.isawaitable(result):
                result = await result
            return bool(result)
        except Exception as exc:
            log.warning("health check failed", error=str(exc))
            return False

    async def _run(self) -> None:
        assert self.interval is not None
        while True:
            if await self._healthy():
                if notify("WATCHDOG=1", environ=self._environ):
                    self.pings += 1
            else:
                log.warning("watchdog ping withheld: unhealthy")
            await asyncio.sleep(self.interval)

    def start(self) -> bool:
        """Start pinging; False (and nothing started) if no watchdog is configured."""
        if self.interval is None or self._task is not None:
            return self._task is not None
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sd-watchdog")
        return True

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Watchdog:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
