"""The verification page opened as a saved file, offline, against the Python verifier.

The same receipts — honest, altered in each way, for a bridged call, with
and without a witness's cosignature, with the key as a verifier key or as
PEM — are judged by ``kiosk.audit.receipt.verify_receipt`` and by the page's
own WebCrypto code: both must say the same, and the page must name what the
Python verifier names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import expect

from kiosk.audit import note as n
from kiosk.audit.receipt import verify_receipt
from kiosk.audit.witness import Cosign, consider
from kiosk.crypto.keys import public_key_pem
from tests.e2e.conftest import DESKTOP, Faces
from tests.unit.test_audit_receipt import KEY, LOG, NOW, W_KEY, W_NAME, WITNESS, MemoryLog, a_call

pytestmark = pytest.mark.browser

PAGE = (Path(__file__).resolve().parents[2] / "kiosk" / "signalling" / "web" / "static"
        / "verify" / "verify.html")


def cases() -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, receipt, key, witness keys)."""
    log = MemoryLog()
    a_call(log, "other", noise=3)
    a_call(log, "c1", refused=2)
    a_call(log, "c2", route="bridge", control="sight_and_hearing", category="police")
    a_call(log, "c3", noise=5)
    honest = log.receipt("c1")
    cosigned = json.loads(json.dumps(honest))
    decision = consider(None, cosigned["checkpoint"], LOG, [], W_NAME, W_KEY, NOW)
    assert isinstance(decision, Cosign)
    cosigned["checkpoint"] += decision.signature.line()
    entry_changed = json.loads(json.dumps(honest))
    entry_changed["entries"][0]["entry"] = entry_changed["entries"][0]["entry"].replace(
        '"p2p"', '"bridge"')
    proof_changed = json.loads(json.dumps(honest))
    proof = proof_changed["entries"][1]["proof"]
    proof[0] = n.b64(bytes(32))
    size_changed = json.loads(json.dumps(honest))
    size_changed["checkpoint"] = size_changed["checkpoint"].replace(
        f"\n{len(log.entries)}\n", f"\n{len(log.entries) + 1}\n")
    dropped_end = json.loads(json.dumps(honest))
    dropped_end["entries"].pop()
    pem = public_key_pem(KEY.public_key()).decode()
    other = n.verifier_for("elsewhere.example/log", n.ED25519,
                           Ed25519PrivateKey.generate().public_key())
    return [
        ("honest", honest, LOG.vkey(), ""),
        ("honest-pem", honest, pem, ""),
        ("cosigned", cosigned, LOG.vkey(), WITNESS.vkey()),
        ("not-cosigned", honest, LOG.vkey(), WITNESS.vkey()),
        ("entry-changed", entry_changed, LOG.vkey(), ""),
        ("proof-changed", proof_changed, LOG.vkey(), ""),
        ("size-changed", size_changed, LOG.vkey(), ""),
        ("dropped-end", dropped_end, LOG.vkey(), ""),
        ("bridged", log.receipt("c2"), LOG.vkey(), ""),
        ("another-key", honest, other.vkey(), ""),
    ]


async def test_the_saved_page_offline_agrees_with_the_python_verifier(
    faces: Faces, tmp_path: Path
) -> None:
    face = await faces.open("verify-file", PAGE.as_uri(), viewport=DESKTOP, locale="en-GB")
    page = face.page
    await face.context.set_offline(True)
    for name, receipt, key, witnesses in cases():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(receipt))
        expected = verify_receipt(
            receipt, n.parse_log_key(key),
            [n.parse_vkey(w) for w in witnesses.splitlines() if w.strip()],
        )
        await page.fill("#key", key)
        await page.fill("#witnesses", witnesses)
        await page.set_input_files("#receipt-file", str(path))
        await page.evaluate("() => document.getElementById('result').removeAttribute("
                            "'data-verdict')")
        await page.click("#check")
        verdict = "verified" if expected.ok else "not-verified"
        await expect(page.locator("#result"), name).to_have_attribute("data-verdict", verdict)
        details = await page.locator("#details").text_content() or ""
        if expected.ok:
            assert f"{expected.refused} attempts to monitor it were refused" in details, name
            if expected.witnesses:
                assert "Cosigned by: " + W_NAME in details
        else:
            # The same finding, in the same words up to its details.
            named = [p.split(":")[0] for p in expected.problems]
            assert any(what in details for what in named), (name, details, expected.problems)
    await faces.screen(face, "offline-file")
    assert not face.csp_violations
