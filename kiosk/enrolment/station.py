"""The station's side of enrolment over USB, as a pure state machine.

Sans-I/O, like h11 or aioquic: the runner (``provisioning.station``) feeds the
bytes read from the serial line with ``receive(data, now)``, the operator's
answer with ``confirm(ok, now)``, the server's answer with
``registered(ok, now)`` and the clock with ``timer(now)``; each returns events,
and ``data_to_send()`` hands back the bytes to write. ``now`` is any monotonic
clock in seconds. Nothing here touches a file, a socket or the real clock, so
the tests drive it against the tablet's machine by hand.

The exchange (ARCHITECTURE.md "Enrolment over USB")::

    station                                   tablet
    greet{nonce, reprovision}        ->
                                     <-       hello{serial, model, csr, nonce, signature}
    (checks; operator confirms the serial printed on the case; certificate issued)
    bundle{payload, signature}       ->       (verifies with the pinned station key, stores)
                                     <-       ack{serial, certificate_serial}
    (registers the tablet with the server; revokes the old certificate on re-provisioning)
    done{device_id}                  ->       (writes the provisioned marker, leaves enrolment)

Either side may send ``refused{code, message}`` instead; both show it. Lost or
corrupted frames are recovered by retransmission: the station repeats
``greet`` and ``bundle`` until answered, the tablet repeats ``ack``, and each
side answers a duplicate with its previous reply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from kiosk.domain.reasons import Reason
from kiosk.enrolment.endpoint import Dropped, Endpoint, Failed, Progress
from kiosk.enrolment.framing import (
    NONCE_BYTES,
    Ack,
    Bundle,
    BundleMessage,
    Done,
    Greet,
    Hello,
    Message,
    Refused,
    WireError,
    b64d,
    b64e,
    bundle_payload,
    bundle_statement,
    encode_message,
    nonce_statement,
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds. Tests shorten nothing: they step a fake clock instead."""

    retransmit: float = 1.0  # a serial line drops or garbles a frame now and then
    hello: float = 60.0  # the tablet's enrolment service may still be starting
    operator: float = 300.0  # a person reads the serial on the case
    ack: float = 30.0  # the tablet verifies and writes its files


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """A tablet staff expect, by hardware serial; ``certificate_serial`` once enrolled."""

    serial: str
    model: str = ""
    certificate_serial: str | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate the CA issued for a tablet (PEM), with its serial as hex."""

    certificate_pem: str
    chain_pem: tuple[str, ...]
    serial: str


class IssueRefused(Exception):
    """The issuer refused the CSR (``kiosk.crypto.pki``'s codes, as a Reason)."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail


Issuer = Callable[[x509.CertificateSigningRequest, str], Issued]
Lookup = Callable[[str], InventoryEntry | None]


@dataclass(frozen=True, slots=True)
class StationConfig:
    """What every bundle carries, and the key that signs it."""

    provisioning_key: ed25519.Ed25519PrivateKey
    ca_pem: str
    server_url: str
    grant_public_key_pem: str
    facility: Mapping[str, str] = field(default_factory=dict)


# --- events ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfirmSerial:
    """Ask the operator whether ``serial`` is the one printed on the case."""

    serial: str
    model: str


@dataclass(frozen=True, slots=True)
class Register:
    """Register the tablet with the server; revoke ``revoke`` first if set."""

    serial: str
    model: str
    certificate_serial: str
    revoke: str | None


@dataclass(frozen=True, slots=True)
class Enrolled:
    serial: str
    certificate_serial: str
    device_id: str


Own = Progress | ConfirmSerial | Register | Enrolled
Event = Own | Failed | Dropped


class StationState(StrEnum):
    GREETING = "greeting"
    CONFIRMING = "confirming"
    AWAITING_ACK = "awaiting_ack"
    REGISTERING = "registering"
    DONE = "done"
    FAILED = "failed"


TERMINAL = frozenset({StationState.DONE, StationState.FAILED})


class StationEnrolment(Endpoint[StationState, Own]):
    """One enrolment of one tablet, from greeting to done or refusal."""

    listens_when_finished = True  # after done, a repeated ack still gets its done again

    def __init__(
        self,
        *,
        nonce: bytes,
        now: float,
        config: StationConfig,
        lookup: Lookup,
        issue: Issuer,
        started_at: datetime,
        reprovision: bool = False,
        usb_serial: str | None = None,
        claim: Callable[[str], bool] = lambda serial: True,
        timeouts: Timeouts = Timeouts(),
    ) -> None:
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} random bytes")
        super().__init__(StationState.GREETING, StationState.FAILED, timeouts.retransmit)
        self.serial: str | None = None
        self._nonce = nonce
        self._config = config
        self._lookup = lookup
        self._issue = issue
        self._started_at = started_at
        self._reprovision = reprovision
        self._usb_serial = usb_serial
        self._claim = claim
        self._t = timeouts
        self._hello: Hello | None = None
        self._csr: x509.CertificateSigningRequest | None = None
        self._entry: InventoryEntry | None = None
        self._issued: Issued | None = None
        greet = encode_message(Greet(nonce=b64e(nonce), reprovision=reprovision))
        self._send(greet)
        self._await(now, timeouts.hello, "the tablet's hello", repeat=greet)

    @property
    def issued_serial(self) -> str | None:
        """The certificate issued in this session, if any (to revoke if it fails)."""
        return None if self._issued is None else self._issued.serial

    # --- inputs ------------------------------------------------------------

    def confirm(self, ok: bool, now: float) -> list[Event]:
        """The operator's answer: is the serial on the case the one shown?"""
        if self.state is not StationState.CONFIRMING:
            return []
        if not ok:
            return self._fail(Reason.OPERATOR_REJECTED, f"serial {self.serial}")
        assert self._csr is not None and self.serial is not None
        try:
            issued = self._issue(self._csr, self.serial)
        except IssueRefused as exc:
            return self._fail(exc.reason, exc.detail)
        self._issued = issued
        bundle = Bundle(
            nonce=b64e(self._nonce),
            serial=self.serial,
            certificate=issued.certificate_pem,
            chain=list(issued.chain_pem),
            ca=self._config.ca_pem,
            server_url=self._config.server_url,
            grant_public_key=self._config.grant_public_key_pem,
            facility=dict(self._config.facility),
            issued_at=self._started_at.isoformat(),
        )
        payload = bundle_payload(bundle)
        signature = self._config.provisioning_key.sign(bundle_statement(payload))
        frame = encode_message(BundleMessage(payload=payload, signature=b64e(signature)))
        self._send(frame)
        self.state = StationState.AWAITING_ACK
        self._await(now, self._t.ack, "the tablet's acknowledgement", repeat=frame)
        return [Progress(f"certificate {issued.serial} issued; bundle sent")]

    def registered(
        self, ok: bool, now: float, device_id: str = "", detail: str = ""
    ) -> list[Event]:
        """The server's answer to the registration (and revocation) of the tablet."""
        if self.state is not StationState.REGISTERING:
            return []
        if not ok:
            return self._fail(Reason.REGISTRATION_FAILED, detail)
        assert self.serial is not None and self._issued is not None
        self._send(encode_message(Done(device_id=device_id)))
        self.state = StationState.DONE
        self._finish()
        return [Enrolled(self.serial, self._issued.serial, device_id)]

    # --- the exchange ------------------------------------------------------

    def _handle(self, message: Message, now: float) -> list[Event]:
        if isinstance(message, Refused):
            return self._peer_refused(message)
        if isinstance(message, Hello):
            if self.state is StationState.GREETING:
                return self._on_hello(message, now)
            if message == self._hello:  # a duplicate: the tablet did not get our reply yet
                if self.state is StationState.AWAITING_ACK:
                    self._resend()
                return []
            return self._fail(Reason.REPLAYED_NONCE, "a second, different hello in one session")
        if isinstance(message, Ack):
            if self.state is StationState.AWAITING_ACK:
                return self._on_ack(message)
            if self.state is StationState.DONE:
                self._resend()  # our done was lost
            return []
        return self._fail(
            Reason.INVALID_REQUEST, f"unexpected {type(message).__name__.lower()} from the tablet"
        )

    def _on_hello(self, hello: Hello, now: float) -> list[Event]:
        self.serial = hello.serial  # as claimed, for the operator's display
        checked = self._check_hello(hello)
        if isinstance(checked, Failed):
            return self._fail(checked.reason, checked.detail)
        self._hello = hello
        self._csr, self._entry = checked
        self.serial = hello.serial
        self.state = StationState.CONFIRMING
        self._await(now, self._t.operator, "the operator")
        return [
            Progress(f"tablet {hello.serial} ({hello.model}) answered"),
            ConfirmSerial(hello.serial, hello.model),
        ]

    def _check_hello(
        self, hello: Hello
    ) -> tuple[x509.CertificateSigningRequest, InventoryEntry] | Failed:
        def no(reason: Reason, detail: str = "") -> Failed:
            return Failed(reason, detail, by_peer=False)

        try:
            nonce = b64d(hello.nonce)
            signature = b64d(hello.signature)
        except WireError as exc:
            return no(exc.reason, exc.detail)
        if nonce != self._nonce:
            return no(Reason.REPLAYED_NONCE, "the hello answers another session's nonce")
        if self._usb_serial is not None and hello.serial != self._usb_serial:
            return no(Reason.SERIAL_MISMATCH, f"USB serial {self._usb_serial}")
        try:
            csr = x509.load_pem_x509_csr(hello.csr.encode())
        except ValueError:
            return no(Reason.INVALID_REQUEST, "the CSR is not a PEM certificate request")
        if not csr.is_signature_valid:
            return no(Reason.BAD_CSR_SIGNATURE)
        key = csr.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            return no(Reason.INVALID_REQUEST, "the CSR's key must be ECDSA P-256")
        names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(csr.subject) != 1 or len(names) != 1 or names[0].value != hello.serial:
            return no(Reason.CSR_SUBJECT_MISMATCH, f"expected CN={hello.serial}")
        statement = nonce_statement(
            nonce, hello.serial, csr.public_bytes(serialization.Encoding.DER)
        )
        try:
            key.verify(signature, statement, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return no(Reason.BAD_NONCE_SIGNATURE)
        entry = self._lookup(hello.serial)
        if entry is None:
            return no(Reason.SERIAL_NOT_IN_INVENTORY, f"serial {hello.serial}")
        if entry.certificate_serial and not self._reprovision:
            return no(
                Reason.ALREADY_PROVISIONED, f"certificate {entry.certificate_serial} is in force"
            )
        # One enrolment per serial at a time: two tablets claiming one serial at once
        # (a clone) must not both get a certificate.
        if not self._claim(hello.serial):
            return no(Reason.CONFLICT, f"another enrolment of {hello.serial} is in progress")
        return csr, entry

    def _on_ack(self, ack: Ack) -> list[Event]:
        assert self._issued is not None and self._hello is not None
        if ack.serial != self._hello.serial or ack.certificate_serial != self._issued.serial:
            return self._fail(Reason.CERTIFICATE_MISMATCH, "the acknowledgement names another")
        self.state = StationState.REGISTERING
        self._pause()
        revoke = None
        if self._reprovision and self._entry is not None:
            revoke = self._entry.certificate_serial
        return [
            Progress("tablet stored its bundle; registering with the server"),
            Register(ack.serial, self._hello.model, ack.certificate_serial, revoke),
        ]
