"""R3: a visitor already cleared for visits confirms by link the wish to call and the address.

``GET /confirm/{token}`` shows what is being confirmed and a button; only
``POST`` changes anything, because mail scanners fetch links in mails. The
token (256 random bits) is stored only as its SHA-256 in
``email_confirmations``, is used once and expires after ``TOKEN_LIFETIME``.
Confirming goes through the same ``policy.confirm_email`` and store write
as the staff endpoint, and into the audit chain as the visitor.

The page is rendered here, without script, in bokmål or English by
``Accept-Language`` (``?lang=`` switches).
"""

from __future__ import annotations

import hashlib
import html
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain import policy
from kiosk.domain.model import Contact
from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import CONTEXT
from kiosk.signalling.mail.compose import fill, texts
from kiosk.signalling.web.pages import TOKEN_PATTERN, page_headers, page_language
from kiosk.store import contacts as contacts_store
from kiosk.store.contacts import EmailConfirmation, get_contact
from kiosk.store.db import write_transaction
from kiosk.store.facility import get_facility

log = get_logger(__name__)

TOKEN_BYTES = 32  # 256 bits
TOKEN_LIFETIME = timedelta(days=14)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


async def issue_token(conn: AsyncConnection, contact_id: str, now: datetime) -> str:
    """A new confirmation link token for ``contact_id``; shown once, stored hashed."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = EmailConfirmation(_hash(token), contact_id, expires_at=now + TOKEN_LIFETIME)
    await contacts_store.insert_confirmation(conn, link)
    return token


@dataclass(frozen=True, slots=True)
class Pending:
    contact: Contact
    facility: str


async def _pending(conn: AsyncConnection, token: str, now: datetime) -> Pending | None:
    """The contact a live, unused token confirms; None for any other token."""
    link = await contacts_store.find_confirmation(conn, _hash(token))
    if link is None or not link.usable_at(now):
        return None
    contact = await get_contact(conn, link.contact_id)
    facility = await get_facility(conn)
    if contact is None or facility is None:
        return None
    return Pending(contact, facility.name)


# --- the page --------------------------------------------------------------------------


def _page(request: web.Request, language: str, heading: str, body: str, status: int = 200) -> (
    web.Response
):
    t = texts(language)
    e = html.escape
    current = ' aria-current="true"'
    switch = " ".join(
        f'<a class="lang-btn" href="?lang={code}" lang="{code}"'
        f"{current if code == language else ''}>{label}</a>"
        for code, label in (("nb", "Norsk"), ("en", "English"))
    )
    document = f"""<!doctype html>
<html lang="{language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(t["page_confirm_title"])}</title>
<link rel="stylesheet" href="/static/visitor/visitor.css">
</head>
<body data-screen="confirm">
<header class="bar">
  <p class="brand"><span class="brand-mark" aria-hidden="true"></span>
    <span>{e(t["page_confirm_title"])}</span></p>
  <nav class="lang" aria-label="{e(t["language"])}">{switch}</nav>
</header>
<main id="main">
  <section class="screen card">
    <h1>{e(heading)}</h1>
    {body}
  </section>
</main>
</body>
</html>
"""
    return web.Response(
        text=document, content_type="text/html", charset="utf-8", status=status,
        headers=page_headers(),
    )


def _invalid(request: web.Request, language: str) -> web.Response:
    t = texts(language)
    return _page(
        request, language, t["page_invalid_heading"],
        f'<p class="lead">{html.escape(t["page_invalid_lead"])}</p>', status=404,
    )


async def show(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    language = page_language(request)
    async with ctx.engine.connect() as conn:
        pending = await _pending(conn, request.match_info["token"], ctx.clock())
    if pending is None:
        return _invalid(request, language)
    t = texts(language)
    e = html.escape
    body = f"""<p class="lead">{e(fill(t["page_confirm_lead"], {"facility": pending.facility}))}</p>
    <dl class="facts"><div><dt>{e(t["page_confirm_address"])}</dt>
    <dd>{e(pending.contact.email)}</dd></div></dl>
    <form method="post" action="">
      <input type="hidden" name="lang" value="{language}">
      <div class="actions">
        <button type="submit" class="btn primary">{e(t["page_confirm_button"])}</button>
      </div>
    </form>
    <p class="note">{e(t["page_confirm_note"])}</p>"""
    return _page(request, language, t["page_confirm_heading"], body)


async def confirm(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    chosen = form.get("lang")
    language = page_language(request, chosen)
    token = request.match_info["token"]
    t = texts(language)
    now = ctx.clock()
    async with write_transaction(ctx.engine) as conn:
        pending = await _pending(conn, token, now)
        if pending is None:
            return _invalid(request, language)
        contact = pending.contact
        confirmed = policy.confirm_email(contact)
        if isinstance(confirmed, policy.Deny):
            body = f'<p class="lead">{html.escape(t["page_refused_lead"])}</p>'
            return _page(request, language, t["page_invalid_heading"], body, status=409)
        # The same change as the staff endpoint (POST /contacts/{id}/email-confirmation).
        await contacts_store.save_contact(conn, confirmed)
        await contacts_store.use_confirmation(conn, _hash(token), now)
        await ctx.audit.append(
            f"visitor:{contact.id}",
            "contact.email_confirmed",
            {"contact": contact.id, "inmate": contact.inmate_id},
            {"by": "link"},
            conn=conn,
        )
    log.info("contact confirmed by link", contact_id=contact.id)
    body = f'<p class="lead">{html.escape(t["page_done_lead"])}</p>'
    return _page(request, language, t["page_done_heading"], body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/confirm/{token:" + TOKEN_PATTERN + "}", show)
    app.router.add_post("/confirm/{token:" + TOKEN_PATTERN + "}", confirm)
