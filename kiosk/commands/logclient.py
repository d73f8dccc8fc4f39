"""Reading a prison's audit log from outside, for ``kiosk verify-receipt --log`` and
``kiosk witness``: its public checkpoint, consistency proofs, and posting a cosignature.

Plain HTTPS with the system's trust store, or ``--cafile`` for a prison's own
certificate authority. Every failure is a CommandError with one line.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from kiosk.audit.note import NoteError, b64decode
from kiosk.cli import CommandError

API = "/api/v1"
TIMEOUT_S = 30
MAX_BYTES = 1 << 20


class LogClient:
    def __init__(self, url: str, cafile: Path | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise CommandError(f"{url!r} is not an https:// address of a kiosk server")
        base = url.rstrip("/")
        self.base = base if base.endswith(API) else base + API
        self.context = ssl.create_default_context(cafile=str(cafile) if cafile else None)

    def _request(self, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
            self.base + path,
            data=data,
            headers={"Content-Type": "application/json"} if data else {},
            method="POST" if data else "GET",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=TIMEOUT_S, context=self.context
            ) as response:
                return bytes(response.read(MAX_BYTES))
        except urllib.error.HTTPError as exc:
            detail = exc.read(4096).decode(errors="replace")
            try:
                detail = json.loads(detail)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                pass
            raise CommandError(f"{self.base + path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CommandError(f"cannot reach {self.base}: {reason}") from None

    def checkpoint(self) -> str:
        return self._request("/audit/checkpoint").decode("utf-8", errors="replace")

    def consistency(self, old: int, new: int) -> list[bytes]:
        if old in (0, new):
            return []
        raw = self._request("/audit/proof/consistency?" + urlencode({"old": old, "new": new}))
        try:
            return [b64decode(h, "hash") for h in json.loads(raw)["hashes"]]
        except (ValueError, KeyError, TypeError, NoteError) as exc:
            raise CommandError(f"the log sent a malformed consistency proof: {exc}") from None

    def cosign(self, size: int, line: str) -> None:
        self._request("/audit/cosignatures", {"size": size, "signature": line.rstrip("\n")})
