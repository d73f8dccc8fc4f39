"""The media bridge for controlled calls: forwards encoded media, never decodes (principle 3).

One :class:`Bridge` per controlled call, made by ``kiosk/signalling/calls/bridged.py``::

    bridge = Bridge(ice_servers, on_failure=end_call, on_monitor_gone=monitor_left)

    # tablet leg: the aiortc agent makes the offer, the bridge answers
    answer_sdp = await bridge.answer_leg(Leg.TABLET, offer_sdp)
    # visitor leg: either way round
    answer_sdp = await bridge.answer_leg(Leg.VISITOR, offer_sdp)
    # ... or
    offer_sdp = await bridge.offer_leg(Leg.VISITOR)
    await bridge.leg_answer(Leg.VISITOR, answer_sdp)

    # a staff monitor: the bridge always offers, with m-lines only for the kinds given
    monitor_id, offer_sdp = await bridge.add_monitor(level.media_kinds)   # R6
    await bridge.monitor_answer(monitor_id, answer_sdp)
    await bridge.remove_monitor(monitor_id)

    await bridge.close()            # idempotent; does not call on_failure

* ``on_failure(BridgeFailure(leg, detail))`` is called once (sync or async) when a
  leg's connection fails or closes, a leg is not connected within
  ``connect_timeout`` (20 s), or forwarding breaks (``leg`` is None). By then the
  bridge has already stopped forwarding and is closing every peer connection:
  the caller ends the call (fail closed), there is nothing to fall back to.
* ``on_monitor_gone(monitor_id)`` when a monitor's connection fails or closes;
  the call goes on.
* Refusals raise :class:`BridgeError` with a one-line reason (bad SDP, no VP8 or
  Opus offered, no media, leg already set up, unknown monitor, bridge closed);
  a refused leg can be retried.
* Only VP8 video and Opus audio are negotiated: the bridge forwards frames as the
  sender encoded them. SDPs carry all ICE candidates (no trickle). Peer
  connections use max-bundle. The abs-send-time extension is left out of every
  bridge SDP (aiortc would send a REMB per video packet), so senders keep their
  own bitrate and each hop has loss-based feedback only.
* Latency added: one video frame (aiortc's jitter buffer releases a frame when the
  next one starts) and about four audio packets (its audio prefetch).
* In a monitor's offer the m-lines are video before audio, tablet before visitor,
  and each track's msid stream id is the leg's name (``tablet``/``visitor``) and
  track id ``<leg>-<kind>``, so a console can label what it shows.
* ``bridge.stats()`` gives frames in, key frames in, key-frame requests sent
  upstream and consumer counts per ``<leg>-<kind>`` source, for metrics.
"""

from .bridge import Bridge
from .parts import BridgeError, BridgeFailure, Leg

__all__ = ["Bridge", "BridgeError", "BridgeFailure", "Leg"]
