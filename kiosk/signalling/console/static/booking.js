// Book a window for one call (R9-R12, R15-R17); a remand inmate's call needs police
// clearance first (R11). Times are entered in the facility's time zone.
import {
  api, clear, field, fmtDay, fmtTime, h, isoUtc, label, state, t, toast, today, zonedInstant, zoneName,
} from "./core.js";
import * as data from "./data.js";
import { controlText } from "./board.js";
import { inviteActions, inviteOutcome } from "./invites.js";

export async function renderNewBooking(main, { query }) {
  const inmates = [...(await data.inmates()).values()].filter((i) => i.active).sort((a, z) => a.name.localeCompare(z.name));
  const facility = state.facility || (await api("GET", "/facility"));
  const chosen = query.get("inmate") || (inmates[0] && inmates[0].id) || "";
  const day = /^\d{4}-\d{2}-\d{2}$/.test(query.get("day") || "") ? query.get("day") : today();
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("booking.title")), h("p", { class: "lede" }, t("booking.lede", { zone: zoneName() }))));
  if (!inmates.length) {
    main.append(h("p", { class: "empty" }, t("booking.no_inmates")));
    return;
  }
  const contactsBox = h("div", {});
  const clearanceBox = h("fieldset", { class: "sub", id: "clearance", hidden: true },
    h("legend", {}, t("booking.clearance")),
    h("p", { class: "hint" }, t("booking.clearance_hint")),
    h("div", { class: "row" },
      field({ label: t("booking.cleared_by"), name: "cleared_by", maxlength: 200, id: "booking-cleared-by" }),
      field({ label: t("booking.cleared_on"), name: "cleared_day", type: "date", value: today(), id: "booking-cleared-day" }),
      field({ label: t("booking.cleared_at"), name: "cleared_time", type: "time", id: "booking-cleared-time" })));
  const roomOptions = facility.rooms.map((r) => [r, r]);
  const locationBox = h("div", { class: "row" });
  const result = h("div", { id: "booking-result", "aria-live": "polite" });
  // The refusal is shown beside the button that was pressed, and takes focus.
  const refusal = h("p", { class: "error", role: "alert", id: "booking-error", tabindex: "-1", hidden: true });
  const outlookBox = h("div", { class: "outlook", id: "booking-outlook", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "booking-form", novalidate: true },
    field({ label: t("col.inmate"), name: "inmate_id", type: "select", value: chosen, id: "booking-inmate",
      options: inmates.map((i) => [i.id, i.remand ? `${i.name} (${t("inmate.remand")})` : i.name]) }),
    contactsBox,
    h("div", { class: "row" },
      field({ label: t("booking.day"), name: "day", type: "date", value: day, required: true, id: "booking-day" }),
      field({ label: t("booking.start"), name: "start", type: "time", value: startTime(query.get("start")), required: true, id: "booking-start" }),
      field({ label: t("booking.minutes"), name: "minutes", type: "number", value: Math.min(30, facility.max_call_minutes), min: 1,
        max: facility.max_call_minutes, required: true, id: "booking-minutes", hint: t("booking.minutes_hint", { max: facility.max_call_minutes }) })),
    h("div", { class: "row" },
      field({ label: t("booking.location_kind"), name: "location_kind", type: "select", value: "cell", id: "booking-location-kind",
        options: [["cell", t("booking.cell")], ["room", t("booking.room")]], hint: t("booking.location_hint") }),
      locationBox),
    field({ label: t("booking.initiation"), name: "initiation", type: "select", value: "staff", id: "booking-initiation",
      options: [["staff", label("initiation", "staff")], ["inmate", label("initiation", "inmate")]] }),
    clearanceBox,
    field({ label: t("booking.override_closure"), name: "override_closure", type: "checkbox", id: "booking-override", hint: t("booking.override_hint") }),
    field({ label: t("booking.send_invite"), name: "send_invite", type: "checkbox", value: true, id: "booking-send-invite", hint: t("booking.send_invite_hint") }),
    outlookBox,
    h("div", { class: "actions booking-actions" }, refusal, h("button", { type: "submit", class: "btn primary", id: "booking-submit" }, t("booking.submit"))));
  main.append(form, result);

  const inmateSel = form.elements.inmate_id;
  const kindSel = form.elements.location_kind;
  const renderLocation = () => {
    clear(locationBox);
    if (kindSel.value === "room") {
      locationBox.append(roomOptions.length
        ? field({ label: t("booking.location_room"), name: "location", type: "select", options: roomOptions, id: "booking-location" })
        : h("p", { class: "notice" }, t("booking.no_rooms")));
    } else {
      locationBox.append(field({ label: t("booking.location_cell"), name: "location", maxlength: 100, required: true, id: "booking-location" }));
    }
  };
  const renderContacts = async () => {
    clear(contactsBox);
    const inmate = inmates.find((i) => i.id === inmateSel.value);
    clearanceBox.hidden = !(inmate && inmate.remand);
    const list = await api("GET", `/inmates/${encodeURIComponent(inmateSel.value)}/contacts`);
    const approved = list.items.filter((c) => c.status === "approved");
    if (!approved.length) {
      contactsBox.append(h("p", { class: "notice", id: "booking-no-contacts" }, t("booking.no_contacts")));
      return;
    }
    contactsBox.append(field({ label: t("col.contact"), name: "contact_id", type: "select", id: "booking-contact",
      options: approved.map((c) => [c.id, `${c.name} · ${label("category", c.category)} · ${controlText(c)}`]) }));
    form.elements.contact_id.addEventListener("change", showOutlook);
    await showOutlook();
  };
  // R17 and R9 before booking: the quota left this week with this contact, the capacity left.
  let asked = 0;
  const showOutlook = async () => {
    const v = form.elements;
    const ask = ++asked;
    const minutes = Number(v.minutes.value);
    if (!v.contact_id || !v.day.value || !v.start.value || !Number.isInteger(minutes) || minutes < 1) {
      clear(outlookBox);
      return;
    }
    const start = zonedInstant(v.day.value, v.start.value);
    const end = new Date(start.getTime() + minutes * 60000);
    const params = new URLSearchParams({ contact_id: v.contact_id.value, start: isoUtc(start), end: isoUtc(end) });
    let seen;
    try {
      seen = await api("GET", `/inmates/${encodeURIComponent(v.inmate_id.value)}/outlook?${params}`);
    } catch (_) {
      if (ask === asked) clear(outlookBox);
      return;
    }
    if (ask !== asked) return; // a later change asked again
    clear(outlookBox).append(h("h2", { class: "sr" }, t("booking.outlook")), h("ul", { class: "facts-list" },
      h("li", { id: "outlook-quota", class: seen.quota_left_minutes !== null && seen.quota_left_minutes < minutes ? "bad" : "" },
        seen.quota_minutes === null ? t("booking.no_quota")
          : t("booking.quota_left", { left: seen.quota_left_minutes, quota: seen.quota_minutes })),
      h("li", { id: "outlook-tablets", class: seen.tablets_taken >= seen.tablets ? "bad" : "" },
        t("booking.tablets_free", { n: Math.max(0, seen.tablets - seen.tablets_taken), total: seen.tablets })),
      h("li", { id: "outlook-staff", class: seen.monitoring_taken >= seen.monitoring_staff ? "bad" : "" },
        t("booking.staff_free", { n: Math.max(0, seen.monitoring_staff - seen.monitoring_taken), total: seen.monitoring_staff })),
      seen.rooms_taken.length ? h("li", { id: "outlook-rooms" }, t("booking.rooms_taken", { rooms: seen.rooms_taken.join(", ") })) : null));
  };
  for (const name of ["day", "start", "minutes"]) form.elements[name].addEventListener("change", showOutlook);
  inmateSel.addEventListener("change", renderContacts);
  kindSel.addEventListener("change", renderLocation);
  renderLocation();
  await renderContacts();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(result);
    refusal.hidden = true;
    refusal.textContent = "";
    const v = form.elements;
    const inmate = inmates.find((i) => i.id === v.inmate_id.value);
    try {
      if (!v.contact_id) throw new Error(t("booking.no_contacts"));
      if (!v.day.value || !v.start.value) throw new Error(t("booking.when_missing"));
      const minutes = Number(v.minutes.value);
      if (!Number.isInteger(minutes) || minutes < 1) throw new Error(t("booking.minutes_bad"));
      if (!v.location || !v.location.value.trim()) throw new Error(t("booking.location_missing"));
      const start = zonedInstant(v.day.value, v.start.value);
      const end = new Date(start.getTime() + minutes * 60000);
      const body = {
        inmate_id: v.inmate_id.value,
        contact_id: v.contact_id.value,
        start: isoUtc(start),
        end: isoUtc(end),
        location_kind: v.location_kind.value,
        location: v.location.value.trim(),
        initiation: v.initiation.value,
        override_closure: v.override_closure.checked,
        send_invite: v.send_invite.checked,
      };
      if (inmate && inmate.remand) {
        // R11: no clearance, no call; the API refuses with police_clearance_missing.
        if (v.cleared_by.value.trim()) {
          if (!v.cleared_day.value || !v.cleared_time.value) throw new Error(t("booking.clearance_when_missing"));
          body.police_clearance = {
            cleared_by: v.cleared_by.value.trim(),
            cleared_at: isoUtc(zonedInstant(v.cleared_day.value, v.cleared_time.value)),
          };
        }
      }
      const booking = await api("POST", "/bookings", body);
      data.forget();
      toast(t("booking.done"), "good");
      result.append(h("div", { class: "card good", id: "booking-created" },
        h("h2", {}, t("booking.created")),
        h("p", {}, t("booking.created_text", { day: fmtDay(v.day.value, true), from: fmtTime(booking.start), to: fmtTime(booking.end), zone: zoneName() })),
        inmate && inmate.remand && !booking.police_clearance
          ? h("p", { class: "notice bad", id: "booking-needs-clearance" }, t("booking.needs_clearance")) : null,
        h("p", { id: "booking-invite-status", class: booking.invite_sent ? "" : "notice" }, inviteOutcome(booking)),
        h("div", { class: "row-actions" },
          inviteActions(booking, await data.contact(booking.contact_id), { small: false, ids: true, resend: booking.invite_sent }),
          h("a", { class: "btn", href: `#/calendar?view=day&day=${v.day.value}` }, t("booking.see_calendar")))));
      showOutlook();
    } catch (err) {
      refusal.textContent = err.message;
      refusal.hidden = false;
      refusal.focus();
    }
  });
}

// "HH:MM" from the calendar cell the booking was started from, or 10:00.
function startTime(given) {
  return /^([01]\d|2[0-3]):[0-5]\d$/.test(given || "") ? given : "10:00";
}
