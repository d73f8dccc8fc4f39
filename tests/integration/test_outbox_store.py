"""The mail outbox's store on SQLite and PostgreSQL (issue 12: mail is never lost).

A mail is claimed by one sender only, counted as an attempt when claimed (a
sender killed while sending has used it), out of reach while its lease runs,
given up as ``dead`` and put back in line by the operator.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.store import outbox
from kiosk.store.db import write_transaction

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


async def _claim(engine: AsyncEngine, now: datetime) -> outbox.OutboxMail | None:
    async with write_transaction(engine) as conn:
        return await outbox.claim_next(conn, now, now + LEASE)


async def test_a_mail_is_claimed_by_one_sender_and_held_for_its_lease(engine: AsyncEngine) -> None:
    async with write_transaction(engine) as conn:
        await outbox.enqueue(conn, "m1", "invite", b"Subject: x\r\n\r\nbody\r\n", T0)
    claims = await asyncio.gather(*(_claim(engine, T0) for _ in range(4)))
    [mail] = [c for c in claims if c is not None]  # four senders at once: one wins
    assert (mail.id, mail.kind, mail.attempts, mail.message) == (
        "m1", "invite", 1, b"Subject: x\r\n\r\nbody\r\n")
    # Its sender died while sending: nobody takes it until the lease has run out.
    assert await _claim(engine, T0 + LEASE - timedelta(seconds=1)) is None
    async with engine.connect() as conn:
        assert await outbox.next_due(conn) == T0 + LEASE
    again = await _claim(engine, T0 + LEASE)
    assert again is not None and again.attempts == 2


async def test_sent_mails_lose_their_message_and_failed_ones_wait_or_die(
    engine: AsyncEngine,
) -> None:
    async with write_transaction(engine) as conn:
        for n in range(3):
            await outbox.enqueue(conn, f"m{n}", "confirm", b"secret link", T0)
    async with write_transaction(engine) as conn:
        await outbox.mark_sent(conn, "m0", T0)
        await outbox.mark_failed(conn, "m1", "SMTPServerDisconnected", T0 + timedelta(minutes=5))
        await outbox.mark_failed(conn, "m2", "SMTPDataError 554 " + "x" * 500, None)
    async with engine.connect() as conn:
        mails = {m.id: m for m in await outbox.list_mails(conn)}
        assert await outbox.counts(conn) == {"pending": 1, "sent": 1, "dead": 1}
        assert await outbox.next_due(conn) == T0 + timedelta(minutes=5)
    assert mails["m0"].message is None and mails["m0"].sent_at == T0  # its link is gone
    assert mails["m2"].state == "dead" and len(mails["m2"].last_error or "") == 200
    assert await _claim(engine, T0 + timedelta(minutes=4)) is None  # m1 waits, m2 is dead
    # The operator fixed the cause: the dead mail is back with fresh attempts.
    async with write_transaction(engine) as conn:
        assert await outbox.retry_dead(conn, T0 + timedelta(hours=1)) == 1
    claimed = await _claim(engine, T0 + timedelta(hours=1))
    assert claimed is not None and claimed.id == "m1"  # due earlier
    claimed = await _claim(engine, T0 + timedelta(hours=1))
    assert claimed is not None and (claimed.id, claimed.attempts) == ("m2", 1)
