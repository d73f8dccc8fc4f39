"""Which forwarded headers the web listener believes (issue 12): a trusted proxy's only."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kiosk.signalling.proxies import TrustedProxies, parse_address

PROXIES = TrustedProxies.of(["127.0.0.1", "10.1.0.0/16"])


@given(st.lists(st.text(max_size=40), max_size=4), st.sampled_from(["203.0.113.5", "::1", ""]))
def test_an_untrusted_peer_is_the_client_whatever_it_writes(
    forwarded_for: list[str], peer: str
) -> None:
    assert PROXIES.client(peer, forwarded_for) == peer
    assert PROXIES.secure(peer, False, ["https"]) is False


@given(st.lists(st.text(max_size=40), max_size=4))
def test_any_header_gives_an_address_never_an_error(forwarded_for: list[str]) -> None:
    client = PROXIES.client("127.0.0.1", forwarded_for)
    assert parse_address(client) is not None


def test_the_nearest_address_that_is_not_a_trusted_proxy_is_the_client() -> None:
    # The client wrote "1.1.1.1" itself; the outer proxy (10.1.2.3) appended what it saw.
    hops = ["1.1.1.1, 198.51.100.9", "10.1.2.3"]
    assert PROXIES.client("127.0.0.1", hops) == "198.51.100.9"
    assert PROXIES.client("127.0.0.1", ["[2001:db8::5]:4711"]) == "2001:db8::5"
    assert PROXIES.client("127.0.0.1", ["198.51.100.9:4711"]) == "198.51.100.9"
    assert PROXIES.client("127.0.0.1", []) == "127.0.0.1"
    # Only proxies all the way: the farthest one is the client.
    assert PROXIES.client("127.0.0.1", ["10.1.0.7"]) == "10.1.0.7"
    # Rubbish from a trusted hop: the last address that could be read.
    assert PROXIES.client("127.0.0.1", ["nonsense, 10.1.0.7"]) == "10.1.0.7"
    assert PROXIES.client("::ffff:127.0.0.1", ["198.51.100.9"]) == "198.51.100.9"


def test_the_scheme_is_the_trusted_proxys_word() -> None:
    assert PROXIES.secure("127.0.0.1", False, ["https"]) is True
    assert PROXIES.secure("127.0.0.1", False, ["https, http"]) is False  # the nearest says
    assert PROXIES.secure("127.0.0.1", False, []) is False
    assert PROXIES.secure("127.0.0.1", True, ["http"]) is True  # our own TLS stands
    assert TrustedProxies().secure("127.0.0.1", False, ["https"]) is False
