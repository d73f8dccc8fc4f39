"""The tablet's side of enrolment over USB, as a pure state machine.

The counterpart of ``kiosk.enrolment.station`` (where the exchange is drawn),
sans-I/O in the same way: ``receive(data, now)``, ``stored(now)`` once the
runner has written the bundle, ``timer(now)``; events out, and
``data_to_send()``. The runner is ``kiosk.device.enrol_serial``.

The tablet makes its own P-256 key pair when a station greets it; the private
key never leaves the tablet (only the CSR and a signature go out). It trusts a
bundle only if it is signed by a pinned station provisioning key (Ed25519).
Those public keys are baked into the tablet image
(``/etc/kiosk/enrolment/stations.pem``, one or more PEM public keys, the
``.pub`` files of ``kiosk-provision key``): the image is built by the same
deployment that runs the stations, and a key learnt over the very cable it is
meant to authenticate would prove nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from kiosk.crypto.authority import certificate_serial_text
from kiosk.domain.reasons import Reason
from kiosk.enrolment.endpoint import Dropped, Endpoint, Failed, Progress
from kiosk.enrolment.framing import (
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
    bundle_statement,
    encode_message,
    nonce_statement,
    parse_bundle,
)


@dataclass(frozen=True, slots=True)
class DeviceTimeouts:
    retransmit: float = 1.0
    bundle: float = 600.0  # the station waits for its operator; so do we
    done: float = 60.0  # the station registers us with the server


@dataclass(frozen=True, slots=True)
class StoreBundle:
    """Write these (keys 0600, directories 0700), then call ``stored()``."""

    bundle: Bundle
    key: ec.EllipticCurvePrivateKey
    certificate_serial: str


@dataclass(frozen=True, slots=True)
class Provisioned:
    """Registered with the server: write the marker, leave enrolment mode."""

    device_id: str


Own = Progress | StoreBundle | Provisioned
Event = Own | Failed | Dropped


class DeviceState(StrEnum):
    WAITING = "waiting"  # for a station's greeting
    AWAITING_BUNDLE = "awaiting_bundle"
    STORING = "storing"
    AWAITING_DONE = "awaiting_done"
    PROVISIONED = "provisioned"
    FAILED = "failed"


TERMINAL = frozenset({DeviceState.PROVISIONED, DeviceState.FAILED})


def new_p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def build_csr(key: ec.EllipticCurvePrivateKey, serial: str) -> x509.CertificateSigningRequest:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


class DeviceEnrolment(Endpoint[DeviceState, Own]):
    """One enrolment session on the tablet."""

    def __init__(
        self,
        *,
        serial: str,
        model: str,
        station_keys: Sequence[ed25519.Ed25519PublicKey],
        provisioned: bool,
        make_key: Callable[[], ec.EllipticCurvePrivateKey] = new_p256_key,
        timeouts: DeviceTimeouts = DeviceTimeouts(),
    ) -> None:
        if not station_keys:
            raise ValueError("no station provisioning key is pinned")
        super().__init__(DeviceState.WAITING, DeviceState.FAILED, timeouts.retransmit)
        self._serial = serial
        self._model = model
        self._station_keys = tuple(station_keys)
        self._provisioned = provisioned
        self._make_key = make_key
        self._t = timeouts
        self._nonce = b""
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._bundle: BundleMessage | None = None
        self._ack_frame = b""

    def stored(self, now: float) -> list[Event]:
        """The runner wrote the bundle and the key: acknowledge."""
        if self.state is not DeviceState.STORING:
            return []
        self._send(self._ack_frame)
        self.state = DeviceState.AWAITING_DONE
        self._await(now, self._t.done, "done", repeat=self._ack_frame)
        return [Progress("bundle stored; acknowledged")]

    def store_failed(self, detail: str) -> list[Event]:
        return self._fail(Reason.INVALID_REQUEST, f"could not store the bundle: {detail}")

    # --- the exchange ------------------------------------------------------

    def _handle(self, message: Message, now: float) -> list[Event]:
        if isinstance(message, Greet):
            return self._on_greet(message, now)
        if isinstance(message, Refused):
            if self.state is DeviceState.WAITING:
                return []  # a stale refusal of an earlier session
            return self._peer_refused(message)
        if isinstance(message, BundleMessage):
            if self.state is DeviceState.AWAITING_BUNDLE:
                return self._on_bundle(message)
            if message == self._bundle:  # a duplicate: our ack was lost
                if self.state is DeviceState.AWAITING_DONE:
                    self._resend()
                return []
            return self._fail(Reason.REPLAYED_NONCE, "a second, different bundle in one session")
        if isinstance(message, Done):
            if self.state is DeviceState.AWAITING_DONE:
                self.state = DeviceState.PROVISIONED
                self._finish()
                return [Provisioned(message.device_id)]
            return self._fail(Reason.INVALID_REQUEST, "done before the bundle was stored")
        return self._fail(
            Reason.INVALID_REQUEST, f"unexpected {type(message).__name__.lower()} from the station"
        )

    def _on_greet(self, greet: Greet, now: float) -> list[Event]:
        try:
            nonce = b64d(greet.nonce)
        except WireError as exc:
            return self._fail(exc.reason, exc.detail)
        if self.state is DeviceState.AWAITING_BUNDLE and nonce == self._nonce:
            self._resend()  # our hello was lost
            return []
        if self.state not in (DeviceState.WAITING, DeviceState.AWAITING_BUNDLE):
            return []  # a late retransmission; the session has moved on
        if self._provisioned and not greet.reprovision:
            return self._fail(Reason.ALREADY_PROVISIONED, "the station did not ask to re-provision")
        # A new session (or a station that restarted): a fresh key for a fresh nonce.
        self._nonce = nonce
        self._key = self._make_key()
        csr = build_csr(self._key, self._serial)
        csr_der = csr.public_bytes(serialization.Encoding.DER)
        signature = self._key.sign(
            nonce_statement(nonce, self._serial, csr_der), ec.ECDSA(hashes.SHA256())
        )
        hello = Hello(
            serial=self._serial,
            model=self._model,
            csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
            nonce=greet.nonce,
            signature=b64e(signature),
        )
        self._send(encode_message(hello))
        self.state = DeviceState.AWAITING_BUNDLE
        # No repeat of our own: the station repeats its greeting and we answer each.
        self._await(now, self._t.bundle, "the bundle")
        return [Progress("station greeted; certificate request sent")]

    def _on_bundle(self, message: BundleMessage) -> list[Event]:
        try:
            signature = b64d(message.signature)
        except WireError as exc:
            return self._fail(exc.reason, exc.detail)
        statement = bundle_statement(message.payload)
        if not any(_verifies(k, signature, statement) for k in self._station_keys):
            return self._fail(Reason.BAD_BUNDLE_SIGNATURE)
        try:
            bundle = parse_bundle(message.payload)
            nonce = b64d(bundle.nonce)
        except WireError as exc:
            return self._fail(exc.reason, exc.detail)
        if nonce != self._nonce:
            return self._fail(Reason.REPLAYED_NONCE, "the bundle was made for another session")
        checked = self._check_certificate(bundle)
        if isinstance(checked, Failed):
            return self._fail(checked.reason, checked.detail)
        assert self._key is not None
        self._bundle = message
        serial = certificate_serial_text(checked)
        self._ack_frame = encode_message(Ack(serial=self._serial, certificate_serial=serial))
        self.state = DeviceState.STORING
        self._pause()
        return [
            Progress(f"bundle verified; certificate {serial}"),
            StoreBundle(bundle, self._key, serial),
        ]

    def _check_certificate(self, bundle: Bundle) -> x509.Certificate | Failed:
        def no(detail: str) -> Failed:
            return Failed(Reason.CERTIFICATE_MISMATCH, detail, by_peer=False)

        assert self._key is not None
        if bundle.serial != self._serial:
            return no(f"the bundle is for {bundle.serial}")
        try:
            cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
            ca = x509.load_pem_x509_certificate(bundle.ca.encode())
            chain = [x509.load_pem_x509_certificate(c.encode()) for c in bundle.chain]
            serialization.load_pem_public_key(bundle.grant_public_key.encode())
        except ValueError:
            return no("a certificate or key in the bundle is not PEM")
        ours = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if ours != theirs:
            return no("the certificate is not for this tablet's key")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names or names[0].value != self._serial:
            return no("the certificate does not name this tablet's serial")
        links = [cert, *(c for c in chain if c != ca), ca]
        for child, parent in itertools.pairwise(links):
            try:
                child.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature):
                return no("the certificate does not chain to the pinned CA")
        return cert


def _verifies(key: ed25519.Ed25519PublicKey, signature: bytes, statement: bytes) -> bool:
    try:
        key.verify(signature, statement)
    except InvalidSignature:
        return False
    return True
