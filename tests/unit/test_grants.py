"""Grants: signed, canonical, bound to one device, ended by the tablet's own clock."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given
from hypothesis import strategies as st

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.wire.grants import (
    DEFAULT_DRIFT,
    Grant,
    GrantClock,
    GrantError,
    ReplayGuard,
    SignedGrant,
    canonical_json,
    sign_grant,
    verify_grant,
)

KEY = Ed25519PrivateKey.generate()
PUB = KEY.public_key()
T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)

ids = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64
)
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def grants(draw: st.DrawFn) -> Grant:
    start = draw(times)
    length = draw(st.integers(min_value=1, max_value=10 * 3600 * 10**6))
    issued = start + timedelta(microseconds=draw(st.integers(-3600 * 10**6, 3600 * 10**6)))
    return Grant(
        call_id=draw(ids),
        device_id=draw(ids),
        inmate_id=draw(ids),
        contact_id=draw(ids),
        category=draw(st.sampled_from(Category)),
        route=draw(st.sampled_from(Route)),
        control=draw(st.sampled_from(ControlLevel)),
        not_before=start,
        not_after=start + timedelta(microseconds=length),
        issued_at=issued,
        dial_nonce=draw(ids),
    )


def a_grant(**changes: object) -> Grant:
    base = Grant(
        call_id="call-1",
        device_id="dev-1",
        inmate_id="inm-1",
        contact_id="con-1",
        category=Category.PERSONAL,
        route=Route.P2P,
        control=ControlLevel.NONE,
        not_before=T0,
        not_after=T0 + timedelta(minutes=30),
        issued_at=T0,
        dial_nonce="dial-nonce-1",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@given(grants())
def test_a_signed_grant_verifies_to_itself(grant: Grant) -> None:
    signed = sign_grant(grant, KEY)
    assert verify_grant(signed, PUB, grant.device_id) == grant


@given(grants(), st.data())
def test_any_change_of_any_payload_byte_is_refused(grant: Grant, data: st.DataObject) -> None:
    signed = sign_grant(grant, KEY)
    raw = bytearray(signed.payload.encode("utf-8"))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    text = raw.decode("utf-8", errors="surrogateescape")
    with pytest.raises(GrantError) as err:
        verify_grant(SignedGrant(text, signed.signature), PUB, grant.device_id)
    assert err.value.reason in (GrantError.BAD_SIGNATURE, GrantError.MALFORMED)


@given(grants(), st.data())
def test_any_change_of_the_signature_is_refused(grant: Grant, data: st.DataObject) -> None:
    signed = sign_grant(grant, KEY)
    i = data.draw(st.integers(0, len(signed.signature) - 1))
    c = data.draw(st.characters(codec="ascii"))
    assume(c != signed.signature[i])
    forged = signed.signature[:i] + c + signed.signature[i + 1 :]
    with pytest.raises(GrantError):
        verify_grant(SignedGrant(signed.payload, forged), PUB, grant.device_id)


@given(grants(), st.data())
def test_any_change_of_any_signature_byte_is_refused(grant: Grant, data: st.DataObject) -> None:
    signed = sign_grant(grant, KEY)
    raw = bytearray(base64.urlsafe_b64decode(signed.signature + "=="))
    raw[data.draw(st.integers(0, 63))] ^= data.draw(st.integers(1, 255))
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(GrantError) as err:
        verify_grant(SignedGrant(signed.payload, forged), PUB, grant.device_id)
    assert err.value.reason == GrantError.BAD_SIGNATURE


def test_the_last_signature_character_cannot_hide_extra_bits() -> None:
    # 64 bytes leave 2 unused bits in the 86th character; a lenient decoder
    # would accept four spellings of one signature.
    signed = sign_grant(a_grant(), KEY)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signed.signature[-1])
    for bits in (1, 2, 3):
        other = signed.signature[:-1] + alphabet[last ^ bits]
        with pytest.raises(GrantError):
            verify_grant(SignedGrant(signed.payload, other), PUB, "dev-1")


def test_a_grant_signed_by_another_key_is_refused() -> None:
    forged = sign_grant(a_grant(), Ed25519PrivateKey.generate())
    with pytest.raises(GrantError) as err:
        verify_grant(forged, PUB, "dev-1")
    assert err.value.reason == GrantError.BAD_SIGNATURE
    assert err.value.code == "grant_invalid"


def test_a_grant_for_another_device_is_refused() -> None:
    with pytest.raises(GrantError) as err:
        verify_grant(sign_grant(a_grant(), KEY), PUB, "dev-2")
    assert err.value.reason == GrantError.WRONG_DEVICE


def test_a_window_that_ends_before_it_starts_is_never_signed_nor_accepted() -> None:
    bad = a_grant(not_after=T0)
    with pytest.raises(GrantError):
        sign_grant(bad, KEY)
    # A server bug or an old key could still produce one: the tablet refuses it too.
    payload = bad.to_json()
    from kiosk.wire.grants import SIGNATURE_CONTEXT, _b64url_encode

    sig = _b64url_encode(KEY.sign(SIGNATURE_CONTEXT + payload.encode()))
    with pytest.raises(GrantError) as err:
        verify_grant(SignedGrant(payload, sig), PUB, "dev-1")
    assert err.value.reason == GrantError.BAD_WINDOW


def _sign_raw(body: object) -> SignedGrant:
    from kiosk.wire.grants import SIGNATURE_CONTEXT, _b64url_encode

    payload = body if isinstance(body, str) else canonical_json(body)
    return SignedGrant(payload, _b64url_encode(KEY.sign(SIGNATURE_CONTEXT + payload.encode())))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("control"),
        lambda b: b.update(extra="x"),
        lambda b: b.update(v=1),  # before grants answered a dial (issue 12)
        lambda b: b.pop("dial_nonce"),
        lambda b: b.update(dial_nonce=""),
        lambda b: b.update(v=True),
        lambda b: b.update(route="relay"),
        lambda b: b.update(not_after="2026-11-23T16:30:00+00:00"),
        lambda b: b.update(not_after=1700000000),
        lambda b: b.update(call_id=""),
        lambda b: b.update(call_id=7),
        lambda b: b.update(inmate_id="x" * 65),
    ],
)
def test_a_well_signed_but_malformed_payload_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(a_grant().to_json())
    mutate(body)
    with pytest.raises(GrantError) as err:
        verify_grant(_sign_raw(body), PUB, "dev-1")
    assert err.value.reason == GrantError.MALFORMED


@pytest.mark.parametrize(
    "payload",
    ["", "[]", "null", "{", '{"v":1}', " " + a_grant().to_json(), a_grant().to_json() + "\n"],
)
def test_non_canonical_or_broken_payloads_are_refused(payload: str) -> None:
    with pytest.raises(GrantError) as err:
        verify_grant(_sign_raw(payload), PUB, "dev-1")
    assert err.value.reason == GrantError.MALFORMED


def test_payload_is_canonical_json() -> None:
    text = a_grant(contact_id="kåre").to_json()
    body = json.loads(text)
    assert list(body) == sorted(body)
    assert ", " not in text and ": " not in text
    assert "kåre" in text  # UTF-8, not \\u escapes
    assert body["not_after"] == "2026-11-23T16:30:00.000000Z"


# --- the grant clock -----------------------------------------------------------------


@given(
    grants(),
    st.floats(0, 1e6),
    st.floats(0, 5),
    st.floats(0, 5),
)
def test_the_end_never_comes_later_than_not_after_by_the_server_clock(
    grant: Grant, sent: float, transit_out: float, transit_back: float
) -> None:
    # The tablet sends its dial at `sent`; the server signs `transit_out` later
    # (at issued_at by its clock); the grant arrives `transit_back` after that.
    received = sent + transit_out + transit_back
    clock = GrantClock(grant, received, sent_monotonic=sent)
    signed_at = sent + transit_out  # the tablet's monotonic instant of issued_at
    server_end_on_tablet_clock = signed_at + (grant.not_after - grant.issued_at).total_seconds()
    assert clock.deadline() <= server_end_on_tablet_clock + 1e-6
    # ...and it is early by no more than the round trip plus the drift allowance.
    span = max(0.0, (grant.not_after - grant.issued_at).total_seconds())
    if span > 0:
        lateness = server_end_on_tablet_clock - clock.deadline()
        assert lateness <= transit_out + span * DEFAULT_DRIFT + 1e-6


@given(grants(), st.floats(0, 1e6), st.floats(0, 5))
def test_a_transit_bound_moves_the_anchor_earlier(
    grant: Grant, received: float, bound: float
) -> None:
    plain = GrantClock(grant, received)
    bounded = GrantClock(grant, received, max_transit=bound)
    assert bounded.deadline() == pytest.approx(plain.deadline() - bound)


@given(grants(), st.floats(0, 1e6), st.lists(st.floats(0, 1e5), min_size=2, max_size=10))
def test_remaining_only_goes_down_and_never_exceeds_the_grant(
    grant: Grant, received: float, steps: list[float]
) -> None:
    clock = GrantClock(grant, received)
    span = max(0.0, (grant.not_after - grant.issued_at).total_seconds())
    now = received
    last = clock.remaining(now)
    assert 0.0 <= last <= span
    for step in steps:
        now += step
        left = clock.remaining(now)
        assert 0.0 <= left <= last
        assert clock.expired(now) == (left == 0.0 and now >= clock.deadline())
        last = left


def test_remaining_time_is_the_span_from_issue_minus_elapsed_time() -> None:
    grant = a_grant(issued_at=T0 + timedelta(minutes=10))  # 20 minutes left at signing
    clock = GrantClock(grant, received_monotonic=500.0, drift=0.0)
    assert clock.remaining(500.0) == 1200.0
    assert clock.remaining(560.0) == 1140.0
    assert clock.deadline() == 1700.0
    assert clock.remaining(1700.0) == 0.0 and clock.expired(1700.0)
    assert not clock.expired(1699.9)


def test_a_grant_issued_after_its_end_gives_no_time() -> None:
    clock = GrantClock(a_grant(issued_at=T0 + timedelta(hours=1)), received_monotonic=10.0)
    assert clock.remaining(10.0) == 0.0
    assert clock.expired(10.0)


def test_opening_waits_for_not_before() -> None:
    clock = GrantClock(a_grant(issued_at=T0 - timedelta(seconds=30)), received_monotonic=100.0)
    assert clock.opens() == 130.0
    assert GrantClock(a_grant(), received_monotonic=100.0).opens() == 100.0


# --- replay -------------------------------------------------------------------------


def test_a_replayed_grant_of_an_ended_call_is_refused() -> None:
    guard = ReplayGuard()
    grant = verify_grant(sign_grant(a_grant(), KEY), PUB, "dev-1")
    assert guard.check(grant) is grant
    guard.end(grant.call_id)
    with pytest.raises(GrantError) as err:
        guard.check(verify_grant(sign_grant(a_grant(), KEY), PUB, "dev-1"))
    assert err.value.reason == GrantError.REPLAYED
    assert guard.check(a_grant(call_id="call-2")).call_id == "call-2"


@given(st.lists(ids, max_size=50), st.integers(1, 20))
def test_the_replay_guard_keeps_the_most_recent_ended_calls(calls: list[str], size: int) -> None:
    guard = ReplayGuard(max_entries=size)
    for c in calls:
        guard.end(c)
    assert len(guard) <= size
    recent: list[str] = []
    for c in reversed(calls):
        if c not in recent:
            recent.append(c)
    for c in recent[:size]:
        assert c in guard
