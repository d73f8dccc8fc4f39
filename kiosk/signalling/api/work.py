"""The one shape of a staff API handler: load or 404, ask the policy, write, audit.

    async with writing(req) as work:
        contact = await work.load(get_contact, req.params["contact_id"], "contact")
        confirmed = work.check(policy.confirm_email(contact))
        await save_contact(work.conn, confirmed)
        await work.audit("contact.email_confirmed", {"contact": contact.id})

All of it happens in one transaction (``write_transaction``: on SQLite the
write lock is taken at BEGIN). A refusal raised inside — ``not_found`` from
``load``, the policy's ``Deny`` from ``check`` — rolls back whatever was
written before it, and the audit entry is written in the same transaction,
so the chain records exactly what was done and nothing that was refused.
``reading(req)`` is the same for handlers that only read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from kiosk.domain.policy import Deny
from kiosk.domain.reasons import Reason
from kiosk.signalling.api.base import ApiRequest, not_found, refuse
from kiosk.store.db import write_transaction

T = TypeVar("T")


@dataclass
class Work:
    """A request's unit of work: its connection, and the steps every handler takes."""

    req: ApiRequest
    conn: AsyncConnection
    # Tablets and inmates whose tablets' view this work changes (issue 11).
    tablets: set[str] = field(default_factory=set)
    inmates: set[str] = field(default_factory=set)
    mailed: bool = False

    async def load(
        self,
        find: Callable[..., Awaitable[T | None]],
        key: str,
        what: str,
        *,
        reason: Reason = Reason.NOT_FOUND,
        **options: Any,
    ) -> T:
        """``find(conn, key, **options)``, or 404 ``reason`` naming ``what`` when there is none."""
        found = await find(self.conn, key, **options)
        if found is None:
            raise not_found(what, reason)
        return found

    def check(self, outcome: T | Deny) -> T:
        """The policy's new value, or its refusal raised with the reason code."""
        if isinstance(outcome, Deny):
            raise refuse(outcome)
        return outcome

    def tablets_changed(self, *, devices: Iterable[str] = (), inmates: Iterable[str] = ()) -> None:
        """What these tablets (or the inmates' tablets) show changes: they are told the moment
        this work is committed."""
        self.tablets.update(devices)
        self.inmates.update(inmates)

    async def mail(self, notice: Callable[..., Awaitable[None]], *args: Any) -> None:
        """A mail this change causes (``kiosk.signalling.mail.notices``): in the outbox in
        this transaction, sent once it is committed (issue 12: mail is never lost)."""
        await notice(self.req.ctx, self.conn, *args)
        self.mailed = True

    async def audit(
        self,
        action: str,
        subjects: Mapping[str, str],
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """An entry in the audit chain, by the staff member asking, in this transaction."""
        await self.req.ctx.audit.append(
            self.req.staff.actor, action, subjects, details, conn=self.conn
        )


@asynccontextmanager
async def writing(req: ApiRequest) -> AsyncIterator[Work]:
    async with write_transaction(req.ctx.engine) as conn:
        work = Work(req, conn)
        yield work
    if work.mailed:
        req.ctx.mail_queued()
    if work.tablets or work.inmates:
        await req.ctx.tablets_changed(devices=work.tablets, inmates=work.inmates)


@asynccontextmanager
async def reading(req: ApiRequest) -> AsyncIterator[Work]:
    async with req.ctx.engine.connect() as conn:
        yield Work(req, conn)
