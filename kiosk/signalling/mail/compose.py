"""A mail's text: bokmål first, then English, from the pages' text files.

We do not know which language a contact reads, so every mail carries the
bokmål text first and the English text below it. The texts are in
``kiosk/signalling/web/texts/{nb,en}.json``, with the pages' texts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.domain.model import Category, ControlLevel, Facility
from kiosk.runtime.config import MailSettings

TEXTS = Path(__file__).resolve().parent.parent / "web" / "texts"
LANGUAGES = ("nb", "en")

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

# The placeholders of a mail in one language: values(language) -> {name: text}.
Values = Callable[[str], Mapping[str, str]]


@cache
def texts(language: str) -> Mapping[str, Any]:
    data: dict[str, Any] = json.loads((TEXTS / f"{language}.json").read_text(encoding="utf-8"))
    return data


def fill(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders, in one pass: a value (a name from a form) is never a template."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def local(at: datetime, facility: Facility) -> datetime:
    try:
        zone = ZoneInfo(facility.timezone)
    except (KeyError, ValueError):
        zone = ZoneInfo("Europe/Oslo")
    return at.astimezone(zone)


def date_text(at: datetime, language: str) -> str:
    t = texts(language)
    return fill(
        t["date_format"],
        {"weekday": t["weekdays"][at.weekday()], "day": str(at.day),
         "month": t["months"][at.month - 1]},
    )


def control_text(category: Category, control: ControlLevel, language: str) -> str:
    if category.privileged:
        return str(texts(language)["control_privileged"])  # R13
    return str(texts(language)[f"control_{control.value}"])


def compose(
    settings: MailSettings,
    to: str,
    kind: str,
    values: Values,
    name: str = "",
    facility: str = "",
) -> EmailMessage:
    """One mail of ``kind`` (``confirm``, ``receipt``, ``invite``, ``held``, ``cancelled``).

    ``values(language)`` gives the placeholders in that language. The body
    is bokmål first, then English; the subject carries both.
    """
    parts: list[str] = []
    subjects: list[str] = []
    for language in LANGUAGES:
        t = texts(language)
        v = {"facility": facility, "name": name, **values(language)}
        subjects.append(fill(t[f"{kind}_subject"], v))
        block = [fill(t["greeting"], v) if name else "", fill(t[f"{kind}_body"], v),
                 fill(t["signature"], v), t["auto_note"]]
        parts.append("\n\n".join(b for b in block if b))
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = " / ".join(dict.fromkeys(subjects))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # Fixed when the mail is made: a retry is the same mail to the receiving side.
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message["Content-Language"] = "nb, en"
    message["Auto-Submitted"] = "auto-generated"
    note = texts("nb")["other_language_note"]
    body = f"{note}\n\n" + "\n\n---\n\n".join(parts) + "\n"
    message.set_content(body, charset="utf-8")
    return message
