"""The pages the server shows to people outside the staff API: the visitor's call page and
the e-mail confirmation page (issue 4).

``add_routes(app)`` mounts:

- ``GET /visit/{token}``: the visitor page, a static HTML shell; its script
  reads the token from the address and joins ``WSS /visit/v1`` itself.
- ``GET /static/visitor/{file}``: the page's script, style and strings
  (``i18n/nb.json``, ``i18n/en.json``).
- ``GET/POST /confirm/{token}``: R3, a cleared visitor confirms by link the
  wish to make video calls and the address (kiosk.signalling.web.confirm).
- ``GET /visit/{token}/receipt`` and ``GET /verify``: a privileged call's
  receipt, and the offline page that checks it (kiosk.signalling.web.transparency).
- ``GET /visit/{token}/status``: can the invite's call still take place, and the
  visit office's contact details (kiosk.signalling.web.invite_status).
- ``GET/POST /staff/set-password/{token}``: a staff member sets their own password
  through a one-time link (kiosk.signalling.web.set_password, issue 16).

Every page response carries a strict Content-Security-Policy: scripts,
styles and media from this origin only, no inline script, no framing.
"""

from __future__ import annotations

from aiohttp import web

from kiosk.signalling.web import confirm, invite_status, pages, set_password, transparency


def add_routes(app: web.Application) -> None:
    pages.add_routes(app)
    confirm.add_routes(app)
    transparency.add_routes(app)
    invite_status.add_routes(app)
    set_password.add_routes(app)


__all__ = ["add_routes"]
