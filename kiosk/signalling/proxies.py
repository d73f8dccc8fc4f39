"""Who is on the other end of a web request, and did they use TLS (issue 12).

Behind a reverse proxy every request comes from the proxy's address over
plain HTTP, and the proxy says in ``X-Forwarded-For`` whom it came from and
in ``X-Forwarded-Proto`` how. Anybody can send those headers, so they are
believed only from the addresses in ``[web] trusted_proxies``; from anybody
else they mean nothing. ``X-Forwarded-For`` is read from the right (the hop
nearest to us) past every trusted proxy: the first address that is not one
is the client. What a client wrote itself, further left, is never reached.

The middleware gives every handler a request whose ``remote`` is that
client and whose ``secure`` says whether the client used TLS, so the login
throttle, the ``/metrics`` loopback check, the session cookie's ``Secure``
flag and HSTS all follow what the proxy saw.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from kiosk.runtime.logs import get_logger
from kiosk.signalling.context import SETTINGS

log = get_logger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, ``1.2.3.4:5678``, ``[::1]:5678``; else None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> TrustedProxies:
        """From ``[web] trusted_proxies``: addresses and networks (``10.0.0.0/8``)."""
        return cls(tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries))

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in n for n in self.networks)

    def client(self, peer: str, forwarded_for: Sequence[str]) -> str:
        """The client's address: the peer's, unless the peer is a trusted proxy."""
        here = parse_address(peer)
        if not self.trusts(here):
            return peer
        hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                break  # a trusted proxy passed on something unreadable: stop at that proxy
            here = address
            if not self.trusts(address):
                break
        return str(here)

    def secure(self, peer: str, tls: bool, forwarded_proto: Sequence[str]) -> bool:
        """Did the client use TLS? Its own connection's, or a trusted proxy's word."""
        if tls or not self.trusts(parse_address(peer)) or not forwarded_proto:
            return tls
        nearest = forwarded_proto[-1].split(",")[-1].strip().lower()
        return nearest == "https"


# Whether the client used TLS, as the trusted proxy said; kept on the request itself
# because the hook that adds response headers sees the request the proxy sent.
CLIENT_TLS = web.RequestKey("client_tls", bool)


def served_over_tls(request: web.Request) -> bool:
    """The client used TLS: to us, to a trusted proxy that says so, or by the operator's
    word (``[web] cookie_secure``) for a proxy that does not say. The session cookie is
    ``Secure`` and HSTS is sent exactly then."""
    tls = request.get(CLIENT_TLS, request.secure)
    return tls or request.app[SETTINGS].web.cookie_secure


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def forwarded(proxies: TrustedProxies) -> Middleware:
    """The middleware: handlers see the client and scheme the trusted proxy reported."""
    warned: list[bool] = []

    @web.middleware
    async def believe_trusted_proxies(request: web.Request, handler: Handler) -> (
            web.StreamResponse):
        peer = request.remote or ""
        hops = request.headers.getall("X-Forwarded-For", [])
        if not proxies.trusts(parse_address(peer)):
            if hops and not warned:
                warned.append(True)
                log.warning(
                    "a request came with X-Forwarded-For from an address that is not a "
                    "trusted proxy; it is ignored (set [web] trusted_proxies if that is "
                    "your proxy)",
                    peer=peer,
                )
            return await handler(request)
        client = proxies.client(peer, hops)
        tls = request.secure
        proto = request.headers.getall("X-Forwarded-Proto", [])
        request[CLIENT_TLS] = proxies.secure(peer, tls, proto)  # the clone copies it
        scheme = "https" if request[CLIENT_TLS] else "http"
        return await handler(request.clone(remote=client, scheme=scheme))

    return believe_trusted_proxies
