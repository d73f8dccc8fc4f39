"""The kiosk page is the tablet's camera, microphone and screen (issue 13).

Chromium with fake devices as the kiosk page and another Chromium context as
the visitor, through the real server and the agent process: moving video
and sound both ways, the constraints the page asked for in effect, the
page's media connection on loopback to the agent only, and at the grant's
end both ends stop even when the page's script ignores the end (the agent
cuts it by its own clock).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import DESKTOP, TABLET, Faces
from tests.e2e.page_wait import until_true
from tests.e2e.test_call_in_browsers import assert_moving_video, only_from
from tests.harness import World, stays, wait_until
from tests.loopback import PAGE_MEDIA_HOST

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every RTCPeerConnection a page makes, and what the live ones receive, sampled every
# 50 ms and kept after they close (Chromium has no statistics for a closed connection).
PC_SPY = """(() => {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.__media = {};
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Native.prototype;
  setInterval(async () => {
    for (const pc of window.__pcs) {
      if (pc.connectionState !== "connected") continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.packetsReceived) {
          window.__media[s.kind] = {packets: s.packetsReceived,
                                    energy: s.totalAudioEnergy || 0,
                                    last: s.lastPacketReceivedTimestamp || 0};
        }
        if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") {
          window.__media.local = stats.get(s.localCandidateId).address;
          window.__media.remote = stats.get(s.remoteCandidateId).address;
        }
      });
    }
  }, 50);
})();"""

STATS = "() => JSON.parse(JSON.stringify(window.__media))"

# The page's script stops listening: no end, no close. The agent must cut it anyway.
IGNORE_THE_END = """() => {
  window.kioskMedia.onView = () => {};
  window.kioskMedia.onMedia = () => {};
  window.RTCPeerConnection.prototype.close = function () {};
}"""

SETTINGS = """() => {
  const stream = document.querySelector("#self").srcObject;
  return stream.getAudioTracks()[0].getSettings();
}"""


async def stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(STATS)
    return result


async def both(pages: tuple[Page, Page]) -> tuple[dict[str, Any], dict[str, Any]]:
    return await stats(pages[0]), await stats(pages[1])


async def test_the_kiosk_page_is_the_tablets_camera_and_the_agent_cuts_it_at_the_end(
    world: World, faces: Faces
) -> None:
    inmate = await world.inmate("Ola Nordmann")
    contact = await world.approved_contact(inmate, name="Kari Nordmann")
    booking = await world.booking(inmate, contact, start_in=3, seconds=75)
    url = await world.invite_url(booking["id"])
    tablet = await world.tablet(inmate, "TAB-MEDIA1")

    visitor = await faces.open("visitor-media", url, viewport=DESKTOP, init_script=PC_SPY)
    vpage = visitor.page
    await vpage.click("#btn-check")
    await expect(vpage.locator("#btn-wait")).to_be_enabled(timeout=15000)
    await vpage.click("#btn-wait")
    await expect(vpage.locator("body")).to_have_attribute("data-screen", "waiting")

    kiosk = await faces.open("kiosk-media", tablet.ui_url, viewport=TABLET, init_script=PC_SPY)
    kpage = kiosk.page
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    # The page is the camera once its loopback probe passed and it said so to the agent.
    await wait_until(lambda: _page_open(tablet), timeout=30, what="the page takes the media")
    button = kpage.locator(f"li[data-booking='{booking['id']}'] button")
    await expect(button).to_be_enabled(timeout=10000)
    await button.click()

    await expect(kpage.locator("body")).to_have_attribute("data-media", "connected", timeout=30000)
    state = await tablet.state()
    not_after = datetime.fromisoformat(state["call"]["not_after"]).timestamp() * 1000
    await expect(kpage.locator("body")).to_have_attribute("data-remote-video", "yes", timeout=30000)
    await until_true(vpage, "document.querySelector('#remote-video').videoWidth > 0",
                     "the kiosk page's picture at the visitor", timeout=30)
    # Moving video both ways: the kiosk page's camera at the visitor, and back.
    await assert_moving_video(vpage, "#remote-video", "the kiosk page's camera at the visitor")
    await assert_moving_video(kpage, "#remote", "the visitor's camera on the kiosk page")
    await until_true(kpage, "document.querySelector('#self').videoWidth > 0", "the self view")
    # Sound both ways: Chromium's fake microphone beeps; each end hears the other.
    first = await both((kpage, vpage))
    await wait_until(
        lambda: _louder(first, kpage, vpage), timeout=30, what="sound arriving at both ends"
    )

    # The constraints the page asked for are in effect.
    settings = await kpage.evaluate(SETTINGS)
    assert settings["echoCancellation"] is True, settings
    assert settings["noiseSuppression"] is True and settings["autoGainControl"] is True, settings

    # The page's media connection: loopback to the agent's page address, nothing else.
    kstats = await stats(kpage)
    assert kstats["remote"] == PAGE_MEDIA_HOST, kstats
    assert kstats["local"].startswith("127.") or kstats["local"] == "::1", kstats
    # Two connections: the page's loopback probe (closed at once) and its media's.
    assert await kpage.evaluate("window.__pcs.length") == 2

    # The page's script now ignores the end: the agent's own clock cuts both directions.
    await kpage.evaluate(IGNORE_THE_END)
    left = not_after / 1000 - time.time()  # the booking's rest, however fast the set-up was
    await wait_until(
        lambda: _ended(tablet),
        timeout=left + 30,
        what="the tablet to end the call at the grant's end",
    )
    await expect(vpage.locator("body")).to_have_attribute("data-screen", "end", timeout=15000)
    stopped = await both((kpage, vpage))
    await stays(
        lambda: _same(stopped, kpage, vpage), 1.5, "no media at either end after the end"
    )
    # The last packet each end got came by the grant's end (plus what was on the wire).
    for where, seen in (("kiosk page", stopped[0]), ("visitor", stopped[1])):
        for kind in ("video", "audio"):
            late = seen[kind]["last"] - not_after
            assert late <= 100, f"{where} got {kind} {late:.0f} ms after the grant's end"

    only_from(kiosk, tablet.ui_url.rstrip("/"))
    only_from(visitor, world.web_url)


async def _louder(first: tuple[dict[str, Any], dict[str, Any]], kpage: Page, vpage: Page) -> bool:
    now = await both((kpage, vpage))
    return all(
        now[i].get("audio", {}).get("energy", 0) > first[i].get("audio", {}).get("energy", 0)
        for i in (0, 1)
    )


async def _same(then: tuple[dict[str, Any], dict[str, Any]], kpage: Page, vpage: Page) -> bool:
    now = await both((kpage, vpage))
    return all(
        now[i].get(kind, {}).get("packets") == then[i].get(kind, {}).get("packets")
        for i in (0, 1)
        for kind in ("video", "audio")
    )


async def _ended(tablet: Any) -> bool:
    state = await tablet.state()
    return state["phase"] == "ended" and state["ended"]["reason"] == "time_up"


async def _page_open(tablet: Any) -> bool:
    state = await tablet.state()
    return bool(state["media"].get("page_open"))
