"""Signed notes (C2SP signed-note), checkpoints (C2SP tlog-checkpoint) and witness
cosignatures (C2SP tlog-cosignature, Ed25519 v1), so that transparency tooling and
outside witnesses can read and sign what the audit log publishes.

A note is text ending in a newline, a blank line, then signature lines
``— <key name> <base64(4-byte key id || signature)>``. The key id is the first
four bytes of ``SHA-256(key name || "\\n" || type || public key)``: type 0x01
for the log's own Ed25519 signature over the text, 0x04 for a cosignature,
whose signature is ``8-byte big-endian time || Ed25519 signature`` over
``"cosignature/v1\\ntime <t>\\n" || text``. A checkpoint's text is the log's
origin, the tree size in decimal and the base64 root hash, one per line.

Public keys travel as verifier keys: ``<name>+<key id hex>+<base64(type || key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from kiosk.audit.merkle import HASH_SIZE

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014"
MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURES = 64
_NAME = re.compile(r"[^\s+]+")
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


class NoteError(ValueError):
    """Text that is not a well-formed note, checkpoint or key."""


def b64decode(text: str, what: str) -> bytes:
    """Standard base64, and only its one canonical spelling (no malleable padding bits)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(name: str, kind: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([kind]) + public).digest()[:4]


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise NoteError(f"key name {name!r} is empty or has spaces or '+'")
    return name


# --- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes  # what follows the key id

    def line(self) -> str:
        return f"{DASH} {self.name} {b64(self.key_id + self.signature)}\n"


@dataclass(frozen=True)
class Note:
    text: str  # ends with "\n"
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, *more: Signature) -> Note:
        known = {s.line() for s in self.signatures}
        extra = tuple(s for s in more if s.line() not in known)
        return Note(self.text, self.signatures + extra)


def parse_note(data: str) -> Note:
    """Split a signed note into its text and signature lines (nothing is verified here)."""
    try:
        size = len(data.encode("utf-8"))
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise NoteError("note too large")
    if any(ord(c) < 0x20 and c != "\n" for c in data):
        raise NoteError("note has control characters")
    if not data.endswith("\n"):
        raise NoteError("note does not end with a newline")
    cut = data.rfind("\n\n")
    if cut < 0:
        raise NoteError("note has no signatures (no blank line)")
    text, block = data[: cut + 1], data[cut + 2 :]
    signatures = []
    for line in block.splitlines():
        prefix, _, rest = line.partition(" ")
        name, _, sig = rest.partition(" ")
        if prefix != DASH or not name or not sig or " " in sig:
            raise NoteError(f"malformed signature line {line[:80]!r}")
        raw = b64decode(sig, "signature")
        if len(raw) < 5:
            raise NoteError("signature too short")
        signatures.append(Signature(check_name(name), raw[:4], raw[4:]))
    if not signatures or len(signatures) > MAX_SIGNATURES:
        raise NoteError("note has no signature lines, or too many")
    return Note(text, tuple(signatures))


# --- keys ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verifier:
    """A public key with its name and signature type (0x01 log, 0x04 witness)."""

    name: str
    kind: int
    public: bytes  # 32-byte Ed25519 key

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public)

    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.kind]) + self.public)}"

    def matches(self, sig: Signature) -> bool:
        return sig.name == self.name and sig.key_id == self.key_id

    def signs(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def verify(self, note: Note) -> bool:
        """True if one of the note's signatures is this key's and verifies (C2SP rules)."""
        mine = [s for s in note.signatures if self.matches(s)]
        if self.kind == ED25519:
            return bool(mine) and all(self.signs(s.signature, note.text.encode()) for s in mine)
        return bool(mine) and all(cosignature_time(note.text, s, self) is not None for s in mine)


def parse_vkey(text: str) -> Verifier:
    name, _, rest = text.strip().partition("+")
    hex_id, _, encoded = rest.partition("+")
    raw = b64decode(encoded, "verifier key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError("verifier key is not an Ed25519 or Ed25519 cosignature key")
    verifier = Verifier(check_name(name), raw[0], raw[1:])
    if hex_id != verifier.key_id.hex():
        raise NoteError("verifier key id does not match its name and key")
    return verifier


def parse_log_key(text: str) -> Verifier | Ed25519PublicKey:
    """A log key as people hand it on: a verifier key, or a PEM public key (no name)."""
    text = text.strip()
    if not text.startswith("-----BEGIN"):
        return parse_vkey(text)
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise NoteError("the key is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise NoteError("the key is not an Ed25519 public key")
    return key


def verifier_for(name: str, kind: int, key: Ed25519PublicKey) -> Verifier:
    return Verifier(check_name(name), kind, raw_public(key))


def sign_note(text: str, name: str, key: Ed25519PrivateKey) -> Note:
    """``text`` signed by the log's key under ``name`` (type 0x01)."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("note text must end with one newline and have no blank line")
    kid = key_id(check_name(name), ED25519, raw_public(key.public_key()))
    return Note(text, (Signature(name, kid, key.sign(text.encode("utf-8"))),))


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    """A checkpoint's text: the log's origin, its size and the Merkle root at that size."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n"


def parse_tree_head(text: str) -> TreeHead:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise NoteError("a checkpoint has at least three non-empty lines")
    origin, size, root = lines[0], lines[1], b64decode(lines[2], "root hash")
    if not _SIZE.fullmatch(size):
        raise NoteError(f"tree size {size[:30]!r} is not a decimal number")
    if len(root) != HASH_SIZE:
        raise NoteError("root hash is not 32 bytes")
    return TreeHead(origin, int(size), root)


def open_checkpoint(data: str, log: Verifier) -> tuple[Note, TreeHead]:
    """Parse a checkpoint and check the log's signature on it; NoteError says what fails."""
    note = parse_note(data)
    if not any(log.matches(s) for s in note.signatures):
        raise NoteError(f"the checkpoint is not signed by the key {log.name}")
    if not log.verify(note):
        raise NoteError(f"the signature of {log.name} on the checkpoint does not verify")
    head = parse_tree_head(note.text)
    if head.origin != log.name:
        raise NoteError(f"the checkpoint is for log {head.origin!r}, not {log.name!r}")
    return note, head


# --- cosignatures (tlog-cosignature, Ed25519 v1) -----------------------------------------------


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def cosign(text: str, name: str, key: Ed25519PrivateKey, timestamp: int) -> Signature:
    if not 0 <= timestamp < 2**63:
        raise NoteError("cosignature time out of range")
    kid = key_id(check_name(name), COSIGNATURE_V1, raw_public(key.public_key()))
    sig = key.sign(cosignature_message(text, timestamp))
    return Signature(name, kid, timestamp.to_bytes(8, "big") + sig)


def cosignature_time(text: str, sig: Signature, witness: Verifier) -> int | None:
    """The time a witness cosigned ``text`` at, or None if ``sig`` is not a valid cosignature."""
    if witness.kind != COSIGNATURE_V1 or not witness.matches(sig) or len(sig.signature) != 72:
        return None
    timestamp = int.from_bytes(sig.signature[:8], "big")
    if timestamp >= 2**63:
        return None
    if not witness.signs(sig.signature[8:], cosignature_message(text, timestamp)):
        return None
    return timestamp
