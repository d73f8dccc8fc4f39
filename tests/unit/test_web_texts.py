"""The pure parts of the outside faces: language choice, texts, mail composition."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.model import Category, ControlLevel
from kiosk.runtime.config import MailSettings
from kiosk.signalling.mail.compose import compose, control_text, date_text, fill
from kiosk.signalling.web.pages import PAGE_CSP, choose_language, page_headers

ROOT = Path(__file__).resolve().parents[2]
TEXT_SETS = [
    ROOT / "kiosk/signalling/web/static/visitor/i18n",
    ROOT / "kiosk/signalling/web/texts",
    ROOT / "kiosk/device/static/i18n",
]


def test_browsers_asking_for_norwegian_get_bokmal_and_english_gets_english() -> None:
    assert choose_language("nb-NO,nb;q=0.9,en;q=0.8") == "nb"
    assert choose_language("nn-NO") == "nb"
    assert choose_language("no") == "nb"
    assert choose_language("en-GB,en;q=0.9") == "en"
    assert choose_language("de-DE,en;q=0.5,nb;q=0.4") == "en"
    assert choose_language("de-DE,nb;q=0.7,en;q=0.5") == "nb"
    assert choose_language("") == "nb"
    assert choose_language("fr, de") == "nb"
    assert choose_language("en;q=0") == "nb"


@given(st.text(max_size=300))
def test_any_accept_language_header_gives_a_language_we_speak(header: str) -> None:
    assert choose_language(header) in ("nb", "en")


def test_every_text_exists_in_both_languages() -> None:
    for folder in TEXT_SETS:
        nb = json.loads((folder / "nb.json").read_text(encoding="utf-8"))
        en = json.loads((folder / "en.json").read_text(encoding="utf-8"))
        assert set(nb) == set(en), folder


def test_every_end_reason_and_control_level_has_words_on_both_faces() -> None:
    from kiosk.domain.reasons import EndReason

    for folder in (TEXT_SETS[0], TEXT_SETS[2]):
        for language in ("nb", "en"):
            texts = json.loads((folder / f"{language}.json").read_text(encoding="utf-8"))
            for reason in EndReason:
                assert f"end_{reason.value}" in texts, (folder, language, reason)
            for level in ControlLevel:
                assert f"control_{level.value}" in texts, (folder, language, level)


def test_the_page_policy_allows_nothing_from_elsewhere() -> None:
    assert "default-src 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    assert "unsafe" not in PAGE_CSP and "frame-ancestors 'none'" in PAGE_CSP
    assert "camera=(self)" in page_headers(camera=True)["Permissions-Policy"]
    assert "camera=()" in page_headers()["Permissions-Policy"]


def test_placeholders_from_people_cannot_expand_further() -> None:
    assert fill("Hei {name}, {link}", {"name": "{link}", "link": "x"}) == "Hei {link}, x"
    assert fill("Hei {name}", {"name": "{0.__class__}"}) == "Hei {0.__class__}"


def test_the_invite_mail_carries_both_languages_the_window_and_the_control() -> None:
    at = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    message = compose(
        MailSettings(sender="besok@fengsel.example"), "kari@example.org", "invite",
        lambda lang: {"date": date_text(at, lang), "start": "14:00", "end": "15:00",
                      "link": "https://x.example/visit/abc", "valid_from": "13:45",
                      "control": control_text(Category.PERSONAL, ControlLevel.SIGHT, lang)},
        name="Kari", facility="Romerike fengsel",
    )
    body = message.get_content()
    assert "mandag 23. november" in body and "Monday 23 November" in body
    assert "Ansatte kan se på samtalen" in body and "Staff may watch the call" in body
    assert body.count("https://x.example/visit/abc") == 2
    assert message["Subject"] == (
        "Videosamtale mandag 23. november kl. 14:00 / Video call on Monday 23 November at 14:00"
    )


def test_privileged_calls_are_described_as_never_monitored() -> None:
    for language in ("nb", "en"):
        words = control_text(Category.DEFENCE_COUNSEL, ControlLevel.NONE, language)
        assert "aldri" in words or "never" in words


def test_every_refused_invite_says_why_in_words_on_the_visitor_page() -> None:
    """Issue 12: a used, cancelled or held booking's invite is refused with its reason."""
    from kiosk.domain.switchboard.legs import NOT_JOINABLE

    page = ROOT / "kiosk/signalling/web/static/visitor"
    script = (page / "visitor.js").read_text(encoding="utf-8")
    for language in ("nb", "en"):
        texts = json.loads((page / "i18n" / f"{language}.json").read_text(encoding="utf-8"))
        for reason in NOT_JOINABLE.values():
            assert f"error_{reason.value}" in texts, (language, reason)
            assert f'"{reason.value}"' in script  # final: no "try again" button
