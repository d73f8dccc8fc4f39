// Facility settings: contact limit (R2), weekly quotas (R17), capacity (R9), call length (R10),
// closures with order deadlines (R15) and restrictions (R16).
import { api, dialog, field, fmtDateTime, h, isoUtc, label, may, t, toast, today, zonedInstant } from "./core.js";

export async function renderFacility(main) {
  const f = await api("GET", "/facility");
  const edit = may("facility.write");
  const rerender = () => {
    window.dispatchEvent(new Event("console:facility"));
    window.dispatchEvent(new Event("console:refresh"));
  };
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("facility.title")), h("p", { class: "lede" }, t("facility.lede"))));

  const settings = [
    ["name", "text", f.name],
    ["timezone", "text", f.timezone],
    ["contact_limit", "number", f.contact_limit],
    ["weekly_quota_minutes", "number", f.weekly_quota_minutes],
    ["parent_weekly_quota_minutes", "number", f.parent_weekly_quota_minutes],
    ["tablets", "number", f.tablets],
    ["rooms", "text", f.rooms.join(", ")],
    ["monitoring_staff", "number", f.monitoring_staff],
    ["max_call_minutes", "number", f.max_call_minutes],
  ];
  if (edit) {
    const form = h("form", { class: "card", id: "facility-form", novalidate: true },
      h("h2", {}, t("facility.settings")),
      h("div", { class: "grid-form" }, settings.map(([name, type, value]) => field({
        label: t(`facility.${name}`), name, type, value, min: type === "number" ? 0 : undefined, id: `facility-${name}`,
        hint: t(`facility.${name}_hint`) === `facility.${name}_hint` ? undefined : t(`facility.${name}_hint`, { n: f.tablets_in_service }),
      }))),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary", id: "facility-save" }, t("action.save"))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = {};
      for (const [name, type] of settings) {
        const raw = form.elements[name].value.trim();
        if (type === "number") body[name] = Number(raw);
        else if (name === "rooms") body.rooms = raw ? raw.split(",").map((r) => r.trim()).filter(Boolean) : [];
        else body[name] = raw;
      }
      try {
        await api("PATCH", "/facility", body);
        toast(t("facility.saved"), "good");
        rerender();
      } catch (err) {
        toast(err.message, "bad");
      }
    });
    main.append(form);
  } else {
    main.append(h("section", { class: "card" }, h("h2", {}, t("facility.settings")),
      h("dl", { class: "facts" }, settings.map(([name, , value]) => [h("dt", {}, t(`facility.${name}`)), h("dd", {}, String(value))]))));
  }

  const period = (p) => `${fmtDateTime(p.start)} – ${fmtDateTime(p.end)}`;
  const remove = (path) => async () => {
    try {
      await api("DELETE", path);
      rerender();
    } catch (err) {
      toast(err.message, "bad");
    }
  };
  main.append(h("section", { class: "panel", "aria-labelledby": "closures-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "closures-h" }, t("facility.closures")),
      edit ? h("button", { type: "button", class: "btn small", id: "btn-add-closure", onclick: () => addPeriod("closure", rerender) }, t("facility.add_closure")) : null),
    f.closures.length ? h("ul", { class: "periods" }, f.closures.map((c) => h("li", {},
      h("strong", {}, period(c)), c.order_deadline ? ` · ${t("facility.order_deadline")}: ${fmtDateTime(c.order_deadline)}` : "",
      c.note ? ` · ${c.note}` : "", " ",
      edit ? h("button", { type: "button", class: "btn small ghost", "aria-label": t("facility.remove_closure", { period: period(c) }), onclick: remove(`/facility/closures/${c.id}`) }, t("action.remove")) : null)))
      : h("p", { class: "empty" }, t("facility.no_closures"))));
  main.append(h("section", { class: "panel", "aria-labelledby": "restrictions-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "restrictions-h" }, t("facility.restrictions")),
      edit ? h("button", { type: "button", class: "btn small", id: "btn-add-restriction", onclick: () => addPeriod("restriction", rerender) }, t("facility.add_restriction")) : null),
    f.restrictions.length ? h("ul", { class: "periods" }, f.restrictions.map((r) => h("li", {},
      h("strong", {}, period(r)), ` · ${label("restriction", r.kind)}`, r.limit_minutes ? ` (${t("facility.limit_n", { n: r.limit_minutes })})` : "",
      r.note ? ` · ${r.note}` : "", " ",
      edit ? h("button", { type: "button", class: "btn small ghost", "aria-label": t("facility.remove_restriction", { period: period(r) }), onclick: remove(`/facility/restrictions/${r.id}`) }, t("action.remove")) : null)))
      : h("p", { class: "empty" }, t("facility.no_restrictions"))));
}

async function addPeriod(kind, rerender) {
  const when = (v, d, tm) => isoUtc(zonedInstant(v[d], v[tm] || "00:00"));
  const ok = await dialog({
    title: t(`facility.add_${kind}`),
    build: (body) => {
      body.append(
        h("div", { class: "row" },
          field({ label: t("facility.from_day"), name: "from_day", type: "date", value: today(), required: true }),
          field({ label: t("facility.from_time"), name: "from_time", type: "time", value: "00:00" })),
        h("div", { class: "row" },
          field({ label: t("facility.to_day"), name: "to_day", type: "date", value: today(), required: true }),
          field({ label: t("facility.to_time"), name: "to_time", type: "time", value: "23:59" })));
      if (kind === "closure") {
        body.append(h("div", { class: "row" },
          field({ label: t("facility.deadline_day"), name: "deadline_day", type: "date", hint: t("facility.deadline_hint") }),
          field({ label: t("facility.deadline_time"), name: "deadline_time", type: "time" })));
      } else {
        body.append(
          field({ label: t("facility.kind"), name: "kind", type: "select", value: "suspend",
            options: [["suspend", label("restriction", "suspend")], ["limit", label("restriction", "limit")]], hint: t("facility.kind_hint") }),
          field({ label: t("facility.limit_minutes"), name: "limit_minutes", type: "number", min: 1 }));
      }
      body.append(field({ label: t("facility.note"), name: "note", type: "textarea", maxlength: 500 }));
    },
    submit: async (v) => {
      if (!v.from_day || !v.to_day) throw new Error(t("facility.when_missing"));
      const payload = { start: when(v, "from_day", "from_time"), end: when(v, "to_day", "to_time"), note: v.note.trim() };
      if (kind === "closure") {
        if (v.deadline_day) payload.order_deadline = when(v, "deadline_day", "deadline_time");
        return api("POST", "/facility/closures", payload);
      }
      payload.kind = v.kind;
      if (v.kind === "limit") payload.limit_minutes = Number(v.limit_minutes);
      const created = await api("POST", "/facility/restrictions", payload);
      if (created.held_bookings.length) toast(t("facility.held", { n: created.held_bookings.length }));
      return created;
    },
  });
  if (ok) rerender();
}
