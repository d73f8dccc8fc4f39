"""Key and secret files: written atomically, 0600, in 0700 directories.

The one place that writes private keys to disk, so that permissions are
right everywhere: the CA, the device listener, the grant key, the audit key,
the station's provisioning key and each tablet's own key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 and tighten it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` so that no reader ever sees a partial or world-readable file."""
    ensure_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_public(path: Path, data: bytes) -> None:
    """Public material (certificates, public keys): 0644, atomically."""
    write_secret(path, data, mode=0o644)


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def save_private_key(path: Path, key: PrivateKey) -> None:
    write_secret(path, private_key_pem(key))


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: unsupported key type")
    return key


def load_ed25519_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    key = load_private_key(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 key")
    return key


def load_ed25519_public_key(path: Path) -> ed25519.Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def load_or_create_ed25519(path: Path) -> ed25519.Ed25519PrivateKey:
    """The signing keys of the server (grants, audit checkpoints) and the station."""
    if path.exists():
        return load_ed25519_private_key(path)
    key = ed25519.Ed25519PrivateKey.generate()
    save_private_key(path, key)
    write_public(path.with_suffix(".pub"), public_key_pem(key.public_key()))
    return key


def derived_secret(key: ed25519.Ed25519PrivateKey, purpose: bytes) -> bytes:
    """A 256-bit secret for ``purpose`` from one of the server's keys (HKDF-SHA256).

    Every node of a cluster holds the same PKI directory, so they derive the
    same secret without another file to copy; another purpose gives an
    unrelated secret, and the key cannot be recovered from it.
    """
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(raw)
