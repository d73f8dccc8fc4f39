"""Issue 16 item 16, the tablet's half, in real browsers: the kiosk page (Chromium with fake
devices, the tablet's camera and microphone) mutes and turns its camera off; its own tracks
are off, so the visitor's page gets silence and a black picture, not a frozen frame, and says
so in words; on again, the words go and the picture moves. Screens in both languages,
checked with axe-core."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.e2e.conftest import DESKTOP, PHONE, TABLET, Faces
from tests.e2e.page_wait import until_true
from tests.e2e.test_call_in_browsers import assert_moving_video
from tests.e2e.test_off_plan import both_languages, english, to_waiting_room
from tests.harness import World, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The page's own tracks of one kind: how many, and whether every one is on.
TRACKS = """(kind) => {
  const stream = window.kioskMedia.stream();
  const tracks = kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  return {count: tracks.length, on: tracks.every((t) => t.enabled)};
}"""

# A picture that is black (dark and even), as a disabled camera track sends; a frozen or
# moving camera picture is neither.
BLACK = """(selector) => {
  const source = document.querySelector(selector);
  if (!(source.readyState >= 2 && source.videoWidth > 0)) return false;
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 36;
  const g = canvas.getContext("2d");
  g.drawImage(source, 0, 0, 64, 36);
  const data = g.getImageData(0, 0, 64, 36).data;
  let sum = 0, top = 0;
  for (let i = 0; i < data.length; i += 4) {
    const grey = (data[i] + data[i + 1] + data[i + 2]) / 3;
    sum += grey; top = Math.max(top, grey);
  }
  return sum / (data.length / 4) < 12 && top < 40;
}"""


async def tracks(page: Page, kind: str) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(TRACKS, kind)
    return result


async def _page_open(tablet: Any) -> bool:
    state = await tablet.state()
    return bool(state["media"].get("page_open"))


async def test_the_tablet_mutes_and_turns_the_camera_off_and_the_visitor_says_so(
    world: World, faces: Faces
) -> None:
    inmate = await world.inmate("Jonas Berg")
    contact = await world.approved_contact(inmate, name="Sara Berg")
    tablet = await world.tablet(inmate, "TAB-CTRL16")
    booking = await world.booking(inmate, contact, start_in=3, seconds=600)
    visitor = await to_waiting_room(faces, "tablet-controls", await world.invite_url(booking["id"]),
                                    viewport=PHONE, locale="en-GB")
    vpage = visitor.page
    kiosk = await faces.open("tablet-controls-kiosk", tablet.ui_url, viewport=TABLET,
                             locale="en-GB")
    kpage = kiosk.page
    await english(kpage)
    await wait_until(lambda: tablet.callable(booking["id"]), timeout=20, what="window open")
    # The page is the tablet's camera once its loopback probe passed and it told the agent.
    await wait_until(lambda: _page_open(tablet), timeout=30, what="the page takes the media")
    await kpage.locator(f"li[data-booking='{booking['id']}'] button").click()
    await expect(vpage.locator("body")).to_have_attribute("data-screen", "call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-phase", "in_call", timeout=30000)
    await expect(kpage.locator("body")).to_have_attribute("data-media", "connected", timeout=30000)
    await assert_moving_video(vpage, "#remote-video", "the tablet's camera at the visitor")

    mute, camera = kpage.locator("#btn-mute"), kpage.locator("#btn-camera")
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await expect(mute).to_have_text("Mute")
    for button in (mute, camera):  # large enough for any finger
        box = await button.bounding_box()
        assert box is not None and box["height"] >= 64 and box["width"] >= 160, box

    await mute.click()
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await expect(mute).to_have_text("Unmute")
    assert await tracks(kpage, "audio") == {"count": 1, "on": False}
    assert await tracks(kpage, "video") == {"count": 1, "on": True}
    await expect(vpage.locator("#remote-muted")).to_have_text(
        "The other person's microphone is off.", timeout=15000
    )
    await expect(vpage.locator("#remote-off")).to_be_hidden()

    await camera.click()
    await expect(camera).to_have_attribute("aria-pressed", "true")
    await expect(camera).to_have_text("Turn camera on")
    assert await tracks(kpage, "video") == {"count": 1, "on": False}
    await expect(vpage.locator("#remote-off")).to_have_text(
        "The other person's camera is off.", timeout=15000
    )
    # What arrives is black, not the last frame held.
    await until_true(vpage, BLACK, "a black picture at the visitor", 15, arg="#remote-video")
    assert (await tablet.state())["call"]["video"] is False  # a reloaded page keeps it off

    await both_languages(faces, kiosk, "16-tablet-muted-camera-off")
    await both_languages(faces, visitor, "16-tablet-muted-camera-off-phone")
    await expect(kpage.locator("#btn-mute")).to_have_text("Unmute")  # English again

    # On again: the visitor's notices go and the picture moves.
    await mute.click()
    await camera.click()
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await expect(camera).to_have_text("Turn camera off")
    assert await tracks(kpage, "audio") == {"count": 1, "on": True}
    assert await tracks(kpage, "video") == {"count": 1, "on": True}
    await expect(vpage.locator("#remote-muted")).to_be_hidden(timeout=15000)
    await expect(vpage.locator("#remote-off")).to_be_hidden(timeout=15000)
    await assert_moving_video(vpage, "#remote-video", "the tablet's camera on again")
    await vpage.set_viewport_size(DESKTOP)
    await faces.screen(kiosk, "16-tablet-controls-on")
