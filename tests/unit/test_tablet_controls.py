"""Issue 16 item 16, the tablet's half: the inmate's mute and camera off, as the pure core
and the wire see them. The page turns its own tracks off; the session tells the server, for
the live call only, and tells it again when the visitor's page comes back."""

from __future__ import annotations

import pytest

from kiosk.device.actions import RenewCall
from kiosk.domain.reasons import Reason
from kiosk.wire.messages import (
    MediaMessage,
    ProtocolError,
    RefusedMessage,
    encode,
    parse_device_message,
    parse_server_to_visitor,
)
from tests.unit.test_session import in_call, online_session, sent, shown


def test_the_inmate_turns_the_microphone_and_camera_off_and_on_and_the_server_is_told() -> None:
    s = online_session()
    in_call(s)
    actions = s.controls("call-1", False, True, 2.0)
    assert sent(actions) == [MediaMessage(call_id="call-1", audio=False, video=True)]
    call = shown(actions, "state")[0]["state"]["call"]
    assert (call["audio"], call["video"]) == (False, True)  # a reloaded page keeps it off
    assert sent(s.controls("call-1", False, False, 3.0)) == [
        MediaMessage(call_id="call-1", audio=False, video=False)
    ]
    assert sent(s.controls("call-1", True, True, 4.0)) == [
        MediaMessage(call_id="call-1", audio=True, video=True)
    ]
    assert (s.view(4.0)["call"]["audio"], s.view(4.0)["call"]["video"]) == (True, True)


def test_controls_without_that_live_call_are_refused_and_nothing_is_sent() -> None:
    idle = online_session()
    actions = idle.controls("call-1", False, True, 1.0)
    assert sent(actions) == []
    (refused,) = shown(actions, "refused")
    assert (refused["ref"], refused["code"]) == ("media", Reason.CALL_NOT_LIVE.value)
    s = online_session()
    in_call(s)
    actions = s.controls("call-9", False, False, 2.0)  # another call's id: stale or forged
    assert sent(actions) == [] and shown(actions, "refused")[0]["code"] == "call_not_live"
    assert s.live is not None and (s.live.audio, s.live.video) == (True, True)


def test_a_visitor_whose_page_came_back_is_told_again_that_the_camera_is_off() -> None:
    s = online_session()
    in_call(s)
    assert sent(s.call_connection("call-1", "connected", 2.0)) == []  # all on: nothing to say
    s.controls("call-1", True, False, 3.0)
    assert [a for a in s.connection_lost("call-1", 4.0) if isinstance(a, RenewCall)]
    assert sent(s.call_connection("call-1", "connected", 5.0)) == [
        MediaMessage(call_id="call-1", audio=True, video=False)
    ]


def test_the_servers_refusal_of_a_media_message_puts_up_no_banner() -> None:
    """The call is over on the server; its end message follows and says why."""
    s = online_session()
    in_call(s)
    refused = RefusedMessage(ref="media", code=Reason.CALL_NOT_LIVE, message="not live")
    assert s.server_message(refused, 2.0) == []
    assert s.view(2.0)["refusal"] is None


def test_the_tablets_media_message_is_read_strictly() -> None:
    ok = parse_device_message('{"type":"media","call_id":"call-1","audio":false,"video":true}')
    assert ok == MediaMessage(call_id="call-1", audio=False, video=True)
    # What the server relays, the visitor's page reads back the same.
    assert parse_server_to_visitor(encode(ok)) == ok


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"media","call_id":"call-1","audio":"false","video":true}',  # no strings
        '{"type":"media","call_id":"call-1","audio":0,"video":1}',  # no numbers
        '{"type":"media","call_id":"call-1","audio":null,"video":true}',
        '{"type":"media","call_id":"call-1","audio":false}',  # both, always
        '{"type":"media","audio":false,"video":false}',  # for no call
        '{"type":"media","call_id":"","audio":false,"video":false}',
        '{"type":"media","call_id":"../call","audio":false,"video":false}',
        '{"type":"media","call_id":"' + "c" * 65 + '","audio":false,"video":false}',
        '{"type":"media","call_id":"call-1","audio":false,"video":true,"facing":"user"}',
        '{"type":"media","call_id":["call-1"],"audio":false,"video":true}',
    ],
)
def test_a_malformed_media_message_from_a_tablet_is_refused(frame: str) -> None:
    with pytest.raises(ProtocolError):
        parse_device_message(frame)
