// The tablet's kiosk page. It talks only to the agent on this machine:
// GET /api/state, POST /api/dial|hangup|dismiss, WS /api/events; the call's media
// (camera, microphone, the other end) is media.js's, over WebRTC to the agent.
"use strict";

(function () {
  const LANGS = ["nb", "en"];
  const ui = {
    lang: "nb",
    strings: {},
    view: null,
    remaining: null, // seconds, from the agent's countdown
    warning: null,
    phase: "loading",
    events: null,
  };
  const $ = (id) => document.getElementById(id);
  const offPlan = window.kioskOffPlan; // offplan.js: issue 16's texts and lists

  // --- strings --------------------------------------------------------------------------

  function t(key, vars) {
    let text = ui.strings[key] || key;
    for (const [name, value] of Object.entries(vars || {})) {
      text = text.replace("{" + name + "}", String(value));
    }
    return text;
  }

  async function loadLanguage(lang) {
    const response = await fetch("/static/i18n/" + lang + ".json", { cache: "no-cache" });
    ui.strings = await response.json();
    ui.lang = lang;
    document.documentElement.lang = lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-label]")) {
      el.setAttribute("aria-label", t(el.dataset.i18nLabel));
    }
    for (const b of document.querySelectorAll(".lang-btn")) {
      b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
    }
    if (ui.view) render(ui.view, false);
    offPlan.media(ui.media || null, t);
    window.kioskControls.render(ui.view, t);
  }

  function time(iso) {
    return new Date(iso).toLocaleTimeString(ui.lang === "nb" ? "nb-NO" : "en-GB", {
      hour: "2-digit",
      minute: "2-digit",
    });
  }

  function controlText(item) {
    return item.privileged ? t("control_privileged") : t("control_" + item.control);
  }

  function badge(el, item) {
    el.textContent = controlText(item);
    el.dataset.control = item.privileged ? "privileged" : item.control;
  }

  // --- the agent's API ------------------------------------------------------------------

  async function post(path, body) {
    try {
      const response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
      if (!response.ok) {
        const data = await response.json().catch(() => ({}));
        if (data.error) showRefusal(data.error.code, data.error.message);
      }
    } catch (_) {
      showRefusal("device_not_connected", "");
    }
  }

  async function connectEvents() {
    // media=page: this page is the tablet's camera, microphone and screen (media.js).
    const media = (await window.kioskMedia.probe()) ? "?media=page" : "";
    const ws = new WebSocket("ws://" + location.host + "/api/events" + media);
    ui.events = ws;
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      onEvent(message);
    };
    ws.onclose = () => {
      ui.events = null;
      setTimeout(connectEvents, 1000);
    };
  }

  function onEvent(message) {
    switch (message.type) {
      case "state":
        render(message.state, true);
        break;
      case "countdown":
        ui.remaining = message.remaining_seconds;
        showCountdown();
        break;
      case "warning":
        ui.warning = message.minutes_left;
        showWarning();
        break;
      case "refused":
        // A microphone or camera tap as the call ended: the end screen says why (issue 16).
        if (message.ref !== "media") showRefusal(message.code, message.message);
        break;
      case "media":
        window.kioskMedia.onMedia(message);
        break;
      case "peer_media": // the visitor turned their microphone or camera off or on
        ui.media = message;
        offPlan.media(message, t);
        break;
      default:
        break;
    }
  }

  // --- rendering ------------------------------------------------------------------------

  function screenFor(phase) {
    if (phase === "dialling" || phase === "connecting") return "dialling";
    if (phase === "in_call") return "call";
    if (phase === "ended") return "ended";
    return "idle";
  }

  function show(screen) {
    const changed = document.body.dataset.screen !== screen;
    document.body.dataset.screen = screen;
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== "screen-" + screen;
    }
    if (changed) {
      const heading = document.querySelector("#screen-" + screen + " h1");
      if (heading) heading.focus();
    }
  }

  function render(view, fresh) {
    ui.view = view;
    const phase = view.phase;
    if (fresh && phase !== ui.phase) {
      if (phase === "idle" || phase === "dialling") hideRefusalIfStale(view);
      if (phase !== "in_call" && phase !== "connecting") {
        ui.media = null;
        offPlan.media(null, t);
        ui.warning = null;
        ui.remaining = null;
        setVerificationCode("");
      }
    }
    ui.phase = phase;
    document.body.dataset.phase = phase;
    $("link").textContent = view.link === "online" ? t("online") : t("offline");
    $("link").dataset.link = view.link;

    const name = view.inmate ? view.inmate.name.split(" ")[0] : "";
    $("idle-h").textContent = name ? t("hello", { name }) : t("hello_anon");
    renderContacts(view.contacts || [], view.link === "online");
    offPlan.week(view, t, ui.lang);

    const call = view.call;
    if (call) {
      $("dialling-h").textContent = t("dialling", { name: call.contact_name });
      $("dialling-status").textContent = t(
        call.reconnecting ? "reconnecting_status" : "connecting_status",
        { name: call.contact_name },
      );
      badge($("dialling-control"), call);
      $("dialling-control").hidden = false;
      $("call-h").textContent = call.contact_name;
      badge($("call-control"), call);
      // Issue 5: the agent puts the connection's verification code in the view when it has one.
      // A new connection (reconnecting) has new fingerprints: no code until its own.
      setVerificationCode(call.verification_code || "");
      if (ui.remaining === null || fresh) ui.remaining = call.remaining_seconds;
      showCountdown();
      if (document.body.dataset.remoteVideo !== "yes") {
        $("call-status").textContent = t("call_connecting");
      }
    } else if (phase === "dialling") {
      const entry = (view.contacts || []).find((c) => c.booking_id === view.dialling);
      $("dialling-h").textContent = t("dialling", { name: entry ? entry.name : "" });
      $("dialling-status").textContent = t("dialling_status");
      if (entry) badge($("dialling-control"), entry);
      $("dialling-control").hidden = !entry;
    }
    if (view.ended) {
      $("ended-reason").textContent = t("end_" + view.ended.reason);
      document.body.dataset.endReason = view.ended.reason;
    }
    offPlan.ended(view, t, time, dial);
    showWarning();
    show(screenFor(phase));
    window.kioskControls.render(view, t);
    window.kioskMedia.onView(view);
  }

  function renderContacts(contacts, online) {
    const list = $("contacts");
    list.replaceChildren();
    $("no-contacts").hidden = contacts.length > 0;
    for (const c of contacts) {
      const item = document.createElement("li");
      item.className = "contact";
      item.dataset.booking = c.booking_id;
      const info = document.createElement("div");
      info.className = "contact-info";
      const heading = document.createElement("h2");
      heading.textContent = c.name;
      const meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = t("category_" + c.category) + " · " +
        t("window", { start: time(c.start), end: time(c.end) });
      const control = document.createElement("p");
      control.className = "control-badge";
      badge(control, c);
      info.append(heading, meta, control);
      offPlan.contact(info, c, t);
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn primary big call-btn";
      if (c.callable_now) {
        button.textContent = t("call");
        button.setAttribute("aria-label", t("call_name", { name: c.name }));
        button.disabled = !online; // the server decides every call: no link, no dial
        button.addEventListener("click", () => dial(c.booking_id));
      } else {
        button.textContent = t("opens_at", { time: time(c.start) });
        button.disabled = true;
      }
      item.append(info, button);
      list.append(item);
    }
  }

  function dial(bookingId) {
    hideRefusal();
    post("/api/dial", { booking_id: bookingId });
  }

  function showCountdown() {
    if (ui.remaining === null) return;
    const seconds = Math.max(0, Math.floor(ui.remaining));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const pad = (n) => String(n).padStart(2, "0");
    $("countdown").textContent = (h ? h + ":" + pad(m) : pad(m)) + ":" + pad(s);
    $("countdown").dataset.seconds = String(seconds);
  }

  function showWarning() {
    const el = $("warning");
    if (ui.warning === null || ui.phase !== "in_call") {
      el.hidden = true;
      return;
    }
    el.textContent = ui.warning === 1 ? t("warning_minute") : t("warning_minutes", { n: ui.warning });
    el.hidden = false;
  }

  function showRefusal(code, message) {
    const key = "refused_" + code;
    const el = $("refusal");
    el.textContent = ui.strings[key] ? t(key) : message || t("refused_generic");
    el.dataset.code = code;
    el.hidden = false;
  }

  function hideRefusal() {
    $("refusal").hidden = true;
  }

  function hideRefusalIfStale(view) {
    if (!view.refusal) hideRefusal();
  }

  // The verification code of the connection actually made (issue 5 item 4) goes here.
  function setVerificationCode(code) {
    $("verify-code").textContent = code;
    $("verify").hidden = !code;
  }

  window.kioskTablet = { setVerificationCode };

  document.addEventListener("DOMContentLoaded", async () => {
    for (const b of document.querySelectorAll(".lang-btn")) {
      b.addEventListener("click", () => loadLanguage(b.dataset.lang));
    }
    $("btn-cancel").addEventListener("click", () => post("/api/hangup"));
    $("btn-hangup").addEventListener("click", () => post("/api/hangup"));
    $("btn-back").addEventListener("click", () => post("/api/dismiss"));
    const preferred = LANGS.includes(document.documentElement.lang)
      ? document.documentElement.lang : "nb";
    await loadLanguage(preferred);
    try {
      const response = await fetch("/api/state", { cache: "no-store" });
      render(await response.json(), true);
    } catch (_) {
      // the events socket brings the state when the agent answers
    }
    connectEvents();
  });
})();
