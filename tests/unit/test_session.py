"""The tablet agent's pure core: what it sends, when media may start and stop, what it shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from kiosk.device.actions import (
    AddIce,
    ApplyAnswer,
    Phase,
    RenewCall,
    Send,
    Show,
    StartCall,
    StopCall,
)
from kiosk.device.grant_intake import UNSOLICITED
from kiosk.device.session import (
    DIAL_TIMEOUT,
    MAX_RENEWALS,
    MIN_RENEW_LEFT,
    TabletSession,
)
from kiosk.domain.callstate import End, Warn
from kiosk.domain.model import Category, ControlLevel, Route
from kiosk.domain.reasons import EndReason, Reason
from kiosk.wire.grants import Grant, sign_grant
from kiosk.wire.messages import (
    ContactEntry,
    DialMessage,
    EndMessage,
    GrantDocument,
    GrantMessage,
    HangupMessage,
    HelloMessage,
    IceMessage,
    InmateInfo,
    PingMessage,
    PongMessage,
    RefusedMessage,
    SdpMessage,
    StateMessage,
    WarningMessage,
)
from kiosk.wire.verification import code_for as verification_code
from kiosk.wire.verification import sdp_fingerprint

KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
DEVICE = "tablet-1"


def state(device_id: str = DEVICE, server_time: datetime = T0) -> StateMessage:
    return StateMessage(
        server_time=server_time, device_id=device_id,
        inmate=InmateInfo(id="inmate-1", name="Ola"),
        contacts=[
            ContactEntry(contact_id="contact-1", name="Kari", category=Category.PERSONAL,
                         control=ControlLevel.SIGHT, booking_id="booking-1",
                         start=T0 - timedelta(minutes=5), end=T0 + timedelta(minutes=20),
                         callable_now=True),
            ContactEntry(contact_id="contact-2", name="Advokat", category=Category.DEFENCE_COUNSEL,
                         control=ControlLevel.NONE, booking_id="booking-2",
                         start=T0 + timedelta(minutes=30), end=T0 + timedelta(minutes=60),
                         callable_now=False),
        ],
        call=None,
    )


def grant_message(call_id: str = "call-1", device_id: str = DEVICE, key: Any = KEY,
                  minutes: float = 20) -> GrantMessage:
    g = Grant(call_id=call_id, device_id=device_id, inmate_id="inmate-1",
              contact_id="contact-1", category=Category.PERSONAL, route=Route.P2P,
              control=ControlLevel.SIGHT, not_before=T0 - timedelta(minutes=5),
              not_after=T0 + timedelta(minutes=minutes), issued_at=T0)
    return GrantMessage(grant=GrantDocument.of(sign_grant(g, key)))


def sent(actions: list[Any]) -> list[Any]:
    return [a.message for a in actions if isinstance(a, Send)]


def shown(actions: list[Any], kind: str) -> list[dict[str, Any]]:
    return [dict(a.event) for a in actions if isinstance(a, Show) and a.event["type"] == kind]


def online_session(device_id: str = "") -> TabletSession:
    s = TabletSession(KEY.public_key(), device_id)
    s.link_up(0.0)
    s.server_message(state(), 0.0)
    return s


def in_call(s: TabletSession, mono: float = 1.0) -> StartCall:
    s.dial("booking-1", mono)
    actions = s.server_message(grant_message(), mono + 0.05)
    (start,) = [a for a in actions if isinstance(a, StartCall)]
    return start


def test_hello_names_the_live_calls() -> None:
    s = TabletSession(KEY.public_key())
    (hello,) = sent(s.link_up(0.0))
    assert hello == HelloMessage(version=1, agent_version="1.0", calls=[])
    s.server_message(state(), 0.0)
    in_call(s)
    s.link_down(2.0)
    (hello,) = sent(s.link_up(3.0))
    assert isinstance(hello, HelloMessage) and hello.calls == ["call-1"]


def test_dial_goes_to_the_server_even_when_the_list_says_not_now() -> None:
    s = online_session()
    actions = s.dial("booking-2", 1.0)  # outside its window: the server gives the reason
    assert sent(actions) == [DialMessage(booking_id="booking-2")]
    assert s.phase is Phase.DIALLING
    refusal = RefusedMessage(ref="dial", code=Reason.OUTSIDE_WINDOW, message="outside")
    actions = s.server_message(refusal, 1.1)
    assert shown(actions, "refused")[0]["code"] == "outside_window"
    assert s.phase is Phase.IDLE and s.view(1.1)["refusal"]["code"] == "outside_window"


def test_dial_offline_is_refused_locally_and_nothing_is_sent() -> None:
    s = TabletSession(KEY.public_key())
    actions = s.dial("booking-1", 0.0)
    assert sent(actions) == []
    assert shown(actions, "refused")[0]["code"] == Reason.DEVICE_NOT_CONNECTED.value


def test_link_lost_while_dialling_returns_to_idle() -> None:
    s = online_session()
    s.dial("booking-1", 1.0)
    actions = s.link_down(1.5)
    assert s.phase is Phase.IDLE
    assert shown(actions, "refused")[0]["code"] == Reason.DEVICE_NOT_CONNECTED.value


def test_a_valid_grant_starts_media_and_the_signalling_follows() -> None:
    s = online_session()
    start = in_call(s)
    assert start.accepted.grant.call_id == "call-1" and start.ice_servers == ()
    assert s.phase is Phase.CONNECTING
    # Anchored at the dial (sent at mono 1.0), never later.
    assert start.accepted.deadline.clock.anchor == 1.0
    offer = sent(s.offer_ready("call-1", "v=0 offer"))
    assert offer == [SdpMessage(call_id="call-1", kind="offer", sdp="v=0 offer")]
    answer = SdpMessage(call_id="call-1", kind="answer", sdp="v=0 answer")
    applied = s.server_message(answer, 2.0)
    assert applied[0] == ApplyAnswer("call-1", "v=0 answer")
    ice = IceMessage(call_id="call-1", candidate="candidate:1 1 udp 1 10.0.0.1 9 typ host",
                     sdp_mid="0", sdp_mline_index=0)
    (add,) = s.server_message(ice, 2.0)
    assert isinstance(add, AddIce) and add.sdp_mid == "0"
    # Signalling for any other call is ignored.
    assert s.server_message(SdpMessage(call_id="call-9", kind="answer", sdp="x"), 2.0) == []
    s.call_connection("call-1", "connected", 2.5)
    view = s.view(2.5)
    assert view["phase"] == "in_call"
    assert view["call"]["contact_name"] == "Kari" and view["call"]["monitored"] == ["video"]


def refused_grant(s: TabletSession, message: GrantMessage) -> list[Any]:
    s.dial("booking-1", 1.0)
    actions = s.server_message(message, 1.1)
    assert not [a for a in actions if isinstance(a, StartCall)]
    assert shown(actions, "refused")[0]["code"] == Reason.GRANT_INVALID.value
    assert s.phase is Phase.IDLE and s.live is None
    return actions


def test_forged_grant_is_refused_hung_up_and_shown() -> None:
    s = online_session()
    actions = refused_grant(s, grant_message(key=Ed25519PrivateKey.generate()))
    assert sent(actions) == [HangupMessage(call_id="call-1")]
    assert shown(actions, "refused")[0]["detail"] == "bad_signature"


def test_grant_for_another_device_is_refused() -> None:
    s = online_session()
    actions = refused_grant(s, grant_message(device_id="tablet-2"))
    assert sent(actions) == [HangupMessage(call_id="call-1")]
    assert shown(actions, "refused")[0]["detail"] == "wrong_device"


def test_replayed_grant_of_an_ended_call_is_refused() -> None:
    s = online_session()
    in_call(s)
    s.server_message(EndMessage(call_id="call-1", reason=EndReason.ENDED_BY_STAFF), 5.0)
    s.dismiss(6.0)
    actions = refused_grant(s, grant_message())
    assert shown(actions, "refused")[0]["detail"] == "replayed"


def test_state_from_a_server_speaking_of_another_device_is_ignored() -> None:
    s = online_session(device_id=DEVICE)
    actions = s.server_message(state(device_id="tablet-2"), 1.0)
    assert shown(actions, "error")
    assert s.device_id == DEVICE


def test_learnt_device_id_is_then_pinned() -> None:
    s = online_session()
    assert s.device_id == DEVICE
    s.server_message(state(device_id="tablet-2"), 1.0)
    assert s.device_id == DEVICE
    refused_grant(s, grant_message(device_id="tablet-2"))


def test_time_up_by_the_tablets_clock_while_the_link_is_down() -> None:
    s = online_session()
    in_call(s)
    s.call_connection("call-1", "connected", 2.0)
    s.link_down(60.0)
    assert s.live is not None  # the call goes on without the server
    assert shown(s.call_time("call-1", Warn(5), 900.0), "warning")[0]["minutes_left"] == 5
    actions = s.call_time("call-1", End(EndReason.TIME_UP), 1200.0)
    assert [a for a in actions if isinstance(a, StopCall)] == [
        StopCall("call-1", EndReason.TIME_UP)
    ]
    assert sent(actions) == []  # nothing to send on a dead link; the server ends it too
    assert shown(actions, "end")[0]["reason"] == "time_up"
    assert s.view(1200.0)["ended"] == {"call_id": "call-1", "reason": "time_up"}
    # A late end from the server after reconnecting does not change what was shown.
    assert s.server_message(EndMessage(call_id="call-1", reason=EndReason.TIME_UP), 1300.0) == []


def test_warnings_from_server_and_own_clock_are_shown_once() -> None:
    s = online_session()
    in_call(s)
    assert shown(s.call_time("call-1", Warn(5), 10.0), "warning")
    assert s.server_message(WarningMessage(call_id="call-1", minutes_left=5), 10.2) == []
    assert shown(s.server_message(WarningMessage(call_id="call-1", minutes_left=1), 11.0),
                 "warning")
    assert s.call_time("call-1", Warn(1), 11.1) == []


def test_hangup_sends_hangup_and_stops_media() -> None:
    s = online_session()
    in_call(s)
    actions = s.hangup(3.0)
    assert sent(actions) == [HangupMessage(call_id="call-1")]
    assert StopCall("call-1", EndReason.HANGUP) in actions
    assert s.phase is Phase.ENDED
    assert shown(s.hangup(4.0), "refused")[0]["code"] == Reason.CALL_NOT_LIVE.value


def test_a_second_grant_while_a_call_is_live_is_hung_up() -> None:
    s = online_session()
    in_call(s)
    actions = s.server_message(grant_message(call_id="call-2"), 2.0)
    assert sent(actions) == [HangupMessage(call_id="call-2")]
    assert s.live is not None and s.live.grant.call_id == "call-1"
    assert s.server_message(grant_message(), 2.1) == []  # the same grant again: no-op


def test_a_grant_the_tablet_did_not_dial_for_is_refused_and_hung_up() -> None:
    s = online_session()
    actions = s.server_message(grant_message(), 20.0)
    assert not [a for a in actions if isinstance(a, StartCall)]
    assert sent(actions) == [HangupMessage(call_id="call-1")]
    assert shown(actions, "refused")[0]["detail"] == UNSOLICITED


def test_a_dial_cancelled_before_its_grant_gets_no_call() -> None:
    s = online_session()
    s.dial("booking-1", 1.0)
    s.hangup(1.5)  # cancel while "calling…"
    assert s.phase is Phase.IDLE
    actions = s.server_message(grant_message(), 2.0)
    assert s.live is None and sent(actions) == [HangupMessage(call_id="call-1")]


def test_a_dial_left_unanswered_gives_up() -> None:
    s = online_session()
    s.dial("booking-1", 1.0)
    assert s.tick(1.0 + DIAL_TIMEOUT - 1) == []
    actions = s.tick(1.0 + DIAL_TIMEOUT + 1)
    assert s.phase is Phase.IDLE
    assert shown(actions, "refused")[0]["code"] == Reason.DEVICE_NOT_CONNECTED.value


def test_pongs_give_round_trips() -> None:
    s = online_session()
    (ping,) = sent(s.ping(10.0))
    assert isinstance(ping, PingMessage)
    s.server_message(PongMessage(seq=ping.seq, server_time=T0), 10.25)
    s.server_message(PongMessage(seq=999, server_time=T0), 10.3)  # never sent: ignored
    assert s.rtts == [0.25]


def test_callable_now_follows_the_servers_clock_not_a_stale_flag() -> None:
    s = online_session()
    view = s.view(0.0)
    assert [c["callable_now"] for c in view["contacts"]] == [True, False]
    later = s.view(31 * 60.0)  # 31 minutes on by the monotonic clock
    assert [c["callable_now"] for c in later["contacts"]] == [False, True]
    assert later["contacts"][1]["privileged"] is True


def test_the_list_is_shown_again_when_a_window_opens_or_closes_by_the_tablets_clock() -> None:
    """A state that came before a window opened: the page's Call button wakes at the
    window's start although the server sends nothing more."""
    s = online_session()
    assert s.tick(60.0) == []  # nothing opened or closed: nothing to show
    (shown_again,) = shown(s.tick(31 * 60.0), "state")  # one closed, the other opened
    assert [c["callable_now"] for c in shown_again["state"]["contacts"]] == [False, True]
    assert s.tick(31 * 60.0 + 1) == []


def test_countdown_ticks_from_the_grant() -> None:
    s = online_session()
    in_call(s, mono=0.0)
    (tick,) = s.tick(60.0)
    assert isinstance(tick, Show)
    assert abs(tick.event["remaining_seconds"] - (20 * 60 - 60)) < 1.0


FP_A = ":".join(["AB"] * 32)
FP_B = ":".join(["0F"] * 32)


def sdp_with(fingerprint: str) -> str:
    return f"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=fingerprint:sha-256 {fingerprint}\r\n"


def test_verification_code_is_the_same_at_both_ends_and_changes_with_a_swap() -> None:
    code = verification_code(FP_A, FP_B)
    assert code == verification_code(FP_B, FP_A) == verification_code(FP_A.lower(), FP_B)
    assert len(code) == 7 and code[3] == " " and code.replace(" ", "").isdigit()
    assert verification_code(FP_A, ":".join(["0E"] * 32)) != code
    assert sdp_fingerprint(sdp_with(FP_B)) == FP_B
    assert sdp_fingerprint("v=0\r\n") is None


def privileged_grant(route: Route) -> GrantMessage:
    g = Grant(call_id="call-1", device_id=DEVICE, inmate_id="inmate-1",
              contact_id="contact-2", category=Category.DEFENCE_COUNSEL, route=route,
              control=ControlLevel.NONE, not_before=T0 - timedelta(minutes=5),
              not_after=T0 + timedelta(minutes=20), issued_at=T0)
    return GrantMessage(grant=GrantDocument.of(sign_grant(g, KEY)))


def test_privileged_p2p_call_shows_the_verification_code() -> None:
    s = online_session()
    s.dial("booking-2", 1.0)
    s.server_message(privileged_grant(Route.P2P), 1.1)
    s.offer_ready("call-1", sdp_with(FP_A))
    s.server_message(SdpMessage(call_id="call-1", kind="answer", sdp=sdp_with(FP_B)), 2.0)
    view = s.view(2.0)["call"]
    assert view["privileged"] is True
    assert view["verification_code"] == verification_code(FP_A, FP_B)


def test_ordinary_call_shows_no_verification_code() -> None:
    s = online_session()
    in_call(s)
    s.offer_ready("call-1", sdp_with(FP_A))
    s.server_message(SdpMessage(call_id="call-1", kind="answer", sdp=sdp_with(FP_B)), 2.0)
    assert s.view(2.0)["call"]["verification_code"] is None


# --- a broken connection ------------------------------------------------------------------


def test_a_broken_p2p_connection_is_offered_again_under_the_same_grant() -> None:
    s = online_session()
    start = in_call(s)
    s.call_connection("call-1", "connected", 2.0)
    assert s.phase is Phase.IN_CALL
    actions = s.connection_lost("call-1", 3.0)
    (renew,) = [a for a in actions if isinstance(a, RenewCall)]
    assert renew.accepted is start.accepted  # the same grant and the same deadline
    assert not [a for a in actions if isinstance(a, StopCall)] and not sent(actions)
    assert s.phase is Phase.CONNECTING
    view = s.view(3.0)["call"]
    assert view["call_id"] == "call-1" and view["reconnecting"] is True
    assert view["remaining_seconds"] > 0
    # The new offer goes to the server; the answer connects it again.
    assert sent(s.offer_ready("call-1", "v=0 new")) == [
        SdpMessage(call_id="call-1", kind="offer", sdp="v=0 new")
    ]
    s.call_connection("call-1", "connected", 4.0)
    assert s.phase is Phase.IN_CALL and s.view(4.0)["call"]["reconnecting"] is False


def test_renewals_are_bounded_then_the_call_ends_connection_lost() -> None:
    s = online_session()
    in_call(s)
    for n in range(MAX_RENEWALS):
        assert [a for a in s.connection_lost("call-1", 2.0 + n) if isinstance(a, RenewCall)]
    actions = s.connection_lost("call-1", 10.0)
    assert sent(actions) == [HangupMessage(call_id="call-1")]
    assert [a.reason for a in actions if isinstance(a, StopCall)] == [EndReason.CONNECTION_LOST]
    assert s.phase is Phase.ENDED and s.live is None


def test_no_renewal_offline_nor_near_the_end_nor_for_a_bridged_call() -> None:
    offline = online_session()
    in_call(offline)
    offline.link_down(2.0)
    assert [a for a in offline.connection_lost("call-1", 3.0) if isinstance(a, StopCall)]

    late = online_session()
    in_call(late)
    near_end = 1.05 + 20 * 60 - MIN_RENEW_LEFT / 2
    assert [a for a in late.connection_lost("call-1", near_end) if isinstance(a, StopCall)]

    bridged = online_session()
    bridged.dial("booking-1", 1.0)
    g = Grant(call_id="call-9", device_id=DEVICE, inmate_id="inmate-1", contact_id="contact-1",
              category=Category.PERSONAL, route=Route.BRIDGE, control=ControlLevel.SIGHT,
              not_before=T0 - timedelta(minutes=5), not_after=T0 + timedelta(minutes=20),
              issued_at=T0)
    bridged.server_message(GrantMessage(grant=GrantDocument.of(sign_grant(g, KEY))), 1.05)
    assert bridged.live is not None
    actions = bridged.connection_lost("call-9", 2.0)  # principle 3: never carried another way
    assert not [a for a in actions if isinstance(a, RenewCall)]
    assert [a.reason for a in actions if isinstance(a, StopCall)] == [EndReason.CONNECTION_LOST]


def test_a_lost_connection_of_another_call_changes_nothing() -> None:
    s = online_session()
    in_call(s)
    assert s.connection_lost("call-2", 2.0) == []
    assert s.live is not None and s.live.renewals == 0


# --- any order of inputs ------------------------------------------------------------------

OTHER_KEY = Ed25519PrivateKey.generate()
_inputs = st.one_of(
    st.tuples(st.just("link_up")),
    st.tuples(st.just("link_down")),
    st.tuples(st.just("dial"), st.sampled_from(["booking-1", "booking-2"])),
    st.tuples(st.just("hangup")),
    st.tuples(st.just("dismiss")),
    st.tuples(st.just("ping")),
    st.tuples(st.just("state"), st.sampled_from([DEVICE, "tablet-2"])),
    st.tuples(st.just("grant"), st.sampled_from(["call-1", "call-2"]),
              st.sampled_from([DEVICE, "tablet-2"]), st.booleans(), st.sampled_from([0.001, 20])),
    st.tuples(st.just("end"), st.sampled_from(["call-1", "call-2"]),
              st.sampled_from(list(EndReason))),
    st.tuples(st.just("answer"), st.sampled_from(["call-1", "call-2"])),
    st.tuples(st.just("warning"), st.sampled_from(["call-1", "call-2"]), st.sampled_from([5, 1])),
    st.tuples(st.just("refused"), st.sampled_from(list(Reason))),
    st.tuples(st.just("time"), st.sampled_from([Warn(5), Warn(1), End(EndReason.TIME_UP)])),
    st.tuples(st.just("connected")),
    st.tuples(st.just("failed")),
    st.tuples(st.just("lost")),
)


@given(st.lists(_inputs, max_size=40))
def test_no_order_of_inputs_breaks_the_rules(inputs: list[tuple[Any, ...]]) -> None:
    """Media starts only under a grant signed by the pinned key for this device, never for
    an ended call; at most one call; every output is a valid action; nothing raises."""
    s = TabletSession(KEY.public_key(), DEVICE)
    ended: set[str] = set()
    mono = 0.0
    for item in inputs:
        mono += 1.0
        kind = item[0]
        live = s.live.grant.call_id if s.live else None
        if kind == "link_up":
            actions = s.link_up(mono)
        elif kind == "link_down":
            actions = s.link_down(mono)
        elif kind == "dial":
            actions = s.dial(item[1], mono)
        elif kind == "hangup":
            actions = s.hangup(mono)
        elif kind == "dismiss":
            actions = s.dismiss(mono)
        elif kind == "ping":
            actions = s.ping(mono)
        elif kind == "state":
            actions = s.server_message(state(device_id=item[1]), mono)
        elif kind == "grant":
            _, call_id, device, forged, minutes = item
            dialling = s.phase is Phase.DIALLING
            message = grant_message(call_id=call_id, device_id=device,
                                    key=OTHER_KEY if forged else KEY, minutes=minutes)
            actions = s.server_message(message, mono)
            for a in actions:
                if isinstance(a, StartCall):
                    assert not forged and device == DEVICE and call_id not in ended
                    assert live is None and dialling
        elif kind == "end":
            actions = s.server_message(EndMessage(call_id=item[1], reason=item[2]), mono)
        elif kind == "answer":
            actions = s.server_message(SdpMessage(call_id=item[1], kind="answer", sdp="v=0"), mono)
        elif kind == "warning":
            actions = s.server_message(
                WarningMessage(call_id=item[1], minutes_left=item[2]), mono)
        elif kind == "refused":
            actions = s.server_message(RefusedMessage(ref="dial", code=item[1], message="x"), mono)
        elif kind == "time":
            actions = s.call_time(live or "call-0", item[1], mono)
        elif kind == "connected":
            actions = s.call_connection(live or "call-0", "connected", mono)
        elif kind == "lost":
            actions = s.connection_lost(live or "call-0", mono)
        else:
            actions = s.call_failed(live or "call-0", mono)
        for a in actions:
            assert isinstance(
                a, Send | StartCall | RenewCall | ApplyAnswer | AddIce | StopCall | Show
            )
            if isinstance(a, RenewCall):  # the same live p2p call, never a new one
                assert s.live is not None and a.accepted.grant.call_id == live
                assert a.accepted is s.live.accepted and s.live.grant.route is Route.P2P
            if isinstance(a, StopCall):
                ended.add(a.call_id)
            if isinstance(a, ApplyAnswer):
                assert a.call_id == live
        if kind == "end":
            ended.add(item[1])
        if s.live is not None:
            assert s.phase in (Phase.CONNECTING, Phase.IN_CALL)
            assert s.live.grant.device_id == DEVICE
        view = s.view(mono)
        assert view["phase"] == s.phase.value
        assert (view["call"] is None) == (s.live is None)
