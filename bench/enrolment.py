"""Enrolment bench: what the protocol costs on top of the cryptography it cannot avoid.

Run: ``.venv/bin/python bench/enrolment.py`` (a few seconds).

1. Pure protocol: a whole enrolment between the station's and the tablet's
   machines in memory (greet, hello, checks, issue, bundle, verify, ack, done),
   against a baseline in the same run that does only the unavoidable
   cryptography of one enrolment (P-256 key, CSR, nonce signature and its
   check, CSR check, certificate issue, Ed25519 bundle signature and check,
   chain check). Prints both and the ratio.
2. Framing: the frame decoder's throughput on a stream of bundle-sized frames
   cut into 64-byte reads (a CDC-ACM packet), against ``bytes.find`` over the
   same stream (the least any resynchronising reader does). Prints MB/s and
   the ratio.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from kiosk.enrolment import station as sta
from kiosk.enrolment import tablet as dev
from kiosk.enrolment.framing import MAGIC, FrameDecoder, encode_frame

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SERIAL = "KT-0001"


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


CA_KEY, CA = make_ca()
STATION_KEY = ed25519.Ed25519PrivateKey.generate()
GRANT_PEM = (
    ed25519.Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


def issue_cert(public_key: ec.EllipticCurvePublicKey, serial: str) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, serial)]))
        .issuer_name(CA.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=825))
        .sign(CA_KEY, hashes.SHA256())
    )


def issue(csr: x509.CertificateSigningRequest, serial: str) -> sta.Issued:
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    cert = issue_cert(key, serial)
    return sta.Issued(
        cert.public_bytes(serialization.Encoding.PEM).decode(), (), format(cert.serial_number, "x")
    )


def one_enrolment() -> None:
    station = sta.StationEnrolment(
        nonce=b"\x07" * 32,
        now=0.0,
        config=sta.StationConfig(
            STATION_KEY,
            CA.public_bytes(serialization.Encoding.PEM).decode(),
            "wss://server/device/v1",
            GRANT_PEM,
            {"facility_id": "f"},
        ),
        lookup={SERIAL: sta.InventoryEntry(SERIAL)}.get,
        issue=issue,
        started_at=T0,
    )
    device = dev.DeviceEnrolment(
        serial=SERIAL, model="m", station_keys=[STATION_KEY.public_key()], provisioned=False
    )
    while station.state not in sta.TERMINAL or device.state not in dev.TERMINAL:
        for e in device.receive(station.data_to_send(), 0.0):
            if isinstance(e, dev.StoreBundle):
                device.stored(0.0)
        for e in station.receive(device.data_to_send(), 0.0):
            if isinstance(e, sta.ConfirmSerial):
                station.confirm(True, 0.0)
            elif isinstance(e, sta.Register):
                station.registered(True, 0.0, "dev-1")
    assert station.state is sta.StationState.DONE and device.state is dev.DeviceState.PROVISIONED


def crypto_only() -> None:
    """The cryptography one enrolment needs, with nothing around it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = dev.build_csr(key, SERIAL)
    der = csr.public_bytes(serialization.Encoding.DER)
    sig = key.sign(b"n" * 32 + der, ec.ECDSA(hashes.SHA256()))
    loaded = x509.load_pem_x509_csr(csr.public_bytes(serialization.Encoding.PEM))
    assert loaded.is_signature_valid
    public = loaded.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(sig, b"n" * 32 + der, ec.ECDSA(hashes.SHA256()))
    cert = issue_cert(public, SERIAL)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    bsig = STATION_KEY.sign(pem)
    STATION_KEY.public_key().verify(bsig, pem)
    x509.load_pem_x509_certificate(pem).verify_directly_issued_by(CA)


def per_call(fn: Callable[[], None], rounds: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - start) / rounds


def main() -> None:
    rounds = 200
    proto = per_call(one_enrolment, rounds)
    base = per_call(crypto_only, rounds)
    print(f"enrolment, pure protocol : {proto * 1e3:7.3f} ms per enrolment")
    print(f"baseline, crypto only    : {base * 1e3:7.3f} ms per enrolment")
    print(f"ratio protocol/baseline  : {proto / base:7.2f}")

    frame = encode_frame(b"x" * 4000)
    stream = (frame + b"\x00garbage") * 500
    chunks = [stream[i : i + 64] for i in range(0, len(stream), 64)]

    def decode() -> None:
        decoder = FrameDecoder()
        n = sum(len(decoder.feed(c)) for c in chunks)
        assert n == 500

    def scan() -> None:
        i = n = 0
        while (i := stream.find(MAGIC, i)) >= 0:
            i += 1
            n += 1
        assert n == 500

    dec = per_call(decode, 20)
    fin = per_call(scan, 20)
    mb = len(stream) / 1e6
    print(f"frame decoder, 64 B reads: {mb / dec:8.1f} MB/s")
    print(f"baseline, bytes.find     : {mb / fin:8.1f} MB/s")
    print(f"ratio decoder/baseline   : {dec / fin:8.1f} (time per byte)")


if __name__ == "__main__":
    main()
