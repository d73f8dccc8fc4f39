// What the tablet shows when a call does not go to plan (issue 16): the visitor waiting
// in the waiting room, a ring nobody answered that can be tried again, the inmate's week.
// Only text and lists: kiosk.js owns the media and the screens and calls these hooks.
"use strict";

(function () {
  // "Kari is waiting" on a contact of the list: their visitor has joined the waiting room.
  function contact(info, c, t) {
    if (!c.visitor_waiting) return;
    const line = document.createElement("p");
    line.className = "waiting-now";
    line.dataset.waiting = "yes";
    line.textContent = t("visitor_waiting", { name: c.name });
    info.append(line);
  }

  // After a call that never connected, the booking is still open (the window's end is the
  // hard end, R10): say so and offer to call again while the window lasts.
  function ended(view, t, time, dial) {
    const again = document.getElementById("ended-again");
    const button = document.getElementById("btn-call-again");
    const end = view.ended;
    const entry = end && !end.connected
      ? (view.contacts || []).find((c) => c.contact_id === end.contact_id && c.callable_now)
      : null;
    again.hidden = !entry;
    button.hidden = !entry || view.link !== "online";
    if (!entry) return;
    again.textContent = t("not_answered", { name: entry.name, time: time(entry.end) });
    button.textContent = t("call_again");
    button.onclick = () => dial(entry.booking_id);
  }

  // The inmate's week (issue 16): every call from now on, held ones with the reason (R16),
  // and the call time left this week (R17).
  function week(view, t, lang) {
    const list = document.getElementById("week-list");
    const entries = view.week || [];
    list.replaceChildren();
    document.getElementById("week-empty").hidden = entries.length > 0;
    const locale = lang === "nb" ? "nb-NO" : "en-GB";
    for (const w of entries) {
      const item = document.createElement("li");
      item.className = "week-item";
      item.dataset.booking = w.booking_id;
      item.dataset.held = String(w.held);
      const when = document.createElement("p");
      when.className = "week-when";
      const start = new Date(w.start);
      const day = start.toLocaleDateString(locale, { weekday: "long", day: "numeric", month: "long" });
      const hours = (d) => d.toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit" });
      when.textContent = day + ", " + hours(start) + "–" + hours(new Date(w.end));
      const who = document.createElement("p");
      who.className = "week-who";
      who.textContent = w.name + " · " + t("category_" + w.category);
      item.append(when, who);
      if (w.held) {
        const held = document.createElement("p");
        held.className = "week-held";
        held.textContent = t("week_held", { reason: w.held_reason });
        item.append(held);
      }
      list.append(item);
    }
    const quota = document.getElementById("quota");
    quota.hidden = !view.quota;
    if (view.quota) {
      quota.textContent = t("quota_left", { left: view.quota.left_minutes, of: view.quota.of_minutes });
      quota.dataset.left = String(view.quota.left_minutes);
    }
  }

  // The visitor turned their microphone or camera off (issue 16): said over their picture,
  // so a black or silent picture is never taken for a frozen one. null: a new call, all on.
  function media(message, t) {
    const stage = document.querySelector("#screen-call .stage");
    const lines = [["remote-camera-off", "remote_camera_off", message && !message.video],
      ["remote-muted", "remote_muted", message && !message.audio]];
    for (const [id, key, off] of lines) {
      let el = document.getElementById(id);
      if (!el) {
        el = document.createElement("p");
        el.id = id;
        el.className = id;
        stage.append(el);
      }
      el.textContent = t(key);
      el.hidden = !off;
    }
    document.body.dataset.remoteAudio = message && !message.audio ? "off" : "on";
    document.body.dataset.remoteCamera = message && !message.video ? "off" : "on";
  }

  window.kioskOffPlan = { contact, ended, week, media };
})();
