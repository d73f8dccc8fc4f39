"""The enrolment protocol: the station's and the tablet's pure machines, driven
against each other by hand — frames dropped by not delivering them, doubled,
corrupted, and a fake clock stepped for the timeouts. No sockets, no sleeps.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from kiosk.crypto.authority import certificate_serial_text as certificate_serial
from kiosk.domain.reasons import Reason
from kiosk.enrolment import station as sta
from kiosk.enrolment import tablet as dev
from kiosk.enrolment.framing import (
    HEADER_LEN,
    MAGIC,
    TRAILER_LEN,
    Frame,
    FrameDecoder,
    Garbled,
    Hello,
    b64d,
    b64e,
    canonical_json,
    encode_frame,
    encode_message,
    nonce_statement,
    parse_message,
    refusal,
)

SERIAL = "KT-0001"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# --- a deployment: CA, grant key, station key ------------------------------


@dataclass
class Deployment:
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate
    station_key: ed25519.Ed25519PrivateKey
    grant_pub_pem: str
    issued: list[str] = field(default_factory=list)

    @property
    def ca_pem(self) -> str:
        return self.ca.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, csr: x509.CertificateSigningRequest, serial: str) -> sta.Issued:
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
            .issuer_name(self.ca.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(T0)
            .not_valid_after(T0 + timedelta(days=365))
            .sign(self.ca_key, hashes.SHA256())
        )
        self.issued.append(certificate_serial(cert.serial_number))
        return sta.Issued(
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            (),
            certificate_serial(cert.serial_number),
        )

    def config(self, key: ed25519.Ed25519PrivateKey | None = None) -> sta.StationConfig:
        return sta.StationConfig(
            provisioning_key=key or self.station_key,
            ca_pem=self.ca_pem,
            server_url="wss://server.test:8444/device/v1",
            grant_public_key_pem=self.grant_pub_pem,
            facility={"facility_id": "romerike", "timezone": "Europe/Oslo"},
        )


def make_deployment() -> Deployment:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test deployment CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    grant = ed25519.Ed25519PrivateKey.generate().public_key()
    grant_pem = grant.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return Deployment(ca_key, ca, ed25519.Ed25519PrivateKey.generate(), grant_pem)


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return make_deployment()


def inventory(*entries: sta.InventoryEntry) -> sta.Lookup:
    table = {e.serial: e for e in entries}
    return table.get


def make_station(
    d: Deployment,
    *,
    nonce: bytes = b"\x01" * 32,
    lookup: sta.Lookup | None = None,
    issue: sta.Issuer | None = None,
    key: ed25519.Ed25519PrivateKey | None = None,
    reprovision: bool = False,
    usb_serial: str | None = None,
) -> sta.StationEnrolment:
    return sta.StationEnrolment(
        nonce=nonce,
        now=0.0,
        config=d.config(key),
        lookup=lookup or inventory(sta.InventoryEntry(SERIAL)),
        issue=issue or d.issue,
        started_at=T0,
        reprovision=reprovision,
        usb_serial=usb_serial,
    )


def make_device(
    d: Deployment, *, serial: str = SERIAL, provisioned: bool = False
) -> dev.DeviceEnrolment:
    return dev.DeviceEnrolment(
        serial=serial,
        model="Tab-10",
        station_keys=[d.station_key.public_key()],
        provisioned=provisioned,
    )


# --- the cable -------------------------------------------------------------


def split_frames(data: bytes) -> list[bytes]:
    """The machines only ever emit whole frames; cut them apart to lose or garble one."""
    frames = []
    while data:
        assert data.startswith(MAGIC)
        (length,) = struct.unpack_from(">I", data, 5)
        end = HEADER_LEN + length + TRAILER_LEN
        frames.append(data[:end])
        data = data[end:]
    return frames


Fault = Callable[[str, int, bytes], list[bytes]]  # direction, frame number, frame -> delivered


def clean(direction: str, n: int, frame: bytes) -> list[bytes]:
    return [frame]


@dataclass
class Run:
    station: sta.StationEnrolment
    device: dev.DeviceEnrolment
    station_events: list[sta.Event]
    device_events: list[dev.Event]
    sent: dict[str, list[str]]
    now: float


def run(
    station: sta.StationEnrolment,
    device: dev.DeviceEnrolment,
    *,
    fault: Fault = clean,
    confirm: bool = True,
    register_ok: bool = True,
    max_steps: int = 500,
) -> Run:
    """Move frames both ways, answer the operator and the server, step the clock when idle."""
    now = 0.0
    s_events: list[sta.Event] = []
    d_events: list[dev.Event] = []
    count = {"s2d": 0, "d2s": 0}
    sent: dict[str, list[str]] = {"s2d": [], "d2s": []}

    def on_station(events: list[sta.Event]) -> None:
        s_events.extend(events)
        for e in events:
            if isinstance(e, sta.ConfirmSerial):
                on_station(station.confirm(confirm, now))
            elif isinstance(e, sta.Register):
                on_station(station.registered(register_ok, now, "dev-1", "HTTP 500"))

    def on_device(events: list[dev.Event]) -> None:
        d_events.extend(events)
        for e in events:
            if isinstance(e, dev.StoreBundle):
                on_device(device.stored(now))

    for _ in range(max_steps):
        moved = False
        for frame in split_frames(station.data_to_send()):
            moved = True
            sent["s2d"].append(parse_message(Frame(1, frame[HEADER_LEN:-TRAILER_LEN])).type)
            count["s2d"] += 1
            for piece in fault("s2d", count["s2d"], frame):
                on_device(device.receive(piece, now))
        for frame in split_frames(device.data_to_send()):
            moved = True
            sent["d2s"].append(parse_message(Frame(1, frame[HEADER_LEN:-TRAILER_LEN])).type)
            count["d2s"] += 1
            for piece in fault("d2s", count["d2s"], frame):
                on_station(station.receive(piece, now))
        if moved:
            continue
        deadlines = [t for t in (station.next_deadline(), device.next_deadline()) if t is not None]
        if not deadlines:
            break
        now = max(now, min(deadlines))
        on_station(station.timer(now))
        on_device(device.timer(now))
    return Run(station, device, s_events, d_events, sent, now)


def failures(r: Run) -> tuple[sta.Failed | None, dev.Failed | None]:
    return r.station.failure, r.device.failure


def assert_refused_both_sides(r: Run, reason: Reason, *, by: str) -> None:
    """Both sides end failed with the same code; the side that refused says so."""
    s, d = failures(r)
    assert s is not None and d is not None, (r.station.state, r.device.state)
    assert s.reason is reason and d.reason is reason
    assert s.by_peer is (by == "device") and d.by_peer is (by == "station")
    assert r.station.state is sta.StationState.FAILED
    assert r.device.state is dev.DeviceState.FAILED
    # The message the other side shows is the refusing side's clear text.
    assert s.message and d.message
    assert not any(isinstance(e, sta.Enrolled) for e in r.station_events)
    assert not any(isinstance(e, dev.Provisioned) for e in r.device_events)


# --- the happy path --------------------------------------------------------


def test_enrolment_issues_a_certificate_for_the_tablets_own_key(deployment: Deployment) -> None:
    r = run(make_station(deployment), make_device(deployment))
    assert r.station.state is sta.StationState.DONE
    assert r.device.state is dev.DeviceState.PROVISIONED
    store = next(e for e in r.device_events if isinstance(e, dev.StoreBundle))
    cert = x509.load_pem_x509_certificate(store.bundle.certificate.encode())
    assert cert.public_key() == store.key.public_key()  # the tablet's own key pair
    assert cert.subject.rfc4514_string() == f"CN={SERIAL}"
    assert store.bundle.ca == deployment.ca_pem
    assert store.bundle.grant_public_key == deployment.grant_pub_pem
    assert store.bundle.server_url == "wss://server.test:8444/device/v1"
    assert store.bundle.facility["facility_id"] == "romerike"
    register = next(e for e in r.station_events if isinstance(e, sta.Register))
    assert register == sta.Register(SERIAL, "Tab-10", store.certificate_serial, None)
    enrolled = next(e for e in r.station_events if isinstance(e, sta.Enrolled))
    assert enrolled.device_id == "dev-1"
    assert [e for e in r.device_events if isinstance(e, dev.Provisioned)] == [
        dev.Provisioned("dev-1")
    ]
    assert r.sent == {"s2d": ["greet", "bundle", "done"], "d2s": ["hello", "ack"]}


def test_the_private_key_never_crosses_the_cable(deployment: Deployment) -> None:
    wire = bytearray()

    def tap(direction: str, n: int, frame: bytes) -> list[bytes]:
        wire.extend(frame)
        return [frame]

    r = run(make_station(deployment), make_device(deployment), fault=tap)
    key = next(e for e in r.device_events if isinstance(e, dev.StoreBundle)).key
    secret = key.private_numbers().private_value.to_bytes(32, "big")
    pem = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert secret not in wire and pem not in wire
    assert b64e(secret).encode() not in wire


# --- refusals: each with a clear message on both sides ---------------------


def test_serial_not_in_inventory(deployment: Deployment) -> None:
    r = run(make_station(deployment, lookup=inventory()), make_device(deployment))
    assert_refused_both_sides(r, Reason.SERIAL_NOT_IN_INVENTORY, by="station")
    assert "inventory" in r.device.failure.message  # type: ignore[union-attr]
    assert SERIAL in r.device.failure.message  # type: ignore[union-attr]


def test_operator_does_not_confirm_the_serial_on_the_case(deployment: Deployment) -> None:
    before = len(deployment.issued)
    r = run(make_station(deployment), make_device(deployment), confirm=False)
    assert_refused_both_sides(r, Reason.OPERATOR_REJECTED, by="station")
    assert len(deployment.issued) == before  # nothing issued for this one
    assert not any(isinstance(e, dev.StoreBundle) for e in r.device_events)


def test_usb_serial_that_differs_from_the_signed_serial(deployment: Deployment) -> None:
    r = run(make_station(deployment, usb_serial="KT-9999"), make_device(deployment))
    assert_refused_both_sides(r, Reason.SERIAL_MISMATCH, by="station")


def forge(
    station_nonce: bytes,
    *,
    serial: str = SERIAL,
    cn: str = SERIAL,
    corrupt_csr_signature: bool = False,
    sign_other: bool = False,
    extra_subject: bool = False,
) -> Hello:
    """A hello as a tampered tablet would send it."""
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if extra_subject:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil"))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attrs))
        .sign(key, hashes.SHA256())
    )
    der = csr.public_bytes(serialization.Encoding.DER)
    if corrupt_csr_signature:
        der = der[:-3] + bytes([der[-3] ^ 0x01]) + der[-2:]
        csr = x509.load_der_x509_csr(der)
        assert not csr.is_signature_valid
    signer = ec.generate_private_key(ec.SECP256R1()) if sign_other else key
    sig = signer.sign(nonce_statement(station_nonce, serial, der), ec.ECDSA(hashes.SHA256()))
    return Hello(
        serial=serial,
        model="Tab-10",
        csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
        nonce=b64e(station_nonce),
        signature=b64e(sig),
    )


def refuse_forged(deployment: Deployment, hello: Hello, reason: Reason) -> None:
    """The station refuses the forged hello; the tablet that sent it shows the refusal."""
    station = make_station(deployment)
    device = make_device(deployment)
    device.receive(station.data_to_send(), 0.0)  # the tablet is greeted ...
    device.data_to_send()  # ... but its real hello is swapped for the forged one
    events = station.receive(encode_message(hello), 0.0)
    assert events == [station.failure]
    assert station.failure is not None and station.failure.reason is reason
    device_events = device.receive(station.data_to_send(), 0.0)
    assert device.failure is not None and device.failure.reason is reason
    assert device.failure.by_peer and device_events == [device.failure]


def test_csr_subject_is_not_the_serial(deployment: Deployment) -> None:
    refuse_forged(deployment, forge(b"\x01" * 32, cn="KT-OTHER"), Reason.CSR_SUBJECT_MISMATCH)


def test_csr_subject_with_more_than_the_serial(deployment: Deployment) -> None:
    hello = forge(b"\x01" * 32, extra_subject=True)
    refuse_forged(deployment, hello, Reason.CSR_SUBJECT_MISMATCH)


def test_bad_csr_signature(deployment: Deployment) -> None:
    hello = forge(b"\x01" * 32, corrupt_csr_signature=True)
    refuse_forged(deployment, hello, Reason.BAD_CSR_SIGNATURE)


def test_nonce_signed_by_another_key(deployment: Deployment) -> None:
    refuse_forged(deployment, forge(b"\x01" * 32, sign_other=True), Reason.BAD_NONCE_SIGNATURE)


def test_replayed_hello_from_an_earlier_session(deployment: Deployment) -> None:
    # A hello recorded in an earlier session (nonce 02…) replayed to a station (nonce 01…).
    refuse_forged(deployment, forge(b"\x02" * 32), Reason.REPLAYED_NONCE)


def test_replayed_bundle_from_an_earlier_session(deployment: Deployment) -> None:
    # Record a whole bundle from session one ...
    recorded: list[bytes] = []

    def record(direction: str, n: int, frame: bytes) -> list[bytes]:
        if direction == "s2d" and n == 2:
            recorded.append(frame)
        return [frame]

    run(make_station(deployment), make_device(deployment), fault=record)
    assert parse_message(Frame(1, recorded[0][HEADER_LEN:-TRAILER_LEN])).type == "bundle"
    # ... and play it to the tablet in session two instead of the real one.
    station = make_station(deployment, nonce=b"\x02" * 32)
    device = make_device(deployment)

    def swap(direction: str, n: int, frame: bytes) -> list[bytes]:
        return recorded if (direction, n) == ("s2d", 2) else [frame]

    r = run(station, device, fault=swap)
    assert_refused_both_sides(r, Reason.REPLAYED_NONCE, by="device")
    assert not any(isinstance(e, dev.StoreBundle) for e in r.device_events)


def test_bundle_signed_by_a_key_the_tablet_does_not_pin(deployment: Deployment) -> None:
    rogue = ed25519.Ed25519PrivateKey.generate()
    r = run(make_station(deployment, key=rogue), make_device(deployment))
    assert_refused_both_sides(r, Reason.BAD_BUNDLE_SIGNATURE, by="device")
    assert not any(isinstance(e, dev.StoreBundle) for e in r.device_events)


def test_bundle_with_a_certificate_for_another_key(deployment: Deployment) -> None:
    def wrong_key(csr: x509.CertificateSigningRequest, serial: str) -> sta.Issued:
        other = ec.generate_private_key(ec.SECP256R1())
        forged_csr = dev.build_csr(other, serial)
        return deployment.issue(forged_csr, serial)

    r = run(make_station(deployment, issue=wrong_key), make_device(deployment))
    assert_refused_both_sides(r, Reason.CERTIFICATE_MISMATCH, by="device")


def test_bundle_with_a_certificate_not_from_the_pinned_ca(deployment: Deployment) -> None:
    other_ca_key = ec.generate_private_key(ec.SECP256R1())

    def other_ca(csr: x509.CertificateSigningRequest, serial: str) -> sta.Issued:
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
            .issuer_name(deployment.ca.subject)  # claims the right issuer, signed by another
            .public_key(csr.public_key())
            .serial_number(7)
            .not_valid_before(T0)
            .not_valid_after(T0 + timedelta(days=1))
            .sign(other_ca_key, hashes.SHA256())
        )
        return sta.Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), (), "7")

    r = run(make_station(deployment, issue=other_ca), make_device(deployment))
    assert_refused_both_sides(r, Reason.CERTIFICATE_MISMATCH, by="device")
    assert "CA" in r.station.failure.message  # type: ignore[union-attr]


def test_issuer_refusal_reaches_both_sides(deployment: Deployment) -> None:
    def refuse(csr: x509.CertificateSigningRequest, serial: str) -> sta.Issued:
        raise sta.IssueRefused(Reason.CSR_SUBJECT_MISMATCH, "the CA says no")

    r = run(make_station(deployment, issue=refuse), make_device(deployment))
    assert_refused_both_sides(r, Reason.CSR_SUBJECT_MISMATCH, by="station")
    assert "the CA says no" in r.device.failure.message  # type: ignore[union-attr]


def test_already_provisioned_in_the_inventory(deployment: Deployment) -> None:
    lookup = inventory(sta.InventoryEntry(SERIAL, certificate_serial="abc123"))
    r = run(make_station(deployment, lookup=lookup), make_device(deployment))
    assert_refused_both_sides(r, Reason.ALREADY_PROVISIONED, by="station")
    assert "abc123" in r.device.failure.message  # type: ignore[union-attr]


def test_tablet_that_is_already_provisioned_refuses(deployment: Deployment) -> None:
    r = run(make_station(deployment), make_device(deployment, provisioned=True))
    assert_refused_both_sides(r, Reason.ALREADY_PROVISIONED, by="device")


def test_reprovisioning_asked_for_revokes_the_old_certificate(deployment: Deployment) -> None:
    lookup = inventory(sta.InventoryEntry(SERIAL, certificate_serial="abc123"))
    station = make_station(deployment, lookup=lookup, reprovision=True)
    r = run(station, make_device(deployment, provisioned=True))
    assert r.station.state is sta.StationState.DONE
    assert r.device.state is dev.DeviceState.PROVISIONED
    register = next(e for e in r.station_events if isinstance(e, sta.Register))
    assert register.revoke == "abc123"
    assert register.certificate_serial != "abc123"


def test_registration_refused_by_the_server(deployment: Deployment) -> None:
    r = run(make_station(deployment), make_device(deployment), register_ok=False)
    assert_refused_both_sides(r, Reason.REGISTRATION_FAILED, by="station")
    # The tablet had stored its bundle; it never writes the provisioned marker.
    assert any(isinstance(e, dev.StoreBundle) for e in r.device_events)


def test_other_protocol_version_is_refused(deployment: Deployment) -> None:
    station = make_station(deployment)
    device = make_device(deployment)
    station.data_to_send()
    events = device.receive(encode_frame(b'{"type":"greet","nonce":"AA"}', version=2), 0.0)
    assert events == [device.failure]
    assert device.failure is not None and device.failure.reason is Reason.UNSUPPORTED_VERSION
    station.receive(device.data_to_send(), 0.0)
    assert station.failure is not None and station.failure.reason is Reason.UNSUPPORTED_VERSION
    assert station.failure.by_peer


def test_malformed_message_is_refused(deployment: Deployment) -> None:
    station = make_station(deployment)
    events = station.receive(encode_frame(b'{"type":"hello","serial":""}'), 0.0)
    assert events == [station.failure]
    assert station.failure is not None and station.failure.reason is Reason.INVALID_REQUEST
    refused = parse_message(Frame(1, split_frames(station.data_to_send())[-1][13:-4]))
    assert refused.type == "refused"


# --- an unreliable cable ---------------------------------------------------


@pytest.mark.parametrize(
    "lost",
    [("s2d", 1), ("d2s", 1), ("s2d", 2), ("d2s", 2), ("s2d", 3)],
    ids=["greet", "hello", "bundle", "ack", "done"],
)
def test_a_lost_frame_is_recovered_by_retransmission(
    deployment: Deployment, lost: tuple[str, int]
) -> None:
    def drop(direction: str, n: int, frame: bytes) -> list[bytes]:
        return [] if (direction, n) == lost else [frame]

    r = run(make_station(deployment), make_device(deployment), fault=drop)
    assert r.station.state is sta.StationState.DONE, r.station.failure
    assert r.device.state is dev.DeviceState.PROVISIONED, r.device.failure
    assert sum(isinstance(e, sta.Register) for e in r.station_events) == 1
    assert r.now >= 1.0  # recovered by a timer, not by luck


def test_every_frame_delivered_twice(deployment: Deployment) -> None:
    def twice(direction: str, n: int, frame: bytes) -> list[bytes]:
        return [frame, frame]

    r = run(make_station(deployment), make_device(deployment), fault=twice)
    assert r.station.state is sta.StationState.DONE
    assert r.device.state is dev.DeviceState.PROVISIONED
    assert sum(isinstance(e, sta.ConfirmSerial) for e in r.station_events) == 1
    assert sum(isinstance(e, dev.StoreBundle) for e in r.device_events) == 1
    assert sum(isinstance(e, sta.Register) for e in r.station_events) == 1


@pytest.mark.parametrize("which", [("s2d", 1), ("d2s", 1), ("s2d", 2), ("d2s", 2)])
@pytest.mark.parametrize("where", [2, 6, 20, -2])  # magic, length, body, body checksum
def test_a_corrupted_frame_is_dropped_and_recovered(
    deployment: Deployment, which: tuple[str, int], where: int
) -> None:
    def corrupt(direction: str, n: int, frame: bytes) -> list[bytes]:
        if (direction, n) != which:
            return [frame]
        b = bytearray(frame)
        b[where] ^= 0x40
        return [bytes(b)]

    r = run(make_station(deployment), make_device(deployment), fault=corrupt)
    assert r.station.state is sta.StationState.DONE, r.station.failure
    assert r.device.state is dev.DeviceState.PROVISIONED, r.device.failure


def test_frames_cut_into_single_bytes(deployment: Deployment) -> None:
    def bytewise(direction: str, n: int, frame: bytes) -> list[bytes]:
        return [frame[i : i + 1] for i in range(len(frame))]

    r = run(make_station(deployment), make_device(deployment), fault=bytewise)
    assert r.device.state is dev.DeviceState.PROVISIONED
    assert r.station.state is sta.StationState.DONE


# --- timeouts, on a fake clock ---------------------------------------------


def test_station_repeats_its_greeting_then_gives_up(deployment: Deployment) -> None:
    station = make_station(deployment)
    greets = len(split_frames(station.data_to_send()))
    now = 0.0
    while station.state is sta.StationState.GREETING:
        deadline = station.next_deadline()
        assert deadline is not None and deadline > now
        now = deadline
        station.timer(now)
        greets += sum(
            parse_message(Frame(1, f[13:-4])).type == "greet"
            for f in split_frames(station.data_to_send())
        )
    assert station.failure is not None and station.failure.reason is Reason.ENROLMENT_TIMEOUT
    assert now == sta.Timeouts().hello
    assert greets == int(sta.Timeouts().hello / sta.Timeouts().retransmit)


def test_station_gives_up_on_an_operator_who_never_answers(deployment: Deployment) -> None:
    station = make_station(deployment)
    device = make_device(deployment)
    device.receive(station.data_to_send(), 0.0)
    events = station.receive(device.data_to_send(), 0.0)
    assert any(isinstance(e, sta.ConfirmSerial) for e in events)
    assert station.timer(sta.Timeouts().operator - 0.001) == []
    [failed] = station.timer(sta.Timeouts().operator)
    assert isinstance(failed, sta.Failed) and failed.reason is Reason.ENROLMENT_TIMEOUT
    device.receive(station.data_to_send(), 1.0)
    assert device.failure is not None and device.failure.reason is Reason.ENROLMENT_TIMEOUT
    assert station.confirm(True, 400.0) == []  # too late: nothing is issued


def test_tablet_gives_up_waiting_for_a_bundle(deployment: Deployment) -> None:
    station = make_station(deployment)
    device = make_device(deployment)
    device.receive(station.data_to_send(), 5.0)
    assert device.next_deadline() == 5.0 + dev.DeviceTimeouts().bundle
    [failed] = device.timer(5.0 + dev.DeviceTimeouts().bundle)
    assert isinstance(failed, dev.Failed) and failed.reason is Reason.ENROLMENT_TIMEOUT


def test_tablet_repeats_its_ack_until_done_then_gives_up(deployment: Deployment) -> None:
    def no_done(direction: str, n: int, frame: bytes) -> list[bytes]:
        return [] if direction == "s2d" and n >= 3 else [frame]

    r = run(make_station(deployment), make_device(deployment), fault=no_done)
    assert r.device.failure is not None and r.device.failure.reason is Reason.ENROLMENT_TIMEOUT
    assert r.sent["d2s"].count("ack") > 10
    assert not any(isinstance(e, dev.Provisioned) for e in r.device_events)


def test_a_restarted_station_starts_a_fresh_session_on_the_tablet(deployment: Deployment) -> None:
    device = make_device(deployment)
    first = make_station(deployment, nonce=b"\x05" * 32)
    device.receive(first.data_to_send(), 0.0)
    first_hello = parse_message(Frame(1, device.data_to_send()[13:-4]))
    second = make_station(deployment, nonce=b"\x06" * 32)
    r = run(second, device)
    assert r.device.state is dev.DeviceState.PROVISIONED
    store = next(e for e in r.device_events if isinstance(e, dev.StoreBundle))
    assert isinstance(first_hello, Hello) and store.bundle.nonce == b64e(b"\x06" * 32)
    assert b64d(first_hello.nonce) == b"\x05" * 32


# --- framing: random bytes never crash -------------------------------------


@given(st.binary(max_size=4096))
def test_decoder_survives_any_bytes(data: bytes) -> None:
    decoder = FrameDecoder()
    for item in decoder.feed(data):
        assert isinstance(item, Frame | Garbled)


@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=5),
    st.binary(max_size=50).filter(lambda b: MAGIC[:1] not in b),
    st.lists(st.integers(min_value=1, max_value=64), min_size=1, max_size=40),
)
def test_frames_survive_any_cutting_and_leading_noise(
    bodies: list[bytes], noise: bytes, cuts: list[int]
) -> None:
    stream = noise + b"".join(encode_frame(b) for b in bodies)
    decoder = FrameDecoder()
    out: list[Frame | Garbled] = []
    i = 0
    k = 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        out += decoder.feed(stream[i : i + step])
        i += step
        k += 1
    assert [f.body for f in out if isinstance(f, Frame)] == bodies


@given(st.binary(max_size=2048))
def test_machines_survive_any_bytes(data: bytes) -> None:
    d = _DEPLOYMENT
    station = make_station(d)
    device = make_device(d)
    station.receive(data, 0.0)
    device.receive(data, 0.0)
    framed = encode_frame(data)
    station.receive(framed, 0.0)
    device.receive(framed, 0.0)
    # Garbage inside a good frame is refused as invalid, never a crash.
    if station.failure is not None:
        assert station.failure.reason in (Reason.INVALID_REQUEST, Reason.UNSUPPORTED_VERSION)


_DEPLOYMENT = make_deployment()


# --- any cable: random loss, doubling and corruption ----------------------------

FAULTS = st.sampled_from(["deliver", "deliver", "deliver", "drop", "double", "corrupt", "split"])


@given(st.lists(FAULTS, max_size=40), st.integers(min_value=0, max_value=2**16))
def test_any_fault_pattern_ends_consistently(pattern: list[str], seed: int) -> None:
    """Whatever the cable does: no crash, at most one certificate issued and one
    registration, and a tablet that leaves enrolment mode was registered."""
    d = _DEPLOYMENT
    issued_before = len(d.issued)

    def fault(direction: str, n: int, frame: bytes) -> list[bytes]:
        k = (n * 2 + (direction == "d2s")) - 2
        what = pattern[k] if k < len(pattern) else "deliver"
        if what == "drop":
            return []
        if what == "double":
            return [frame, frame]
        if what == "corrupt":
            b = bytearray(frame)
            b[(seed + n) % len(b)] ^= 1 << (seed % 8)
            return [bytes(b)]
        if what == "split":
            cut = 1 + (seed + n) % (len(frame) - 1)
            return [frame[:cut], frame[cut:]]
        return [frame]

    r = run(make_station(d), make_device(d), fault=fault, max_steps=2000)
    assert r.station.state in sta.TERMINAL and r.device.state in dev.TERMINAL
    assert len(d.issued) - issued_before <= 1
    assert sum(isinstance(e, sta.Register) for e in r.station_events) <= 1
    assert sum(isinstance(e, dev.StoreBundle) for e in r.device_events) <= 1
    if r.device.state is dev.DeviceState.PROVISIONED:
        assert r.station.state is sta.StationState.DONE
    if r.station.state is sta.StationState.FAILED:
        assert r.device.state is not dev.DeviceState.PROVISIONED
    if "corrupt" not in pattern and len(pattern) < 8:
        # A few losses and doublings are always recovered by retransmission.
        assert r.device.state is dev.DeviceState.PROVISIONED, (pattern, r.device.failure)


def test_control_characters_from_a_tablet_are_refused(deployment: Deployment) -> None:
    """Strings a tablet sends reach the operator's terminal: no escape sequences."""
    station = make_station(deployment)
    hello = forge(b"\x01" * 32).model_dump()
    hello["model"] = "Tab\x1b[2J"
    events = station.receive(encode_frame(canonical_json(hello)), 0.0)
    assert events == [station.failure]
    assert station.failure is not None and station.failure.reason is Reason.INVALID_REQUEST
    assert "\x1b" not in station.failure.message


def test_a_refusal_detail_with_control_characters_is_still_sent() -> None:
    refused = refusal(Reason.REGISTRATION_FAILED, "line one\nline two\x1b[31m")
    assert "\n" not in refused.message and "\x1b" not in refused.message
    assert "line one?line two?[31m" in refused.message


def test_two_tablets_claiming_one_serial_at_once(deployment: Deployment) -> None:
    """A clone plugged in beside the real tablet: the second session is refused."""
    in_flight: set[str] = set()

    def claim(serial: str) -> bool:
        if serial in in_flight:
            return False
        in_flight.add(serial)
        return True

    def station(nonce: bytes) -> sta.StationEnrolment:
        return sta.StationEnrolment(
            nonce=nonce,
            now=0.0,
            config=deployment.config(),
            lookup=inventory(sta.InventoryEntry(SERIAL)),
            issue=deployment.issue,
            started_at=T0,
            claim=claim,
        )

    first, second = station(b"\x03" * 32), station(b"\x04" * 32)
    real, clone = make_device(deployment), make_device(deployment)
    real.receive(first.data_to_send(), 0.0)
    clone.receive(second.data_to_send(), 0.0)
    assert any(isinstance(e, sta.ConfirmSerial) for e in first.receive(real.data_to_send(), 0.0))
    [failed] = second.receive(clone.data_to_send(), 0.0)
    assert isinstance(failed, sta.Failed) and failed.reason is Reason.CONFLICT
    assert "in progress" in failed.message
    clone.receive(second.data_to_send(), 0.0)
    assert clone.failure is not None and clone.failure.reason is Reason.CONFLICT
    assert first.state is sta.StationState.CONFIRMING  # the first session goes on
