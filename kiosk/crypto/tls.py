"""TLS contexts, configured on purpose rather than left to Python's defaults.

Device listener (server side of the tablets' link): Mozilla's "modern"
profile — TLS 1.3 only; a client certificate is required and must chain to
the deployment CA alone (never the system's trust store); the leaf is checked
against the CA's CRL; no session tickets, so every connection goes through a
full handshake and meets the current CRL (a resumed session would skip the
client certificate check).

Key exchange group: P-256 only. Python 3.11's ``ssl`` can set exactly one
group (``set_ecdh_curve``), and P-256 is in every Mozilla profile. TLS 1.3
cipher suites cannot be chosen through Python's ``ssl``; OpenSSL's TLS 1.3
list is AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM — exactly Mozilla's —
and ``_check_tls13_suites`` refuses to build a context if that ever changes.

The CRL changes while the server runs. OpenSSL cannot drop a CRL from a
context's store, so ``DeviceTlsContexts`` builds a fresh context when
``crl.pem`` changes and swaps it into each new connection from the
servername callback (run early in every handshake, SNI or not); the client
certificate is verified later in that handshake, against the swapped
context's store.
"""

from __future__ import annotations

import os
import ssl
import threading
from pathlib import Path
from typing import Final

from kiosk.crypto.authority import CertificateAuthority, PkiPaths, load_ca
from kiosk.crypto.revocation import ensure_crl
from kiosk.runtime.logs import get_logger

log = get_logger(__name__)

MOZILLA_TLS13_SUITES: Final = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
GROUP: Final = "prime256v1"
# Mozilla "intermediate" TLS 1.2 suites with ECDHE (no DHE: no finite-field groups here).
INTERMEDIATE_TLS12_CIPHERS: Final = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)


def _check_tls13_suites(ctx: ssl.SSLContext) -> None:
    suites = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.3"}
    if not suites or not suites <= MOZILLA_TLS13_SUITES:
        raise ssl.SSLError(f"unexpected TLS 1.3 cipher suites: {sorted(suites)}")


def _harden(ctx: ssl.SSLContext) -> None:
    # Mozilla: no server cipher preference (every offered suite is strong).
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.set_ecdh_curve(GROUP)


def _device_listener_context(paths: PkiPaths) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _harden(ctx)
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0  # no resumption: every connection shows its certificate again
    ctx.load_cert_chain(paths.listener_cert, paths.listener_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=paths.ca_cert)  # the deployment CA and nothing else
    ctx.load_verify_locations(cafile=paths.crl)  # a PEM CRL goes into the same store
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    _check_tls13_suites(ctx)
    return ctx


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class DeviceTlsContexts:
    """The device listener's server context, following changes of its files.

    A new ``crl.pem`` (a revocation) or a renewed listener certificate is
    used from the next handshake on, without a restart.

    ``server_context()`` is what the listening socket is created with. Each
    new connection gets ``current()``: the context built from the CRL as it
    is on disk now (three ``stat`` calls per handshake).
    """

    def __init__(self, pki_dir: Path) -> None:
        self.ca: CertificateAuthority = load_ca(pki_dir)
        ensure_crl(self.ca)
        self.paths = self.ca.paths
        self._lock = threading.Lock()
        self._stamp = self.files_stamp()
        self._current = _device_listener_context(self.paths)
        self._server = _device_listener_context(self.paths)
        self._server.sni_callback = self._select
        self.reloads = 0

    def crl_stamp(self) -> tuple[int, int, int]:
        return _stamp(self.paths.crl)

    def files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        """The CRL and the listener's certificate and key: any change means a new context."""
        return tuple(
            _stamp(p) for p in (self.paths.crl, self.paths.listener_cert, self.paths.listener_key)
        )

    def current(self) -> ssl.SSLContext:
        stamp = self.files_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._current = _device_listener_context(self.paths)
                self._stamp = stamp
                self.reloads += 1
            return self._current

    def reload(self) -> None:
        """Rebuild now (e.g. right after revoke(); the stat check would also catch it)."""
        with self._lock:
            self._stamp = ()
        self.current()

    def _select(
        self, sock: ssl.SSLSocket | ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext
    ) -> int | None:
        try:
            sock.context = self.current()
        except Exception:
            # A CRL that changed but cannot be loaded may hold new revocations:
            # fail closed (refuse the handshake) rather than use the old list.
            log.error("device listener cannot load the CRL; refusing handshakes")
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None

    def server_context(self) -> ssl.SSLContext:
        return self._server


def device_listener_context(pki_dir: Path) -> ssl.SSLContext:
    """A fixed context (no CRL following); tests and tools. The listener uses DeviceTlsContexts."""
    return _device_listener_context(PkiPaths(pki_dir))


def agent_client_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """The tablet's side: TLS 1.3, the pinned deployment CA only, its own certificate.

    Host name checking stays on: the server's certificate must name the host
    in the agent's server URL.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _harden(ctx)
    ctx.load_verify_locations(cafile=ca_cert)
    ctx.load_cert_chain(cert, key)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    _check_tls13_suites(ctx)
    return ctx


def web_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The web listener (staff and visitors' browsers): Mozilla's "intermediate".

    TLS 1.2 and 1.3; for 1.2 only ECDHE with AEAD suites.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    _harden(ctx)
    ctx.set_ciphers(INTERMEDIATE_TLS12_CIPHERS)
    ctx.load_cert_chain(cert, key)
    _check_tls13_suites(ctx)
    return ctx
