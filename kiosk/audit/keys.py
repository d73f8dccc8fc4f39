"""The audit log's key files and its name (the checkpoint origin).

``<pki_dir>/audit.key`` signs chain checkpoints and tree heads; ``audit.pub``
(PEM) verifies them. Outside the prison, the key travels as a C2SP verifier
key (``kiosk admin audit key``) bound to the log's origin, such as
``kiosk.example.org/audit``: set ``[audit] origin`` before any witness
starts following the log, since witnesses and receipts are tied to it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.audit.chain import AUDIT_KEY_FILE, AUDIT_PUBLIC_KEY_FILE
from kiosk.audit.note import ED25519, Verifier, check_name, verifier_for
from kiosk.crypto.keys import (
    load_ed25519_private_key,
    load_ed25519_public_key,
    load_or_create_ed25519,
)

FALLBACK_ORIGIN = "localhost/kiosk-audit"


def load_signing_key(pki_dir: Path) -> Ed25519PrivateKey:
    """The server's checkpoint key, created (with ``audit.pub``) on first use."""
    return load_or_create_ed25519(pki_dir / AUDIT_KEY_FILE)


def load_verify_key(pki_dir: Path) -> Ed25519PublicKey:
    """``audit.pub`` (or the public half of ``audit.key``); FileNotFoundError if neither."""
    pub = pki_dir / AUDIT_PUBLIC_KEY_FILE
    if pub.exists():
        return load_ed25519_public_key(pub)
    key = pki_dir / AUDIT_KEY_FILE
    if key.exists():
        return load_ed25519_private_key(key).public_key()
    raise FileNotFoundError(f"no audit key in {pki_dir} ({AUDIT_PUBLIC_KEY_FILE})")


def log_origin(configured: str, public_url: str) -> str:
    """``[audit] origin``, else the public address's host and path with ``/audit``."""
    if configured:
        return check_name(configured)
    parts = urlsplit(public_url)
    if parts.hostname:
        path = parts.path.rstrip("/")
        return check_name(f"{parts.hostname}{path}/audit")
    return FALLBACK_ORIGIN


def log_verifier(pki_dir: Path, origin: str) -> Verifier:
    return verifier_for(origin, ED25519, load_verify_key(pki_dir))
