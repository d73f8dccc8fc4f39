"""The deployment's certificate authority: device identity and revocation.

ARCHITECTURE.md, Trust: one CA per deployment signs the device listener's
certificate and every tablet's certificate; revoked serials are refused at
the TLS handshake (through ``crl.pem``). The grant and audit signing keys
(Ed25519) live beside it.

Key types: EC P-256 for the CA and every TLS certificate (what OpenSSL and
Mozilla's "modern" profile handle best: ECDSA with SHA-256), Ed25519 for the
grant and audit signatures. Every private key is written through
``kiosk.crypto.keys`` (0600 files in a 0700 directory).

Where the files live and the serial format: ``kiosk.crypto.authority``;
revocation: ``kiosk.crypto.revocation``.
"""


from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.crypto import keys
from kiosk.crypto.authority import (
    CLOCK_SKEW,
    CertificateAuthority,
    PkiError,
    PkiPaths,
    authority_key_id,
    load_ca,
    now_or_utc,
    subject_key_id,
)
from kiosk.crypto.revocation import ensure_crl

CA_DAYS: Final = 3650
# Mozilla's "modern" profile allows server certificates of at most 90 days;
# `kiosk admin ca init` renews the listener's certificate when a third is left.
LISTENER_DAYS: Final = 90
LISTENER_RENEW_BEFORE: Final = timedelta(days=30)
DEVICE_DAYS: Final = 825


DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1", "::1")

_SERIAL_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CURVE: Final = ec.SECP256R1()
P256: Final = "secp256r1"


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVE)


def _make_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = new_ec_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kiosk deployment"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"Kiosk CA {secrets.token_hex(4)}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        # Path length 0: the CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(subject_key_id(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
                raise PkiError(PkiError.BAD_HOST, host) from None
            names.append(x509.DNSName(host))
    if not names:
        raise PkiError(PkiError.BAD_HOST, "at least one host name or address is needed")
    return x509.SubjectAlternativeName(names)


def issue_server_certificate(
    ca: CertificateAuthority,
    public_key: ec.EllipticCurvePublicKey,
    hosts: Sequence[str],
    *,
    days: int = LISTENER_DAYS,
    now: datetime | None = None,
) -> x509.Certificate:
    at = now_or_utc(now)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - CLOCK_SKEW)
        .not_valid_after(at - CLOCK_SKEW + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(subject_key_id(public_key), critical=False)
        .add_extension(authority_key_id(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def check_device_serial(serial: str) -> str:
    if not _SERIAL_RE.fullmatch(serial):
        raise PkiError(PkiError.BAD_DEVICE_SERIAL, "1-64 characters of A-Z a-z 0-9 . _ -")
    return serial


def make_device_csr(
    key: ec.EllipticCurvePrivateKey, device_serial: str
) -> x509.CertificateSigningRequest:
    """What a tablet sends: its own public key, its hardware serial as the subject."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_serial)]))
        .sign(key, hashes.SHA256())
    )


def issue_device_certificate(
    ca: CertificateAuthority,
    csr: x509.CertificateSigningRequest,
    device_serial: str,
    *,
    days: int = DEVICE_DAYS,
    now: datetime | None = None,
) -> x509.Certificate:
    """A tablet's client certificate. The tablet IS this certificate from now on.

    The CSR must be signed by the key it carries (proof of possession) and
    name exactly the device's hardware serial; only the subject and the key
    are taken from it, every extension is set here.
    """
    check_device_serial(device_serial)
    if not csr.is_signature_valid:
        raise PkiError(PkiError.BAD_CSR_SIGNATURE, "the CSR is not signed by its own key")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name != P256:
        raise PkiError(PkiError.BAD_CSR_KEY, "device keys must be EC P-256")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(csr.subject) != 1 or len(cns) != 1 or cns[0].value != device_serial:
        raise PkiError(PkiError.CSR_SUBJECT_MISMATCH, "the CSR must name only CN=<device serial>")
    at = now_or_utc(now)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_serial)]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(at - CLOCK_SKEW)
        .not_valid_after(at + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(subject_key_id(public_key), critical=False)
        .add_extension(authority_key_id(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_listener(ca: CertificateAuthority, hosts: Sequence[str], now: datetime) -> None:
    key = new_ec_key()
    cert = issue_server_certificate(ca, key.public_key(), hosts, now=now)
    keys.save_private_key(ca.paths.listener_key, key)
    keys.write_public(ca.paths.listener_cert, pem(cert))


def _listener_hosts(cert: x509.Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in san}


def init_ca(
    pki_dir: Path, hosts: Sequence[str] = DEFAULT_HOSTS, *, now: datetime | None = None
) -> CertificateAuthority:
    """Create what is missing; safe to run again.

    An existing CA and signing keys are kept (replacing them would orphan
    every tablet). The listener's certificate is re-issued when the host list
    changed or less than LISTENER_RENEW_BEFORE is left.
    """
    at = now_or_utc(now)
    hosts = list(dict.fromkeys(hosts or DEFAULT_HOSTS))
    paths = PkiPaths(keys.ensure_private_dir(pki_dir))
    _san(hosts)  # refuse bad host names before writing anything
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca = load_ca(pki_dir)
    else:
        cert, key = _make_ca(at)
        keys.save_private_key(paths.ca_key, key)
        keys.write_public(paths.ca_cert, pem(cert))
        ca = CertificateAuthority(paths, cert, key)
    keys.load_or_create_ed25519(paths.grant_key)
    keys.load_or_create_ed25519(paths.audit_key)
    current = _current_listener(ca)
    if current is None or _listener_hosts(current) != _listener_hosts_of(hosts):
        _write_listener(ca, hosts, at)
    else:
        renew_listener_if_due(ca, now=at)
    ensure_crl(ca, now=at)
    return ca


def _current_listener(ca: CertificateAuthority) -> x509.Certificate | None:
    paths = ca.paths
    if not (paths.listener_cert.exists() and paths.listener_key.exists()):
        return None
    return x509.load_pem_x509_certificate(paths.listener_cert.read_bytes())


def renew_listener_if_due(ca: CertificateAuthority, *, now: datetime | None = None) -> bool:
    """Re-issue the listener's certificate for the same hosts when it runs short.

    The running device listener calls this now and then and picks the new
    certificate up without a restart (``tlsconfig.DeviceTlsContexts``).
    """
    at = now_or_utc(now)
    current = _current_listener(ca)
    if current is not None and (
        current.not_valid_after_utc - at >= LISTENER_RENEW_BEFORE
        and current.issuer == ca.cert.subject
    ):
        return False
    hosts = sorted(_listener_hosts(current)) if current is not None else list(DEFAULT_HOSTS)
    _write_listener(ca, hosts, at)
    return True


def _listener_hosts_of(hosts: Sequence[str]) -> set[str]:
    return {str(n.value) for n in _san(hosts)}
