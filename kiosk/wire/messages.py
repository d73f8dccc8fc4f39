"""Signalling messages between the server, the tablets and the visitors' pages.

API.md: JSON messages with a ``type``, at most 64 KiB each, validated
strictly; an unknown type or field is refused with ``invalid_request``.
Every message is a frozen pydantic model with ``extra="forbid"`` and strict
types; texts and lists have upper bounds so that a message's size bounds the
work it causes. The size limit is checked on the raw bytes before any
parsing.

Pure: no sockets. The listeners call ``parse_*`` on each frame and
``encode`` on each message they send.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import MESSAGES, EndReason, GrantRefusal, Reason
from kiosk.wire.fields import Id, Nonce, Sdp, Seq, Short, Text, Token, WireModel
from kiosk.wire.grants import SignedGrant
from kiosk.wire.tablet_state import CallInfo as CallInfo
from kiosk.wire.tablet_state import ContactEntry as ContactEntry
from kiosk.wire.tablet_state import InmateInfo as InmateInfo
from kiosk.wire.tablet_state import QuotaInfo as QuotaInfo
from kiosk.wire.tablet_state import StateMessage as StateMessage
from kiosk.wire.tablet_state import WeekEntry as WeekEntry

# The tablet's state (tablet_state.py) is re-exported above: every message from one module.
PROTOCOL_VERSION: Final = 1
MAX_MESSAGE_BYTES: Final = 65536



class ProtocolError(Exception):
    """A frame that is not a valid message. Answer with ``error{invalid_request}``."""

    code: Final = Reason.INVALID_REQUEST

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_Message = WireModel


# --- shared by both directions and both kinds of peer ---------------------------------


class SdpMessage(_Message):
    type: Literal["sdp"] = "sdp"
    call_id: Id
    kind: Literal["offer", "answer"]
    sdp: Sdp


class IceMessage(_Message):
    """``candidate`` None marks the end of candidates."""

    type: Literal["ice"] = "ice"
    call_id: Id
    candidate: Text | None
    sdp_mid: Short | None = None
    sdp_mline_index: Annotated[int, Field(ge=0, le=255)] | None = None


class HangupMessage(_Message):
    type: Literal["hangup"] = "hangup"
    call_id: Id


class MediaMessage(_Message):
    """Issue 16: one side turned its microphone or camera off or on; the other side says so
    in words rather than showing silence or a black picture without a reason."""

    type: Literal["media"] = "media"
    call_id: Id
    audio: bool
    video: bool


class PingMessage(_Message):
    type: Literal["ping"] = "ping"
    seq: Seq


class PongMessage(_Message):
    type: Literal["pong"] = "pong"
    seq: Seq
    server_time: AwareDatetime


class WarningMessage(_Message):
    type: Literal["warning"] = "warning"
    call_id: Id
    minutes_left: Annotated[int, Field(ge=0, le=1440)]


class EndMessage(_Message):
    type: Literal["end"] = "end"
    call_id: Id
    reason: EndReason


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    code: Reason
    message: Text

    @classmethod
    def of(cls, code: Reason, message: str = "") -> ErrorMessage:
        return cls(code=code, message=message or MESSAGES.get(code, code.value))


class IceServer(_Message):
    urls: Annotated[list[Text], Field(min_length=1, max_length=8)]
    username: Text | None = None
    credential: Text | None = None


IceServers = Annotated[list[IceServer], Field(max_length=8)]


# --- tablet -> server ----------------------------------------------------------------


class HelloMessage(_Message):
    """First message on a link: the calls the tablet still holds (after a reconnect)."""

    type: Literal["hello"] = "hello"
    version: Literal[1]
    agent_version: Short
    calls: Annotated[list[Id], Field(max_length=8)]


class DialMessage(_Message):
    """``nonce``: fresh per dial; only a grant carrying it back is taken (issue 12)."""

    type: Literal["dial"] = "dial"
    booking_id: Id
    nonce: Nonce


class GrantRefusedMessage(_Message):
    """The tablet refused a grant, and why: the server records it (principle 1).

    ``call_id`` is the call the grant claims, when the tablet could read one.
    """

    type: Literal["grant_refused"] = "grant_refused"
    call_id: Id | None = None
    reason: GrantRefusal


class TamperMessage(_Message):
    type: Literal["tamper"] = "tamper"
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    details: Annotated[dict[Short, Text], Field(max_length=32)]


# --- server -> tablet ----------------------------------------------------------------


class GrantDocument(_Message):
    """A SignedGrant on the wire; the tablet verifies it with kiosk.wire.grants."""

    payload: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=128)]

    @classmethod
    def of(cls, signed: SignedGrant) -> GrantDocument:
        return cls(payload=signed.payload, signature=signed.signature)

    def signed(self) -> SignedGrant:
        return SignedGrant(payload=self.payload, signature=self.signature)


class GrantMessage(_Message):
    type: Literal["grant"] = "grant"
    grant: GrantDocument
    ice_servers: IceServers = Field(default_factory=list)


class RefusedMessage(_Message):
    """A refused request, with the reason code the tablet shows (principle 5)."""

    type: Literal["refused"] = "refused"
    ref: Literal["dial", "hangup", "sdp", "ice", "hello", "media"]
    code: Reason
    message: Text


# --- visitor <-> server --------------------------------------------------------------


class JoinMessage(_Message):
    type: Literal["join"] = "join"
    token: Token


class WaitingMessage(_Message):
    type: Literal["waiting"] = "waiting"
    start: AwareDatetime
    end: AwareDatetime
    control: ControlLevel
    category: Category
    # R13, from Category.privileged: the page says "never monitored" and shows
    # the verification code without keeping its own list of categories.
    privileged: bool = False


class TabletMessage(_Message):
    """Whether the inmate's tablet is ready: on line and assigned to the inmate."""

    type: Literal["tablet"] = "tablet"
    ready: bool


class VisitorCallMessage(_Message):
    type: Literal["call"] = "call"
    call_id: Id
    control: ControlLevel
    route: Route
    not_after: AwareDatetime
    server_time: AwareDatetime
    ice_servers: IceServers = Field(default_factory=list)


# --- the four directions -------------------------------------------------------------

DeviceMessage: TypeAlias = Annotated[
    HelloMessage
    | DialMessage
    | SdpMessage
    | IceMessage
    | HangupMessage
    | TamperMessage
    | GrantRefusedMessage
    | PingMessage
    | MediaMessage,
    Field(discriminator="type"),
]
ServerToDeviceMessage: TypeAlias = Annotated[
    StateMessage
    | GrantMessage
    | SdpMessage
    | IceMessage
    | WarningMessage
    | EndMessage
    | RefusedMessage
    | ErrorMessage
    | PongMessage
    | MediaMessage,
    Field(discriminator="type"),
]
VisitorMessage: TypeAlias = Annotated[
    JoinMessage | SdpMessage | IceMessage | HangupMessage | PingMessage | MediaMessage,
    Field(discriminator="type"),
]
ServerToVisitorMessage: TypeAlias = Annotated[
    WaitingMessage
    | TabletMessage
    | VisitorCallMessage
    | SdpMessage
    | IceMessage
    | WarningMessage
    | EndMessage
    | ErrorMessage
    | PongMessage
    | MediaMessage,
    Field(discriminator="type"),
]

_DEVICE: TypeAdapter[Any] = TypeAdapter(DeviceMessage)
_TO_DEVICE: TypeAdapter[Any] = TypeAdapter(ServerToDeviceMessage)
_VISITOR: TypeAdapter[Any] = TypeAdapter(VisitorMessage)
_TO_VISITOR: TypeAdapter[Any] = TypeAdapter(ServerToVisitorMessage)


def _parse(adapter: TypeAdapter[Any], data: str | bytes) -> Any:
    if isinstance(data, str):
        # Cheap bound first: a str of n characters is at least n bytes.
        if len(data) > MAX_MESSAGE_BYTES:
            raise ProtocolError("message too large")
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ProtocolError("message is not UTF-8") from exc
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        raise ProtocolError("message is not text")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too large")
    try:
        raw.decode("utf-8")
        return adapter.validate_json(raw, strict=True)
    except UnicodeDecodeError as exc:
        raise ProtocolError("message is not UTF-8") from exc
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(f"{where}: {first['msg']}") from exc
    except (ValueError, RecursionError) as exc:  # defensive: the validator's own limits
        raise ProtocolError("message is not valid JSON") from exc


def parse_device_message(data: str | bytes) -> DeviceMessage:
    """A frame from a tablet. Raises ProtocolError on anything wrong."""
    result: DeviceMessage = _parse(_DEVICE, data)
    return result


def parse_server_to_device(data: str | bytes) -> ServerToDeviceMessage:
    """A frame from the server, as the tablet agent reads it."""
    result: ServerToDeviceMessage = _parse(_TO_DEVICE, data)
    return result


def parse_visitor_message(data: str | bytes) -> VisitorMessage:
    """A frame from a visitor's page. Raises ProtocolError on anything wrong."""
    result: VisitorMessage = _parse(_VISITOR, data)
    return result


def parse_server_to_visitor(data: str | bytes) -> ServerToVisitorMessage:
    """A frame from the server, as the visitor's page (or a test visitor) reads it."""
    result: ServerToVisitorMessage = _parse(_TO_VISITOR, data)
    return result


def encode(message: BaseModel) -> str:
    """The wire text of a message. Refuses to produce a frame the peer would refuse."""
    text = message.model_dump_json()
    if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message too large")
    return text
