"""``POST /api/media``: the kiosk page's WebRTC offer for the live call's media.

Body ``{"call_id": "...", "sdp": "..."}`` (the page's complete offer, its
loopback candidates in it); answer ``{"sdp": "..."}`` with the agent's
candidates on its page media address only. Refused with 403 ``not_loopback``
unless the request came over loopback (beside the Host and Origin checks every
page API request gets), 409 ``call_not_live`` unless the call is live under
its grant, 400 ``invalid_request`` for anything else.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from kiosk.device.page_peer import NoLiveCall, PageRefused
from kiosk.domain.reasons import Reason
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

MAX_OFFER = 64 * 1024  # a browser's offer with a handful of loopback candidates: ~6 KB
_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

def _from_loopback(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


def media_handler(
    offer: Callable[[str, str], Awaitable[str]],
    error: Callable[[Reason, int, str], web.Response],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler, given the agent's ``page_offer`` and the page API's error response."""

    async def handle(request: web.Request) -> web.Response:
        if not _from_loopback(request):
            return error(Reason.NOT_LOOPBACK, 403, "")
        if request.content_type != "application/json":
            return error(Reason.INVALID_REQUEST, 415, "The body must be JSON.")
        raw = await request.content.read(MAX_OFFER + 1)
        if len(raw) > MAX_OFFER:
            return error(Reason.INVALID_REQUEST, 413, "The offer is too large.")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error(Reason.INVALID_REQUEST, 400, "The body is not valid JSON.")
        if not isinstance(body, dict) or set(body) != {"call_id", "sdp"}:
            return error(Reason.INVALID_REQUEST, 400, "call_id and sdp are required.")
        call_id, sdp = body["call_id"], body["sdp"]
        if not (isinstance(call_id, str) and _CALL_ID.match(call_id) and isinstance(sdp, str)):
            return error(Reason.INVALID_REQUEST, 400, "call_id is an id and sdp a string.")
        try:
            answer = await offer(call_id, sdp)
        except NoLiveCall as exc:
            log.info("kiosk page media refused", call_id=call_id, reason=str(exc))
            return error(Reason.CALL_NOT_LIVE, 409, "")
        except PageRefused as exc:
            log.info("kiosk page media refused", call_id=call_id, reason=str(exc))
            return error(Reason.INVALID_REQUEST, 400, str(exc))
        return web.json_response({"sdp": answer})

    return handle
