"""Configuration: TOML files, every setting overridable by ``KIOSK_…`` variables.

The one place every setting is declared, with its default: a section is a
class here, a key is one line in it. Each program reads its own settings
class — ``Settings`` (the server and ``kiosk admin``), ``AgentProgramSettings``
(the tablet agent), ``StationProgramSettings`` (the provisioning station) —
with pydantic-settings: the TOML file first, then a variable per key that
names its section and key joined by a double underscore, upper-case
(``KIOSK_SERVER__WEB_PORT=8443`` overrides ``[server] web_port``). Unknown keys
are refused so that a typo never silently leaves a default in force; a bad
value is refused in one line that names it. A list of text comes from a
variable as comma-separated text (``CommaList``), any other list or table as
JSON.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [v for v in (p.strip() for p in value.split(",")) if v]
    return value


# A list of text: a TOML array, or comma-separated text in a variable.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    data_dir: Path = Path("/var/lib/kiosk")
    web_host: str = "127.0.0.1"
    web_port: int = 8443
    # The operator's certificate for the web listener; empty means plain HTTP
    # behind a TLS-terminating reverse proxy on the same host.
    web_cert: Path | None = None
    web_key: Path | None = None
    public_url: str = ""  # how visitors and staff reach the web listener
    device_host: str = "127.0.0.1"
    device_port: int = 8444
    # Tablets this process is sized to hold at once: the server makes sure its
    # open-file limit allows that many links and more, or refuses to start
    # (kiosk/runtime/open_files.py; the unit's LimitNOFILE= must allow it).
    device_capacity: int = Field(default=10_000, ge=1)
    # The device listener's listen backlog: tablets reconnecting all at once
    # (after a restart) wait here. The kernel caps it at net.core.somaxconn.
    device_backlog: int = Field(default=4096, ge=1, le=65535)
    session_hours: int = 12
    # How long a staff member's one-time set-password link works (issue 16).
    password_link_hours: float = Field(default=72, gt=0, le=24 * 30)
    max_body_bytes: int = 64 * 1024
    # GET /metrics: empty serves loopback peers only; set, a scraper sends it as Bearer.
    metrics_token: str = ""


class WebSettings(_Section):
    """What the web listener believes of a reverse proxy in front of it (issue 12)."""

    # Addresses or networks of the proxies whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; nobody else's are (kiosk/signalling/proxies.py).
    trusted_proxies: CommaList = Field(default_factory=list)
    # The session cookie is Secure and HSTS is sent even on plain HTTP: for a
    # proxy that terminates TLS but sends no X-Forwarded-Proto.
    cookie_secure: bool = False
    # A client's wait after three wrong passwords in a row for one user; it doubles
    # with each further failure (kiosk/domain/login_throttle.py).
    login_delay_seconds: float = Field(default=1.0, gt=0, le=60)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, entries: list[str]) -> list[str]:
        import ipaddress

        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry[:60]!r} is not an address or a network") from None
        return entries


class DatabaseSettings(_Section):
    # Empty: SQLite file in the data directory.
    url: str = ""


class PkiSettings(_Section):
    # Empty: <data_dir>/pki
    dir: Path | None = None


class AuditSettings(_Section):
    # A signed checkpoint (chain and Merkle tree head) every N entries, every T
    # seconds while entries come in, when a privileged call ends, and at shutdown.
    checkpoint_every: int = Field(default=100, ge=1)
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    # The log's name in its checkpoints (C2SP origin), e.g. "kiosk.example.org/audit";
    # empty: the host of server.public_url with "/audit". Fix it before witnesses follow.
    origin: str = ""
    # Witnesses whose cosignatures the log accepts: C2SP verifier keys
    # ("<name>+<key id>+<key>", made by `kiosk witness init`).
    witnesses: CommaList = Field(default_factory=list)

    @field_validator("witnesses")
    @classmethod
    def _witness_keys(cls, keys: list[str]) -> list[str]:
        from kiosk.audit.note import COSIGNATURE_V1, NoteError, parse_vkey

        for key in keys:
            try:
                kind = parse_vkey(key).kind
            except NoteError as exc:
                raise ValueError(f"{key[:40]!r}: {exc}") from None
            if kind != COSIGNATURE_V1:
                raise ValueError(f"{key[:40]!r} is not a witness (cosignature) key")
        return keys

    # How long a privileged call's receipt stays downloadable from its invite link.
    receipt_days: int = Field(default=365, ge=1)


class MailSettings(_Section):
    # "smtp" sends over SMTP; "folder" writes each mail as a file (the demo).
    transport: str = "smtp"
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_tls: bool = False
    sender: str = "kiosk@localhost"
    folder: Path | None = None
    # The outbox (issue 12: mail is never lost): a mail the server cannot take is
    # tried again after retry_seconds, doubled each time (at most an hour apart),
    # and after `attempts` tries it is dead: kept for `kiosk admin mail retry`, and
    # counted in kiosk_mail_outbox{state="dead"}.
    timeout_seconds: float = Field(default=20.0, gt=0, le=600)
    retry_seconds: float = Field(default=30.0, gt=0, le=3600)
    attempts: int = Field(default=10, ge=1, le=100)


class TurnSettings(_Section):
    # ARCHITECTURE.md principle 7: ICE servers are always explicit; none by default.
    urls: CommaList = Field(default_factory=list)
    stun_urls: CommaList = Field(default_factory=list)
    shared_secret: str = ""


class CallSettings(_Section):
    # Issue 12, bounded resources: staff monitors per call (each a peer connection on
    # the bridge), and how long a monitor's offer waits for its answer before it goes.
    max_monitors: int = Field(default=4, ge=1, le=64)
    monitor_answer_seconds: float = Field(default=30.0, gt=0, le=600)


class ClusterSettings(_Section):
    """Several server processes on one PostgreSQL (ARCHITECTURE.md, "Storage and scale")."""

    # Empty: this process is the whole server (the embedded default, SQLite or
    # PostgreSQL). Set: NATS carries messages between the nodes, e.g.
    # "nats://10.0.0.5:4222,nats://10.0.0.6:4222" (a list of the cluster's servers).
    nats_url: str = ""
    # This node's name in leases and logs; empty: the host name.
    node: str = ""
    # How long a node's ownership of the live calls lasts without renewal: when
    # its owner dies, another node adopts the calls this long after the last renewal.
    lease_seconds: float = Field(default=5.0, ge=0.5, le=60)

    @property
    def enabled(self) -> bool:
        return bool(self.nats_url.strip())


class LogSettings(_Section):
    level: str = "info"
    format: str = "json"  # "json" for journald, "console" for a terminal


class AgentSettings(_Section):
    server_url: str = "wss://127.0.0.1:8444/device/v1"
    ca_cert: Path = Path("/etc/kiosk/agent/ca.pem")
    cert: Path = Path("/etc/kiosk/agent/device.pem")
    key: Path = Path("/etc/kiosk/agent/device.key")
    grant_public_key: Path = Path("/etc/kiosk/agent/grant.pub")
    ui_host: str = "127.0.0.1"
    ui_port: int = 8080
    # The agent's end of the kiosk page's media connection: a loopback address
    # other than 127.0.0.1 (aioice leaves that one out of its candidates), which
    # the tablet's units put on lo (systemd/kiosk-page-media.service).
    page_media_host: str = "127.0.0.2"
    ice_servers: CommaList = Field(default_factory=list)
    usb_allow: list[dict[str, Any]] = Field(default_factory=list)
    # R18: lock USB down to the allow list (kiosk/device/usbguard.py). On by
    # default; only a tablet simulated on a workstation (demo, tests) turns it off.
    usb_guard: bool = True
    # The device id the server knows this tablet by; empty: learnt from the
    # first state the server (vouched for by the pinned CA) sends, then pinned.
    device_id: str = ""
    # Link timers (kiosk/device/link.py says why these values): a ping every
    # heartbeat_interval s; reconnects back off exponentially from
    # reconnect_min to reconnect_max s with full jitter.
    heartbeat_interval: float = 10.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0


class StationSettings(_Section):
    """The provisioning station (provisioning/; ARCHITECTURE.md "Enrolment over USB")."""

    # Inventory and the station's provisioning key (Ed25519) live here.
    data_dir: Path = Path("/var/lib/kiosk-station")
    # Written into every bundle: where the tablet's agent connects.
    device_server_url: str = "wss://127.0.0.1:8444/device/v1"
    # The server's staff API, where new tablets are registered (POST /devices).
    api_url: str = "https://127.0.0.1:8443/api/v1"
    api_token: str = ""
    api_ca: Path | None = None  # trust anchor for api_url if not a public CA
    facility_id: str = ""
    facility_name: str = ""
    timezone: str = "Europe/Oslo"
    # Our USB gadget: the Linux Foundation's multifunction composite gadget id
    # with our own product string (systemd/usb-gadget-setup.sh sets the same).
    gadget_vendor: str = "1d6b"
    gadget_product: str = "0104"
    gadget_product_name: str = "Kiosk enrolment"


# --- one settings class per program -------------------------------------------

ENV_PREFIX = "KIOSK_"

# The variables a load reads: os.environ unless ``load`` is given others.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("kiosk_environ", default=None)


class EnvironmentVariables(EnvSettingsSource):
    """``KIOSK_<SECTION>__<KEY>`` variables, from the mapping ``load`` was given."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _ENVIRON.get()
        if environ is None:
            return super()._load_env_vars()
        return {k.lower(): v for k, v in environ.items()}


class _Program(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A variable overrides the file (given as the init values); nothing else is read.
        return (EnvironmentVariables(settings_cls), init_settings)


class Settings(_Program):
    """The server's (``kiosk server``) and the administration commands' settings."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    pki: PkiSettings = Field(default_factory=PkiSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    turn: TurnSettings = Field(default_factory=TurnSettings)
    calls: CallSettings = Field(default_factory=CallSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.server.data_dir / 'kiosk.sqlite3'}"

    @property
    def pki_dir(self) -> Path:
        return self.pki.dir or self.server.data_dir / "pki"

    @property
    def node_name(self) -> str:
        import socket

        return self.cluster.node or socket.gethostname()

    def cluster_refusal(self) -> str | None:
        """Why these settings cannot run as a cluster node; None when they can (or need not)."""
        if self.cluster.enabled and not self.database_url.startswith("postgresql"):
            return (
                "a cluster ([cluster] nats_url) needs PostgreSQL ([database] url); "
                "SQLite serves one process only"
            )
        return None


class AgentProgramSettings(_Program):
    """The tablet agent's settings (``kiosk agent``, ``kiosk-usbguard``)."""

    agent: AgentSettings = Field(default_factory=AgentSettings)
    log: LogSettings = Field(default_factory=LogSettings)


class StationProgramSettings(_Program):
    """The provisioning station's settings (``kiosk-provision``)."""

    station: StationSettings = Field(default_factory=StationSettings)
    pki: PkiSettings = Field(default_factory=PkiSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @property
    def pki_dir(self) -> Path:
        # A copy of the server's CA; by default where the server keeps it.
        return self.pki.dir or ServerSettings().data_dir / "pki"


class ConfigError(Exception):
    pass


P = TypeVar("P", bound=_Program)


@contextmanager
def _variables(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def load(program: type[P], path: Path | None = None, environ: Mapping[str, str] | None = None) -> P:
    """``program``'s settings from the TOML file at ``path`` and the variables."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    try:
        with _variables(os.environ if environ is None else environ):
            return program(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"configuration {where}: {first['msg']}") from exc
    except SettingsError as exc:
        raise ConfigError(f"configuration: {exc}") from exc


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The server's settings (``load(Settings, …)``)."""
    return load(Settings, path, environ)
