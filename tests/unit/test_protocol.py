"""Signalling messages: strict, bounded, and nothing but ProtocolError on bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason, GrantRefusal, Reason
from kiosk.wire.messages import (
    MAX_MESSAGE_BYTES,
    CallInfo,
    ContactEntry,
    DialMessage,
    EndMessage,
    ErrorMessage,
    GrantDocument,
    GrantMessage,
    GrantRefusedMessage,
    HangupMessage,
    HelloMessage,
    IceMessage,
    IceServer,
    InmateInfo,
    JoinMessage,
    MediaMessage,
    PingMessage,
    PongMessage,
    ProtocolError,
    RefusedMessage,
    SdpMessage,
    StateMessage,
    TamperMessage,
    VisitorCallMessage,
    WaitingMessage,
    WarningMessage,
    encode,
    parse_device_message,
    parse_server_to_device,
    parse_server_to_visitor,
    parse_visitor_message,
)

PARSERS = [
    parse_device_message,
    parse_server_to_device,
    parse_visitor_message,
    parse_server_to_visitor,
]

ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z")
texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
short = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=64)
kind_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=64
)
tz = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]
)
times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=tz
)
seqs = st.integers(0, 2**53 - 1)
tokens = st.from_regex(r"\A[A-Za-z0-9_-]{16,128}\Z")

sdp = st.builds(
    SdpMessage, call_id=ids, kind=st.sampled_from(["offer", "answer"]),
    sdp=texts.filter(bool).map(lambda s: "v=0\r\n" + s),
)
ice = st.builds(
    IceMessage, call_id=ids, candidate=st.none() | texts, sdp_mid=st.none() | short,
    sdp_mline_index=st.none() | st.integers(0, 255),
)
hangup = st.builds(HangupMessage, call_id=ids)
media = st.builds(MediaMessage, call_id=ids, audio=st.booleans(), video=st.booleans())
ping = st.builds(PingMessage, seq=seqs)
pong = st.builds(PongMessage, seq=seqs, server_time=times)
warning = st.builds(WarningMessage, call_id=ids, minutes_left=st.integers(0, 1440))
end = st.builds(EndMessage, call_id=ids, reason=st.sampled_from(EndReason))
error = st.builds(ErrorMessage, code=st.sampled_from(Reason), message=texts)
ice_servers = st.lists(
    st.builds(IceServer, urls=st.lists(texts, min_size=1, max_size=3),
              username=st.none() | texts, credential=st.none() | texts),
    max_size=3,
)

device_messages = st.one_of(
    st.builds(HelloMessage, version=st.just(1), agent_version=short,
              calls=st.lists(ids, max_size=8)),
    st.builds(DialMessage, booking_id=ids,
              nonce=st.from_regex(r"\A[A-Za-z0-9_-]{16,64}\Z")),
    st.builds(GrantRefusedMessage, call_id=st.none() | ids,
              reason=st.sampled_from(GrantRefusal)),
    sdp, ice, hangup,
    st.builds(TamperMessage, kind=kind_text, details=st.dictionaries(short, texts, max_size=5)),
    ping, media,
)
server_to_device = st.one_of(
    st.builds(
        StateMessage, server_time=times, device_id=ids,
        inmate=st.none() | st.builds(InmateInfo, id=ids, name=texts),
        contacts=st.lists(st.builds(
            ContactEntry, contact_id=ids, name=texts, category=st.sampled_from(Category),
            control=st.sampled_from(ControlLevel), booking_id=ids, start=times, end=times,
            callable_now=st.booleans()), max_size=4),
        call=st.none() | st.builds(CallInfo, call_id=ids, state=short,
                                   control=st.sampled_from(ControlLevel),
                                   route=st.sampled_from(Route), not_after=times),
    ),
    st.builds(GrantMessage,
              grant=st.builds(GrantDocument, payload=texts.filter(bool), signature=ids),
              ice_servers=ice_servers),
    sdp, ice, warning, end,
    st.builds(RefusedMessage,
              ref=st.sampled_from(["dial", "hangup", "sdp", "ice", "hello", "media"]),
              code=st.sampled_from(Reason), message=texts),
    error, pong, media,
)
visitor_messages = st.one_of(st.builds(JoinMessage, token=tokens), sdp, ice, hangup, ping, media)
server_to_visitor = st.one_of(
    st.builds(WaitingMessage, start=times, end=times, control=st.sampled_from(ControlLevel),
              category=st.sampled_from(Category)),
    st.builds(VisitorCallMessage, call_id=ids, control=st.sampled_from(ControlLevel),
              route=st.sampled_from(Route), not_after=times, server_time=times,
              ice_servers=ice_servers),
    sdp, ice, warning, end, error, pong, media,
)


@pytest.mark.parametrize(
    ("parse", "messages"),
    [
        (parse_device_message, device_messages),
        (parse_server_to_device, server_to_device),
        (parse_visitor_message, visitor_messages),
        (parse_server_to_visitor, server_to_visitor),
    ],
)
def test_every_valid_message_round_trips(parse, messages) -> None:  # type: ignore[no-untyped-def]
    @given(messages)
    def check(message: Any) -> None:
        text = encode(message)
        assert parse(text) == message
        assert parse(text.encode()) == message
        assert json.loads(text)["type"] == message.type

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20,
)
type_names = st.sampled_from(
    ["hello", "dial", "sdp", "ice", "hangup", "tamper", "ping", "pong", "state", "grant",
     "warning", "end", "refused", "error", "join", "waiting", "call", "nope", ""]
)


@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except ProtocolError as exc:
            assert exc.code == Reason.INVALID_REQUEST


@given(json_values)
def test_random_json_raises_only_protocol_error(value: Any) -> None:
    text = json.dumps(value)
    for parse in PARSERS:
        try:
            parse(text)
        except ProtocolError:
            pass


@given(type_names, st.dictionaries(
    st.sampled_from(["call_id", "kind", "sdp", "seq", "booking_id", "version", "agent_version",
                     "calls", "candidate", "token", "details", "extra", "code", "message"]),
    json_values, max_size=6))
def test_random_objects_with_known_types_raise_only_protocol_error(
    kind: str, fields: dict[str, Any]
) -> None:
    text = json.dumps({"type": kind, **fields})
    for parse in PARSERS:
        try:
            parse(text)
        except ProtocolError:
            pass


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ProtocolError):
        parse_device_message('{"type":"ping","seq":1,"admin":true}')


def test_an_unknown_type_is_refused() -> None:
    with pytest.raises(ProtocolError):
        parse_device_message('{"type":"become_admin"}')


def test_a_tablet_cannot_send_server_messages() -> None:
    grant = encode(GrantMessage(grant=GrantDocument(payload="{}", signature="x")))
    with pytest.raises(ProtocolError):
        parse_device_message(grant)
    with pytest.raises(ProtocolError):
        parse_visitor_message(encode(PongMessage(seq=1, server_time=datetime.now(UTC))))


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"ping","seq":"1"}',  # strict: no string for a number
        '{"type":"ping","seq":1.0}',
        '{"type":"ping","seq":-1}',
        '{"type":"ping","seq":true}',
        '{"type":"hello","version":2,"agent_version":"x","calls":[]}',
        '{"type":"dial","booking_id":""}',
        '{"type":"dial","booking_id":"../../etc"}',
        '{"type":"dial"}',
        '{"type":"dial","booking_id":"b-1"}',  # no nonce: no grant could answer it
        '{"type":"dial","booking_id":"b-1","nonce":"short"}',
        '{"type":"hangup","call_id":"' + "a" * 65 + '"}',
        '{"type":"sdp","call_id":"c","kind":"pranswer","sdp":"v=0"}',
        '{"type":"tamper","kind":"usb","details":{"a":1}}',
        '{"type":"hello","version":1,"agent_version":"x","calls":' + json.dumps(["c"] * 9) + "}",
        "[]",
        "null",
        "",
        "\ufeff{}",
        '{"type":"ping","seq":1}{"type":"ping","seq":2}',
        '{"type":"ping","seq":1,"seq":2}x',
        "[" * 100000,
    ],
)
def test_malformed_frames_are_refused(frame: str) -> None:
    with pytest.raises(ProtocolError):
        parse_device_message(frame)


def test_the_size_limit_is_checked_before_parsing() -> None:
    sdp_text = "v=0\r\n" + "a" * 59000
    ok = encode(SdpMessage(call_id="c", kind="offer", sdp=sdp_text))
    assert parse_device_message(ok).sdp == sdp_text  # type: ignore[union-attr]
    too_big = '{"type":"ping","seq":1,"pad":"' + "x" * MAX_MESSAGE_BYTES + '"}'
    with pytest.raises(ProtocolError, match="too large"):
        parse_device_message(too_big)
    # Multi-byte characters count as bytes, not as characters.
    wide = '{"type":"tamper","kind":"k","details":{"a":"' + "é" * 33000 + '"}}'
    assert len(wide) < MAX_MESSAGE_BYTES < len(wide.encode())
    with pytest.raises(ProtocolError, match="too large"):
        parse_device_message(wide)


def test_an_error_message_carries_the_standard_text() -> None:
    msg = ErrorMessage.of(Reason.RATE_LIMITED)
    assert json.loads(encode(msg)) == {
        "type": "error",
        "code": "rate_limited",
        "message": "Too many requests; slow down.",
    }


def test_times_on_the_wire_are_rfc3339_and_must_carry_a_zone() -> None:
    at = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    text = encode(PongMessage(seq=3, server_time=at))
    assert json.loads(text)["server_time"] == "2026-11-23T16:00:00Z"
    with pytest.raises(ProtocolError):
        parse_server_to_device('{"type":"pong","seq":3,"server_time":"2026-11-23T16:00:00"}')
