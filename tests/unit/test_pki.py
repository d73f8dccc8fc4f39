"""The deployment CA: files and permissions, device certificates from CSRs, the CRL,
and the TLS contexts built on them (real handshakes on loopback)."""

from __future__ import annotations

import asyncio
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kiosk.crypto import authority, keys, local_enrolment, pki, revocation
from kiosk.crypto import tls as tlsconfig


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("deploy") / "pki"
    pki.init_ca(d, ["127.0.0.1", "localhost"])
    return d


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_every_file_with_private_keys_0600(pki_dir: Path) -> None:
    a = authority
    for name in (a.CA_KEY, a.LISTENER_KEY, a.GRANT_KEY, a.AUDIT_KEY):
        assert _mode(pki_dir / name) == 0o600, name
    for name in (a.CA_CERT, a.LISTENER_CERT, a.GRANT_PUB, a.AUDIT_PUB, a.CRL):
        assert (pki_dir / name).is_file(), name
    assert _mode(pki_dir) == 0o700
    assert isinstance(keys.load_private_key(pki_dir / a.GRANT_KEY), ed25519.Ed25519PrivateKey)
    assert isinstance(keys.load_private_key(pki_dir / authority.CA_KEY), ec.EllipticCurvePrivateKey)


def test_the_listener_certificate_is_p256_ecdsa_for_90_days_naming_the_hosts(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    cert = x509.load_pem_x509_certificate((pki_dir / authority.LISTENER_CERT).read_bytes())
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 90
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(v) for v in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1"}
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    cert.verify_directly_issued_by(ca.cert)


def test_init_again_keeps_the_ca_and_keys(pki_dir: Path) -> None:
    names = (authority.CA_CERT, authority.CA_KEY, authority.GRANT_KEY)
    before = {n: (pki_dir / n).read_bytes() for n in names}
    listener = (pki_dir / authority.LISTENER_CERT).read_bytes()
    pki.init_ca(pki_dir, ["127.0.0.1", "localhost"])
    assert {n: (pki_dir / n).read_bytes() for n in before} == before
    assert (pki_dir / authority.LISTENER_CERT).read_bytes() == listener  # still fresh: not renewed


def test_init_renews_the_listener_certificate_for_new_hosts_or_near_expiry(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pki.init_ca(d, ["127.0.0.1"], now=t0)
    first = (d / authority.LISTENER_CERT).read_bytes()
    pki.init_ca(d, ["127.0.0.1"], now=t0 + timedelta(days=30))
    assert (d / authority.LISTENER_CERT).read_bytes() == first
    pki.init_ca(d, ["127.0.0.1"], now=t0 + timedelta(days=70))
    second = (d / authority.LISTENER_CERT).read_bytes()
    assert second != first
    pki.init_ca(d, ["127.0.0.1", "kiosk.example"], now=t0 + timedelta(days=70))
    assert (d / authority.LISTENER_CERT).read_bytes() != second


def test_a_bad_host_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(authority.PkiError) as err:
        pki.init_ca(tmp_path / "pki", ["evil host/"])
    assert err.value.code == authority.PkiError.BAD_HOST
    assert not (tmp_path / "pki" / authority.CA_KEY).exists()


def test_a_device_certificate_comes_from_a_matching_csr(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = pki.issue_device_certificate(ca, pki.make_device_csr(key, "TAB-0042"), "TAB-0042")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "TAB-0042"
    assert cert.public_key() == key.public_key()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(ca.cert)
    assert authority.certificate_serial_text(cert) == format(cert.serial_number, "x")


def test_a_csr_for_another_serial_is_refused(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    csr = pki.make_device_csr(ec.generate_private_key(ec.SECP256R1()), "TAB-0001")
    with pytest.raises(authority.PkiError) as err:
        pki.issue_device_certificate(ca, csr, "TAB-0002")
    assert err.value.code == "csr_subject_mismatch"


def test_a_csr_with_extra_subject_attributes_is_refused(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "TAB-0001"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kiosk deployment"),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(authority.PkiError) as err:
        pki.issue_device_certificate(ca, csr, "TAB-0001")
    assert err.value.code == "csr_subject_mismatch"


def test_a_csr_not_signed_by_its_key_is_refused(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    csr = pki.make_device_csr(ec.generate_private_key(ec.SECP256R1()), "TAB-0001")
    der = bytearray(
        csr.public_bytes(__import__("cryptography").hazmat.primitives.serialization.Encoding.DER)
    )
    der[-5] ^= 0x01  # inside the signature
    try:
        broken = x509.load_der_x509_csr(bytes(der))
    except ValueError:
        pytest.fail("the flipped bit should leave a parseable CSR")
    with pytest.raises(authority.PkiError) as err:
        pki.issue_device_certificate(ca, broken, "TAB-0001")
    assert err.value.code == "bad_csr_signature"


def test_a_csr_with_a_weak_or_odd_key_type_is_refused(pki_dir: Path) -> None:
    ca = authority.load_ca(pki_dir)
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(authority.PkiError) as err:
        pki.issue_device_certificate(ca, pki.make_device_csr(key, "TAB-1"), "TAB-1")
    assert err.value.code == "bad_csr_key"


@pytest.mark.parametrize("serial", ["", "a b", "x" * 65, "../etc", "TAB\n1"])
def test_bad_device_serials_are_refused(pki_dir: Path, serial: str) -> None:
    ca = authority.load_ca(pki_dir)
    csr = pki.make_device_csr(ec.generate_private_key(ec.SECP256R1()), "TAB-1")
    with pytest.raises(authority.PkiError) as err:
        pki.issue_device_certificate(ca, csr, serial)
    assert err.value.code == "bad_device_serial"


def test_enrol_local_writes_what_the_agent_needs(pki_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "agent"
    e = local_enrolment.enrol_local(pki_dir, "TAB-7", out)
    assert _mode(e.key) == 0o600 and _mode(out) == 0o700
    assert e.ca_cert.read_bytes() == (pki_dir / authority.CA_CERT).read_bytes()
    assert e.grant_pub.read_bytes() == (pki_dir / authority.GRANT_PUB).read_bytes()
    cert = x509.load_pem_x509_certificate(e.cert.read_bytes())
    assert authority.certificate_serial_text(cert) == e.certificate_serial
    assert not any(p.name.endswith(".key") for p in pki_dir.iterdir() if "TAB" in p.name)


def test_revocation_is_recorded_in_a_ca_signed_crl(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    ca = pki.init_ca(d, ["127.0.0.1"])
    e = local_enrolment.enrol_local(d, "TAB-9", tmp_path / "agent")
    assert revocation.revoked_serials(d) == set()
    assert revocation.revoke(d, e.certificate_serial) is True
    assert revocation.revoke(d, e.certificate_serial) is False  # idempotent
    assert revocation.revoked_serials(d) == {e.certificate_serial}
    crl = x509.load_pem_x509_crl((d / authority.CRL).read_bytes())
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number >= 2


def test_a_crl_close_to_its_next_update_is_re_signed_with_the_same_entries(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    ca = pki.init_ca(d, ["127.0.0.1"], now=t0)
    revocation.revoke(d, "abc123", now=t0)
    revocation.ensure_crl(ca, now=t0 + timedelta(days=10))
    assert x509.load_pem_x509_crl((d / authority.CRL).read_bytes()).last_update_utc < t0
    revocation.ensure_crl(ca, now=t0 + timedelta(days=70))
    crl = x509.load_pem_x509_crl((d / authority.CRL).read_bytes())
    assert crl.next_update_utc is not None and crl.next_update_utc > t0 + timedelta(days=120)
    assert revocation.revoked_serials(d) == {"abc123"}


def test_load_ca_without_init_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(authority.PkiError, match="kiosk admin ca init"):
        authority.load_ca(tmp_path)


# --- TLS contexts, with real handshakes on loopback -------------------------------------


async def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, host: str = "127.0.0.1"
) -> bytes | str:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"hello")
        await w.drain()
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=host), 10
        )
        data = await asyncio.wait_for(r.read(5), 10)
        w.close()
        return data
    except (ssl.SSLError, ConnectionError) as exc:
        return f"refused: {exc}"
    finally:
        server.close()
        await server.wait_closed()


def _client(e: local_enrolment.EnrolledDevice) -> ssl.SSLContext:
    return tlsconfig.agent_client_context(e.ca_cert, e.cert, e.key)


async def test_the_listener_context_takes_a_new_crl_without_restart(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    pki.init_ca(d, ["127.0.0.1"])
    good = local_enrolment.enrol_local(d, "TAB-1", tmp_path / "a")
    bad = local_enrolment.enrol_local(d, "TAB-2", tmp_path / "b")
    contexts = tlsconfig.DeviceTlsContexts(d)
    frozen = tlsconfig.device_listener_context(d)  # built before the revocation
    server = contexts.server_context()
    assert await _handshake(server, _client(bad)) == b"hello"
    revocation.revoke(d, bad.certificate_serial)
    assert await _handshake(server, _client(bad)) != b"hello"
    assert await _handshake(server, _client(good)) == b"hello"
    assert contexts.reloads == 1
    # The swap is what makes the difference: a context that kept the old CRL lets it in.
    assert await _handshake(frozen, _client(bad)) == b"hello"


async def test_the_agent_refuses_a_server_of_another_ca_or_host(tmp_path: Path) -> None:
    d, other = tmp_path / "pki", tmp_path / "other"
    pki.init_ca(d, ["127.0.0.1"])
    pki.init_ca(other, ["127.0.0.1"])
    dev = local_enrolment.enrol_local(d, "TAB-1", tmp_path / "a")
    foreign_server = tlsconfig.device_listener_context(other)
    result = await _handshake(foreign_server, _client(dev))
    assert isinstance(result, str) and "CERTIFICATE_VERIFY_FAILED" in result
    wrong_host = await _handshake(
        tlsconfig.device_listener_context(d), _client(dev), host="kiosk.example"
    )
    assert isinstance(wrong_host, str) and "CERTIFICATE_VERIFY_FAILED" in wrong_host


def test_contexts_are_tls13_only_with_mozilla_suites_and_no_tickets(pki_dir: Path) -> None:
    ctx = tlsconfig.device_listener_context(pki_dir)
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert ctx.num_tickets == 0
    assert ctx.options & ssl.OP_NO_COMPRESSION
    # Only the deployment CA is trusted, never the system store.
    assert [c["subject"] for c in ctx.get_ca_certs()] == [
        c["subject"]
        for c in ssl.create_default_context(cafile=pki_dir / authority.CA_CERT).get_ca_certs()
    ]
    suites = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}
    assert suites <= tlsconfig.MOZILLA_TLS13_SUITES


async def test_a_renewed_listener_certificate_is_served_without_restart(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    seventy_days_ago = datetime.now(UTC) - timedelta(days=70)
    ca = pki.init_ca(d, ["127.0.0.1"], now=seventy_days_ago)  # 20 days left on it
    dev = local_enrolment.enrol_local(d, "TAB-1", tmp_path / "a")
    contexts = tlsconfig.DeviceTlsContexts(d)
    server = contexts.server_context()
    first = x509.load_pem_x509_certificate((d / authority.LISTENER_CERT).read_bytes())
    assert pki.renew_listener_if_due(ca, now=seventy_days_ago) is False  # 90 days left then
    assert pki.renew_listener_if_due(ca) is True  # now: less than 30 days left
    assert pki.renew_listener_if_due(ca) is False
    second = x509.load_pem_x509_certificate((d / authority.LISTENER_CERT).read_bytes())
    assert second.serial_number != first.serial_number
    san = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(v) for v in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    seen: list[int] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server)
    port = srv.sockets[0].getsockname()[1]
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port, ssl=_client(dev))
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(x509.load_der_x509_certificate(der).serial_number)
        w.close()
    finally:
        srv.close()
        await srv.wait_closed()
    assert seen == [second.serial_number]
