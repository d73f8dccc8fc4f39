"""What the nodes say to the owner of the live calls and what it answers, as JSON.

A request is ``{"op": ..., ...}``; an answer is ``{"ok": {...}}`` or
``{"refused": {"reason", "detail", "audited"}}`` (the owner's ``CallRefused``,
raised again on the asking node, so a refusal reads the same on every node).
"""

from __future__ import annotations

import json
from typing import Any

from kiosk.domain.policy import Deny
from kiosk.domain.reasons import Reason
from kiosk.signalling.calls.runner import CallRefused


def pack(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def unpack(data: bytes) -> dict[str, Any]:
    value = json.loads(data or b"{}")
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def ok(**fields: Any) -> bytes:
    return pack({"ok": fields})


def refused(exc: CallRefused) -> bytes:
    detail = {"reason": exc.reason.value, "detail": exc.detail, "audited": exc.audited}
    return pack({"refused": detail})


def answer(data: bytes) -> dict[str, Any]:
    """The owner's answer's fields, or its refusal raised as ``CallRefused``."""
    value = unpack(data)
    if "refused" in value:
        r = value["refused"]
        verdict = Deny(Reason(r["reason"]), str(r["detail"]))
        raise CallRefused(verdict, audited=bool(r["audited"]))
    if "ok" not in value:
        raise RuntimeError("the owner of the calls failed on this request")
    result: dict[str, Any] = value["ok"]
    return result
