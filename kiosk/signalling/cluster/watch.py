"""Controlled calls fail closed at the edges when their owner is gone (issue 14, principle 3).

A controlled call's media runs through the bridge on the owner of the live
calls. The owner says it is alive on ``kiosk.owner.beat`` several times a
lease; a node that hears nothing for half a lease (a second at most) tells its own tablets and
visitors on controlled calls that the call ended (``bridge_failed``) at
once, without waiting for the next owner, which records the same end when
it adopts the call. Peer-to-peer calls are left alone: their media never
passed through the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from kiosk.domain.reasons import EndReason
from kiosk.runtime.logs import get_logger
from kiosk.wire import messages as p

log = get_logger(__name__)

BEAT_SUBJECT = "kiosk.owner.beat"

# Tell a connection (a tablet's link or a visitor's page) that its call ended.
Tell = Callable[[p.EndMessage], Awaitable[None]]


def bridged_grant(message: p.GrantMessage) -> str | None:
    """The call id of a grant for a controlled (bridged) call; None for peer to peer."""
    try:
        body = json.loads(message.grant.payload)
    except ValueError:
        return None
    return str(body["call_id"]) if body.get("route") == "bridge" else None


class OwnerWatch:
    def __init__(self, lease: float) -> None:
        self.silence = min(lease / 2, 1.0)
        self.last = time.monotonic()
        self.bridged: dict[str, Tell] = {}  # call id -> how to tell this node's end of it
        self._task: asyncio.Task[None] | None = None

    def heard(self) -> None:
        self.last = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="owner watch")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def track(self, call_id: str, tell: Tell) -> None:
        self.bridged[f"{call_id}:{id(tell)}"] = tell

    def forget(self, call_id: str) -> None:
        for key in [k for k in self.bridged if k.startswith(call_id + ":")]:
            del self.bridged[key]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.silence / 4)
            if not self.bridged or time.monotonic() - self.last < self.silence:
                continue
            count = len(self.bridged)
            log.warning("owner of the calls silent: controlled calls here end", calls=count)
            ended, self.bridged = self.bridged, {}
            for key, tell in ended.items():
                call_id = key.rsplit(":", 1)[0]
                try:
                    await tell(p.EndMessage(call_id=call_id, reason=EndReason.BRIDGE_FAILED))
                except Exception:
                    log.exception("could not tell the end of a controlled call", call_id=call_id)
