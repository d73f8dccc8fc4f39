// Watching and/or listening to a controlled call (R6) through the server's bridge.
// The bridge makes the offer with only the media the decision allows (sight = video,
// hearing = audio); this page answers it, waits for ICE gathering to finish (no trickle)
// and posts the answer. Privileged calls are never offered here (R13) and the API refuses them.
import { api, badge, clear, fmtDuration, h, label, t } from "./core.js";
import * as data from "./data.js";

export async function renderMonitor(main, { args }) {
  const callId = args[0];
  const calls = await api("GET", "/calls?live=true");
  const call = calls.items.find((c) => c.id === callId);
  main.append(h("div", { class: "page-head" },
    h("p", { class: "crumbs" }, h("a", { href: "#/board" }, t("nav.board"))),
    h("h1", {}, t("monitor.title"))));
  if (!call) {
    main.append(h("p", { class: "notice", id: "monitor-gone" }, t("monitor.not_live")));
    return;
  }
  const [inmates, contact] = await Promise.all([data.inmates(), data.contact(call.contact_id)]);
  const inmate = inmates.get(call.inmate_id);
  const kinds = data.mediaKinds(call.control);
  // R13 / R6: nothing to offer on a privileged or an uncontrolled call; say why, in words.
  const privileged = data.PRIVILEGED.includes(call.category);
  if (privileged || !kinds.length) {
    main.append(h("section", { class: "card" },
      h("p", {}, badge(privileged ? t("control.privileged") : label("control", call.control), privileged ? "privileged" : ""),
        " ", inmate ? inmate.name : "", contact ? ` – ${contact.name}` : ""),
      h("p", { class: "notice info", id: "monitor-nothing" }, t(privileged ? "monitor.privileged" : "monitor.allows.none"))));
    return;
  }
  const allowed = h("p", { class: "notice info", id: "monitor-allowed" }, t(`monitor.allows.${call.control}`));
  const status = h("p", { class: "status", id: "monitor-status", role: "status" }, t("monitor.idle"));
  const left = h("span", { id: "monitor-left" }, fmtDuration((Date.parse(call.not_after) - Date.now()) / 1000));
  // The bridge sends each leg's media on its own track: the tablet's first, then the visitor's.
  const tiles = h("div", { class: "tiles", id: "monitor-tiles" });
  const sounds = h("div", { id: "monitor-sounds" });
  const stage = h("div", { class: "stage", dataset: { kinds: kinds.join(" ") } });
  if (kinds.includes("video")) stage.append(tiles);
  else stage.append(h("div", { class: "no-video", id: "monitor-no-video" }, t("monitor.no_video")));
  if (kinds.includes("audio")) stage.append(sounds, h("p", { class: "audio-note", id: "monitor-audio-note" }, t("monitor.audio_on")));
  else stage.append(h("p", { class: "audio-note", id: "monitor-no-audio" }, t("monitor.no_audio")));

  const start = h("button", { type: "button", class: "btn primary", id: "btn-monitor-start" }, t("monitor.start"));
  const stop = h("button", { type: "button", class: "btn", id: "btn-monitor-stop", disabled: true }, t("monitor.stop"));
  main.append(
    h("section", { class: "card" },
      h("dl", { class: "facts" },
        h("dt", {}, t("col.inmate")), h("dd", {}, inmate ? inmate.name : call.inmate_id),
        h("dt", {}, t("col.contact")), h("dd", {}, contact ? `${contact.name} · ${label("category", contact.category)}` : call.contact_id),
        h("dt", {}, t("col.control")), h("dd", {}, badge(label("control", call.control), "warn")),
        h("dt", {}, t("col.state")), h("dd", { id: "monitor-call-state" }, label("call_state", call.state)),
        h("dt", {}, t("col.time_left")), h("dd", {}, left)),
      allowed,
      h("div", { class: "row-actions" }, start, stop),
      status),
    stage);

  let pc = null;
  let stopped = false;
  const ticker = setInterval(() => { left.textContent = fmtDuration((Date.parse(call.not_after) - Date.now()) / 1000); }, 1000);

  const close = () => {
    if (pc) {
      pc.close();
      pc = null;
    }
    for (const el of stage.querySelectorAll("video, audio")) el.srcObject = null;
    clear(tiles);
    clear(sounds);
    delete document.body.dataset.monitorTracks;
    start.disabled = false;
    stop.disabled = true;
    document.body.dataset.monitor = "stopped";
  };

  start.addEventListener("click", async () => {
    start.disabled = true;
    status.textContent = t("monitor.connecting");
    document.body.dataset.monitor = "connecting";
    try {
      const offer = await api("POST", `/calls/${encodeURIComponent(callId)}/monitors`, { kinds });
      // No ICE servers: the bridge is on the server's own network (ARCHITECTURE.md, principle 7).
      pc = new RTCPeerConnection({ iceServers: [] });
      const received = [];
      pc.ontrack = (event) => {
        const track = event.track;
        received.push(track.kind);
        document.body.dataset.monitorTracks = [...received].sort().join(" ");
        const seen = received.filter((k) => k === track.kind).length;
        const who = whose(track, seen);
        const stream = new MediaStream([track]);
        if (track.kind === "video") {
          const video = h("video", { autoplay: true, playsinline: true, muted: true, class: "monitor-video", dataset: { leg: who } });
          video.srcObject = stream;
          tiles.append(h("figure", { class: "tile" }, video, h("figcaption", {}, t(`monitor.leg.${who}`))));
        } else {
          const audio = h("audio", { autoplay: true, class: "monitor-audio", dataset: { leg: who } });
          audio.srcObject = stream;
          sounds.append(audio);
        }
      };
      pc.onconnectionstatechange = () => {
        if (!pc) return;
        const s = pc.connectionState;
        if (s === "connected") {
          status.textContent = t("monitor.connected");
          document.body.dataset.monitor = "connected";
        } else if (s === "failed" || s === "closed" || s === "disconnected") {
          status.textContent = t("monitor.lost");
          document.body.dataset.monitor = "lost";
        }
      };
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      await gathered(pc);
      if (stopped || !pc) return;
      await api("POST", `/calls/${encodeURIComponent(callId)}/monitors/${encodeURIComponent(offer.monitor_id)}/answer`, { sdp: pc.localDescription.sdp });
      stop.disabled = false;
      status.textContent = t("monitor.waiting_media");
    } catch (err) {
      close();
      status.textContent = err.message || String(err);
      document.body.dataset.monitor = "error";
    }
  });
  stop.addEventListener("click", () => { close(); status.textContent = t("monitor.stopped"); });

  return () => { stopped = true; clearInterval(ticker); close(); };
}

// Which leg a track comes from: its id names it ("tablet-video"), else the order.
function whose(track, nth) {
  if (track.id.startsWith("tablet")) return "tablet";
  if (track.id.startsWith("visitor")) return "visitor";
  return nth === 1 ? "tablet" : "visitor";
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000); // send what we have rather than hang
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

