"""Handing one mail to the mail server (or the folder): the outbox's only I/O with mail.

``MailSettings.transport`` chooses: ``smtp`` (aiosmtplib, optionally TLS or
STARTTLS with the system's trust store) or ``folder`` (one ``.eml`` file per
mail; the demo prints the links from there).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import uuid
from datetime import datetime
from email.message import EmailMessage

import aiosmtplib

from kiosk.runtime.config import MailSettings


class MailError(Exception):
    """A mail could not be handed to the mail server (or written to the folder).

    ``permanent``: the server refused it for good (a 5xx reply); trying again
    would only be refused again.
    """

    def __init__(self, what: str, permanent: bool = False) -> None:
        super().__init__(what)
        self.permanent = permanent


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class Mailer:
    """Hands one mail to the configured transport. Raises MailError on failure."""

    def __init__(self, settings: MailSettings) -> None:
        if settings.transport not in ("smtp", "folder"):
            raise ValueError(f"mail.transport must be smtp or folder, not {settings.transport!r}")
        if settings.transport == "folder" and settings.folder is None:
            raise ValueError("mail.transport folder needs mail.folder")
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        if self.settings.transport == "folder":
            await asyncio.to_thread(self._write, message)
            return
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=s.password or None,
                use_tls=s.use_tls,
                start_tls=s.starttls if not s.use_tls else False,
                tls_context=_tls_context() if (s.use_tls or s.starttls) else None,
                timeout=s.timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            code = exc.code if isinstance(exc, aiosmtplib.SMTPResponseException) else 0
            what = f"{type(exc).__name__} {code}" if code else type(exc).__name__
            raise MailError(what, permanent=500 <= code < 600) from exc

    def _write(self, message: EmailMessage) -> None:
        folder = self.settings.folder
        assert folder is not None
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        final = folder / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        partial = final.with_suffix(".part")
        # Mails carry links that are credentials: readable by the owner only.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(message.as_bytes())
        partial.replace(final)
