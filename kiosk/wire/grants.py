"""Call grants: the server's signed permission for one call on one tablet.

ARCHITECTURE.md principle 1: the server decides, the tablet obeys, both
enforce. A grant names the call, the device, the inmate, the contact, the
route, the control level and the window; the server signs it with Ed25519
over a canonical JSON encoding, and the tablet verifies it with the key
pinned at provisioning before it sends or accepts any media.

Pure: no sockets, no clocks. Times come in as arguments.

Canonical encoding: JSON with sorted keys, no spaces, UTF-8 (no ASCII
escaping), every time in RFC 3339 UTC with microseconds and a ``Z``
(``2026-11-23T16:00:00.000000Z``). The signature covers a fixed context
prefix and the payload bytes, so a grant signature can never be mistaken
for a signature over anything else the same key might sign.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import GrantRefusal, Reason

# 2: the grant answers one dial (``dial_nonce``), so a grant cannot be replayed
# to a tablet that did not ask for it just now (issue 12).
GRANT_VERSION: Final = 2
SIGNATURE_CONTEXT: Final = b"kiosk-grant-v1\x00"
MAX_PAYLOAD_BYTES: Final = 4096
MAX_ID_LENGTH: Final = 64
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_SIGNATURE_CHARS: Final = 86  # 64 bytes in unpadded base64url
_FIELDS: Final = frozenset(
    {
        "v",
        "call_id",
        "device_id",
        "inmate_id",
        "contact_id",
        "category",
        "route",
        "control",
        "not_before",
        "not_after",
        "issued_at",
        "dial_nonce",
    }
)


class GrantError(Exception):
    """The tablet refuses a grant. ``reason`` says why; the wire code is ``grant_invalid``."""

    BAD_SIGNATURE: Final = GrantRefusal.BAD_SIGNATURE
    WRONG_DEVICE: Final = GrantRefusal.WRONG_DEVICE
    MALFORMED: Final = GrantRefusal.MALFORMED
    BAD_WINDOW: Final = GrantRefusal.BAD_WINDOW
    REPLAYED: Final = GrantRefusal.REPLAYED
    EXPIRED: Final = GrantRefusal.EXPIRED

    code: Final = Reason.GRANT_INVALID

    def __init__(self, reason: GrantRefusal, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def format_time(at: datetime) -> str:
    """RFC 3339 UTC, microseconds, ``Z``: the only time format in a grant."""
    if at.tzinfo is None:
        raise ValueError("grant times must be timezone-aware")
    return at.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    if not _TIME_RE.match(text):
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Grant:
    call_id: str
    device_id: str
    inmate_id: str
    contact_id: str
    category: Category
    route: Route
    control: ControlLevel
    not_before: datetime
    not_after: datetime
    issued_at: datetime  # the server's clock when it signed
    dial_nonce: str  # the nonce of the tablet's dial this grant answers

    @property
    def duration(self) -> timedelta:
        return self.not_after - self.not_before

    def to_json(self) -> str:
        """The canonical payload: the exact text that is signed."""
        body: dict[str, Any] = {
            "v": GRANT_VERSION,
            "call_id": self.call_id,
            "device_id": self.device_id,
            "inmate_id": self.inmate_id,
            "contact_id": self.contact_id,
            "category": self.category.value,
            "route": self.route.value,
            "control": self.control.value,
            "not_before": format_time(self.not_before),
            "not_after": format_time(self.not_after),
            "issued_at": format_time(self.issued_at),
            "dial_nonce": self.dial_nonce,
        }
        return canonical_json(body)


@dataclass(frozen=True, slots=True)
class SignedGrant:
    payload: str  # canonical JSON of a Grant
    signature: str  # Ed25519 over SIGNATURE_CONTEXT + payload, unpadded base64url


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode_signature(text: str) -> bytes:
    """Strict: exactly one text per signature, so no two texts verify the same."""
    if len(text) != _SIGNATURE_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise GrantError(GrantError.MALFORMED, "signature is not 64 bytes of base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except (binascii.Error, ValueError) as exc:
        raise GrantError(GrantError.MALFORMED, "signature is not base64url") from exc
    if _b64url_encode(raw) != text:  # unused low bits of the last character must be zero
        raise GrantError(GrantError.MALFORMED, "signature is not canonical base64url")
    return raw


def _check_window(grant: Grant) -> None:
    if grant.not_after <= grant.not_before:
        raise GrantError(GrantError.BAD_WINDOW, "not_after must be after not_before")


def sign_grant(grant: Grant, key: Ed25519PrivateKey) -> SignedGrant:
    _check_window(grant)
    for name in ("call_id", "device_id", "inmate_id", "contact_id", "dial_nonce"):
        value = getattr(grant, name)
        if not value or len(value) > MAX_ID_LENGTH:
            raise ValueError(f"grant {name} must be 1..{MAX_ID_LENGTH} characters")
    payload = grant.to_json()
    signature = key.sign(SIGNATURE_CONTEXT + payload.encode("utf-8"))
    return SignedGrant(payload=payload, signature=_b64url_encode(signature))


def _text(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise GrantError(GrantError.MALFORMED, f"{name} is not an id")
    return value


def _decode_payload(payload: str) -> Grant:
    try:
        body = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise GrantError(GrantError.MALFORMED, "payload is not JSON") from exc
    if not isinstance(body, dict) or set(body) != _FIELDS:
        raise GrantError(GrantError.MALFORMED, "payload fields are wrong")
    if body["v"] != GRANT_VERSION or isinstance(body["v"], bool):
        raise GrantError(GrantError.MALFORMED, "unknown grant version")
    try:
        grant = Grant(
            call_id=_text(body, "call_id"),
            device_id=_text(body, "device_id"),
            inmate_id=_text(body, "inmate_id"),
            contact_id=_text(body, "contact_id"),
            category=Category(body["category"]),
            route=Route(body["route"]),
            control=ControlLevel(body["control"]),
            not_before=parse_time(body["not_before"]),
            not_after=parse_time(body["not_after"]),
            issued_at=parse_time(body["issued_at"]),
            dial_nonce=_text(body, "dial_nonce"),
        )
    except (ValueError, TypeError) as exc:
        raise GrantError(GrantError.MALFORMED, str(exc)) from exc
    if grant.to_json() != payload:
        raise GrantError(GrantError.MALFORMED, "payload is not in canonical form")
    return grant


def verify_grant(signed: SignedGrant, public_key: Ed25519PublicKey, device_id: str) -> Grant:
    """The tablet's check before any media (principle 1). Raises GrantError."""
    if not isinstance(signed.payload, str) or not isinstance(signed.signature, str):
        raise GrantError(GrantError.MALFORMED, "payload and signature must be text")
    try:
        payload_bytes = signed.payload.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise GrantError(GrantError.MALFORMED, "payload is not UTF-8") from exc
    if len(payload_bytes) > MAX_PAYLOAD_BYTES:
        raise GrantError(GrantError.MALFORMED, "payload too large")
    signature = _b64url_decode_signature(signed.signature)
    try:
        public_key.verify(signature, SIGNATURE_CONTEXT + payload_bytes)
    except InvalidSignature as exc:
        raise GrantError(GrantError.BAD_SIGNATURE) from exc
    # Only a signed payload is parsed further: nothing unauthenticated reaches the decoder.
    grant = _decode_payload(signed.payload)
    if grant.device_id != device_id:
        raise GrantError(GrantError.WRONG_DEVICE, "grant is for another device")
    _check_window(grant)
    return grant


# Worst-case rate difference between the server's clock and the tablet's
# monotonic clock: ordinary quartz oscillators stay within ±100 ppm. The
# tablet shortens the granted span by this fraction so that a fast server
# clock or a slow tablet crystal can never carry the end past not_after.
DEFAULT_DRIFT: Final = 100e-6


class GrantClock:
    """The call's end by the tablet's monotonic clock, never its wall clock.

    The grant carries the server's clock at signing (``issued_at``). The span
    still left at that instant is ``not_after - issued_at``. The tablet lays
    that span down from an anchor on its own monotonic clock:

        deadline = anchor + (not_after - issued_at) * (1 - drift)

    Which way is safe: the end must never come *later* than ``not_after`` by
    the server's clock. Any anchor taken at or before the instant of signing
    satisfies that. ``received_monotonic`` (the instant the grant arrived) is
    *after* signing by the one-way transit delay ``d``, so anchoring there
    alone would end the call up to ``d`` late. Hence ``sent_monotonic``: when
    the tablet itself asked for the grant (its ``dial``), it passes the
    monotonic time at which it sent the request; the server signs only after
    receiving it, so that instant precedes ``issued_at`` and the deadline is
    never late — it is early by the round trip at most. For a grant the tablet
    did not ask for, pass as ``max_transit`` an upper bound on the one-way delay
    (for example the largest recent heartbeat round trip): the anchor becomes
    ``received_monotonic - max_transit``. Bound on error: the end comes at
    most ``round trip + drift * span`` early and, given a true bound on
    transit, never late.
    """

    __slots__ = ("anchor", "grant", "received_monotonic", "span")

    def __init__(
        self,
        grant: Grant,
        received_monotonic: float,
        *,
        sent_monotonic: float | None = None,
        max_transit: float = 0.0,
        drift: float = DEFAULT_DRIFT,
    ) -> None:
        if max_transit < 0 or not 0 <= drift < 1:
            raise ValueError("max_transit must be >= 0 and drift in [0, 1)")
        self.grant = grant
        self.received_monotonic = received_monotonic
        anchor = received_monotonic - max_transit
        if sent_monotonic is not None:
            anchor = min(anchor, sent_monotonic)
        self.anchor = anchor
        span = (grant.not_after - grant.issued_at).total_seconds()
        # Shrink a positive span for drift; a grant already over at signing stays over.
        self.span = span * (1.0 - drift) if span > 0 else span

    def deadline(self) -> float:
        """The monotonic instant at which the tablet ends the call."""
        return self.anchor + self.span

    def remaining(self, mono_now: float) -> float:
        """Seconds left, never negative, never more than the grant allows."""
        return max(0.0, min(self.span, self.deadline() - mono_now))  # span < 0 gives 0

    def expired(self, mono_now: float) -> bool:
        return mono_now >= self.deadline()

    def opens(self) -> float:
        """Monotonic instant of not_before. Anchored at receipt: a late anchor only delays."""
        wait = (self.grant.not_before - self.grant.issued_at).total_seconds()
        return self.received_monotonic + max(0.0, wait)


class ReplayGuard:
    """The tablet's memory of ended calls: a grant for an ended call is refused.

    Bounded so a long-lived agent does not grow without limit; the oldest
    entries go first, by which time their grants have long expired.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._max = max_entries

    def end(self, call_id: str) -> None:
        self._ended[call_id] = None
        self._ended.move_to_end(call_id)
        while len(self._ended) > self._max:
            self._ended.popitem(last=False)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._ended

    def __len__(self) -> int:
        return len(self._ended)

    def check(self, grant: Grant) -> Grant:
        if grant.call_id in self._ended:
            raise GrantError(GrantError.REPLAYED, "the call has already ended")
        return grant
