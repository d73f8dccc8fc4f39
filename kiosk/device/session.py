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
``admit_grant`` accepted; the end comes from the grant's own deadline while
the link is down just the same.
"""

from __future__ import annotations

from pydantic import BaseModel

from kiosk.device.actions import (
    Action,
    AddIce,
    ApplyAnswer,
    Phase,
    RenewCall,
    Send,
    Show,
    StartCall,
)
from kiosk.device.deadline import Refused
from kiosk.device.grant_intake import Asking, SameCall, admit_grant, grant_call_id_hint
from kiosk.device.live import LiveCall
from kiosk.device.session_state import SessionState
from kiosk.domain.callstate import End, Warn
from kiosk.domain.model import Route
from kiosk.domain.reasons import EndReason, Reason
from kiosk.wire.messages import (
    DialMessage,
    EndMessage,
    ErrorMessage,
    GrantMessage,
    GrantRefusedMessage,
    HangupMessage,
    HelloMessage,
    IceMessage,
    MediaMessage,
    PingMessage,
    PongMessage,
    RefusedMessage,
    SdpMessage,
    StateMessage,
    WarningMessage,
)

AGENT_VERSION = "1.0"

# No answer to a dial in this long (a message lost as the link flapped): back
# to the contacts, saying so, rather than "calling…" for ever.
DIAL_TIMEOUT = 30.0
# A p2p call whose connection breaks (the visitor reloaded the page, a network
# blip) is offered again under the same grant, this many times per call, while
# this much of its time is left; the server holds the call in the meantime.
MAX_RENEWALS = 5
MIN_RENEW_LEFT = 5.0


class TabletSession(SessionState):
    """The agent's state. Feed it inputs; carry out the actions it returns."""

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
            self._stop_dialling()
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
                self.live.verify(message.sdp)
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
            if message.ref == "media":
                return []  # the call is over on the server: its end follows, with the reason
            if message.ref == "dial" and self.phase is Phase.DIALLING:
                self._stop_dialling()
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
        if isinstance(message, MediaMessage):
            # Issue 16: the visitor turned their microphone or camera off (or on again).
            if self._is_live(message.call_id):
                return [Show({"type": "peer_media", "call_id": message.call_id,
                              "audio": message.audio, "video": message.video})]
            return []
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
        dialling = self.phase is Phase.DIALLING
        asking = Asking(
            dial_nonce=self.dial_nonce if dialling else None,
            dial_sent_at=self.dial_sent_at,
            server_now=self.server_now(mono),
            live_call_id=self.live.grant.call_id if self.live is not None else None,
        )
        decision = admit_grant(signed, self.grant_key, self.device_id, self.ended, mono, asking)
        if isinstance(decision, SameCall):
            return []
        if isinstance(decision, Refused):
            return self._refuse_grant(decision, signed.payload, mono)
        grant = decision.grant
        ice_servers = tuple(message.ice_servers)
        self.live = LiveCall(grant, decision, self._contact_name(grant.contact_id), ice_servers)
        self._stop_dialling()
        self.phase = Phase.CONNECTING
        self.refusal = None
        self.last_end = None
        return [StartCall(decision, ice_servers), self._show_state(mono)]

    def _refuse_grant(self, refused: Refused, payload: str, mono: float) -> list[Action]:
        call_id = refused.call_id or grant_call_id_hint(payload)
        actions: list[Action] = []
        # A call the tablet will not carry is hung up at once, so the server ends it too;
        # and every refusal is reported, with its reason, for the server's record.
        if call_id and (self.live is None or self.live.grant.call_id != call_id):
            actions.append(Send(HangupMessage(call_id=call_id)))
        actions.append(Send(GrantRefusedMessage(call_id=call_id, reason=refused.reason)))
        if self.phase is Phase.DIALLING:
            self._stop_dialling()
        refusal = self._refuse(Reason.GRANT_INVALID, "grant", detail=refused.reason.value)
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
            # Issue 16: a visitor's page that came back knows nothing of a microphone left off.
            told = self._media_message() if self.live.renewals else []
            return [*told, self._show_state(mono)]
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
        self.dial_nonce = self.nonces()  # a fresh one per dial: the grant must carry it back
        self.refusal = None
        self.last_end = None
        dial = DialMessage(booking_id=booking_id, nonce=self.dial_nonce)
        return [Send(dial), self._show_state(mono)]

    def hangup(self, mono: float) -> list[Action]:
        if self.live is None:
            if self.phase is Phase.DIALLING:
                self._stop_dialling()
                return [self._show_state(mono)]
            return self._refuse(Reason.CALL_NOT_LIVE, "hangup")
        call_id = self.live.grant.call_id
        self.ended.end(call_id)
        return [Send(HangupMessage(call_id=call_id)),
                *self._finish(EndReason.HANGUP, mono)]

    def controls(self, call_id: str, audio: bool, video: bool, mono: float) -> list[Action]:
        """Issue 16: the inmate turned the microphone or camera off or on. The page sends
        silence or black itself; the visitor is told in words, through the server."""
        if self.live is None or not self._is_live(call_id):
            return self._refuse(Reason.CALL_NOT_LIVE, "media")
        self.live.audio, self.live.video = audio, video
        return [*self._media_message(always=True), self._show_state(mono)]

    def _media_message(self, always: bool = False) -> list[Action]:
        live = self.live
        if live is None or (live.audio and live.video and not always):
            return []
        call_id = live.grant.call_id
        return [Send(MediaMessage(call_id=call_id, audio=live.audio, video=live.video))]

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
                self._stop_dialling()
                return [*self._refuse(Reason.DEVICE_NOT_CONNECTED, "dial",
                                      detail="no answer from the server"),
                        self._show_state(mono)]
            if self._open_bookings(mono) != self._shown_open:
                return [self._show_state(mono)]
            return []
        return [Show({"type": "countdown", "call_id": self.live.grant.call_id,
                      "remaining_seconds": round(self.live.accepted.deadline.remaining(mono), 1)})]
