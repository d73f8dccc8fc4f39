"""The units in systemd/: hardening score, verify, and agreement with the programs.

``systemd-analyze security --offline=true`` scores every unit file as systemd
would run it; each must be at 2.0 or lower (issue 7). ``systemd-analyze verify``
must be silent: it runs against a throw-away root that holds the distribution's
own units and stand-ins for the programs the units start, so that it checks the
unit files themselves (program paths, dependencies, keys), not this machine.
The commands in ExecStart= must parse with the project's own argument parsers,
and the paths the units share with the code (the provisioned marker, the
enrolment environment file, the kiosk UI's URL) must be the code's.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kiosk.runtime.config import AgentSettings

ROOT = Path(__file__).resolve().parents[2]
UNIT_DIR = ROOT / "systemd"
UNITS = sorted(UNIT_DIR.glob("*.service"))
MAX_EXPOSURE = 2.0

# Programs the units start that come from Debian packages (docs/deploy.md lists
# them); everything else must be installed by this project.
DEBIAN_PROGRAMS = {"/usr/bin/cage", "/usr/bin/chromium"}
PROJECT_PROGRAMS = {
    "/usr/bin/kiosk",
    "/usr/bin/kiosk-provision",
    "/usr/bin/kiosk-enrol",
    "/usr/lib/kiosk/usb-gadget-setup.sh",
}

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package systemd)"
)


@dataclass(frozen=True)
class Unit:
    path: Path
    entries: tuple[tuple[str, str, str], ...]  # (section, key, value) in file order

    @property
    def name(self) -> str:
        return self.path.name

    def values(self, section: str, key: str) -> list[str]:
        return [v for s, k, v in self.entries if s == section and k == key]

    def value(self, section: str, key: str) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else None

    def commands(self) -> list[list[str]]:
        out = []
        for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecStop", "ExecStopPost"):
            for value in self.values("Service", key):
                argv = shlex.split(value)
                argv[0] = argv[0].lstrip("-+@!:")
                out.append(argv)
        return out


def parse_unit(path: Path) -> Unit:
    entries: list[tuple[str, str, str]] = []
    section = ""
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        entries.append((section, key.strip(), value.strip()))
    return Unit(path, tuple(entries))


def unit(name: str) -> Unit:
    return parse_unit(UNIT_DIR / name)


# --- hardening score ----------------------------------------------------------------


def exposure(path: Path) -> tuple[float, list[str]]:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"},
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, f"no exposure in the output for {path.name}:\n{result.stdout}{result.stderr}"
    failing = [line.strip() for line in result.stdout.splitlines() if line.startswith("✗")]
    return float(match.group(1)), failing


@pytest.fixture(scope="module")
def exposures(request: pytest.FixtureRequest) -> Iterator[dict[str, tuple[float, list[str]]]]:
    table = {path.name: exposure(path) for path in UNITS} if SYSTEMD_ANALYZE else {}
    yield table
    # The table goes to the terminal even when output is captured.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not table:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("systemd-analyze security --offline=true (limit 2.0)")
        reporter.write_line(f"  {'unit':32} exposure")
        for name, (score, _) in sorted(table.items()):
            verdict = "ok" if score <= MAX_EXPOSURE else "TOO HIGH"
            reporter.write_line(f"  {name:32} {score:4.1f}  {verdict}")


def test_there_are_units() -> None:
    names = {path.name for path in UNITS}
    assert {
        "kiosk-server.service",
        "kiosk-agent.service",
        "kiosk-kiosk-ui.service",
        "kiosk-enrol.service",
        "kiosk-usb-gadget.service",
        "kiosk-provision.service",
    } <= names


@needs_systemd
@pytest.mark.parametrize("path", UNITS, ids=[path.name for path in UNITS])
def test_exposure_is_at_most_2(path: Path, exposures: dict[str, tuple[float, list[str]]]) -> None:
    score, failing = exposures[path.name]
    assert score <= MAX_EXPOSURE, f"{path.name}: exposure {score}; failing checks:\n" + "\n".join(
        failing
    )


@needs_systemd
def test_the_score_is_read_from_systemd_not_assumed(tmp_path: Path) -> None:
    # The same analysis on a bare unit gives a high exposure: the parser reads real scores.
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/usr/bin/true\n")
    score, failing = exposure(bare)
    assert score > 9.0
    assert failing


# --- verify --------------------------------------------------------------------------


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file system root like a tablet or server image: systemd's units, our units, programs."""
    root = tmp_path_factory.mktemp("image")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    target = root / "etc/systemd/system"
    target.mkdir(parents=True)
    for path in UNITS:
        shutil.copy(path, target / path.name)
    for program in DEBIAN_PROGRAMS | PROJECT_PROGRAMS:
        _stub(root / program.lstrip("/"))
    return root


@needs_systemd
def test_verify_is_clean(image_root: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={image_root}", *(p.name for p in UNITS)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_LEVEL": "notice"},
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == "", output


@needs_systemd
def test_verify_does_catch_a_broken_unit(image_root: Path) -> None:
    # The same call on a unit with a missing program and an unknown key is not silent.
    broken = image_root / "etc/systemd/system/kiosk-broken.service"
    broken.write_text("[Service]\nExecStart=/usr/bin/kiosk-missing\nProtectEverything=yes\n")
    try:
        assert SYSTEMD_ANALYZE is not None
        result = subprocess.run(
            [SYSTEMD_ANALYZE, "verify", "--man=no", f"--root={image_root}", broken.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        broken.unlink()
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "kiosk-missing" in output
    assert "ProtectEverything" in output


# --- the units agree with the programs -------------------------------------------------


@pytest.mark.parametrize("path", UNITS, ids=[path.name for path in UNITS])
def test_programs_are_known(path: Path) -> None:
    for argv in parse_unit(path).commands():
        assert argv[0] in DEBIAN_PROGRAMS | PROJECT_PROGRAMS, f"{path.name}: {argv[0]}"


def _kiosk_argv(name: str) -> list[str]:
    (argv,) = unit(name).commands()
    assert argv[0] == "/usr/bin/kiosk"
    return argv[1:]


def test_server_command_parses() -> None:
    from kiosk.cli import build_parser

    argv = _kiosk_argv("kiosk-server.service")
    assert argv == ["server", "--config", "/etc/kiosk/server.toml"]
    args = build_parser().parse_args(argv)
    assert args.command == "server"
    assert str(args.config) == "/etc/kiosk/server.toml"
    assert callable(args.func)


def test_agent_command_parses() -> None:
    from kiosk.cli import build_parser

    argv = _kiosk_argv("kiosk-agent.service")
    assert argv == ["agent", "--config", "/etc/kiosk/agent.toml"]
    args = build_parser().parse_args(argv)
    assert args.command == "agent"
    assert str(args.config) == "/etc/kiosk/agent.toml"
    assert callable(args.func)


def test_station_command_parses() -> None:
    from provisioning.cli import build_parser

    (argv,) = unit("kiosk-provision.service").commands()
    assert argv[0] == "/usr/bin/kiosk-provision"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "watch"
    assert str(args.config) == "/etc/kiosk/station.toml"
    assert callable(args.func)


def test_console_scripts_are_the_units_programs() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^kiosk = "kiosk\.cli:main"$', text, re.M)
    assert re.search(r'^kiosk-provision = "provisioning\.cli:main"$', text, re.M)
    assert re.search(r'^kiosk-enrol = "kiosk\.device\.enrol_serial:main"$', text, re.M)


def test_enrolment_command_and_paths_match_the_code() -> None:
    from kiosk.device import enrol_serial

    enrol = unit("kiosk-enrol.service")
    (argv,) = enrol.commands()
    assert argv[0] == "/usr/bin/kiosk-enrol"
    help_text = subprocess.run(
        [sys.executable, "-m", "kiosk.device.enrol_serial", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    ).stdout
    options = [a for a in argv[1:] if a.startswith("--")]
    assert options
    for option in options:
        assert option in help_text, option
    directory = Path(argv[argv.index("--dir") + 1])
    station_keys = Path(argv[argv.index("--station-keys") + 1])
    assert station_keys == enrol_serial.DEFAULT_STATION_KEYS
    marker = directory / enrol_serial.MARKER
    # Enrolment and gadget run only before the marker exists; agent and UI only after.
    for name in ("kiosk-enrol.service", "kiosk-usb-gadget.service"):
        assert unit(name).values("Unit", "ConditionPathExists") == [f"!{marker}"], name
    for name in ("kiosk-agent.service", "kiosk-kiosk-ui.service"):
        assert unit(name).values("Unit", "ConditionPathExists") == [str(marker)], name
    assert str(directory) in enrol.values("Service", "ReadWritePaths")
    # The agent reads what enrolment wrote, as the same user.
    agent = unit("kiosk-agent.service")
    assert "enrolment.env" in enrol_serial.FILES
    assert agent.values("Service", "EnvironmentFile") == [str(directory / "enrolment.env")]
    assert agent.value("Service", "User") == enrol.value("Service", "User") == "kiosk-agent"
    # The tablet's directory is made for that user (keys 0600 in a 0700 directory).
    tmpfiles = (UNIT_DIR / "kiosk-tablet.tmpfiles").read_text()
    assert re.search(rf"^d\s+{re.escape(str(directory))}\s+0700\s+kiosk-agent\s", tmpfiles, re.M)


def test_gadget_script_is_the_one_in_the_tree() -> None:
    gadget = unit("kiosk-usb-gadget.service")
    programs = {argv[0] for argv in gadget.commands()}
    assert programs == {"/usr/lib/kiosk/usb-gadget-setup.sh"}
    script = UNIT_DIR / "usb-gadget-setup.sh"
    assert script.exists(), "systemd/usb-gadget-setup.sh (installed as the unit's program)"


def test_kiosk_ui_shows_the_agents_page_and_reaches_only_loopback() -> None:
    ui = unit("kiosk-kiosk-ui.service")
    (argv,) = ui.commands()
    settings = AgentSettings()
    assert argv[0] == "/usr/bin/cage"
    assert "/usr/bin/chromium" in argv
    assert argv[-1] == f"http://{settings.ui_host}:{settings.ui_port}/"
    assert "--kiosk" in argv
    assert "--no-sandbox" not in argv  # Chromium keeps its own sandbox
    assert ui.values("Service", "IPAddressDeny") == ["any"]
    assert ui.values("Service", "IPAddressAllow") == ["localhost"]


def test_server_is_notify_with_watchdog() -> None:
    for name in ("kiosk-server.service", "kiosk-agent.service"):
        u = unit(name)
        assert u.value("Service", "Type") == "notify", name
        assert u.value("Service", "NotifyAccess") == "main", name
        assert u.value("Service", "WatchdogSec") == "30", name


def test_the_server_unit_holds_the_tablets_the_server_is_meant_for() -> None:
    """Every tablet's link is an open file: the default 1024 would cap the server (issue 14)."""
    from kiosk.runtime.config import ServerSettings
    from kiosk.runtime.open_files import plan

    limit = unit("kiosk-server.service").value("Service", "LimitNOFILE")
    assert limit is not None, "kiosk-server.service sets no LimitNOFILE"
    decision = plan(int(limit), int(limit), ServerSettings().device_capacity)
    assert decision.raise_to is None and decision.refusal is None


@pytest.mark.parametrize("path", UNITS, ids=[path.name for path in UNITS])
def test_common_hardening(path: Path) -> None:
    u = parse_unit(path)
    s = "Service"
    assert u.values(s, "CapabilityBoundingSet") == [""], "no capabilities at all"
    assert u.values(s, "AmbientCapabilities") == [""]
    assert u.value(s, "NoNewPrivileges") == "yes"
    assert u.value(s, "ProtectSystem") == "strict"
    assert u.value(s, "ProtectHome") == "yes"
    assert u.value(s, "PrivateTmp") == "yes"
    assert u.value(s, "UMask") == "0077"
    assert u.value(s, "SystemCallArchitectures") == "native"
    assert u.values(s, "SystemCallFilter")[0].split()[0] == "@system-service"
    assert u.value(s, "LockPersonality") == "yes"
    assert u.value(s, "RestrictRealtime") == "yes"
    assert u.value(s, "DevicePolicy") == "closed" or u.value(s, "PrivateDevices") == "yes"
    # Root only where configfs demands it (the gadget), and then without capabilities.
    user = u.value(s, "User")
    assert user is not None
    if user == "root":
        assert path.name == "kiosk-usb-gadget.service"
    # Chromium alone keeps namespaces, for its own sandbox.
    if path.name == "kiosk-kiosk-ui.service":
        assert u.value(s, "RestrictNamespaces") == "user pid net"
    else:
        assert u.value(s, "RestrictNamespaces") == "yes"
    # W^X is off only where a JIT (Chromium) or aiortc's cffi callback needs it
    # (tests/integration/test_units_sandbox.py runs them with it on and off).
    needs_wx = {"kiosk-kiosk-ui.service", "kiosk-server.service", "kiosk-agent.service"}
    assert u.value(s, "MemoryDenyWriteExecute") == ("no" if path.name in needs_wx else "yes")


def test_users_are_declared(tmp_path: Path) -> None:
    declared = {
        line.split()[1]
        for line in (UNIT_DIR / "kiosk.sysusers").read_text().splitlines()
        if line.startswith("u ")
    }
    for path in UNITS:
        u = parse_unit(path)
        user = u.value("Service", "User")
        if user == "root" or u.value("Service", "DynamicUser") == "yes":
            continue
        assert user in declared, f"{path.name}: User={user} is not in kiosk.sysusers"


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="no systemd-sysusers")
def test_sysusers_file_creates_the_users(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", tmp_path / "etc" / name)
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNIT_DIR / "kiosk.sysusers")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    uids = {}
    for name in ("kiosk", "kiosk-agent", "kiosk-station"):
        match = re.search(rf"^{re.escape(name)}:x:(\d+):\d+:", passwd, re.M)
        assert match, name
        uids[name] = int(match.group(1))

    # The tablet's directories, made by systemd-tmpfiles for those users.
    result = subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create",
         str(UNIT_DIR / "kiosk-tablet.tmpfiles")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for path in ("etc/kiosk/agent", "run/kiosk-audio"):
        st = (tmp_path / path).stat()
        assert st.st_mode & 0o777 == 0o700, path
        assert st.st_uid == uids["kiosk-agent"], path
