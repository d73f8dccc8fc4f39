// Bookings on a day and a week, with the capacity left in each slot (R9): tablets, rooms
// and staff free to monitor controlled calls; closures (R15) and restrictions (R16) shown.
import {
  addDays, api, badge, fmtDay, fmtTime, h, label, may, mondayOf, t, today, zonedInstant,
} from "./core.js";
import * as data from "./data.js";
import { controlText } from "./board.js";

const FIRST_HOUR = 7;
const LAST_HOUR = 22;

export async function renderCalendar(main, { query }) {
  const view = query.get("view") === "week" ? "week" : "day";
  const day = /^\d{4}-\d{2}-\d{2}$/.test(query.get("day") || "") ? query.get("day") : today();
  const facility = await api("GET", "/facility");
  const days = view === "week" ? [...Array(7).keys()].map((i) => addDays(mondayOf(day), i)) : [day];
  const lists = await Promise.all(days.map((d) => api("GET", `/bookings?day=${d}&limit=1000`)));
  const bookings = lists.flatMap((l) => l.items).filter((b) => data.LIVE_BOOKING.includes(b.state));
  const [inmates, contacts] = await Promise.all([data.inmates(), data.contactsFor(bookings.map((b) => b.contact_id))]);

  const step = view === "week" ? 7 : 1;
  const link = (d, v) => `#/calendar?view=${v}&day=${d}`;
  const title = view === "week"
    ? t("calendar.week_of", { from: fmtDay(days[0]), to: fmtDay(days[6]) })
    : fmtDay(day, true);
  main.append(
    h("div", { class: "page-head" },
      h("h1", {}, t("calendar.title")),
      h("p", { class: "lede" }, t("calendar.lede"))),
    h("nav", { class: "toolbar", "aria-label": t("calendar.navigation") },
      h("a", { class: "btn small", href: link(addDays(day, -step), view), "aria-label": t(view === "week" ? "calendar.prev_week" : "calendar.prev_day") }, "‹ ", t("calendar.previous")),
      h("a", { class: "btn small", href: link(today(), view) }, t("calendar.today")),
      h("a", { class: "btn small", href: link(addDays(day, step), view), "aria-label": t(view === "week" ? "calendar.next_week" : "calendar.next_day") }, t("calendar.next"), " ›"),
      h("span", { class: "toolbar-title", id: "calendar-title" }, title),
      h("span", { class: "spacer" }),
      h("a", { class: "btn small", href: link(day, "day"), "aria-current": view === "day" ? "page" : null }, t("calendar.day")),
      h("a", { class: "btn small", href: link(day, "week"), "aria-current": view === "week" ? "page" : null }, t("calendar.week")),
      may("booking.write") ? h("a", { class: "btn small primary", href: `#/book?day=${day}` }, t("calendar.new_booking")) : null),
    legend(facility),
  );
  if (view === "week") main.append(weekGrid(days, bookings, facility));
  else {
    main.append(dayGrid(day, bookings, facility, { inmates, contacts }));
    main.append(dayList(bookings, inmates, contacts));
  }
}

function legend(facility) {
  return h("p", { class: "legend", id: "capacity-summary" },
    t("calendar.capacity", {
      tablets: facility.tablets, rooms: facility.rooms.length, staff: facility.monitoring_staff,
    }), " ",
    facility.tablets > facility.tablets_in_service
      ? [h("strong", { id: "tablets-in-service" }, t("calendar.in_service", { n: facility.tablets_in_service })), " "] : null,
    h("span", { class: "cap free" }, t("calendar.free")), " ",
    h("span", { class: "cap some" }, t("calendar.some")), " ",
    h("span", { class: "cap full" }, t("calendar.full")), " ",
    h("span", { class: "cap closed" }, t("calendar.closed")));
}

// What is used and left in [start, end).
function usage(start, end, bookings, facility) {
  const shown = bookings.filter((b) => Date.parse(b.start) < end && Date.parse(b.end) > start);
  const live = shown.filter((b) => data.HOLDING_CAPACITY.includes(b.state));
  const rooms = new Set(live.filter((b) => b.location_kind === "room").map((b) => b.location));
  const monitored = live.filter((b) => b.control !== "none").length;
  const closure = facility.closures.find((c) => Date.parse(c.start) < end && Date.parse(c.end) > start);
  const restriction = facility.restrictions.find((r) => Date.parse(r.start) < end && Date.parse(r.end) > start);
  return {
    live,
    shown,
    tabletsFree: Math.max(0, facility.tablets - live.length),
    roomsTaken: rooms,
    staffFree: Math.max(0, facility.monitoring_staff - monitored),
    closure,
    restriction,
  };
}

// What limits a slot, in words: no tablet, no staff for a controlled call, a restriction.
function limits(u, facility) {
  const found = [];
  if (u.restriction) found.push(label("restriction", u.restriction.kind));
  if (u.tabletsFree <= 0) found.push(t("calendar.limit_tablets", { total: facility.tablets }));
  if (u.staffFree <= 0) found.push(t("calendar.limit_staff"));
  if (facility.rooms.length && facility.rooms.every((r) => u.roomsTaken.has(r))) found.push(t("calendar.limit_rooms"));
  return found.length ? found.join(" · ") : "—";
}

function tone(free, total) {
  if (total <= 0 || free <= 0) return "full";
  return free >= total ? "free" : "some";
}

// The usual hours, widened to every booking on these days (a call booked late in the
// evening shows too): [first, last) in minutes after midnight, on steps of ``step``.
function hoursCovering(days, bookings, step) {
  let first = FIRST_HOUR * 60;
  let last = LAST_HOUR * 60;
  for (const day of days) {
    const dayStart = zonedInstant(day, "00:00").getTime();
    for (const b of bookings || []) {
      const s = Math.max(0, (Date.parse(b.start) - dayStart) / 60000);
      const e = Math.min(24 * 60, (Date.parse(b.end) - dayStart) / 60000);
      if (e <= 0 || s >= 24 * 60) continue;
      first = Math.min(first, Math.floor(s / step) * step);
      last = Math.max(last, Math.ceil(e / step) * step);
    }
  }
  return [first, last];
}

// The day's slots.
function slots(day, minutes, bookings) {
  const out = [];
  const [first, last] = hoursCovering([day], bookings, minutes);
  for (let m = first; m < last; m += minutes) {
    const hh = String(Math.floor(m / 60)).padStart(2, "0");
    const mm = String(m % 60).padStart(2, "0");
    const start = zonedInstant(day, `${hh}:${mm}`).getTime();
    out.push({ label: `${hh}:${mm}`, start, end: start + minutes * 60000 });
  }
  return out;
}

function dayGrid(day, bookings, facility, names) {
  const head = [t("col.time"), t("calendar.tablets_free"), ...facility.rooms.map((r) => t("place.room", { name: r })), t("calendar.staff_free"), t("calendar.limits"), t("calendar.calls")];
  const rows = slots(day, 30, bookings).map((slot) => {
    const u = usage(slot.start, slot.end, bookings, facility);
    if (u.closure) {
      return h("tr", {}, h("th", { scope: "row", class: "num" }, slot.label),
        h("td", { class: "cap closed", colspan: head.length - 1 }, t("calendar.closed_note", { note: u.closure.note || "" })));
    }
    const cells = [
      h("td", { class: `cap ${tone(u.tabletsFree, facility.tablets)}` }, t("calendar.n_of", { n: u.tabletsFree, total: facility.tablets })),
      ...facility.rooms.map((r) => u.roomsTaken.has(r)
        ? h("td", { class: "cap full" }, t("calendar.taken"))
        : h("td", { class: "cap free" }, t("calendar.free_one"))),
      h("td", { class: `cap ${tone(u.staffFree, facility.monitoring_staff)}` }, t("calendar.n_of", { n: u.staffFree, total: facility.monitoring_staff })),
    ];
    cells.push(h("td", { class: "slot-limit" }, limits(u, facility)));
    cells.push(h("td", { class: "slot-calls" }, u.shown.map((b) => {
      const inmate = names.inmates.get(b.inmate_id);
      const contact = names.contacts.get(b.contact_id);
      return h("span", { class: `slot-call ${b.control === "none" ? "" : "controlled"} ${b.state === "used" ? "ended" : ""}` },
        `${inmate ? inmate.name : "?"} – ${contact ? contact.name : "?"}`, b.state === "used" ? ` (${t("calendar.ended")})` : "");
    })));
    if (u.restriction) cells[0].append(" ", badge(label("restriction", u.restriction.kind), "warn"));
    // A slot's time starts a booking at that time (the form's start is taken from it).
    const time = may("booking.write")
      ? h("a", { href: `#/book?day=${day}&start=${slot.label}`, "aria-label": t("calendar.book_at", { time: slot.label }) }, slot.label)
      : slot.label;
    return h("tr", { dataset: { slot: slot.label } }, h("th", { scope: "row", class: "num" }, time), cells);
  });
  return h("section", { class: "panel", "aria-labelledby": "grid-h" },
    h("h2", { id: "grid-h" }, t("calendar.capacity_by_slot")),
    h("div", { class: "table-wrap" }, h("table", { class: "grid", id: "capacity-grid" },
      h("caption", { class: "sr" }, t("calendar.capacity_by_slot")),
      h("thead", {}, h("tr", {}, head.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows))));
}

function dayList(bookings, inmates, contacts) {
  const sorted = [...bookings].sort((a, z) => a.start.localeCompare(z.start));
  return h("section", { class: "panel", "aria-labelledby": "list-h" },
    h("h2", { id: "list-h" }, t("calendar.bookings")),
    sorted.length ? h("div", { class: "table-wrap" }, h("table", { id: "calendar-bookings" },
      h("caption", { class: "sr" }, t("calendar.bookings")),
      h("thead", {}, h("tr", {}, [t("col.time"), t("col.inmate"), t("col.contact"), t("col.place"), t("col.control"), t("col.state")].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, sorted.map((b) => {
        const inmate = inmates.get(b.inmate_id);
        const contact = contacts.get(b.contact_id);
        return h("tr", { dataset: { booking: b.id } },
          h("th", { scope: "row", class: "num" }, `${fmtTime(b.start)}–${fmtTime(b.end)}`),
          h("td", {}, inmate ? inmate.name : b.inmate_id),
          h("td", {}, contact ? contact.name : "—"),
          h("td", {}, b.location_kind === "room" ? t("place.room", { name: b.location }) : t("place.cell", { name: b.location })),
          h("td", {}, controlText(contact || { control: b.control })),
          h("td", {}, label("booking_state", b.state)));
      })))) : h("p", { class: "empty" }, t("calendar.no_bookings")));
}

function weekGrid(days, bookings, facility) {
  const hours = [];
  const [first, last] = hoursCovering(days, bookings, 60);
  for (let m = first; m < last; m += 60) hours.push(m / 60);
  const rows = hours.map((hr) => {
    const hh = String(hr).padStart(2, "0") + ":00";
    return h("tr", {}, h("th", { scope: "row", class: "num" }, hh), days.map((d) => {
      const start = zonedInstant(d, hh).getTime();
      const u = usage(start, start + 3600000, bookings, facility);
      if (u.closure) return h("td", { class: "cap closed" }, t("calendar.closed"));
      const tabletTone = tone(u.tabletsFree, facility.tablets);
      const cell = h("td", { class: `cap ${tabletTone}`, dataset: { day: d, hour: hh } },
        h("span", { class: "cap-main" }, t("calendar.tablets_short", { n: u.tabletsFree })));
      if (u.live.some((b) => b.control !== "none") || u.staffFree === 0) {
        cell.append(h("span", { class: "cap-sub" }, t("calendar.staff_short", { n: u.staffFree })));
      }
      if (u.restriction) cell.append(h("span", { class: "cap-sub" }, label("restriction", u.restriction.kind)));
      return cell;
    }));
  });
  return h("section", { class: "panel", "aria-labelledby": "week-h" },
    h("h2", { id: "week-h" }, t("calendar.week_capacity")),
    h("p", { class: "hint" }, t("calendar.week_hint")),
    h("div", { class: "table-wrap" }, h("table", { class: "grid week", id: "week-grid" },
      h("caption", { class: "sr" }, t("calendar.week_capacity")),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, t("col.time")),
        days.map((d) => h("th", { scope: "col", class: d === today() ? "today" : null },
          h("a", { href: `#/calendar?view=day&day=${d}`, "aria-current": d === today() ? "date" : null }, fmtDay(d)))))),
      h("tbody", {}, rows))));
}
