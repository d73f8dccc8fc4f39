// The board: live calls with time left and state, and the bookings of the hours around
// now — across midnight, not only the calendar day — by time, by tablet or by room; set a booked call up on its tablet (R12), end a call (R14),
// send the invite again or make a new link (invites.js), open the monitor of a controlled call.
import {
  api, badge, clear, dayOf, dialog, field, fmtDateTime, fmtDuration, fmtTime, h, isoUtc, label,
  may, t, toast, today, zonedInstant,
} from "./core.js";
import * as data from "./data.js";
import { inviteActions } from "./invites.js";

const POLL_MS = 3000;
// The span shown: calls that began up to two hours ago, and those of the next twelve.
const BEHIND_MS = 2 * 3600 * 1000;
const AHEAD_MS = 12 * 3600 * 1000;

function span() {
  const now = Date.now();
  return { from: new Date(now - BEHIND_MS).toISOString(), until: new Date(now + AHEAD_MS).toISOString() };
}

export async function renderBoard(main) {
  const lede = h("p", { class: "lede" });
  const status = h("p", { class: "muted small", id: "board-updated", "aria-live": "off" });
  const live = h("section", { class: "panel", "aria-labelledby": "live-h", id: "live-calls" });
  const bookings = h("section", { class: "panel", "aria-labelledby": "today-h", id: "today-bookings" });
  main.append(
    h("div", { class: "page-head" }, h("h1", {}, t("board.title")), lede),
    status, live, bookings,
  );
  let group = sessionStorage.getItem("board-group") || "time";
  let calls = [];
  let waiting = new Set(); // bookings whose visitor is in the waiting room (issue 16)
  let timer = null;
  let ticker = null;
  let stopped = false;

  const renderLive = (names) => {
    clear(live);
    live.append(h("h2", { id: "live-h" }, t("board.live"), " ", badge(String(calls.length), calls.length ? "info" : "")));
    if (!calls.length) {
      live.append(h("p", { class: "empty" }, t("board.no_live")));
      return;
    }
    const rows = calls.map((c) => {
      const contact = names.contacts.get(c.contact_id);
      const inmate = names.inmates.get(c.inmate_id);
      const device = names.devices.get(c.device_id);
      const actions = h("div", { class: "row-actions" });
      if (may("call.monitor") && c.control !== "none" && data.CONTROLLABLE.includes(c.category)) {
        actions.append(h("a", { class: "btn small", href: `#/monitor/${encodeURIComponent(c.id)}` }, t("board.monitor")));
      }
      if (may("call.end")) {
        actions.append(h("button", {
          type: "button", class: "btn danger small", "aria-label": t("board.end_call_for", { name: inmate ? inmate.name : c.inmate_id }),
          onclick: () => endCall(c, inmate, contact),
        }, t("board.end_call")));
      }
      return h("tr", { dataset: { call: c.id } },
        h("td", {}, inmate ? inmate.name : c.inmate_id),
        h("td", {}, contact ? contact.name : "—", h("br"), h("span", { class: "muted small" }, label("category", c.category))),
        h("td", {}, device ? device.serial : c.device_id),
        h("td", {}, badge(label("call_state", c.state), stateTone(c.state))),
        h("td", {}, controlBadge(c.control, c.category)),
        h("td", { class: "num" }, h("span", { class: "time-left", dataset: { notAfter: c.not_after, notBefore: c.not_before } }, timeLeft(c))),
        h("td", {}, actions));
    });
    live.append(h("div", { class: "table-wrap" }, h("table", {},
      h("caption", { class: "sr" }, t("board.live")),
      h("thead", {}, h("tr", {}, [t("col.inmate"), t("col.contact"), t("col.tablet"), t("col.state"), t("col.control"), t("col.time_left"), h("span", { class: "sr" }, t("col.actions"))].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows))));
  };

  const renderBookings = (items, names) => {
    clear(bookings);
    const liveBookings = new Set(calls.map((c) => c.booking_id));
    const head = h("div", { class: "panel-head" }, h("h2", { id: "today-h" }, t("board.today")));
    const groupSel = h("fieldset", { class: "segmented" }, h("legend", {}, t("board.group_by")),
      ["time", "tablet", "room"].map((g) => {
        const id = "group-" + g;
        return h("span", {}, h("input", {
          type: "radio", name: "board-group", id, value: g, checked: group === g,
          onchange: () => { group = g; sessionStorage.setItem("board-group", g); renderBookings(items, names); document.getElementById(id).focus(); },
        }), h("label", { for: id }, t("board.group." + g)));
      }));
    head.append(groupSel);
    bookings.append(head);
    const shown = items.filter((b) => b.state !== "cancelled");
    if (!shown.length) {
      bookings.append(h("p", { class: "empty" }, t("board.no_bookings")));
      return;
    }
    const tabletOf = (b) => {
      const assigned = [...names.devices.values()].filter((d) => d.inmate_id === b.inmate_id && !d.revoked);
      return assigned;
    };
    const keyOf = (b) => {
      if (group === "room") return b.location_kind === "room" ? b.location : t("board.in_cell");
      if (group === "tablet") {
        const tabs = tabletOf(b);
        return tabs.length ? tabs.map((d) => d.serial).join(", ") : t("board.no_tablet");
      }
      return "";
    };
    const groups = new Map();
    for (const b of shown.sort((a, z) => a.start.localeCompare(z.start))) {
      const key = keyOf(b);
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(b);
    }
    for (const [key, list] of [...groups.entries()].sort((a, z) => a[0].localeCompare(z[0]))) {
      const rows = list.map((b) => bookingRow(b, names, tabletOf(b), liveBookings.has(b.id), refresh, waiting.has(b.id)));
      const table = h("table", { class: "bookings" },
        h("caption", { class: group === "time" ? "sr" : "" }, group === "time" ? t("board.today") : key),
        h("thead", {}, h("tr", {}, [t("col.time"), t("col.inmate"), t("col.contact"), t("col.place"), t("col.control"), t("col.state"), h("span", { class: "sr" }, t("col.actions"))].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows));
      bookings.append(h("div", { class: "table-wrap" }, table));
    }
  };

  async function refresh() {
    if (stopped) return;
    clearTimeout(timer);
    try {
      const shown = span();
      lede.textContent = t("board.lede", { from: fmtDateTime(shown.from), until: fmtDateTime(shown.until) });
      const query = `ends_after=${encodeURIComponent(shown.from)}&starts_before=${encodeURIComponent(shown.until)}`;
      const [callList, bookingList, inmates, devices, room] = await Promise.all([
        api("GET", "/calls?live=true"),
        api("GET", `/bookings?${query}`),
        data.inmates(),
        data.devices(),
        api("GET", "/waiting-room"),
      ]);
      calls = callList.items;
      waiting = new Set(room.items.filter((v) => !v.in_call).map((v) => v.booking_id));
      const contacts = await data.contactsFor([...calls.map((c) => c.contact_id), ...bookingList.items.map((b) => b.contact_id)]);
      const names = { inmates, devices, contacts };
      if (stopped) return;
      renderLive(names);
      renderBookings(bookingList.items, names);
      status.textContent = t("board.updated", { time: fmtTime(new Date().toISOString()) });
    } catch (err) {
      status.textContent = err.message;
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }

  async function endCall(call, inmate, contact) {
    if (await askToEnd(call, inmate, contact)) refresh();
  }

  ticker = setInterval(() => {
    for (const el of document.querySelectorAll(".time-left")) el.textContent = timeLeft({ not_after: el.dataset.notAfter, not_before: el.dataset.notBefore });
  }, 1000);
  await refresh();
  return () => { stopped = true; clearTimeout(timer); clearInterval(ticker); };
}

// R14: end a call with a reason, a breach recorded if ticked (the board and the monitor page).
export async function askToEnd(call, inmate, contact) {
  const ended = await dialog({
    title: t("end.title"),
    okText: t("end.ok"),
    danger: true,
    build: (body) => body.append(
      h("p", {}, t("end.lede", { inmate: inmate ? inmate.name : call.inmate_id, contact: contact ? contact.name : "" })),
      field({ label: t("end.reason"), name: "note", type: "textarea", required: true, maxlength: 2000, hint: t("end.reason_hint"), id: "end-note" }),
      field({ label: t("end.breach"), name: "breach", type: "checkbox", hint: t("end.breach_hint"), id: "end-breach" }),
    ),
    submit: async (v) => {
      if (!v.note.trim()) throw new Error(t("end.reason_missing"));
      return api("POST", `/calls/${encodeURIComponent(call.id)}/end`, { note: v.note.trim(), breach: !!v.breach });
    },
  });
  if (ended) toast(t("end.done"), "good");
  return Boolean(ended);
}

function timeLeft(c) {
  const now = Date.now();
  const start = Date.parse(c.not_before);
  if (now < start) return t("board.starts_in", { time: fmtDuration((start - now) / 1000) });
  return fmtDuration((Date.parse(c.not_after) - now) / 1000);
}

function stateTone(s) {
  return { connected: "good", ringing: "info", ready: "info", ended: "" }[s] || "";
}

// R13: one word for privilege everywhere, "Privileged: never monitored".
export function controlText(c) {
  return data.PRIVILEGED.includes(c.category) ? t("control.privileged") : label("control", c.control);
}

export function controlBadge(control, category) {
  if (data.PRIVILEGED.includes(category)) return badge(t("control.privileged"), "privileged");
  return badge(label("control", control), control === "none" ? "" : "warn");
}

function bookingRow(b, names, tablets, isLive, refresh, visitorWaiting) {
  const inmate = names.inmates.get(b.inmate_id);
  const contact = names.contacts.get(b.contact_id);
  const actions = h("div", { class: "row-actions" });
  const now = Date.now();
  const open = b.state === "booked" && Date.parse(b.end) > now;
  if (may("call.set_up") && open && !isLive) {
    if (!tablets.length) actions.append(h("span", { class: "muted small" }, t("board.no_tablet")));
    for (const d of tablets) {
      actions.append(h("button", {
        type: "button", class: "btn small primary", dataset: { setUp: b.id },
        "aria-label": t("board.set_up_on_for", { tablet: d.serial, name: inmate ? inmate.name : "" }),
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            await api("POST", "/calls", { booking_id: b.id, device_id: d.id });
            toast(t("board.set_up_done", { tablet: d.serial }), "good");
            refresh();
          } catch (err) {
            toast(err.message, "bad");
            event.target.disabled = false;
          }
        },
      }, t("board.set_up_on", { tablet: d.serial })));
    }
  }
  const uncleared = needsClearance(b, inmate);
  if (uncleared && may("booking.write")) {
    actions.append(h("button", {
      type: "button", class: "btn small", "aria-label": t("clearance.record_for", { name: inmate.name }),
      onclick: () => recordClearance(b, refresh),
    }, t("clearance.record")));
  }
  if (may("booking.write") && open) actions.append(...inviteActions(b, contact));
  const place = b.location_kind === "room" ? t("place.room", { name: b.location }) : t("place.cell", { name: b.location });
  return h("tr", { dataset: { booking: b.id } },
    // A call on another day than today (past midnight) shows its date.
    h("th", { scope: "row", class: "num" }, `${dayOf(b.start) === today() ? fmtTime(b.start) : fmtDateTime(b.start)}–${fmtTime(b.end)}`),
    h("td", {}, inmate ? h("a", { href: `#/inmate/${encodeURIComponent(b.inmate_id)}` }, inmate.name) : b.inmate_id,
      inmate && inmate.remand ? [" ", badge(t("inmate.remand"), "warn")] : null),
    h("td", {}, contact ? contact.name : "—", h("br"), h("span", { class: "muted small" }, contact ? label("category", contact.category) : "")),
    h("td", {}, place),
    h("td", {}, controlBadge(b.control, contact ? contact.category : "")),
    h("td", {}, badge(isLive ? t("booking_state.live") : label("booking_state", b.state), isLive ? "good" : b.state === "held" ? "warn" : ""),
      uncleared ? [" ", badge(t("clearance.missing_badge"), "bad")] : null,
      visitorWaiting ? [" ", h("span", { class: "badge good", dataset: { waiting: "yes" } }, t("board.visitor_waiting", { name: contact ? contact.name : "" }))] : null),
    h("td", {}, actions));
}

// R11: a remand inmate's call needs police clearance; it may be recorded after booking.
export function needsClearance(booking, inmate) {
  return !!(inmate && inmate.remand && !booking.police_clearance && booking.state === "booked");
}

export async function recordClearance(booking, done) {
  const ok = await dialog({
    title: t("clearance.title"),
    build: (body) => body.append(
      h("p", {}, t("booking.clearance_hint")),
      field({ label: t("booking.cleared_by"), name: "cleared_by", required: true, maxlength: 200, id: "clearance-by" }),
      h("div", { class: "row" },
        field({ label: t("booking.cleared_on"), name: "day", type: "date", value: today(), required: true, id: "clearance-day" }),
        field({ label: t("booking.cleared_at"), name: "time", type: "time", required: true, id: "clearance-time" }))),
    submit: (v) => {
      if (!v.cleared_by.trim() || !v.day || !v.time) throw new Error(t("clearance.missing"));
      return api("PUT", `/bookings/${encodeURIComponent(booking.id)}/police-clearance`, {
        cleared_by: v.cleared_by.trim(), cleared_at: isoUtc(zonedInstant(v.day, v.time)),
      });
    },
  });
  if (ok) {
    toast(t("clearance.done"), "good");
    done();
  }
}
