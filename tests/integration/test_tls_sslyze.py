"""TLS configured on purpose, checked from outside by sslyze against Mozilla's profiles.

The live device listener must pass "modern" (TLS 1.3 only, ECDSA P-256,
Mozilla's suites and groups, no known weaknesses); the web listener's
context must pass "intermediate". sslyze connects with a real device
certificate, since the device listener requires one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.ext.asyncio import AsyncEngine
from sslyze import (
    CertificateInfoExtraArgument,
    ClientAuthenticationCredentials,
    ScanCommandsExtraArguments,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanResult,
    ServerScanStatusEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)

from kiosk.crypto import authority, keys, local_enrolment, pki
from kiosk.crypto import tls as tlsconfig
from kiosk.signalling.devices.listener import DeviceHub, DeviceListener
from kiosk.store.db import make_engine
from kiosk.store.schema import metadata


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'kiosk.sqlite3'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def _scan(
    port: int, ca_file: Path, client: local_enrolment.EnrolledDevice | None = None
) -> ServerScanResult:
    network = ServerNetworkConfiguration(
        tls_server_name_indication="127.0.0.1",
        tls_client_auth_credentials=None
        if client is None
        else ClientAuthenticationCredentials(
            certificate_chain_path=client.cert, key_path=client.key
        ),
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation("127.0.0.1", port, ip_address="127.0.0.1"),
        network_configuration=network,
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=ca_file)
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    (result,) = list(scanner.get_results())
    return result


def _assert_compliant(result: ServerScanResult, profile: TlsConfigurationEnum) -> None:
    assert result.scan_status == ServerScanStatusEnum.COMPLETED, result.connectivity_error_trace
    try:
        check_server_against_tls_configuration(result, MozillaTlsConfiguration.get(profile))
    except ServerNotCompliantWithTlsConfiguration as exc:
        pytest.fail(f"not compliant with Mozilla {profile.value}: {exc.issues}")


async def test_the_live_device_listener_passes_mozilla_modern(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    device = local_enrolment.enrol_local(pki_dir, "TAB-SCAN", tmp_path / "agent")
    listener = DeviceListener(DeviceHub(sqlite_engine), pki_dir, "127.0.0.1", 0)
    port = await listener.start()
    try:
        result = await asyncio.to_thread(_scan, port, pki_dir / authority.CA_CERT, device)
    finally:
        await listener.stop()
    _assert_compliant(result, TlsConfigurationEnum.MOZILLA_MODERN)
    scan = result.scan_result
    assert scan is not None
    tls13 = scan.tls_1_3_cipher_suites.result
    assert tls13 is not None and tls13.is_tls_version_supported
    for older in (
        scan.tls_1_2_cipher_suites,
        scan.tls_1_1_cipher_suites,
        scan.tls_1_0_cipher_suites,
    ):
        assert older.result is not None and not older.result.is_tls_version_supported
    curves = scan.elliptic_curves.result
    assert curves is not None and curves.supported_curves is not None
    assert {c.name for c in curves.supported_curves} == {"secp256r1"}


async def test_the_device_listener_turns_away_a_scanner_without_a_certificate(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    pki_dir = tmp_path / "pki"
    pki.init_ca(pki_dir, ["127.0.0.1"])
    listener = DeviceListener(DeviceHub(sqlite_engine), pki_dir, "127.0.0.1", 0)
    port = await listener.start()
    try:
        result = await asyncio.to_thread(_scan, port, pki_dir / authority.CA_CERT)
    finally:
        await listener.stop()
    # Without a device certificate the handshake is refused: sslyze cannot even connect.
    assert result.scan_status == ServerScanStatusEnum.ERROR_NO_CONNECTIVITY
    assert result.connectivity_result is None


async def test_the_web_listener_context_passes_mozilla_intermediate(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    ca = pki.init_ca(pki_dir, ["127.0.0.1"])
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_server_certificate(ca, key.public_key(), ["127.0.0.1"], days=90)
    keys.save_private_key(tmp_path / "web.key", key)
    keys.write_public(
        tmp_path / "web.pem",
        cert.public_bytes(
            __import__(
                "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
            ).Encoding.PEM
        ),
    )
    app = web.Application()

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner,
        "127.0.0.1",
        0,
        ssl_context=tlsconfig.web_server_context(tmp_path / "web.pem", tmp_path / "web.key"),
    )
    await site.start()
    try:
        result = await asyncio.to_thread(_scan, site.port, pki_dir / authority.CA_CERT)
    finally:
        await runner.cleanup()
    _assert_compliant(result, TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
