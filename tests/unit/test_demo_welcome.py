"""What `kiosk demo` prints (issue 16, item 19): every staff login, and how a call starts."""

from __future__ import annotations

from pathlib import Path

from kiosk.demo import STAFF, welcome


def test_the_demo_prints_every_login_and_says_the_tablets_call_button_starts_a_call() -> None:
    info = {
        "staff_url": "http://127.0.0.1:8000/console/",
        "api_url": "http://127.0.0.1:8000/api/v1",
        "tablet_ui_url": "http://127.0.0.1:8080/",
        "staff": [
            {"username": username, "password": f"pw-{role.value}", "role": role.value}
            for role, (username, _) in STAFF.items()
        ],
        "invites": [
            {"category": "personal", "start": "2026-12-03T10:00:00Z", "url": "https://x/visit/t"}
        ],
    }
    text = "\n".join(welcome(info, Path("/tmp/demo"), Path("/tmp/demo/demo.json")))
    for role, (username, _) in STAFF.items():
        assert f"{username} / pw-{role.value}" in text
    assert "officer:" in text and "visit office:" in text and "admin:" in text
    assert "Call button starts a call" in text
    assert "https://x/visit/t" in text
