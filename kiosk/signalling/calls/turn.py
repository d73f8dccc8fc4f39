"""ICE servers for a call: the deployment's own STUN/TURN, or none.

TURN credentials follow coturn's shared-secret ("TURN REST API") scheme: the
username is ``<expiry unix time>:<call id>`` and the credential is
base64(HMAC-SHA1(secret, username)). coturn refuses them after the expiry,
which is the call's end, so a leaked credential is worthless afterwards.
ARCHITECTURE.md principle 7: the list is always explicit and empty by default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from kiosk.runtime.config import TurnSettings


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
            out["credential"] = self.credential
        return out


def turn_credential(secret: str, call_id: str, expires: datetime) -> tuple[str, str]:
    username = f"{int(expires.timestamp())}:{call_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_for_call(
    settings: TurnSettings, call_id: str, expires: datetime
) -> list[IceServer]:
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(urls=tuple(settings.stun_urls)))
    if settings.urls:
        if not settings.shared_secret:
            raise ValueError("turn.urls is set but turn.shared_secret is empty")
        username, credential = turn_credential(settings.shared_secret, call_id, expires)
        servers.append(
            IceServer(urls=tuple(settings.urls), username=username, credential=credential)
        )
    return servers
