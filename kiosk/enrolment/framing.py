"""The enrolment wire format, shared by the station and the tablet.

Pure: bytes in, frames out; no I/O. A frame on the serial line is::

    magic "KENR" | version u8 | length u32 | header CRC32 u32 | body | body CRC32 u32

all big-endian. The header has its own checksum so that a corrupted length is
caught at once instead of stalling the reader on bytes that never come; a
frame that fails either check is dropped and the reader resynchronises on the
next magic. Lost and corrupted frames are recovered by the protocol's
retransmissions (``kiosk.enrolment.endpoint``).

The body is canonical JSON (sorted keys, no spaces, UTF-8): one message with
a ``type``, validated strictly (unknown types or fields are refused).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from kiosk.domain.reasons import MESSAGES, Reason

MAGIC = b"KENR"
VERSION = 1
# A bundle holds a few certificates and the facility settings: a few KiB.
# The cap bounds what a corrupted or hostile peer can make us buffer.
MAX_BODY = 64 * 1024
_HEADER = struct.Struct(">4sBII")  # magic, version, length, header CRC
HEADER_LEN = _HEADER.size
TRAILER_LEN = 4
NONCE_BYTES = 32
SERIAL_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# Domain separation: a signature made for one purpose never verifies as another.
NONCE_CONTEXT = b"kiosk-enrolment-nonce-v1\x00"
BUNDLE_CONTEXT = b"kiosk-enrolment-bundle-v1\x00"


class WireError(Exception):
    """A frame or message that is not valid; ``reason`` is the code to report."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _header_crc(version: int, length: int) -> int:
    return zlib.crc32(struct.pack(">BI", version, length))


def encode_frame(body: bytes, version: int = VERSION) -> bytes:
    if len(body) > MAX_BODY:
        raise ValueError(f"frame body of {len(body)} bytes exceeds {MAX_BODY}")
    header = _HEADER.pack(MAGIC, version, len(body), _header_crc(version, len(body)))
    return header + body + struct.pack(">I", zlib.crc32(body))


@dataclass(frozen=True, slots=True)
class Frame:
    version: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes were dropped: a bad checksum or an impossible length."""

    detail: str


class FrameDecoder:
    """Reassembles frames from an unreliable byte stream; never raises on input."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self._buf = bytearray()
        self._max_body = max_body

    def feed(self, data: bytes) -> list[Frame | Garbled]:
        self._buf += data
        out: list[Frame | Garbled] = []
        while True:
            start = self._buf.find(MAGIC)
            if start < 0:
                # Keep a tail that may be the start of a magic split across reads.
                keep = len(MAGIC) - 1
                if len(self._buf) > keep:
                    del self._buf[: len(self._buf) - keep]
                return out
            if start:
                del self._buf[:start]
            if len(self._buf) < HEADER_LEN:
                return out
            _, version, length, hcrc = _HEADER.unpack_from(self._buf)
            if hcrc != _header_crc(version, length) or length > self._max_body:
                del self._buf[:1]
                out.append(Garbled("bad frame header"))
                continue
            end = HEADER_LEN + length + TRAILER_LEN
            if len(self._buf) < end:
                return out
            body = bytes(self._buf[HEADER_LEN : HEADER_LEN + length])
            (crc,) = struct.unpack_from(">I", self._buf, HEADER_LEN + length)
            if crc != zlib.crc32(body):
                del self._buf[:1]
                out.append(Garbled("bad frame checksum"))
                continue
            del self._buf[:end]
            out.append(Frame(version, body))


# --- messages --------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Greet(_Message):
    """Station -> tablet: a fresh nonce; ``reprovision`` if the operator asked for it."""

    type: Literal["greet"] = "greet"
    nonce: str = Field(min_length=1, max_length=200)
    reprovision: bool = False


class Hello(_Message):
    """Tablet -> station: who it is, its CSR, and the nonce signed with the CSR's key."""

    type: Literal["hello"] = "hello"
    # The CA's rule for serials (kiosk.crypto.pki); no control characters anywhere, as
    # these strings end up on the operator's terminal.
    serial: str = Field(pattern=SERIAL_PATTERN)
    model: str = Field(max_length=100, pattern=PRINTABLE)
    csr: str = Field(min_length=1, max_length=8192)
    nonce: str = Field(min_length=1, max_length=200)
    signature: str = Field(min_length=1, max_length=400)


class BundleMessage(_Message):
    """Station -> tablet: the signed provisioning bundle."""

    type: Literal["bundle"] = "bundle"
    payload: str = Field(min_length=1, max_length=MAX_BODY)
    signature: str = Field(min_length=1, max_length=200)


class Ack(_Message):
    """Tablet -> station: the bundle is verified and stored."""

    type: Literal["ack"] = "ack"
    serial: str = Field(pattern=SERIAL_PATTERN)
    certificate_serial: str = Field(min_length=1, max_length=64)


class Done(_Message):
    """Station -> tablet: registered with the server; leave enrolment mode."""

    type: Literal["done"] = "done"
    device_id: str = Field(default="", max_length=100)


class Refused(_Message):
    """Either way: the enrolment is refused; both sides show ``message``."""

    type: Literal["refused"] = "refused"
    code: str = Field(min_length=1, max_length=64, pattern=PRINTABLE)
    message: str = Field(max_length=1000, pattern=PRINTABLE)


Message = Greet | Hello | BundleMessage | Ack | Done | Refused
_MESSAGE: TypeAdapter[Message] = TypeAdapter(
    Annotated[Message, Field(discriminator="type")]
)


def encode_message(message: _Message) -> bytes:
    return encode_frame(canonical_json(message.model_dump(mode="json")))


def parse_message(frame: Frame) -> Message:
    if frame.version != VERSION:
        raise WireError(
            Reason.UNSUPPORTED_VERSION, f"protocol version {frame.version}, expected {VERSION}"
        )
    try:
        return _MESSAGE.validate_json(frame.body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WireError(Reason.INVALID_REQUEST, f"bad message {where}: {first['msg']}") from None


def refusal(reason: Reason, detail: str = "") -> Refused:
    text = MESSAGES[reason] + (f" ({detail})" if detail else "")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return Refused(code=reason.value, message=text[:1000])


# --- the bundle ------------------------------------------------------------


class Bundle(_Message):
    """What a tablet needs to join the deployment, signed by the station (Ed25519)."""

    v: Literal[1] = 1
    nonce: str  # binds the bundle to this session: a recorded bundle is refused
    serial: str
    certificate: str  # PEM, the tablet's own
    chain: list[str]  # PEM, issuing CA(s) up to but excluding the root
    ca: str  # PEM, the deployment CA to pin
    server_url: str
    grant_public_key: str  # PEM, Ed25519: verifies call grants
    facility: dict[str, str]
    issued_at: str  # the station's clock, ISO 8601; informational


def bundle_payload(bundle: Bundle) -> str:
    return canonical_json(bundle.model_dump(mode="json")).decode()


def parse_bundle(payload: str) -> Bundle:
    try:
        return Bundle.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WireError(Reason.INVALID_REQUEST, f"bad bundle {where}: {first['msg']}") from None


# --- helpers both sides share ---------------------------------------------


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64d(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise WireError(Reason.INVALID_REQUEST, "bad base64") from exc


def nonce_statement(nonce: bytes, serial: str, csr_der: bytes) -> bytes:
    """What the tablet signs: the station's nonce, its serial and its CSR, together."""
    return (
        NONCE_CONTEXT
        + nonce
        + b"\x00"
        + serial.encode()
        + b"\x00"
        + hashlib.sha256(csr_der).digest()
    )


def bundle_statement(payload: str) -> bytes:
    return BUNDLE_CONTEXT + payload.encode()


def reason_from_code(code: str) -> Reason:
    """A peer's refusal code; anything we do not know reads as ``invalid_request``."""
    try:
        return Reason(code)
    except ValueError:
        return Reason.INVALID_REQUEST
