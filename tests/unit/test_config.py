"""Settings: each program's TOML file, overridden key by key by ``KIOSK_…`` variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.runtime.config import (
    AgentProgramSettings,
    ConfigError,
    Settings,
    StationProgramSettings,
    load,
    load_settings,
)


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file_or_variables() -> None:
    settings = load_settings(environ={})
    assert settings.server.web_port == 8443 and settings.server.device_port == 8444
    assert settings.database_url == "sqlite+aiosqlite:////var/lib/kiosk/kiosk.sqlite3"
    assert settings.pki_dir == Path("/var/lib/kiosk/pki")
    assert settings.turn.urls == [] and settings.audit.checkpoint_every == 100
    agent = load(AgentProgramSettings, environ={}).agent
    assert agent.usb_guard is True and agent.heartbeat_interval == 10.0
    station = load(StationProgramSettings, environ={})
    assert station.pki_dir == Path("/var/lib/kiosk/pki")
    assert station.station.timezone == "Europe/Oslo"


def test_a_variable_overrides_one_key_and_leaves_the_rest_of_the_file(tmp_path: Path) -> None:
    path = toml(tmp_path, '[server]\nweb_port = 9000\ndevice_port = 9001\n[log]\nlevel = "debug"\n')
    settings = load_settings(path, environ={"KIOSK_SERVER__WEB_PORT": "9100"})
    assert settings.server.web_port == 9100  # the variable wins
    assert settings.server.device_port == 9001  # the file's other keys stay
    assert settings.log.level == "debug"


def test_lists_of_text_come_from_a_variable_as_commas_and_tables_as_json() -> None:
    settings = load_settings(environ={"KIOSK_TURN__URLS": "turn:a:3478, turn:b:3478,"})
    assert settings.turn.urls == ["turn:a:3478", "turn:b:3478"]
    agent = load(
        AgentProgramSettings,
        environ={
            "KIOSK_AGENT__ICE_SERVERS": "stun:a",
            "KIOSK_AGENT__USB_ALLOW": '[{"vendor": "0bda", "product": "58f4"}]',
        },
    ).agent
    assert agent.ice_servers == ["stun:a"]
    assert agent.usb_allow == [{"vendor": "0bda", "product": "58f4"}]


def test_variable_names_are_case_insensitive_and_need_the_double_underscore() -> None:
    settings = load_settings(environ={"kiosk_server__web_port": "9200", "KIOSK_STRICT": "1"})
    assert settings.server.web_port == 9200


def test_each_program_reads_only_its_own_sections(tmp_path: Path) -> None:
    # Another program's variables in the environment are none of this one's business...
    agent = load(AgentProgramSettings, environ={"KIOSK_SERVER__WEB_PORT": "not a port"})
    assert agent.agent.ui_port == 8080
    # ...but another program's section in this one's file is a mistake, said at once.
    with pytest.raises(ConfigError, match=r"^configuration agent: Extra inputs"):
        load_settings(toml(tmp_path, "[agent]\nui_port = 1\n"), environ={})


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("[server]\nweb_prot = 1\n", {}, "configuration server.web_prot: Extra inputs"),
        ("", {"KIOSK_SERVER__WEB_PROT": "1"}, "configuration server.web_prot: Extra inputs"),
        ("", {"KIOSK_SERVER__WEB_PORT": "x"}, "configuration server.web_port: Input should be"),
        ("[server\n", {}, "is not valid TOML"),
    ],
)
def test_a_bad_key_or_value_is_refused_in_one_line(
    tmp_path: Path, text: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(toml(tmp_path, text), environ=environ)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_variable_that_is_not_json_where_json_is_needed_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        load(AgentProgramSettings, environ={"KIOSK_AGENT__USB_ALLOW": "[{"})
    assert str(caught.value).startswith("configuration: ") and "\n" not in str(caught.value)


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})


def test_the_process_environment_is_read_when_no_mapping_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KIOSK_MAIL__PORT", "2525")
    assert load_settings().mail.port == 2525
    assert Settings().mail.port == 2525  # constructed directly, the same sources
