"""The seam between the device listener and the rest of the server (the calls' runner).

The listener tells the handler that a tablet connected (after its hello),
each valid message it sent other than heartbeats, and that it went away;
the handler talks back through ``DeviceHub.send``.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class DeviceHandler(Protocol):
    """What the listener tells the rest of the server (the calls' runner)."""

    async def on_connect(self, device_id: str) -> None: ...

    async def on_message(self, device_id: str, message: BaseModel) -> None: ...

    async def on_disconnect(self, device_id: str) -> None: ...


class NullHandler:
    """A handler that ignores everything: the listener alone (tests, tools)."""

    async def on_connect(self, device_id: str) -> None:
        return None

    async def on_message(self, device_id: str, message: BaseModel) -> None:
        return None

    async def on_disconnect(self, device_id: str) -> None:
        return None
