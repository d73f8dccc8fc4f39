"""The deployment's certificate authority as files: where each key and certificate
lives, loading the CA, and the one format of certificate serials.

Certificate serials are written as lowercase hexadecimal without leading
zeros (``certificate_serial_text``): the one format of
``devices.certificate_serial`` and ``revoked_certificates.serial``.
"""


from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

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


CLOCK_SKEW: Final = timedelta(minutes=5)  # notBefore a little in the past


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


def serial_int(serial: str | int) -> int:
    if isinstance(serial, int):
        return serial
    try:
        return int(serial, 16)
    except ValueError as exc:
        raise ValueError(f"not a hexadecimal certificate serial: {serial!r}") from exc


def now_or_utc(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def subject_key_id(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def authority_key_id(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def load_ca(pki_dir: Path) -> CertificateAuthority:
    paths = PkiPaths(pki_dir)
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        raise PkiError(PkiError.CA_MISSING, f"no CA in {pki_dir}; run `kiosk admin ca init`")
    cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = keys.load_private_key(paths.ca_key)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(PkiError.CA_MISSING, f"{paths.ca_key} is not an EC key")
    return CertificateAuthority(paths, cert, key)
