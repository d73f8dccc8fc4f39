// In-call controls on the tablet (issue 16): mute and camera off. Turning a track off sends
// silence or black, never a frozen frame (media.js's tracks, forwarded by the agent); the
// agent tells the visitor in words (POST /api/controls, a "media" message via the server).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const mine = { call: null, audio: true, video: true, t: (key) => key };

  function tracks(kind) {
    const stream = window.kioskMedia.stream();
    if (!stream) return [];
    return kind === "audio" ? stream.getAudioTracks() : stream.getVideoTracks();
  }

  // The page's tracks as the inmate left them: media.js calls this for a new capture too.
  function apply() {
    for (const kind of ["audio", "video"]) for (const track of tracks(kind)) track.enabled = mine[kind];
  }

  function draw() {
    const t = mine.t;
    const mute = $("btn-mute");
    mute.textContent = t(mine.audio ? "mute" : "unmute");
    mute.setAttribute("aria-pressed", String(!mine.audio));
    const camera = $("btn-camera");
    camera.textContent = t(mine.video ? "camera_off" : "camera_on");
    camera.setAttribute("aria-pressed", String(!mine.video));
    document.body.dataset.selfAudio = mine.audio ? "on" : "off";
    document.body.dataset.selfVideo = mine.video ? "on" : "off";
  }

  // Every state: a new call starts as the agent has it (all on, or as a reloaded page left it).
  function render(view, t) {
    mine.t = t;
    const call = view && view.call;
    const id = call ? call.call_id : null;
    if (id !== mine.call) {
      mine.call = id;
      mine.audio = !call || call.audio !== false;
      mine.video = !call || call.video !== false;
      apply();
    }
    draw();
  }

  function toggle(kind) {
    if (!mine.call) return;
    mine[kind] = !mine[kind];
    apply();
    draw();
    // A refusal means the call is over: its end screen says why, so nothing is shown here.
    fetch("/api/controls", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ call_id: mine.call, audio: mine.audio, video: mine.video }),
    }).catch(() => {});
  }

  window.kioskControls = { render, apply };

  document.addEventListener("DOMContentLoaded", () => {
    $("btn-mute").addEventListener("click", () => toggle("audio"));
    $("btn-camera").addEventListener("click", () => toggle("video"));
  });
})();
