// Inmates, their contacts, decisions with control level and grounds (R4-R8, R13), appeals (R8),
// breaches (R14) and bookings.
import {
  api, badge, checkboxes, clear, dialog, errorBox, field, fmtDateTime, fmtTime, h, label, may, plural, t, toast, zoneName,
} from "./core.js";
import * as data from "./data.js";
import { controlBadge, controlText, needsClearance, recordClearance } from "./board.js";
import { inviteActions } from "./invites.js";

export async function renderInmates(main) {
  const list = await api("GET", "/inmates");
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("inmates.title")), h("p", { class: "lede" }, t("inmates.lede"))));
  if (may("inmate.write")) {
    const form = h("form", { class: "card inline-form", id: "inmate-form", novalidate: true },
      h("h2", {}, t("inmates.add")),
      h("div", { class: "row" },
        field({ label: t("inmates.name"), name: "name", required: true, maxlength: 200, id: "inmate-name" }),
        field({ label: t("inmates.remand"), name: "remand", type: "checkbox", id: "inmate-remand" }),
        field({ label: t("inmates.minor"), name: "minor", type: "checkbox", id: "inmate-minor" }),
        h("div", { class: "field" }, h("button", { type: "submit", class: "btn primary" }, t("inmates.add_button")))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = form.elements.name.value.trim();
      if (!name) return toast(t("inmates.name_missing"), "bad");
      try {
        const created = await api("POST", "/inmates", { name, remand: form.elements.remand.checked, minor: form.elements.minor.checked });
        data.forget();
        location.hash = `#/inmate/${encodeURIComponent(created.id)}`;
      } catch (err) {
        toast(err.message, "bad");
      }
    });
    main.append(form);
  }
  const items = list.items.sort((a, z) => a.name.localeCompare(z.name));
  main.append(h("section", { class: "panel", "aria-labelledby": "inmates-h" },
    h("h2", { id: "inmates-h" }, t("inmates.list", { n: items.length })),
    items.length ? h("div", { class: "table-wrap" }, h("table", { id: "inmates-table" },
      h("caption", { class: "sr" }, t("inmates.title")),
      h("thead", {}, h("tr", {}, [t("inmates.name"), t("inmates.status")].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, items.map((i) => h("tr", { dataset: { inmate: i.id } },
        h("th", { scope: "row" }, h("a", { href: `#/inmate/${encodeURIComponent(i.id)}` }, i.name)),
        h("td", {}, i.active ? null : badge(t("inmate.inactive")), i.remand ? badge(t("inmate.remand"), "warn") : null,
          i.minor ? badge(t("inmate.minor"), "info") : null, i.active && !i.remand && !i.minor ? t("inmate.ordinary") : null))))))
      : h("p", { class: "empty" }, t("inmates.none"))));
}

export async function renderInmate(main, { args }) {
  const id = args[0];
  const [inmate, contacts, bookings] = await Promise.all([
    api("GET", `/inmates/${encodeURIComponent(id)}`),
    api("GET", `/inmates/${encodeURIComponent(id)}/contacts`),
    may("booking.read") ? api("GET", `/bookings?inmate_id=${encodeURIComponent(id)}`) : { items: [] },
  ]);
  contacts.items.forEach(data.rememberContact);
  const rerender = () => window.dispatchEvent(new Event("console:refresh"));
  const facility = await api("GET", "/facility");
  const personal = contacts.items.filter((c) => c.category === "personal" && c.status !== "refused").length;

  const head = h("div", { class: "page-head" },
    h("p", { class: "crumbs" }, h("a", { href: "#/inmates" }, t("inmates.title"))),
    h("h1", { id: "inmate-h" }, inmate.name),
    h("p", { class: "lede" },
      inmate.remand ? badge(t("inmate.remand"), "warn") : null, " ",
      inmate.minor ? badge(t("inmate.minor"), "info") : null, " ",
      inmate.active ? null : badge(t("inmate.inactive")),
      " ", t("inmate.personal_count", { n: personal, limit: facility.contact_limit })));
  main.append(head);
  if (may("inmate.write")) {
    main.append(h("div", { class: "toolbar" },
      h("button", {
        type: "button", class: "btn small", onclick: async () => {
          const ok = await dialog({
            title: t("inmate.edit"),
            build: (body) => body.append(
              field({ label: t("inmates.name"), name: "name", value: inmate.name, required: true, maxlength: 200 }),
              field({ label: t("inmates.remand"), name: "remand", type: "checkbox", value: inmate.remand, hint: t("inmates.remand_hint") }),
              field({ label: t("inmates.minor"), name: "minor", type: "checkbox", value: inmate.minor }),
              field({ label: t("inmates.active"), name: "active", type: "checkbox", value: inmate.active })),
            submit: (v) => api("PATCH", `/inmates/${encodeURIComponent(id)}`, { name: v.name.trim(), remand: v.remand, minor: v.minor, active: v.active }),
          });
          if (ok) { data.forget(); rerender(); }
        },
      }, t("inmate.edit")),
      may("booking.write") ? h("a", { class: "btn small primary", href: `#/book?inmate=${encodeURIComponent(id)}` }, t("inmate.book")) : null));
  }

  // Contacts.
  const section = h("section", { class: "panel", "aria-labelledby": "contacts-h", id: "contacts" },
    h("div", { class: "panel-head" }, h("h2", { id: "contacts-h" }, t("contacts.title")),
      may("contact.write") ? h("button", { type: "button", class: "btn primary small", id: "btn-propose", onclick: () => propose(id, rerender) }, t("contacts.propose")) : null));
  if (!contacts.items.length) section.append(h("p", { class: "empty" }, t("contacts.none")));
  for (const c of contacts.items) section.append(await contactCard(c, rerender));
  main.append(section);

  // Bookings.
  if (may("booking.read")) {
    const items = bookings.items.sort((a, z) => z.start.localeCompare(a.start));
    main.append(h("section", { class: "panel", "aria-labelledby": "inmate-bookings-h" },
      h("h2", { id: "inmate-bookings-h" }, t("inmate.bookings")),
      items.length ? h("div", { class: "table-wrap" }, h("table", {},
        h("caption", { class: "sr" }, t("inmate.bookings")),
        h("thead", {}, h("tr", {}, [t("col.when"), t("col.contact"), t("col.place"), t("col.state"), t("col.clearance"), h("span", { class: "sr" }, t("col.actions"))].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, items.map((b) => {
          const c = contacts.items.find((x) => x.id === b.contact_id);
          const open = b.state === "booked" && Date.parse(b.end) > Date.now();
          return h("tr", { dataset: { booking: b.id } },
            h("th", { scope: "row" }, `${fmtDateTime(b.start)}–${fmtTime(b.end)}`),
            h("td", {}, c ? c.name : b.contact_id),
            h("td", {}, b.location_kind === "room" ? t("place.room", { name: b.location }) : t("place.cell", { name: b.location })),
            h("td", {}, label("booking_state", b.state)),
            h("td", {}, b.police_clearance
              ? t("booking.clearance_text", { who: b.police_clearance.cleared_by, at: fmtDateTime(b.police_clearance.cleared_at) })
              : needsClearance(b, inmate) ? badge(t("clearance.missing_badge"), "bad") : "—"),
            h("td", {}, h("div", { class: "row-actions" },
              may("booking.write") && needsClearance(b, inmate) ? h("button", {
                type: "button", class: "btn small", "aria-label": t("clearance.record_for", { name: inmate.name }),
                onclick: () => recordClearance(b, rerender),
              }, t("clearance.record")) : null,
              may("booking.write") && open ? inviteActions(b, c) : null,
              may("booking.write") && open ? h("button", {
                type: "button", class: "btn small danger", onclick: async () => {
                  const ok = await dialog({
                    title: t("booking.cancel_title"), okText: t("booking.cancel_ok"), danger: true,
                    build: (body) => body.append(h("p", { id: "cancel-what" }, t("booking.cancel_lede_named", {
                      inmate: inmate.name, contact: c ? c.name : "—", when: `${fmtDateTime(b.start)}–${fmtTime(b.end)}`, zone: zoneName(),
                    }))),
                    submit: () => api("POST", `/bookings/${encodeURIComponent(b.id)}/cancel`),
                  });
                  if (ok) rerender();
                },
              }, t("booking.cancel")) : null)));
        })))) : h("p", { class: "empty" }, t("inmate.no_bookings"))));
  }
}

async function contactCard(c, rerender) {
  const decision = c.decision;
  const card = h("article", { class: "contact card", dataset: { contact: c.id, status: c.status }, "aria-labelledby": `contact-${c.id}-h` },
    h("div", { class: "contact-head" },
      h("h3", { id: `contact-${c.id}-h` }, c.name),
      badge(label("contact_status", c.status), statusTone(c.status)),
      controlBadge(c.control, c.category)),
    h("p", { class: "contact-facts" },
      h("span", {}, label("category", c.category)),
      h("span", {}, label("relation", c.relation)),
      h("span", { class: "mono" }, c.email),
      h("span", {}, c.cleared_for_visits ? t("contacts.cleared") : t("contacts.not_cleared")),
      c.breaches ? badge(plural("contacts.breach_count", c.breaches), "bad") : null),
    decision ? h("p", { class: "contact-decision" }, h("strong", {}, t("contacts.decision"), ": "),
      `${label("outcome", decision.outcome)} · ${controlText({ category: c.category, control: decision.control })} · ${fmtDateTime(decision.decided_at)}`,
      decision.grounds.length ? ` — ${t("contacts.grounds_list", { list: decision.grounds.map((g) => label("ground", g)).join(", ") })}` : null,
      decision.note ? h("span", { class: "muted" }, ` (${decision.note})`) : null) : null);
  if (c.breach_records.length) {
    card.append(h("ul", { class: "breaches" }, c.breach_records.map((b) => h("li", {}, `${fmtDateTime(b.recorded_at)}: ${b.note || "—"}`))));
  }
  const actions = h("div", { class: "row-actions" });
  if (may("contact.write") && c.status === "awaiting_confirmation") {
    actions.append(h("button", { type: "button", class: "btn small", onclick: () => step(`/contacts/${c.id}/email-confirmation`, rerender) }, t("contacts.record_confirmation")));
  }
  if (may("contact.write") && c.status === "awaiting_application") {
    actions.append(h("button", { type: "button", class: "btn small", onclick: () => step(`/contacts/${c.id}/application`, rerender) }, t("contacts.record_application")));
  }
  // R8: a decision in force changes only through an appeal, so only the first is decided here.
  if (may("contact.decide") && c.status === "awaiting_assessment") {
    actions.append(h("button", {
      type: "button", class: "btn small primary", dataset: { decide: c.id },
      onclick: () => decide(c, rerender),
    }, t("contacts.decide")));
  }
  if (may("appeal.file") && decision) {
    actions.append(h("button", { type: "button", class: "btn small", onclick: () => fileAppeal(c, rerender) }, t("appeals.file")));
  }
  if (may("contact.write")) {
    actions.append(h("button", {
      type: "button", class: "btn small ghost", "aria-label": t("contacts.edit_for", { name: c.name }), onclick: async () => {
        const ok = await dialog({
          title: t("contacts.edit"),
          build: (body) => body.append(
            field({ label: t("contacts.name"), name: "name", value: c.name, required: true, maxlength: 200 }),
            field({ label: t("contacts.email"), name: "email", type: "email", value: c.email, required: true }),
            field({ label: t("contacts.relation"), name: "relation", type: "select", value: c.relation, options: data.RELATIONS.map((r) => [r, label("relation", r)]) })),
          submit: (v) => api("PATCH", `/contacts/${c.id}`, { name: v.name.trim(), email: v.email.trim(), relation: v.relation }),
        });
        if (ok) rerender();
      },
    }, t("action.edit")));
  }
  card.append(actions);

  // Appeals of this contact (R8).
  if (may("appeal.read") && decision) {
    try {
      const appeals = await api("GET", `/contacts/${c.id}/appeals`);
      if (appeals.items.length) {
        card.append(h("h4", {}, t("appeals.title")), h("ul", { class: "appeals" }, appeals.items.map((a) => h("li", { dataset: { appeal: a.id } },
          badge(label("appeal_state", a.state), a.state === "pending" ? "warn" : ""), " ",
          t("appeals.filed", { by: label("appeal_by", a.by), at: fmtDateTime(a.filed_at) }), ": ",
          h("q", {}, a.text), " ",
          may("appeal.decide") && a.state === "pending" ? h("button", { type: "button", class: "btn small", onclick: () => decideAppeal(a, c, rerender) }, t("appeals.decide")) : null))));
      }
    } catch (err) {
      card.append(errorBox(err));
    }
  }
  return card;
}

function statusTone(s) {
  return { approved: "good", refused: "bad", awaiting_assessment: "warn" }[s] || "info";
}

async function step(path, rerender) {
  try {
    await api("POST", path);
    toast(t("contacts.recorded"), "good");
    rerender();
  } catch (err) {
    toast(err.message, "bad");
  }
}

async function propose(inmateId, rerender) {
  const ok = await dialog({
    title: t("contacts.propose"),
    okText: t("contacts.propose_ok"),
    build: (body) => body.append(
      field({ label: t("contacts.name"), name: "name", required: true, maxlength: 200, id: "contact-name" }),
      field({ label: t("contacts.email"), name: "email", type: "email", required: true, id: "contact-email" }),
      field({ label: t("contacts.category"), name: "category", type: "select", id: "contact-category", value: "personal",
        options: data.CATEGORIES.map((c) => [c, label("category", c)]), hint: t("contacts.category_hint") }),
      field({ label: t("contacts.relation"), name: "relation", type: "select", id: "contact-relation", value: "friend",
        options: data.RELATIONS.map((r) => [r, label("relation", r)]) }),
      field({ label: t("contacts.cleared_for_visits"), name: "cleared_for_visits", type: "checkbox", id: "contact-cleared", hint: t("contacts.cleared_hint") })),
    submit: (v) => {
      if (!v.name.trim() || !v.email.trim()) throw new Error(t("contacts.missing"));
      return api("POST", `/inmates/${encodeURIComponent(inmateId)}/contacts`, {
        name: v.name.trim(), email: v.email.trim(), category: v.category, relation: v.relation, cleared_for_visits: v.cleared_for_visits,
      });
    },
  });
  if (ok) { toast(t("contacts.proposed"), "good"); rerender(); }
}

// The decision form. R13: for defence counsel and police (and court, R5) no control is offered at all.
function decisionFields(body, category, current) {
  const controllable = data.CONTROLLABLE.includes(category);
  const outcome = field({ label: t("decision.outcome"), name: "outcome", type: "select", id: "decision-outcome", value: "approve",
    options: [["approve", label("outcome", "approve")], ["refuse", label("outcome", "refuse")]] });
  body.append(outcome);
  if (controllable) {
    body.append(field({ label: t("decision.control"), name: "control", type: "select", id: "decision-control", value: current || "none",
      options: data.CONTROLS.map((c) => [c, label("control_long", c)]), hint: t("decision.control_hint") }));
  } else {
    body.append(h("p", { class: "notice privileged", id: "decision-no-control" },
      data.PRIVILEGED.includes(category) ? t("decision.privileged") : t("decision.not_controllable")));
  }
  body.append(
    checkboxes(t("decision.grounds"), "grounds", data.GROUNDS.map((g) => [g, label("ground", g)]), [], t("decision.grounds_hint")),
    field({ label: t("decision.note"), name: "note", type: "textarea", maxlength: 2000, id: "decision-note" }));
}

function decisionBody(v, category) {
  const body = { outcome: v.outcome, grounds: v.grounds || [], note: (v.note || "").trim() };
  if (data.CONTROLLABLE.includes(category) && v.outcome === "approve") body.control = v.control || "none";
  if (body.control && body.control !== "none" && !body.grounds.length) throw new Error(t("decision.grounds_missing"));
  return body;
}

async function decide(c, rerender) {
  const ok = await dialog({
    title: t("decision.title", { name: c.name }),
    okText: t("decision.ok"),
    build: (body) => {
      const lede = data.CONTROLLABLE.includes(c.category) ? "decision.lede" : "decision.lede_no_control";
      body.append(h("p", {}, t(lede, { category: label("category", c.category) })));
      if (c.breaches) body.append(h("p", { class: "notice bad" }, t("decision.breaches", { n: c.breaches })));
      decisionFields(body, c.category, c.control);
    },
    submit: (v) => api("POST", `/contacts/${c.id}/decision`, decisionBody(v, c.category)),
  });
  if (ok) { toast(t("decision.done"), "good"); rerender(); }
}

async function fileAppeal(c, rerender) {
  const ok = await dialog({
    title: t("appeals.file_title", { name: c.name }),
    okText: t("appeals.file_ok"),
    build: (body) => body.append(
      field({ label: t("appeals.by"), name: "by", type: "select", value: "inmate", options: [["inmate", label("appeal_by", "inmate")], ["contact", label("appeal_by", "contact")]] }),
      field({ label: t("appeals.text"), name: "text", type: "textarea", required: true, maxlength: 4000, rows: 4 })),
    submit: (v) => {
      if (!v.text.trim()) throw new Error(t("appeals.text_missing"));
      return api("POST", `/contacts/${c.id}/appeals`, { by: v.by, text: v.text.trim() });
    },
  });
  if (ok) { toast(t("appeals.filed_done"), "good"); rerender(); }
}

async function decideAppeal(a, c, rerender) {
  const ok = await dialog({
    title: t("appeals.decide_title", { name: c.name }),
    okText: t("appeals.decide_ok"),
    build: (body) => {
      body.append(h("blockquote", {}, a.text),
        field({ label: t("appeals.result"), name: "result", type: "select", value: "upheld", id: "appeal-result",
          options: [["upheld", t("appeals.upheld")], ["changed", t("appeals.changed")]], hint: t("appeals.result_hint") }));
      const fs = h("fieldset", { class: "sub" }, h("legend", {}, t("appeals.new_decision")));
      decisionFields(fs, c.category, c.control);
      body.append(fs);
    },
    submit: (v) => {
      const payload = { result: v.result };
      if (v.result === "changed") payload.decision = decisionBody(v, c.category);
      return api("POST", `/appeals/${a.id}/decision`, payload);
    },
  });
  if (ok) { toast(t("appeals.decided"), "good"); rerender(); }
}

