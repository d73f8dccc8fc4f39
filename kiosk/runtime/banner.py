"""The ``Server`` header of every HTTP answer this process sends: a name, no version.

aiohttp names itself and Python with their versions (``Python/3.11
aiohttp/3.14.5``) in every answer it prepares, including the ones it makes
itself for a request it cannot parse, which no application hook sees. A
version tells an attacker which published flaws to try first (issue 12), so
the web listener, the device listener and the tablet's page server answer
as ``kiosk`` and nothing more.
"""

from __future__ import annotations

from aiohttp import web_response

SERVER_NAME = "kiosk"


def hide_version() -> None:
    """From now on, answers of this process name no version (idempotent).

    aiohttp sets the header with ``setdefault`` from this module global just
    before it sends the head of an answer, so replacing the global reaches
    every answer, whichever code path made it.
    """
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
