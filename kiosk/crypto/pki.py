"""The deployment's certificate authority: device identity and revocation.

ARCHITECTURE.md, Trust: one CA per deployment signs the device listener's
certificate and every tablet's certificate; revoked serials are refused at
the TLS handshake (through ``crl.pem``). The grant and audit signing keys
(Ed25519) live beside it.

Key types: EC P-256 for the CA and every TLS certificate (what OpenSSL and
Mozilla's "modern" profile handle best: ECDSA with SHA-256), Ed25519 for the
grant and audit signatures. Every private key is written through
``kiosk.crypto.keys`` (0600 files in a 0700 directory).

Certificate serials are written as lowercase hexadecimal without leading
zeros (``certificate_serial_text``): the one format of
``devices.certificate_serial`` and ``revoked_certificates.serial``.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.crypto import keys

CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca.key"
LISTENER_CERT: Final = "device-listener.pem"
LISTENER_KEY: Final = "device-listener.key"
GRANT_KEY: Final = "grant.key"
GRANT_PUB: Final = "grant.pub"
AUDIT_KEY: Final = "audit.key"
AUDIT_PUB: Final = "audit.pub"
CRL: Final = "crl.pem"

CA_DAYS: Final = 3650
# Mozilla's "modern" profile allows server certificates of at most 90 days;
# `kiosk admin ca init` renews the listener's certificate when a third is left.
LISTENER_DAYS: Final = 90
LISTENER_RENEW_BEFORE: Final = timedelta(days=30)
DEVICE_DAYS: Final = 825
# A CRL past its nextUpdate makes OpenSSL refuse every handshake; it is
# re-signed whenever less than this is left (see ensure_crl).
CRL_DAYS: Final = 90
CRL_RENEW_BEFORE: Final = timedelta(days=30)
CLOCK_SKEW: Final = timedelta(minutes=5)  # notBefore a little in the past
DEFAULT_HOSTS: Final = ("localhost", "127.0.0.1", "::1")

_SERIAL_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CURVE: Final = ec.SECP256R1()
P256: Final = "secp256r1"


class PkiError(Exception):
    """A refused PKI operation; ``code`` is a stable string for callers and logs."""

    BAD_CSR_SIGNATURE: Final = "bad_csr_signature"
    CSR_SUBJECT_MISMATCH: Final = "csr_subject_mismatch"
    BAD_CSR_KEY: Final = "bad_csr_key"
    BAD_DEVICE_SERIAL: Final = "bad_device_serial"
    CA_MISSING: Final = "ca_missing"
    BAD_HOST: Final = "bad_host"

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PkiPaths:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / CA_CERT

    @property
    def ca_key(self) -> Path:
        return self.dir / CA_KEY

    @property
    def listener_cert(self) -> Path:
        return self.dir / LISTENER_CERT

    @property
    def listener_key(self) -> Path:
        return self.dir / LISTENER_KEY

    @property
    def grant_key(self) -> Path:
        return self.dir / GRANT_KEY

    @property
    def grant_pub(self) -> Path:
        return self.dir / GRANT_PUB

    @property
    def audit_key(self) -> Path:
        return self.dir / AUDIT_KEY

    @property
    def audit_pub(self) -> Path:
        return self.dir / AUDIT_PUB

    @property
    def crl(self) -> Path:
        return self.dir / CRL


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    paths: PkiPaths
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def certificate_serial_text(cert: x509.Certificate | int) -> str:
    serial = cert if isinstance(cert, int) else cert.serial_number
    return format(serial, "x")


def _serial_int(serial: str | int) -> int:
    if isinstance(serial, int):
        return serial
    try:
        return int(serial, 16)
    except ValueError as exc:
        raise ValueError(f"not a hexadecimal certificate serial: {serial!r}") from exc


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(_CURVE)


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _aki(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _make_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_ec_key()
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
        .add_extension(_ski(key.public_key()), critical=False)
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
    at = _now(now)
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
        .add_extension(_ski(public_key), critical=False)
        .add_extension(_aki(ca), critical=False)
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
    at = _now(now)
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
        .add_extension(_ski(public_key), critical=False)
        .add_extension(_aki(ca), critical=False)
        .sign(ca.key, hashes.SHA256())
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_listener(ca: CertificateAuthority, hosts: Sequence[str], now: datetime) -> None:
    key = _new_ec_key()
    cert = issue_server_certificate(ca, key.public_key(), hosts, now=now)
    keys.save_private_key(ca.paths.listener_key, key)
    keys.write_public(ca.paths.listener_cert, _pem(cert))


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
    at = _now(now)
    hosts = list(dict.fromkeys(hosts or DEFAULT_HOSTS))
    paths = PkiPaths(keys.ensure_private_dir(pki_dir))
    _san(hosts)  # refuse bad host names before writing anything
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca = load_ca(pki_dir)
    else:
        cert, key = _make_ca(at)
        keys.save_private_key(paths.ca_key, key)
        keys.write_public(paths.ca_cert, _pem(cert))
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
    at = _now(now)
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


def load_ca(pki_dir: Path) -> CertificateAuthority:
    paths = PkiPaths(pki_dir)
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        raise PkiError(PkiError.CA_MISSING, f"no CA in {pki_dir}; run `kiosk admin ca init`")
    cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = keys.load_private_key(paths.ca_key)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(PkiError.CA_MISSING, f"{paths.ca_key} is not an EC key")
    return CertificateAuthority(paths, cert, key)


# --- revocation -------------------------------------------------------------------


def load_crl(paths: PkiPaths) -> x509.CertificateRevocationList | None:
    if not paths.crl.exists():
        return None
    return x509.load_pem_x509_crl(paths.crl.read_bytes())


def revoked_serials(pki_dir: Path) -> set[str]:
    crl = load_crl(PkiPaths(pki_dir))
    return set() if crl is None else {certificate_serial_text(r.serial_number) for r in crl}


def _write_crl(
    ca: CertificateAuthority, entries: Iterable[tuple[int, datetime]], now: datetime
) -> x509.CertificateRevocationList:
    previous = load_crl(ca.paths)
    number = 1
    if previous is not None:
        try:
            ext = previous.extensions.get_extension_for_class(x509.CRLNumber)
            number = ext.value.crl_number + 1
        except x509.ExtensionNotFound:
            number = 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - CLOCK_SKEW)
        .next_update(now + timedelta(days=CRL_DAYS))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(_aki(ca), critical=False)
    )
    for serial, when in sorted(entries):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    keys.write_public(ca.paths.crl, crl.public_bytes(serialization.Encoding.PEM))
    return crl


def _entries(ca: CertificateAuthority) -> dict[int, datetime]:
    crl = load_crl(ca.paths)
    if crl is None:
        return {}
    if crl.issuer != ca.cert.subject or not crl.is_signature_valid(ca.key.public_key()):
        raise PkiError(PkiError.CA_MISSING, f"{ca.paths.crl} is not signed by this CA")
    return {r.serial_number: r.revocation_date_utc for r in crl}


def ensure_crl(ca: CertificateAuthority, *, now: datetime | None = None) -> None:
    """Write a CRL if there is none, re-sign it if its nextUpdate comes close."""
    at = _now(now)
    crl = load_crl(ca.paths)
    if crl is not None:
        next_update = crl.next_update_utc
        if next_update is not None and next_update - at > CRL_RENEW_BEFORE:
            return
    _write_crl(ca, _entries(ca).items(), at)


def revoke(pki_dir: Path, cert_serial: str | int, *, now: datetime | None = None) -> bool:
    """Add a certificate serial to the CRL. True if it was not revoked before.

    The device listener loads the new CRL for the next handshake; cutting the
    live connection is DeviceHub.revoke_device's job.
    """
    at = _now(now)
    ca = load_ca(pki_dir)
    entries = _entries(ca)
    serial = _serial_int(cert_serial)
    if serial in entries:
        return False
    entries[serial] = at
    _write_crl(ca, entries.items(), at)
    return True


# --- local enrolment (demo and tests) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrolledDevice:
    serial: str
    certificate_serial: str
    cert: Path
    key: Path
    ca_cert: Path
    grant_pub: Path


def enrol_local(
    pki_dir: Path,
    serial: str,
    out_dir: Path,
    *,
    days: int = DEVICE_DAYS,
    now: datetime | None = None,
) -> EnrolledDevice:
    """Enrol a tablet on this machine: what the USB station does, without the USB.

    The device key is made here and written only to ``out_dir`` (the agent's
    directory); the CA issues from a CSR exactly as over USB.
    """
    check_device_serial(serial)
    ca = load_ca(pki_dir)
    out = keys.ensure_private_dir(out_dir)
    key = _new_ec_key()
    cert = issue_device_certificate(ca, make_device_csr(key, serial), serial, days=days, now=now)
    enrolled = EnrolledDevice(
        serial=serial,
        certificate_serial=certificate_serial_text(cert),
        cert=out / "device.pem",
        key=out / "device.key",
        ca_cert=out / "ca.pem",
        grant_pub=out / "grant.pub",
    )
    keys.save_private_key(enrolled.key, key)
    keys.write_public(enrolled.cert, _pem(cert))
    keys.write_public(enrolled.ca_cert, ca.paths.ca_cert.read_bytes())
    keys.write_public(enrolled.grant_pub, ca.paths.grant_pub.read_bytes())
    return enrolled
