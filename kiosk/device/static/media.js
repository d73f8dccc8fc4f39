// The tablet's camera, microphone and screen for a call (ARCHITECTURE.md, The tablet).
// The page captures with getUserMedia (Chromium's echo cancellation, noise suppression and
// gain control on) and makes a WebRTC connection to the agent on loopback, with no ICE
// servers: POST /api/media carries the offer, its answer comes back. The agent forwards
// the media to and from the call's peer, and ends it at the grant's end whatever this
// script does. kiosk.js calls onView (every state) and onMedia (the agent's "media" event).
"use strict";

(function () {
  const CONSTRAINTS = {
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 25 } },
  };
  const GATHER_LIMIT_MS = 2000; // loopback candidates come at once; others may lag
  const RETRIES = 5;
  const m = { local: null, capturing: null, pc: null, key: null, target: null, tries: 0, want: false };
  const $ = (id) => document.getElementById(id);

  // One capture at a time: onView and connect both ask, and two captures would leave the
  // call sending one camera while the self view and the controls (issue 16) hold another.
  function camera() {
    if (m.local) return Promise.resolve(m.local);
    if (!m.capturing) {
      const asked = navigator.mediaDevices.getUserMedia(CONSTRAINTS).then((stream) => {
        if (m.capturing !== asked) { // stopped meanwhile: nobody wants this capture
          for (const track of stream.getTracks()) track.stop();
          throw new Error("the capture was stopped");
        }
        m.capturing = null;
        m.local = stream;
        if (window.kioskControls) window.kioskControls.apply(); // muted stays muted
        $("self").srcObject = stream;
        return stream;
      }, (error) => {
        if (m.capturing === asked) m.capturing = null;
        throw error;
      });
      m.capturing = asked;
    }
    return m.capturing;
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      const done = () => {
        if (pc.iceGatheringState === "complete") resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, GATHER_LIMIT_MS);
    });
  }

  function closePeer() {
    const pc = m.pc;
    m.pc = null;
    m.key = null;
    if (pc) pc.close();
    const remote = $("remote");
    if (remote.srcObject) remote.srcObject = null;
    delete document.body.dataset.remoteVideo;
    delete document.body.dataset.media;
  }

  async function connect(target) {
    const key = target.call_id + "/" + target.epoch;
    if (m.key === key) return;
    closePeer();
    m.key = key;
    let stream;
    try {
      stream = await camera();
    } catch (_) {
      document.body.dataset.media = "no-camera";
      return;
    }
    if (m.key !== key) return;
    const pc = new RTCPeerConnection({ iceServers: [] }); // loopback only: no servers
    m.pc = pc;
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
    const remote = new MediaStream();
    pc.ontrack = (event) => {
      remote.addTrack(event.track);
      $("remote").srcObject = remote;
    };
    pc.onconnectionstatechange = () => {
      if (m.pc !== pc) return;
      document.body.dataset.media = pc.connectionState;
      if (pc.connectionState === "failed" || pc.connectionState === "closed") {
        closePeer(); // the agent ended it (the call's end) or it broke: try again if wanted
        retry(target);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    if (m.pc !== pc) return;
    let answer = null;
    try {
      const response = await fetch("/api/media", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ call_id: target.call_id, sdp: pc.localDescription.sdp }),
      });
      if (response.ok) answer = await response.json();
    } catch (_) {
      answer = null;
    }
    if (m.pc !== pc) return;
    if (!answer) {
      closePeer();
      retry(target);
      return;
    }
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  }

  function retry(target) {
    if (!m.want || m.tries >= RETRIES) return;
    m.tries += 1;
    setTimeout(() => {
      if (m.want && m.target === target) connect(target);
    }, 500 * m.tries);
  }

  function stop() {
    m.want = false;
    m.target = null;
    m.capturing = null;
    closePeer();
    if (m.local) {
      for (const track of m.local.getTracks()) track.stop();
      m.local = null;
    }
    $("self").srcObject = null;
  }

  // The state: a call being set up or on shows the camera; none stops everything.
  function onView(view) {
    const inCall = view.call && (view.phase === "connecting" || view.phase === "in_call");
    if (!inCall) {
      if (m.want || m.local) stop();
      return;
    }
    m.want = true;
    camera().catch(() => {
      document.body.dataset.media = "no-camera";
    });
    const page = view.media && view.media.page;
    if (page) onMedia({ page });
  }

  // The agent says which call (and which connection of it) takes the page's media.
  function onMedia(message) {
    const page = message.page;
    if (!page) return;
    m.want = true;
    m.target = page;
    m.tries = 0;
    connect(page);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const remote = $("remote");
    remote.addEventListener("resize", () => {
      if (remote.videoWidth > 0) {
        document.body.dataset.remoteVideo = "yes";
        $("call-status").textContent = "";
      }
    });
  });

  // Can this browser reach the agent on loopback at all (Chromium needs
  // --allow-loopback-in-peer-connection)? Only then does the page take over the
  // call's media; a headless agent keeps its synthetic sources otherwise.
  let probed = null;
  function probe() {
    if (!probed) {
      probed = (async () => {
        const pc = new RTCPeerConnection({ iceServers: [] });
        try {
          pc.createDataChannel("probe");
          await pc.setLocalDescription(await pc.createOffer());
          await gathered(pc);
          return / (127\.\d+\.\d+\.\d+|::1) \d+ typ host/.test(pc.localDescription.sdp);
        } catch (_) {
          return false;
        } finally {
          pc.close();
        }
      })();
    }
    return probed;
  }

  const stream = () => m.local; // the page's camera and microphone (controls.js turns them off)
  window.kioskMedia = { onView, onMedia, stop, probe, stream, constraints: CONSTRAINTS };
})();
