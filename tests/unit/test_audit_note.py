"""Signed notes, checkpoints and cosignatures against the C2SP specifications and the
vectors other implementations publish (golang.org/x/mod/sumdb/note, c2sp.org/signed-note)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk.audit import note as n

GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_LINE = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKv"
    "qfqdngotpRZb6KE6RyyBwJnAM=\n"
)
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
    "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ORIGIN = "kiosk.example.org/audit"
LOG = n.verifier_for(ORIGIN, n.ED25519, LOG_KEY.public_key())
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(7, 39)))
WITNESS = n.verifier_for("advokatforeningen.no/witness", n.COSIGNATURE_V1,
                         WITNESS_KEY.public_key())


def test_a_go_signed_note_is_byte_for_byte_ours() -> None:
    key = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert n.verifier_for("PeterNeumann", n.ED25519, key.public_key()).vkey() == GO_VKEY
    signed = n.sign_note(GO_TEXT, "PeterNeumann", key)
    assert signed.render() == GO_TEXT + "\n" + GO_LINE
    assert n.parse_vkey(GO_VKEY).verify(n.parse_note(signed.render()))


def test_the_specification_example_verifies() -> None:
    note = n.parse_note(SPEC_NOTE)
    assert note.text == "This is an example message.\n"
    assert n.parse_vkey(SPEC_VKEY).verify(note)


def test_the_key_id_is_the_specified_hash() -> None:
    raw = n.raw_public(LOG_KEY.public_key())
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert LOG.key_id == expected
    assert n.parse_vkey(LOG.vkey()) == LOG
    witness_id = hashlib.sha256(WITNESS.name.encode() + b"\n\x04" + WITNESS.public).digest()
    assert WITNESS.key_id == witness_id[:4]


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq",  # short key
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "",
    ],
)
def test_a_mangled_verifier_key_is_refused(bad: str) -> None:
    with pytest.raises(n.NoteError):
        n.parse_vkey(bad)


@pytest.mark.parametrize(
    "bad",
    [
        GO_TEXT + GO_LINE,  # no blank line
        GO_TEXT + "\n",  # no signature
        GO_TEXT + "\n" + GO_LINE.rstrip("\n"),  # no final newline
        GO_TEXT.replace("answer", "ans\x01wer") + "\n" + GO_LINE,  # control character
        GO_TEXT + "\n" + GO_LINE.replace("\u2014", "-"),  # not an em dash
        GO_TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",  # too short
        GO_TEXT + "\n" + "\u2014 PeterNeumann not*base64\n",
    ],
)
def test_a_malformed_note_is_refused(bad: str) -> None:
    with pytest.raises(n.NoteError):
        n.parse_note(bad)


@given(st.integers(min_value=0, max_value=2**40), st.binary(min_size=32, max_size=32),
       st.data())
def test_a_checkpoint_round_trips_and_any_change_fails(size: int, root: bytes,
                                                      data: st.DataObject) -> None:
    head = n.TreeHead(ORIGIN, size, root)
    signed = n.sign_note(head.text(), ORIGIN, LOG_KEY).render()
    note, opened = n.open_checkpoint(signed, LOG)
    assert opened == head and note.text.split("\n")[:3] == [ORIGIN, str(size), n.b64(root)]
    # Change one character of the text or of the signature: it no longer opens.
    k = data.draw(st.integers(min_value=0, max_value=len(signed) - 2))
    changed = signed[:k] + ("A" if signed[k] != "A" else "B") + signed[k + 1:]
    with pytest.raises(n.NoteError):
        n.open_checkpoint(changed, LOG)


def test_a_checkpoint_from_another_log_or_key_is_refused() -> None:
    other_key = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    head = n.TreeHead(ORIGIN, 3, bytes(32))
    with pytest.raises(n.NoteError, match="not signed by"):
        n.open_checkpoint(n.sign_note(head.text(), ORIGIN, other_key).render(), LOG)
    other_origin = n.TreeHead("elsewhere.example/log", 3, bytes(32))
    with pytest.raises(n.NoteError, match="is for log"):
        n.open_checkpoint(n.sign_note(other_origin.text(), ORIGIN, LOG_KEY).render(), LOG)


@pytest.mark.parametrize(
    "text",
    [f"{ORIGIN}\n07\n{n.b64(bytes(32))}\n", f"{ORIGIN}\n7\n", f"{ORIGIN}\n7\nAAAA\n",
     f"{ORIGIN}\n7\n{n.b64(bytes(32))}\n\next\n", f"{ORIGIN}\n-7\n{n.b64(bytes(32))}\n"],
)
def test_a_malformed_checkpoint_text_is_refused(text: str) -> None:
    with pytest.raises(n.NoteError):
        n.parse_tree_head(text)


def test_a_cosignature_is_the_specified_message() -> None:
    text = n.TreeHead(ORIGIN, 20852163, bytes(range(32))).text()
    sig = n.cosign(text, WITNESS.name, WITNESS_KEY, 1679315147)
    assert sig.key_id == WITNESS.key_id and len(sig.signature) == 8 + 64
    assert sig.signature[:8] == (1679315147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + text.encode()
    WITNESS_KEY.public_key().verify(sig.signature[8:], message)
    assert n.cosignature_time(text, sig, WITNESS) == 1679315147
    # A cosignature over another text, or read as the log's own type, does not count.
    assert n.cosignature_time(text.replace("20852163", "20852164"), sig, WITNESS) is None
    as_log = n.verifier_for(WITNESS.name, n.ED25519, WITNESS_KEY.public_key())
    assert n.cosignature_time(text, sig, as_log) is None


@given(st.integers(min_value=0, max_value=2**62), st.integers(min_value=0, max_value=75),
       st.integers(min_value=0, max_value=7))
def test_an_altered_cosignature_fails(timestamp: int, byte: int, bit: int) -> None:
    text = n.TreeHead(ORIGIN, 5, bytes(32)).text()
    sig = n.cosign(text, WITNESS.name, WITNESS_KEY, timestamp)
    raw = bytearray(sig.key_id + sig.signature)
    raw[byte] ^= 1 << bit
    altered = n.Signature(sig.name, bytes(raw[:4]), bytes(raw[4:]))
    assert n.cosignature_time(text, altered, WITNESS) is None


def test_a_log_key_may_be_given_as_pem_or_verifier_key() -> None:
    from kiosk.crypto.keys import public_key_pem

    assert n.parse_log_key(LOG.vkey()) == LOG
    pem = public_key_pem(LOG_KEY.public_key()).decode()
    assert n.raw_public(n.parse_log_key(pem)) == LOG.public  # type: ignore[arg-type]
    with pytest.raises(n.NoteError):
        n.parse_log_key("-----BEGIN PUBLIC KEY-----\nnonsense\n-----END PUBLIC KEY-----\n")
