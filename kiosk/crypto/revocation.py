"""Revocation: the CA's certificate revocation list (R18).

Revoked serials are refused at the device listener's TLS handshake through
``crl.pem``; cutting a revoked tablet's live connection is the listener's job.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from kiosk.crypto import keys
from kiosk.crypto.authority import (
    CLOCK_SKEW,
    CertificateAuthority,
    PkiError,
    PkiPaths,
    authority_key_id,
    certificate_serial_text,
    load_ca,
    now_or_utc,
    serial_int,
)

# A CRL past its nextUpdate makes OpenSSL refuse every handshake; it is
# re-signed whenever less than this is left (see ensure_crl).
CRL_DAYS: Final = 90
CRL_RENEW_BEFORE: Final = timedelta(days=30)

# Signing and writing run on worker threads (issue 12: the server's event loop never
# waits for them); one read-change-write of the CRL at a time, or a revocation is lost.
_CRL_LOCK = threading.Lock()


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
        .add_extension(authority_key_id(ca), critical=False)
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
    at = now_or_utc(now)
    with _CRL_LOCK:
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
    at = now_or_utc(now)
    ca = load_ca(pki_dir)
    serial = serial_int(cert_serial)
    with _CRL_LOCK:
        entries = _entries(ca)
        if serial in entries:
            return False
        entries[serial] = at
        _write_crl(ca, entries.items(), at)
    return True


async def revoke_off_loop(pki_dir: Path, cert_serial: str | int, now: datetime | None) -> bool:
    """``revoke`` on a worker thread: the CA's key signs the new CRL there."""
    return await asyncio.to_thread(revoke, pki_dir, cert_serial, now=now)
