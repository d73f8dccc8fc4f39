"""What the tablet knows between inputs, how the page sees it, and the steps all inputs share.

``TabletSession`` (kiosk/device/session.py) is this plus its inputs: the
link, the server's messages, the call and the page. Pure, like it: the
monotonic time comes in as an argument.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kiosk.device.actions import Action, Phase, Show, StopCall
from kiosk.device.live import LiveCall
from kiosk.device.page_view import call_view, contacts_view, open_bookings, server_now
from kiosk.domain.reasons import MESSAGES, EndReason, Reason
from kiosk.wire.grants import ReplayGuard
from kiosk.wire.messages import StateMessage


class SessionState:
    """The tablet's state: the server's last word, the phase, the live call, the last refusal."""

    def __init__(self, grant_key: Ed25519PublicKey, device_id: str = "") -> None:
        self.grant_key = grant_key
        # Pinned from the configuration when provisioning wrote it; otherwise
        # learnt from the first state of the server the pinned CA vouched for.
        self.device_id = device_id
        self._device_id_pinned = bool(device_id)
        self.ended = ReplayGuard()
        self.online = False
        self.state: StateMessage | None = None
        self.state_at = 0.0  # monotonic instant the state arrived
        self._shown_open: frozenset[str] = frozenset()  # bookings callable when last shown
        self.phase = Phase.IDLE
        self.live: LiveCall | None = None
        self.dial_booking: str | None = None
        self.dial_sent_at: float | None = None
        self.last_end: dict[str, str] | None = None
        self.refusal: dict[str, str] | None = None
        self.rtts: list[float] = []
        self.ping_seq = 0
        self._pings: dict[int, float] = {}

    def server_now(self, mono: float) -> datetime | None:
        """The server's clock now, from its last state plus the monotonic time since."""
        return server_now(self.state, self.state_at, mono)

    def _open_bookings(self, mono: float) -> frozenset[str]:
        return open_bookings(self.state, self.state_at, mono)

    def view(self, mono: float) -> dict[str, Any]:
        state = self.state
        return {
            "link": "online" if self.online else "offline",
            "device_id": self.device_id or None,
            "inmate": state.inmate.model_dump() if state and state.inmate else None,
            "contacts": contacts_view(state, self._open_bookings(mono)),
            "phase": self.phase.value,
            "dialling": self.dial_booking,
            "call": call_view(self.live, self.phase, mono),
            "ended": self.last_end,
            "refusal": self.refusal,
        }

    # --- helpers ------------------------------------------------------------------------

    def _show_state(self, mono: float) -> Show:
        self._shown_open = self._open_bookings(mono)
        return Show({"type": "state", "state": self.view(mono)})

    def _refuse(self, code: Reason, ref: str, message: str = "", detail: str = "") -> list[Action]:
        """``detail``: the finer reason, e.g. a grant's ``wrong_device`` or ``replayed``."""
        self.refusal = {"ref": ref, "code": code.value,
                        "message": message or MESSAGES.get(code, code.value), "detail": detail}
        return [Show({"type": "refused", **self.refusal})]

    def _warn(self, minutes_left: int) -> list[Action]:
        assert self.live is not None
        if minutes_left in self.live.warned:
            return []  # the server and the tablet's own clock both warn: say it once
        self.live.warned.add(minutes_left)
        return [Show({"type": "warning", "call_id": self.live.grant.call_id,
                      "minutes_left": minutes_left})]

    def _finish(self, reason: EndReason, mono: float) -> list[Action]:
        assert self.live is not None
        call_id = self.live.grant.call_id
        if reason is not EndReason.TIME_UP:
            self.live.accepted.deadline.stop()
        self.live = None
        self.phase = Phase.ENDED
        self.last_end = {"call_id": call_id, "reason": reason.value}
        end = Show({"type": "end", "call_id": call_id, "reason": reason.value})
        return [StopCall(call_id, reason), end, self._show_state(mono)]

    def _is_live(self, call_id: str) -> bool:
        return self.live is not None and self.live.grant.call_id == call_id

    def _contact_name(self, contact_id: str) -> str:
        if self.state is not None:
            for c in self.state.contacts:
                if c.contact_id == contact_id:
                    return c.name
        return ""

