"""Issue 16: a staff member sets their own password through a one-time link.

``GET /staff/set-password/{token}`` shows the form; only ``POST`` changes
anything (mail scanners fetch links in mails). The page looks like the
console's login, is rendered here without script, in bokmål or English by
``Accept-Language`` (``?lang=`` switches). A link that is unknown, used,
replaced or expired gets a page saying which, with its reason code, never
a 500. The token is in the address only: no log line names it.
"""

from __future__ import annotations

import html

from aiohttp import web

from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.context import CONTEXT
from kiosk.signalling.mail.compose import fill, texts
from kiosk.signalling.staff_passwords import (
    MIN_PASSWORD,
    SET_PASSWORD_PATH,
    link_account,
    set_by_link,
)
from kiosk.signalling.web.pages import page_headers, page_language
from kiosk.store.db import write_transaction

log = get_logger(__name__)

MAX_PASSWORD = 1000
# A dead link: gone for good (used, replaced, expired), or never known.
STATUS = {Reason.PASSWORD_LINK_UNKNOWN: 404}


def _page(language: str, heading: str, body: str, status: int = 200, reason: str = "") -> (
    web.Response
):
    t = texts(language)
    e = html.escape
    current = ' aria-current="true"'
    switch = " ".join(
        f'<a class="btn ghost small" href="?lang={code}" lang="{code}"'
        f"{current if code == language else ''}>{code.upper()}"
        f'<span class="sr"> {name}</span></a>'
        for code, name in (("en", "English"), ("nb", "Norsk bokmål"))
    )
    marker = f' data-reason="{e(reason)}"' if reason else ""
    document = f"""<!doctype html>
<html lang="{language}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(heading)} - {e(t["setpw_brand"])}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/console/static/console.css">
</head>
<body data-view="login"{marker}>
<main id="main">
<div class="login-wrap">
  <p class="login-brand"><span class="brand-mark" aria-hidden="true"></span>
    {e(t["setpw_brand"])}</p>
  <section class="card login" id="set-password" aria-labelledby="setpw-h">
    <h1 id="setpw-h">{e(heading)}</h1>
    {body}
  </section>
  <nav class="login-lang lang" aria-label="{e(t["language"])}">{switch}</nav>
</div>
</main>
</body>
</html>
"""
    return web.Response(
        text=document, content_type="text/html", charset="utf-8", status=status,
        headers=page_headers(),
    )


def _refused(language: str, reason: Reason) -> web.Response:
    t = texts(language)
    e = html.escape
    body = (
        f'<p class="lede" id="setpw-reason">{e(t["setpw_" + reason.value])}</p>\n'
        f'    <p class="hint">{e(fill(t["setpw_code"], {"code": reason.value}))}</p>'
    )
    log.info("set-password link refused", code=reason.value)
    return _page(language, t["setpw_invalid_heading"], body, STATUS.get(reason, 410), reason)


def _form(language: str, username: str, error: str = "") -> str:
    t = texts(language)
    e = html.escape
    hint = "setpw-hint"
    invalid = ' aria-invalid="true"' if error else ""
    return f"""<p class="lede">{e(fill(t["setpw_lead"], {"username": username}))}</p>
    <form method="post" action="" id="setpw-form">
      <input type="hidden" name="lang" value="{language}">
      <div class="field"><label for="setpw-username">{e(t["setpw_username"])}</label>
        <input id="setpw-username" name="username" type="text" value="{e(username)}"
          autocomplete="username" readonly></div>
      <div class="field"><label for="setpw-password">{e(t["setpw_password"])}</label>
        <input id="setpw-password" name="password" type="password" required
          minlength="{MIN_PASSWORD}" maxlength="{MAX_PASSWORD}" autocomplete="new-password"
          aria-describedby="{hint}"{invalid}>
        <p class="hint" id="{hint}">{e(t["setpw_hint"])}</p></div>
      <div class="field"><label for="setpw-again">{e(t["setpw_again"])}</label>
        <input id="setpw-again" name="again" type="password" required
          minlength="{MIN_PASSWORD}" maxlength="{MAX_PASSWORD}" autocomplete="new-password"
          {invalid}></div>
      <p class="error" role="alert" id="setpw-error">{e(error)}</p>
      <div class="actions">
        <button type="submit" class="btn primary" id="setpw-submit">{e(t["setpw_submit"])}</button>
      </div>
    </form>"""


async def show(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    language = page_language(request)
    async with ctx.engine.connect() as conn:
        staff = await link_account(conn, request.match_info.get("token", ""), ctx.clock())
    if isinstance(staff, Reason):
        return _refused(language, staff)
    return _page(language, texts(language)["setpw_title"], _form(language, staff.username))


async def set_password(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    form = await request.post()
    language = page_language(request, form.get("lang"))
    t = texts(language)
    token = request.match_info.get("token", "")
    async with ctx.engine.connect() as conn:  # no argon2 run for a dead link
        staff = await link_account(conn, token, ctx.clock())
    if isinstance(staff, Reason):
        return _refused(language, staff)
    password, again = form.get("password"), form.get("again")
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        code, error = Reason.PASSWORD_TOO_SHORT, t["setpw_short"]
    elif password != again:
        code, error = Reason.INVALID_REQUEST, t["setpw_mismatch"]
    else:
        password_hash = await auth.hash_password_off_loop(password)  # before the write lock
        async with write_transaction(ctx.engine) as conn:
            done = await set_by_link(conn, ctx.audit, token, password_hash, ctx.clock())
        if isinstance(done, Reason):
            return _refused(language, done)
        log.info("staff password set by link", staff_id=done.id)
        body = (
            f'<p class="lede" id="setpw-done">{html.escape(t["setpw_done_lead"])}</p>\n'
            f'    <p><a class="btn primary" href="/console/" id="setpw-login">'
            f'{html.escape(t["setpw_login"])}</a></p>'
        )
        return _page(language, t["setpw_done_heading"], body)
    return _page(
        language, t["setpw_error_heading"], _form(language, staff.username, error), 422, code
    )


def add_routes(app: web.Application) -> None:
    # Any text, or none: a wrong token gets this page's answer, not a bare 404.
    for path in (SET_PASSWORD_PATH + "{token}", SET_PASSWORD_PATH):
        app.router.add_get(path, show)
        app.router.add_post(path, set_password)
