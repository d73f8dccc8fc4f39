"""A privileged call's receipt for its visitor, and the page that checks receipts (issue 18).

- ``GET /visit/{token}/receipt``: the receipt (JSON, as a download) of the
  invite's defence-counsel or police call once it has ended, for
  ``[audit] receipt_days``; 404 ``not_found`` otherwise, whatever the reason,
  so that a token tells nothing more than the page itself does.
- ``GET /verify``: one self-contained HTML file that checks a receipt in
  the browser (WebCrypto Ed25519 and SHA-256) with no server: saved, it
  works offline. Its inline script and style are allowed by their hashes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import timedelta
from functools import cache

from aiohttp import web

from kiosk.audit.proofs import CallSpan, call_receipt
from kiosk.domain.model import Category
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling.api.base import error_body
from kiosk.signalling.context import CONTEXT
from kiosk.signalling.visitors.invites import find_invite
from kiosk.signalling.web.pages import STATIC, TOKEN_PATTERN
from kiosk.store.calls import last_ended_call

log = get_logger(__name__)

VERIFY_PAGE = STATIC / "verify" / "verify.html"


def _no_receipt() -> web.Response:
    message = "There is no receipt for this invitation."
    return web.json_response(error_body(Reason.NOT_FOUND, message), status=404)


async def receipt(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    now = ctx.clock()
    async with ctx.engine.connect() as conn:
        invite = await find_invite(conn, request.match_info["token"])
        call = None if invite is None else await last_ended_call(conn, invite.booking_id)
    keep = timedelta(days=ctx.settings.audit.receipt_days)
    if (
        call is None
        or call.ended_at is None
        or not Category(call.category).privileged
        or now > call.ended_at + keep
    ):
        return _no_receipt()
    data = await call_receipt(
        ctx.engine, ctx.audit, CallSpan(call.id, call.created_at, call.ended_at), now
    )
    if data is None:
        log.warning("privileged call has no audit entries for its receipt", call_id=call.id)
        return _no_receipt()
    body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return web.Response(
        text=body,
        content_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="receipt-{call.id}.json"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


@cache
def _verify_page() -> tuple[bytes, str]:
    html = VERIFY_PAGE.read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    csp = (
        "default-src 'none'; "
        f"script-src {' '.join(_sha256(s) for s in scripts)}; "
        f"style-src {' '.join(_sha256(s) for s in styles)}; "
        "img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html.encode("utf-8"), csp


async def verify_page(request: web.Request) -> web.Response:
    body, csp = _verify_page()
    return web.Response(
        body=body,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/visit/{token:" + TOKEN_PATTERN + "}/receipt", receipt)
    app.router.add_get("/verify", verify_page)
