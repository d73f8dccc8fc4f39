"""One end of the enrolment exchange: the part the station and the tablet share.

Sans-I/O: the runner feeds the bytes read from the serial line with
``receive(data, now)`` and the clock with ``timer(now)``, and writes what
``data_to_send()`` returns; ``next_deadline()`` says when to call ``timer``.
A serial line drops or garbles a frame now and then, so an endpoint that
waits for an answer repeats its last frame every ``retransmit`` seconds until
the answer comes or the phase's deadline passes, and each side answers a
duplicate with its previous reply (``_resend``).

What differs between the ends — which message is expected when, and what
it means — is in ``kiosk.enrolment.station`` and ``kiosk.enrolment.tablet``:
they implement ``_handle`` and say what they wait for with ``_await``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.enrolment.framing import (
    FrameDecoder,
    Garbled,
    Message,
    Refused,
    WireError,
    encode_message,
    parse_message,
    reason_from_code,
    refusal,
)


@dataclass(frozen=True, slots=True)
class Progress:
    """A step to show the person watching (the operator, the tablet's log)."""

    step: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The enrolment ended with a refusal, by this side or by the peer."""

    reason: Reason
    detail: str
    by_peer: bool  # the other side refused

    @property
    def message(self) -> str:
        if self.by_peer:  # the peer's own words, already complete
            return self.detail or MESSAGES[self.reason]
        return MESSAGES[self.reason] + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True, slots=True)
class Dropped:
    """A garbled frame was dropped; retransmission recovers it."""

    detail: str


E = TypeVar("E")
S = TypeVar("S", bound=StrEnum)


class Endpoint(Generic[S, E]):
    """Frames in, replies out; one frame repeated until answered; one refusal at the end.

    ``state`` is the end's own state (``S``); ``failed`` is the state a refusal
    leaves it in. Once ``_finish()`` is called the exchange succeeded: no
    timer runs and no refusal is sent any more, and only an end that
    ``listens_when_finished`` still reads (to repeat its last reply).
    """

    listens_when_finished = False

    def __init__(self, state: S, failed: S, retransmit: float) -> None:
        self.state = state
        self.failure: Failed | None = None
        self._failed_state = failed
        self._retransmit = retransmit
        self._finished = False
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._last = b""  # our last reply, repeated for a duplicate
        self._repeat = b""  # the frame repeated until answered (empty: none)
        self._deadline: float | None = None
        self._retransmit_at: float | None = None
        self._waiting_for = ""

    # --- outputs -----------------------------------------------------------

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        if self._deadline is None or self._retransmit_at is None:
            return self._deadline
        return min(self._deadline, self._retransmit_at)

    # --- inputs ------------------------------------------------------------

    def receive(self, data: bytes, now: float) -> list[Failed | Dropped | E]:
        events: list[Failed | Dropped | E] = []
        for item in self._decoder.feed(data):
            if self.failure is not None or (self._finished and not self.listens_when_finished):
                break
            if isinstance(item, Garbled):
                events.append(Dropped(item.detail))
                continue
            try:
                message = parse_message(item)
            except WireError as exc:
                events += self._fail(exc.reason, exc.detail)
                continue
            events += self._handle(message, now)
        return events

    def timer(self, now: float) -> list[Failed | Dropped | E]:
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return []
        assert self._deadline is not None
        if now >= self._deadline:
            return self._fail(Reason.ENROLMENT_TIMEOUT, f"waited for {self._waiting_for}")
        self._out += self._repeat
        self._retransmit_at = now + self._retransmit
        return []

    # --- for the two ends --------------------------------------------------

    def _handle(self, message: Message, now: float) -> list[Failed | Dropped | E]:
        raise NotImplementedError

    def _send(self, frame: bytes) -> None:
        self._out += frame
        self._last = frame

    def _resend(self) -> None:
        """A duplicate came: the peer missed our reply to it."""
        self._out += self._last

    def _await(self, now: float, timeout: float, what: str, repeat: bytes = b"") -> None:
        """Wait at most ``timeout`` for ``what``, repeating ``repeat`` meanwhile (if any)."""
        self._deadline = now + timeout
        self._waiting_for = what
        self._repeat = repeat
        self._retransmit_at = now + self._retransmit if repeat else None

    def _pause(self) -> None:
        """Waiting for something of our own (the runner, the server): no timer."""
        self._deadline = self._retransmit_at = None

    def _finish(self) -> None:
        self._finished = True
        self._pause()

    def _peer_refused(self, message: Refused) -> list[Failed | Dropped | E]:
        return self._fail(reason_from_code(message.code), message.message, by_peer=True)

    def _fail(
        self, reason: Reason, detail: str = "", by_peer: bool = False
    ) -> list[Failed | Dropped | E]:
        if self.failure is not None or self._finished:
            return []
        if not by_peer:
            self._out += encode_message(refusal(reason, detail))
        self.state = self._failed_state
        self.failure = Failed(reason, detail, by_peer)
        self._pause()
        return [self.failure]
