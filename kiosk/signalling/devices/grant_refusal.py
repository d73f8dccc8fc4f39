"""A tablet's report that it refused a grant (issue 12): in the audit chain and the log.

The tablet checks every grant again (principle 1: both ends enforce). A
refusal of one the server signed means the server, or something speaking
for it, granted what it must not: it is kept where staff and auditors look.
The call id is the tablet's reading of the refused grant, so it goes in the
details, never as a subject.
"""

from __future__ import annotations

from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import ServerContext
from kiosk.wire.messages import GrantRefusedMessage

log = get_logger(__name__)


async def record_grant_refusal(
    ctx: ServerContext, device_id: str, message: GrantRefusedMessage
) -> None:
    reason = message.reason.value
    details = {"reason": reason, "call_id": message.call_id or ""}
    await ctx.audit.append(f"device:{device_id}", "call.grant_refused", {"device": device_id},
                           details)
    log.warning("tablet refused a grant", device_id=device_id, call_id=message.call_id,
                reason=reason)
