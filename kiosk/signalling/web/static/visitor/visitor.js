// The visitor's page: device check, waiting room, the call, the end (issue 4).
// Talks only to its own origin: WSS /visit/v1 (join with the invite token from
// the address, then SDP/ICE relay) and the strings in /static/visitor/i18n/.
"use strict";

(function () {
  const LANGS = ["nb", "en"];
  const ICE_GATHER_LIMIT_MS = 5000;
  const MAX_RETRIES = 8; // about 40 s in all: long enough for a server restart
  const state = {
    lang: "nb",
    strings: {},
    screen: "intro",
    token: decodeURIComponent(location.pathname.split("/").pop() || ""),
    ws: null,
    stream: null,
    audio: null,
    pc: null,
    waiting: null, // {start, end, control, category}
    call: null, // {call_id, control, route, not_after, server_time, ice_servers}
    clockOffset: 0, // server clock minus this browser's clock, ms
    pendingIce: [],
    timer: null,
    ending: false,
    retries: 0,
    invite: null, // GET /visit/{token}/status: can the call still take place (issue 16)
    tabletReady: null, // the inmate's tablet is on line (issue 16)
    closedCode: null, // why the call will not take place
  };
  const JOINED_KEY = "kiosk-visitor-joined:" + state.token; // a reload goes back in (issue 16)
  const STATUS_POLL_MS = 10000;

  const $ = (id) => document.getElementById(id);

  // --- strings --------------------------------------------------------------------------

  function t(key, vars) {
    let text = state.strings[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.replace("{" + name + "}", String(value));
    }
    return text;
  }

  async function loadLanguage(lang) {
    const response = await fetch("/static/visitor/i18n/" + lang + ".json", { cache: "no-cache" });
    state.strings = await response.json();
    state.lang = lang;
    document.documentElement.lang = lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) {
      el.textContent = t(el.dataset.i18n);
    }
    for (const el of document.querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
    }
    for (const button of document.querySelectorAll(".lang-btn")) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    }
    renderDynamic();
  }

  function storedLanguage() {
    try {
      const saved = localStorage.getItem("kiosk-visitor-lang");
      return LANGS.includes(saved) ? saved : null;
    } catch (_) {
      return null;
    }
  }

  function chooseLanguage(lang) {
    try {
      localStorage.setItem("kiosk-visitor-lang", lang);
    } catch (_) {
      // private mode: the choice lasts for this page only
    }
    loadLanguage(lang);
  }

  // --- screens ----------------------------------------------------------------------------

  function show(name) {
    state.screen = name;
    document.body.dataset.screen = name;
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== "screen-" + name;
    }
    const heading = document.querySelector("#screen-" + name + " h1");
    if (heading) heading.focus({ preventScroll: false });
  }

  function formatTime(iso) {
    return new Date(iso).toLocaleTimeString(state.lang === "nb" ? "nb-NO" : "en-GB", {
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  function formatDay(iso) {
    return new Date(iso).toLocaleDateString(state.lang === "nb" ? "nb-NO" : "en-GB", {
      weekday: "long",
      day: "numeric",
      month: "long",
    });
  }

  function controlText(control, privileged) {
    // R13: the server says whether the call is privileged (Category.privileged).
    if (privileged) return t("control_privileged");
    return t("control_" + control);
  }

  // Texts built from data are rendered again when the language changes.
  function renderDynamic() {
    if (state.waiting) {
      const w = state.waiting;
      $("waiting-window").textContent =
        formatDay(w.start) + ", " + formatTime(w.start) + "–" + formatTime(w.end);
      $("waiting-control").textContent = controlText(w.control, w.privileged);
    }
    if (state.call) {
      const privileged = Boolean(state.waiting && state.waiting.privileged);
      $("call-control").textContent = controlText(state.call.control, privileged);
      $("call-control").dataset.control = state.call.control;
    }
    if (state.endReason) $("end-reason").textContent = t("end_" + state.endReason);
    if (state.errorCode) $("error-text").textContent = errorText(state.errorCode);
    if (state.warningMinutes !== undefined) showWarning(state.warningMinutes);
    if (state.statusKey) setStatus(state.statusKey);
    renderInvite();
    renderTablet();
    if (state.screen === "call" && window.kioskControls) window.kioskControls.render();
    if (state.closedCode) renderClosed();
    if (state.endReason) renderEndAgain();
  }

  // --- the invite: who it speaks to, and whether its call can still take place (issue 16) --

  async function loadStatus() {
    try {
      const response = await fetch("/visit/" + encodeURIComponent(state.token) + "/status", {
        cache: "no-store",
      });
      const body = await response.json();
      if (body.server_time) state.clockOffset = Date.parse(body.server_time) - Date.now();
      state.invite = body;
    } catch (_) {
      // no answer: the join says what is wrong
    }
    return state.invite;
  }

  function renderInvite() {
    const call = state.invite && state.invite.call;
    // A lawyer or a police officer is spoken to as such, not as a family member (R13).
    const who = call && call.privileged ? call.category : "";
    $("intro-lead").textContent = t(who ? "intro_lead_" + who : "intro_lead");
    $("step-control").textContent = t(who ? "step_control_privileged" : "step_control");
  }

  function renderTablet() {
    const el = $("waiting-tablet");
    el.hidden = state.tabletReady === null;
    el.textContent = state.tabletReady ? t("tablet_ready") : t("tablet_not_ready");
    el.dataset.ready = String(Boolean(state.tabletReady));
  }

  // The window has closed, or the booking was cancelled, held or used: say so, and where
  // to turn (the facility's contact details).
  function closed(code) {
    state.closedCode = code;
    closeCall();
    stopMedia();
    forgetJoined();
    renderClosed();
    show("closed");
  }

  function renderClosed() {
    $("closed-text").textContent = t("closed_" + state.closedCode);
    renderOffice($("closed-office"));
  }

  function renderOffice(el) {
    const facility = state.invite && state.invite.facility;
    el.replaceChildren();
    if (!facility) return;
    const heading = document.createElement("h2");
    heading.textContent = t("office_heading", { name: facility.name });
    const list = document.createElement("dl");
    list.className = "facts";
    for (const [key, value] of [["phone", facility.phone], ["email", facility.email],
      ["hours", facility.hours]]) {
      if (!value) continue;
      const row = document.createElement("div");
      const dt = document.createElement("dt");
      dt.textContent = t("office_" + key);
      const dd = document.createElement("dd");
      dd.dataset.office = key;
      if (key === "hours") {
        dd.textContent = value;
      } else {
        const link = document.createElement("a");
        link.href = (key === "phone" ? "tel:" : "mailto:") + value.replace(/\s/g, "");
        link.textContent = value;
        dd.append(link);
      }
      row.append(dt, dd);
      list.append(row);
    }
    if (!list.children.length) {
      const none = document.createElement("p");
      none.textContent = t("office_none");
      el.append(heading, none);
      return;
    }
    el.append(heading, list);
  }

  const CLOSED = ["booking_used", "booking_cancelled", "booking_held", "facility_restricted",
    "outside_window"];

  // The status may change while the visitor waits (cancelled, held, the window over).
  async function watchStatus() {
    if (state.screen !== "waiting") return;
    const invite = await loadStatus();
    if (invite && CLOSED.includes(invite.state) && state.screen === "waiting") {
      closed(invite.state);
      return;
    }
    setTimeout(watchStatus, STATUS_POLL_MS);
  }

  function invitePast() {
    const call = state.invite && state.invite.call;
    return Boolean(call) && Date.now() + state.clockOffset >= Date.parse(call.end);
  }

  function windowOver() {
    const end = state.waiting && Date.parse(state.waiting.end);
    return Boolean(end) && Date.now() + state.clockOffset >= end;
  }

  function rememberJoined() {
    try {
      sessionStorage.setItem(JOINED_KEY, "1");
    } catch (_) {
      // private mode: a reload starts from the first page
    }
  }

  function forgetJoined() {
    try {
      sessionStorage.removeItem(JOINED_KEY);
    } catch (_) {
      // nothing kept
    }
  }

  function wasJoined() {
    try {
      return sessionStorage.getItem(JOINED_KEY) === "1";
    } catch (_) {
      return false;
    }
  }

  // After leaving (or a lost connection) inside the window: the way back in.
  function renderEndAgain() {
    // A call that connected used its booking up (R10): only an unanswered one is open again.
    const open = (state.endReason === "connection_lost"
      || (state.endReason === "left" && !state.connected)) && !windowOver();
    $("end-again").hidden = !open;
    $("end-close").hidden = open;
    if (open) $("end-again-text").textContent = t("rejoin_text");
  }

  async function rejoin() {
    state.endReason = undefined;
    delete document.body.dataset.endReason;
    state.autoJoin = true;
    await startCheck();
  }

  function errorText(code) {
    const key = "error_" + code;
    return state.strings[key] ? t(key) : t("error_generic");
  }

  const FINAL_ERRORS = [
    "not_found",
    "booking_not_active",
    "booking_used",
    "booking_cancelled",
    "facility_restricted",
  ];

  function fail(code) {
    const early = code === "outside_window" && !invitePast();
    if (CLOSED.includes(code) && !early) {
      closed(code);
      return;
    }
    state.errorCode = code;
    $("error-text").textContent = errorText(code);
    $("btn-again").hidden = FINAL_ERRORS.includes(code);
    renderOffice($("error-office"));
    closeCall();
    stopMedia();
    show("error");
  }

  function setStatus(key) {
    state.statusKey = key;
    const el = { check: "check-status", waiting: "waiting-status", call: "call-status" }[state.screen];
    if (el) $(el).textContent = key ? t(key) : "";
  }

  // --- camera and microphone ---------------------------------------------------------------

  async function startCheck() {
    show("check");
    $("btn-wait").disabled = true;
    $("btn-retry").hidden = true;
    setStatus("check_running");
    try {
      if (!state.stream) {
        state.stream = await navigator.mediaDevices.getUserMedia({
          audio: { echoCancellation: true, noiseSuppression: true },
          video: { width: { ideal: 1280 }, height: { ideal: 720 }, facingMode: "user" },
        });
      }
    } catch (_) {
      setStatus("check_failed");
      $("check-status").classList.add("bad");
      $("btn-retry").hidden = false;
      return;
    }
    $("check-status").classList.remove("bad");
    $("preview-video").srcObject = state.stream;
    startMeter();
    setStatus("check_ok");
    $("btn-wait").disabled = false;
    if (state.autoJoin) {
      state.autoJoin = false;
      join();
    }
  }

  function startMeter() {
    if (state.audio) return;
    try {
      const context = new AudioContext();
      const source = context.createMediaStreamSource(state.stream);
      const analyser = context.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
      const samples = new Float32Array(analyser.fftSize);
      const meter = $("mic-meter");
      state.audio = context;
      const step = () => {
        if (state.audio !== context) return;
        analyser.getFloatTimeDomainData(samples);
        let sum = 0;
        for (const s of samples) sum += s * s;
        meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
        requestAnimationFrame(step);
      };
      step();
    } catch (_) {
      // no meter without Web Audio; the call works all the same
    }
  }

  function stopMedia() {
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    state.stream = null;
    if (state.audio) state.audio.close();
    state.audio = null;
  }

  // --- signalling ---------------------------------------------------------------------------

  function send(message) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
  }

  function join() {
    if (state.screen !== "waiting") setStatus("joining");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/visit/v1");
    state.ws = ws;
    state.ending = false;
    ws.onopen = () => send({ type: "join", token: state.token });
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onMessage(message);
    };
    ws.onclose = () => {
      if (state.ws !== ws || state.ending) return;
      state.ws = null;
      if ((state.screen === "call" || state.screen === "waiting") && state.retries < MAX_RETRIES
          && !windowOver()) {
        // A dropped network in the waiting room: join again (the seat was freed).
        state.retries += 1;
        closePeer();
        if (state.screen === "call") show("waiting");
        setStatus("reconnecting");
        setTimeout(join, 1000 * state.retries);
      } else {
        fail("offline");
      }
    };
  }

  function onMessage(message) {
    switch (message.type) {
      case "waiting":
        state.retries = 0;
        state.waiting = message;
        rememberJoined();
        if (state.screen !== "waiting") setTimeout(watchStatus, STATUS_POLL_MS);
        closePeer();
        if (state.timer) clearInterval(state.timer);
        state.timer = null;
        state.call = null;
        show("waiting");
        $("waiting-video").srcObject = state.stream;
        setStatus("waiting_for_call");
        renderDynamic();
        break;
      case "call":
        state.call = message;
        state.clockOffset = Date.parse(message.server_time) - Date.now();
        setStatus("waiting_ringing");
        break;
      case "tablet":
        state.tabletReady = message.ready;
        renderTablet();
        break;
      case "sdp":
        if (message.kind === "offer") answer(message);
        break;
      case "ice":
        addIce(message);
        break;
      case "warning":
        showWarning(message.minutes_left);
        break;
      case "end":
        end(message.reason);
        break;
      case "error":
        if (state.screen !== "call") fail(message.code);
        break;
      case "media":
        if (window.kioskControls) window.kioskControls.remote(message);
        break;
      default:
        break;
    }
  }

  async function answer(offer) {
    if (!state.call || offer.call_id !== state.call.call_id) return;
    closePeer();
    $("remote-video").srcObject = null; // a new offer brings new tracks
    const iceServers = (state.call.ice_servers || []).map((s) => {
      const server = { urls: s.urls };
      if (s.username) server.username = s.username;
      if (s.credential) server.credential = s.credential;
      return server;
    });
    const pc = new RTCPeerConnection({ iceServers });
    state.pc = pc;
    enterCall();
    for (const track of state.stream ? state.stream.getTracks() : []) pc.addTrack(track, state.stream);
    pc.ontrack = (event) => {
      const video = $("remote-video");
      if (!video.srcObject) video.srcObject = event.streams[0] || new MediaStream();
      if (!event.streams[0]) video.srcObject.addTrack(event.track);
    };
    pc.onconnectionstatechange = () => {
      if (state.pc !== pc) return;
      if (pc.connectionState === "connected") {
        state.connected = true;
        setStatus("");
      }
      if (pc.connectionState === "failed") setStatus("reconnecting");
    };
    try {
      await pc.setRemoteDescription({ type: "offer", sdp: offer.sdp });
      for (const candidate of state.pendingIce.splice(0)) await pc.addIceCandidate(candidate);
      await pc.setLocalDescription(await pc.createAnswer());
      // The tablet (aiortc) takes its candidates from the answer: wait for all of them.
      await gathered(pc);
      if (state.pc !== pc) return;
      send({ type: "sdp", call_id: offer.call_id, kind: "answer", sdp: pc.localDescription.sdp });
      await showVerificationCode(pc.localDescription.sdp, offer.sdp);
    } catch (_) {
      send({ type: "hangup", call_id: offer.call_id });
      end("connection_lost");
    }
  }

  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener("icegatheringstatechange", check);
        clearTimeout(limit);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") done();
      };
      const limit = setTimeout(done, ICE_GATHER_LIMIT_MS);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  async function addIce(message) {
    if (!message.candidate) return;
    const candidate = {
      candidate: message.candidate,
      sdpMid: message.sdp_mid,
      sdpMLineIndex: message.sdp_mline_index,
    };
    if (!state.pc || !state.pc.remoteDescription) {
      state.pendingIce.push(candidate);
      return;
    }
    try {
      await state.pc.addIceCandidate(candidate);
    } catch (_) {
      // a candidate the browser cannot use is skipped
    }
  }

  // --- the call -----------------------------------------------------------------------------

  function enterCall() {
    if (state.screen === "call") return;
    show("call");
    $("self-video").srcObject = state.stream;
    setStatus("connecting");
    renderDynamic();
    tick();
    state.timer = setInterval(tick, 500);
  }

  function timeLeftSeconds() {
    const left = Date.parse(state.call.not_after) - (Date.now() + state.clockOffset);
    return Math.max(0, Math.floor(left / 1000));
  }

  function tick() {
    if (!state.call) return;
    const seconds = timeLeftSeconds();
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const pad = (n) => String(n).padStart(2, "0");
    $("countdown").textContent = (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
    $("countdown").dataset.seconds = String(seconds);
  }

  function showWarning(minutes) {
    state.warningMinutes = minutes;
    const el = $("call-warning");
    el.textContent = minutes === 1 ? t("warning_minute") : t("warning_minutes", { n: minutes });
    el.hidden = false;
  }

  // The verification code of the connection actually made (ARCHITECTURE.md principle 2):
  // the same computation as kiosk/wire/verification.py, so the tablet shows the same six
  // digits on an honest call and different ones if somebody sits in the middle.
  const VERIFY_CONTEXT = "kiosk-verify-v1\u0000";

  function sdpFingerprint(sdp) {
    const match = /^a=fingerprint:sha-256 ([0-9A-Fa-f:]{95})\s*$/im.exec(sdp);
    return match ? match[1].toUpperCase() : null;
  }

  async function verificationCode(a, b) {
    const [x, y] = [a.toUpperCase(), b.toUpperCase()].sort();
    const bytes = new TextEncoder().encode(VERIFY_CONTEXT + x + "\n" + y);
    const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    const number = ((d[0] * 256 + d[1]) * 256 + d[2]) * 256 + d[3];
    const code = number % 1000000;
    const three = (n) => String(n).padStart(3, "0");
    return three(Math.floor(code / 1000)) + " " + three(code % 1000);
  }

  async function showVerificationCode(localSdp, remoteSdp) {
    // Only a privileged p2p call has one; on a bridged call it would only mislead.
    if (!state.waiting || !state.waiting.privileged) return;
    if (!state.call || state.call.route !== "p2p") return;
    const mine = sdpFingerprint(localSdp);
    const theirs = sdpFingerprint(remoteSdp);
    if (mine && theirs) setVerificationCode(await verificationCode(mine, theirs));
  }

  function setVerificationCode(code) {
    $("verify-code").textContent = code;
    $("verify").hidden = !code;
  }

  function closePeer() {
    if (state.pc) state.pc.close();
    state.pc = null;
  }

  function closeCall() {
    if (state.timer) clearInterval(state.timer);
    state.timer = null;
    closePeer();
    state.ending = true;
    if (state.ws) state.ws.close();
    state.ws = null;
  }

  function end(reason) {
    // The prison's side closes a moment before its end message: time is up all the same.
    if (reason !== "left" && state.call && timeLeftSeconds() <= 2) reason = "time_up";
    if (reason !== "connection_lost") forgetJoined();
    state.endReason = reason;
    state.statusKey = "";
    closeCall();
    stopMedia();
    $("remote-video").srcObject = null;
    $("end-reason").textContent = t("end_" + reason);
    document.body.dataset.endReason = reason;
    renderEndAgain();
    show("end");
    if (reason === "time_up" || reason === "left") state.call = null;
  }

  function leave() {
    if (state.call) send({ type: "hangup", call_id: state.call.call_id });
    end("left");
  }

  // --- wiring -------------------------------------------------------------------------------

  window.kioskVisitor = {
    setVerificationCode,
    verificationCode,
    send: (message) => send(message),
    call: () => state.call,
    stream: () => state.stream,
    peer: () => state.pc,
    t: (key, vars) => t(key, vars),
    relaysMedia: true, // the server passes "media" on to the tablet (issue 16)
  };

  document.addEventListener("DOMContentLoaded", () => {
    for (const button of document.querySelectorAll(".lang-btn")) {
      button.addEventListener("click", () => chooseLanguage(button.dataset.lang));
    }
    $("btn-check").addEventListener("click", startCheck);
    $("btn-retry").addEventListener("click", startCheck);
    $("btn-wait").addEventListener("click", join);
    $("btn-leave-waiting").addEventListener("click", leave);
    $("btn-hangup").addEventListener("click", leave);
    $("btn-again").addEventListener("click", () => {
      state.errorCode = undefined;
      startCheck();
    });
    $("btn-rejoin").addEventListener("click", rejoin);
    const initial = storedLanguage() || (LANGS.includes(document.documentElement.lang)
      ? document.documentElement.lang : "nb");
    Promise.all([loadLanguage(initial), loadStatus()]).then(() => {
      renderInvite();
      const invite = state.invite;
      if (invite && CLOSED.includes(invite.state)) {
        closed(invite.state);
      } else if (invite && invite.state === "not_found") {
        fail("not_found");
      } else if (state.screen !== "intro") {
        // the visitor went on before the answer came
      } else if (wasJoined()) {
        rejoin(); // a reload in the waiting room or the call: straight back in
      } else {
        show("intro");
      }
    });
  });
})();
