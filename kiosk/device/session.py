"""What the tablet agent decides: the pure core between the link, the call and the kiosk page.

Sans-I/O (ARCHITECTURE.md principle 4): every input is a method call with
the monotonic time as an argument (a message from the server, the link going
up or down, a tap on the page, the call's own clock), and every output is a
list of actions for the thin I/O around it (``kiosk.device.agent``) to carry
out: send a message, start or stop the call's media, pass SDP and ICE to
it, and tell the page what to show. ``view`` is what the page shows now.

The server decides and the tablet obeys (principle 1): dialling goes to the
server even when the tablet's copy of the contact list says "not now" (the
server gives the reason code); media starts only under a grant that
``check_grant`` accepted; the end comes from the grant's own deadline while
the link is down just the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from kiosk.device.deadline import Accepted, Refused, check_grant
from kiosk.domain.callstate import End, Warn
from kiosk.domain.model import Route
from kiosk.domain.reasons import MESSAGES, EndReason, Reason
from kiosk.wire.grants import Grant, ReplayGuard
from kiosk.wire.messages import (
    DialMessage,
    EndMessage,
    ErrorMessage,
    GrantMessage,
    HangupMessage,
    HelloMessage,
    IceMessage,
    IceServer,
    PingMessage,
    PongMessage,
    RefusedMessage,
    SdpMessage,
    StateMessage,
    WarningMessage,
)
from kiosk.wire.verification import code_for as verification_code
from kiosk.wire.verification import sdp_fingerprint

AGENT_VERSION = "1.0"

# No answer to a dial in this long (a message lost as the link flapped): back
# to the contacts, saying so, rather than "calling…" for ever.
DIAL_TIMEOUT = 30.0
# A p2p call whose connection breaks (the visitor reloaded the page, a network
# blip) is offered again under the same grant, this many times per call, while
# this much of its time is left; the server holds the call in the meantime.
MAX_RENEWALS = 5
MIN_RENEW_LEFT = 5.0
UNSOLICITED = "unsolicited"  # a grant reason of the tablet's own: it did not dial
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class Phase(StrEnum):
    IDLE = "idle"  # contacts on screen
    DIALLING = "dialling"  # dial sent, waiting for the server's grant or refusal
    CONNECTING = "connecting"  # grant accepted, media being negotiated (ringing)
    IN_CALL = "in_call"  # media connected
    ENDED = "ended"  # the end screen, until the next dial


# --- actions for the I/O shell ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    message: BaseModel


@dataclass(frozen=True, slots=True)
class StartCall:
    accepted: Accepted
    ice_servers: tuple[IceServer, ...]


@dataclass(frozen=True, slots=True)
class RenewCall:
    """A new connection for the live call, under the same grant and deadline."""

    accepted: Accepted
    ice_servers: tuple[IceServer, ...]


@dataclass(frozen=True, slots=True)
class ApplyAnswer:
    call_id: str
    sdp: str


@dataclass(frozen=True, slots=True)
class AddIce:
    call_id: str
    candidate: str | None
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True, slots=True)
class StopCall:
    call_id: str
    reason: EndReason


@dataclass(frozen=True, slots=True)
class Show:
    """An event for the page (WS /api/events): ``type`` plus its fields."""

    event: Mapping[str, Any]


Action = Send | StartCall | RenewCall | ApplyAnswer | AddIce | StopCall | Show


@dataclass(slots=True)
class _Live:
    grant: Grant
    accepted: Accepted
    contact_name: str
    ice_servers: tuple[IceServer, ...] = ()
    warned: set[int] = field(default_factory=set)
    offer: str = ""
    verification_code: str | None = None
    renewals: int = 0
    connected: bool = False  # media flowed at least once (issue 16: else the booking stays open)


def _grant_call_id_hint(payload: str) -> str | None:
    """The call id a refused grant claims, only to tell the server to hang it up.

    Not trusted for anything else: a hang-up names a call; the server acts
    on it only if that call is this device's.
    """
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    value = body.get("call_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) and _ID.match(value) else None


class TabletSession:
    """The agent's state. Feed it inputs; carry out the actions it returns."""

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
        self.live: _Live | None = None
        self.dial_booking: str | None = None
        self.dial_sent_at: float | None = None
        self.last_end: dict[str, str | bool] | None = None
        self.refusal: dict[str, str] | None = None
        self.rtts: list[float] = []
        self.ping_seq = 0
        self._pings: dict[int, float] = {}

    # --- the link -----------------------------------------------------------------------

    def link_up(self, mono: float) -> list[Action]:
        self.online = True
        calls = [self.live.grant.call_id] if self.live else []
        return [
            Send(HelloMessage(version=1, agent_version=AGENT_VERSION, calls=calls)),
            self._show_state(mono),
        ]

    def link_down(self, mono: float) -> list[Action]:
        """A p2p call goes on: its end is the grant's, not the link's (principle 1).

        A bridged (controlled) call does not: its media runs through the server,
        and losing the server means losing the bridge. It ends at once rather
        than wait for ICE to notice, and never carries on another way
        (principle 3: fail closed).
        """
        self.online = False
        self._pings.clear()
        actions: list[Action] = []
        if self.phase is Phase.DIALLING:
            actions += self._refuse(Reason.DEVICE_NOT_CONNECTED, "dial")
            self.phase = Phase.IDLE
        if self.live is not None and self.live.grant.route is Route.BRIDGE:
            return [*actions, *self._finish(EndReason.BRIDGE_FAILED, mono)]
        return [*actions, self._show_state(mono)]

    def ping(self, mono: float) -> list[Action]:
        self.ping_seq += 1
        self._pings[self.ping_seq] = mono
        if len(self._pings) > 16:
            self._pings.pop(min(self._pings))
        return [Send(PingMessage(seq=self.ping_seq))]


    # --- from the server ----------------------------------------------------------------

    def server_message(self, message: BaseModel, mono: float) -> list[Action]:
        if isinstance(message, StateMessage):
            return self._on_state(message, mono)
        if isinstance(message, GrantMessage):
            return self._on_grant(message, mono)
        if isinstance(message, SdpMessage):
            if self.live is not None and self._is_live(message.call_id) and (
                message.kind == "answer"
            ):
                self._verify(self.live, message.sdp)
                return [ApplyAnswer(message.call_id, message.sdp), self._show_state(mono)]
            return []
        if isinstance(message, IceMessage):
            if self.live and message.call_id == self.live.grant.call_id:
                return [
                    AddIce(message.call_id, message.candidate, message.sdp_mid,
                           message.sdp_mline_index)
                ]
            return []
        if isinstance(message, WarningMessage):
            if self.live and message.call_id == self.live.grant.call_id:
                return self._warn(message.minutes_left)
            return []
        if isinstance(message, EndMessage):
            return self._on_end(message.call_id, message.reason, mono)
        if isinstance(message, RefusedMessage):
            if message.ref == "dial" and self.phase is Phase.DIALLING:
                self.phase = Phase.IDLE
                self.dial_booking = self.dial_sent_at = None
            return [*self._refuse(message.code, message.ref, message.message),
                    self._show_state(mono)]
        if isinstance(message, PongMessage):
            sent = self._pings.pop(message.seq, None)
            if sent is not None:
                self.rtts = [*self.rtts[-15:], max(0.0, mono - sent)]
            return []
        if isinstance(message, ErrorMessage):
            return [Show({"type": "error", "code": message.code.value,
                          "message": message.message})]
        return []

    def _on_state(self, message: StateMessage, mono: float) -> list[Action]:
        if self._device_id_pinned and message.device_id != self.device_id:
            # The server speaks of another tablet: believe none of it.
            return [Show({"type": "error", "code": Reason.INVALID_REQUEST.value,
                          "message": "The server's state names another device."})]
        if not self.device_id:
            self.device_id = message.device_id
            self._device_id_pinned = True
        self.state = message
        self.state_at = mono
        return [self._show_state(mono)]

    def _on_grant(self, message: GrantMessage, mono: float) -> list[Action]:
        signed = message.grant.signed()
        # The dial's send time anchors the grant clock: the server signed after it,
        # so the end can only come early, never late (GrantClock).
        sent = self.dial_sent_at if self.dial_sent_at is not None else mono
        decision = check_grant(signed, self.grant_key, self.device_id, self.ended, mono,
                               sent_monotonic=sent)
        if isinstance(decision, Refused):
            return self._refuse_grant(decision, signed.payload, mono)
        grant = decision.grant
        if self.live is not None:
            if self.live.grant.call_id == grant.call_id:
                return []  # the same grant again: the call is already running
            return self._refuse_grant(
                Refused("call_already_live", "another call is live", grant.call_id),
                signed.payload, mono,
            )
        if self.phase is not Phase.DIALLING:
            # Deny by default: media starts only for a call this tablet placed (and
            # not one its user cancelled while it was being granted).
            return self._refuse_grant(
                Refused(UNSOLICITED, "this tablet did not dial", grant.call_id),
                signed.payload, mono,
            )
        ice_servers = tuple(message.ice_servers)
        self.live = _Live(grant, decision, self._contact_name(grant.contact_id), ice_servers)
        self.phase = Phase.CONNECTING
        self.dial_booking = self.dial_sent_at = None
        self.refusal = None
        self.last_end = None
        return [StartCall(decision, ice_servers), self._show_state(mono)]

    def _refuse_grant(self, refused: Refused, payload: str, mono: float) -> list[Action]:
        call_id = refused.call_id or _grant_call_id_hint(payload)
        actions: list[Action] = []
        # A call the tablet will not carry is hung up at once, so the server ends it too.
        if call_id and (self.live is None or self.live.grant.call_id != call_id):
            actions.append(Send(HangupMessage(call_id=call_id)))
        if self.phase is Phase.DIALLING:
            self.phase = Phase.IDLE
            self.dial_booking = self.dial_sent_at = None
        refusal = self._refuse(Reason.GRANT_INVALID, "grant", detail=refused.reason)
        return [*actions, *refusal, self._show_state(mono)]

    def _on_end(self, call_id: str, reason: EndReason, mono: float) -> list[Action]:
        self.ended.end(call_id)
        if self.live is None or self.live.grant.call_id != call_id:
            return []
        return self._finish(reason, mono)

    # --- from the call ------------------------------------------------------------------

    def offer_ready(self, call_id: str, sdp: str) -> list[Action]:
        if self.live is None or self.live.grant.call_id != call_id:
            return []
        self.live.offer = sdp
        return [Send(SdpMessage(call_id=call_id, kind="offer", sdp=sdp))]

    def call_time(self, call_id: str, effect: Warn | End, mono: float) -> list[Action]:
        """The call's own clock: a warning or the end (R10), link or no link."""
        if self.live is None or self.live.grant.call_id != call_id:
            return []
        if isinstance(effect, Warn):
            return self._warn(effect.minutes_left)
        self.ended.end(call_id)
        return self._finish(effect.reason, mono)

    def call_connection(self, call_id: str, state: str, mono: float) -> list[Action]:
        if self.live is None or self.live.grant.call_id != call_id:
            return []
        if state == "connected" and self.phase is Phase.CONNECTING:
            self.phase = Phase.IN_CALL
            self.live.connected = True
            return [self._show_state(mono)]
        return []

    def connection_lost(self, call_id: str, mono: float) -> list[Action]:
        """The call's connection broke after it was made: offer again, or end.

        A p2p call has time left by its grant and the server holds it (the
        visitor may reload the page, a network may blip): a new connection
        under the same grant and deadline, whose offer the server passes to
        the visitor. A bridged call never (principle 3: fail closed), nor
        one without the link to carry the offer, nor one out of renewals.
        """
        live = self.live
        if live is None or live.grant.call_id != call_id:
            return []
        if (live.grant.route is not Route.P2P or not self.online
                or live.renewals >= MAX_RENEWALS
                or live.accepted.deadline.remaining(mono) < MIN_RENEW_LEFT):
            return self.call_failed(call_id, mono)
        live.renewals += 1
        live.offer = ""
        live.verification_code = None  # a new connection has new fingerprints
        self.phase = Phase.CONNECTING
        return [RenewCall(live.accepted, live.ice_servers), self._show_state(mono)]

    def call_failed(self, call_id: str, mono: float) -> list[Action]:
        """The media could not be set up or broke for good: hang up, say connection lost."""
        if self.live is None or self.live.grant.call_id != call_id:
            return []
        self.ended.end(call_id)
        return [Send(HangupMessage(call_id=call_id)),
                *self._finish(EndReason.CONNECTION_LOST, mono)]

    # --- from the page ------------------------------------------------------------------

    def dial(self, booking_id: str, mono: float) -> list[Action]:
        if self.live is not None or self.phase is Phase.DIALLING:
            return self._refuse(Reason.CALL_ALREADY_LIVE, "dial")
        if not self.online:
            return self._refuse(Reason.DEVICE_NOT_CONNECTED, "dial")
        self.phase = Phase.DIALLING
        self.dial_booking = booking_id
        self.dial_sent_at = mono  # before the send: the grant clock's anchor (GrantClock)
        self.refusal = None
        self.last_end = None
        return [Send(DialMessage(booking_id=booking_id)), self._show_state(mono)]

    def hangup(self, mono: float) -> list[Action]:
        if self.live is None:
            if self.phase is Phase.DIALLING:
                self.phase = Phase.IDLE
                self.dial_booking = self.dial_sent_at = None
                return [self._show_state(mono)]
            return self._refuse(Reason.CALL_NOT_LIVE, "hangup")
        call_id = self.live.grant.call_id
        self.ended.end(call_id)
        return [Send(HangupMessage(call_id=call_id)),
                *self._finish(EndReason.HANGUP, mono)]

    def dismiss(self, mono: float) -> list[Action]:
        """Back from the end screen to the contacts."""
        if self.phase is Phase.ENDED:
            self.phase = Phase.IDLE
            self.last_end = None
        return [self._show_state(mono)]

    # --- what the page shows ------------------------------------------------------------

    def tick(self, mono: float) -> list[Action]:
        """Once a second: the countdown for the page; a dial left unanswered gives up;
        the list shown again when a window opens or closes by the tablet's clock (the
        server sends no state for that)."""
        if self.live is None:
            if (self.phase is Phase.DIALLING and self.dial_sent_at is not None
                    and mono - self.dial_sent_at > DIAL_TIMEOUT):
                self.phase = Phase.IDLE
                self.dial_booking = self.dial_sent_at = None
                return [*self._refuse(Reason.DEVICE_NOT_CONNECTED, "dial",
                                      detail="no answer from the server"),
                        self._show_state(mono)]
            if self._open_bookings(mono) != self._shown_open:
                return [self._show_state(mono)]
            return []
        return [Show({"type": "countdown", "call_id": self.live.grant.call_id,
                      "remaining_seconds": round(self.live.accepted.deadline.remaining(mono), 1)})]

    def server_now(self, mono: float) -> datetime | None:
        """The server's clock now, from its last state plus the monotonic time since."""
        if self.state is None:
            return None
        return self.state.server_time + timedelta(seconds=max(0.0, mono - self.state_at))

    def _open_bookings(self, mono: float) -> frozenset[str]:
        """The bookings whose window is open now by the server's clock (not its stale flag)."""
        server_now = self.server_now(mono)
        if self.state is None or server_now is None:
            return frozenset()
        return frozenset(
            c.booking_id for c in self.state.contacts if c.start <= server_now < c.end
        )

    def view(self, mono: float) -> dict[str, Any]:
        state = self.state
        open_now = self._open_bookings(mono)
        contacts = []
        if state is not None:
            for c in state.contacts:
                callable_now = c.booking_id in open_now
                contacts.append({
                    "contact_id": c.contact_id,
                    "name": c.name,
                    "category": c.category.value,
                    "control": c.control.value,
                    "privileged": c.category.privileged,
                    "monitored": sorted(k.value for k in c.control.media_kinds),
                    "booking_id": c.booking_id,
                    "start": c.start.isoformat(),
                    "end": c.end.isoformat(),
                    "callable_now": callable_now,
                    "visitor_waiting": c.visitor_waiting,
                })
        call = None
        if self.live is not None:
            g = self.live.grant
            call = {
                "call_id": g.call_id,
                "contact_id": g.contact_id,
                "contact_name": self.live.contact_name,
                "category": g.category.value,
                "privileged": g.category.privileged,
                "control": g.control.value,
                "monitored": sorted(k.value for k in g.control.media_kinds),
                "route": g.route.value,
                "not_after": g.not_after.isoformat(),
                "remaining_seconds": round(self.live.accepted.deadline.remaining(mono), 1),
                "warnings": sorted(self.live.warned, reverse=True),
                "verification_code": self.live.verification_code,
                "reconnecting": self.live.renewals > 0 and self.phase is Phase.CONNECTING,
            }
        return {
            "link": "online" if self.online else "offline",
            "device_id": self.device_id or None,
            "inmate": state.inmate.model_dump() if state and state.inmate else None,
            "contacts": contacts,
            # Issue 16: the inmate's calls from now on (held ones with the reason), time left.
            "week": [w.model_dump(mode="json") for w in state.week] if state else [],
            "quota": state.quota.model_dump() if state and state.quota else None,
            "phase": self.phase.value,
            "dialling": self.dial_booking,
            "call": call,
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
        contact_id, connected = self.live.grant.contact_id, self.live.connected
        if reason is not EndReason.TIME_UP:
            self.live.accepted.deadline.stop()
        self.live = None
        self.phase = Phase.ENDED
        self.last_end = {"call_id": call_id, "reason": reason.value,
                         "contact_id": contact_id, "connected": connected}
        end = Show({"type": "end", "call_id": call_id, "reason": reason.value})
        return [StopCall(call_id, reason), end, self._show_state(mono)]

    def _verify(self, live: _Live, answer: str) -> None:
        """Principle 2: only a privileged call, peer to peer, shows the code.

        A bridged call's other DTLS end is the bridge by design, so a code
        there would only mislead.
        """
        if not (live.grant.category.privileged and live.grant.route is Route.P2P):
            return
        mine, theirs = sdp_fingerprint(live.offer), sdp_fingerprint(answer)
        if mine and theirs:
            live.verification_code = verification_code(mine, theirs)

    def _is_live(self, call_id: str) -> bool:
        return self.live is not None and self.live.grant.call_id == call_id

    def _contact_name(self, contact_id: str) -> str:
        if self.state is not None:
            for c in self.state.contacts:
                if c.contact_id == contact_id:
                    return c.name
        return ""

