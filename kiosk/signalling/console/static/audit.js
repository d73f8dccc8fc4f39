// The audit trail as a log: newest first, narrowed to a call, inmate, contact, staff member or
// action, names beside ids where the role may read them, each entry's details; and the chain's
// verification (hash chain + signed checkpoints).
import { api, clear, field, fmtDateTime, h, label, may, reasonText, state, t } from "./core.js";

const PAGE = 50;
export const FILTERS = ["inmate", "contact", "call", "staff", "action"];

export async function renderAudit(main, { query }) {
  const before = Number.parseInt(query.get("before") || "", 10) || null;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, (query.get(k) || "").trim()]).filter(([, v]) => v));
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("audit.title")), h("p", { class: "lede" }, t("audit.lede"))));
  main.append(verification());

  const params = new URLSearchParams({ newest_first: "true", limit: String(PAGE), ...filters });
  if (before) params.set("before_seq", String(before));
  const [list, inmates, staff] = await Promise.all([
    api("GET", `/audit?${params}`),
    may("inmate.read") ? api("GET", "/inmates") : { items: [] },
    may("staff.read") ? api("GET", "/staff") : { items: [] },
  ]);
  const names = list.names || {};
  main.append(filterForm(filters, inmates.items, staff.items, names));

  const items = list.items;
  const last = items.length ? items[items.length - 1].seq : null;
  const link = (extra) => "#/audit?" + new URLSearchParams({ ...filters, ...extra });
  main.append(h("section", { class: "panel", "aria-labelledby": "entries-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "entries-h" }, items.length
      ? t("audit.entries_newest", { from: items[0].seq, to: last }) : t("audit.title")),
      h("nav", { class: "toolbar", "aria-label": t("audit.paging") },
        before ? h("a", { class: "btn small", href: link({}), id: "audit-newest" }, "« ", t("audit.newest")) : null,
        items.length === PAGE ? h("a", { class: "btn small", href: link({ before: last }), id: "audit-older" }, t("audit.older"), " ›") : null)),
    items.length ? h("div", { class: "table-wrap" }, h("table", { id: "audit-table", class: "dense log" },
      h("caption", { class: "sr" }, t("audit.title")),
      h("thead", {}, h("tr", {}, [t("audit.seq"), t("audit.at"), t("audit.actor"), t("audit.action"), t("audit.subjects"), t("audit.details")].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, items.map((e) => h("tr", { dataset: { seq: e.seq, action: e.action } },
        h("th", { scope: "row", class: "num" }, h("span", { title: e.hash }, String(e.seq))),
        h("td", { class: "num" }, fmtDateTime(e.at)),
        h("td", {}, actor(e.actor, names)),
        h("td", {}, h("a", { href: link({ action: e.action }), class: "mono small" }, e.action)),
        h("td", { class: "subjects" }, Object.entries(e.subjects).map(([k, v]) => subject(k, v, names, link))),
        h("td", { class: "details" }, details(e.details)))))))
      : h("p", { class: "empty" }, t("audit.none"))));
}

function verification() {
  const result = h("div", { id: "verify-result", "aria-live": "polite" });
  const verify = h("button", {
    type: "button", class: "btn primary", id: "btn-verify", onclick: async () => {
      verify.disabled = true;
      clear(result).append(h("p", { class: "muted" }, t("audit.verifying")));
      try {
        const v = await api("GET", "/audit/verify");
        clear(result).append(v.ok
          ? h("p", { class: "notice good", id: "verify-ok" }, t("audit.intact", { n: v.entries }))
          : h("p", { class: "notice bad", id: "verify-bad", role: "alert" }, t("audit.broken", { seq: v.first_bad_seq ?? "?", problem: v.problem })));
      } catch (err) {
        clear(result).append(h("p", { class: "error", role: "alert" }, err.message));
      } finally {
        verify.disabled = false;
      }
    },
  }, t("audit.verify"));
  return h("section", { class: "card" }, h("h2", {}, t("audit.verification")), h("p", {}, t("audit.verify_lede")), verify, result);
}

function filterForm(filters, inmates, staff, names) {
  const options = (items, text) => [["", t("audit.any")], ...items.map((x) => [x.id, text(x)])];
  const form = h("form", { class: "card inline-form", id: "audit-filter", role: "search", novalidate: true },
    h("h2", {}, t("audit.filter")),
    h("div", { class: "row" },
      field({ label: t("audit.filter_inmate"), name: "inmate", type: "select", id: "audit-inmate", value: filters.inmate || "",
        options: options(inmates.sort((a, z) => a.name.localeCompare(z.name)), (i) => i.name) }),
      field({ label: t("audit.filter_staff"), name: "staff", type: "select", id: "audit-staff", value: filters.staff || "",
        options: options(staff, (s) => `${s.display_name} (${s.username})`) }),
      field({ label: t("audit.filter_action"), name: "action", id: "audit-action", value: filters.action || "", maxlength: 100, hint: t("audit.filter_action_hint") }),
      field({ label: t("audit.filter_call"), name: "call", id: "audit-call", value: filters.call || "", maxlength: 36 }),
      filters.contact ? h("input", { type: "hidden", name: "contact", value: filters.contact }) : null,
      h("div", { class: "field" }, h("button", { type: "submit", class: "btn primary", id: "audit-apply" }, t("audit.apply")))),
    Object.keys(filters).length ? h("p", { id: "audit-filters" }, t("audit.showing"), " ",
      Object.entries(filters).map(([k, v]) => h("span", { class: "badge info" }, `${t("audit.subject." + k)}: ${names[v] || v}`)), " ",
      h("a", { href: "#/audit", id: "audit-clear" }, t("audit.clear"))) : null);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = {};
    for (const el of form.elements) if (el.name && el.value.trim()) chosen[el.name] = el.value.trim();
    location.hash = "#/audit?" + new URLSearchParams(chosen);
  });
  return form;
}

// "staff:0b32…" reads as the staff member's name where the role may see it, with the id beside.
function actor(who, names) {
  const [kind, id] = who.split(":", 2);
  if (!id) return h("span", { class: "mono small" }, who);
  const name = names[id];
  const text = name ? [name, " ", h("span", { class: "mono small muted" }, id.slice(0, 8))] : h("span", { class: "mono small" }, `${kind}:${id.slice(0, 8)}`);
  return kind === "staff" ? h("a", { href: "#/audit?" + new URLSearchParams({ staff: id }), title: who }, text) : h("span", { title: who }, text);
}

function subject(kind, id, names, link) {
  const name = names[id];
  const text = [t("audit.subject." + kind) + ": ", name ? h("span", { class: "name" }, name, " ") : null, h("span", { class: "mono small muted" }, String(id).slice(0, 8))];
  const filterable = FILTERS.includes(kind);
  return h("div", { class: "subject", dataset: { kind } }, filterable ? h("a", { href: link({ [kind]: id }), title: id }, text) : h("span", { title: id }, text));
}

// An entry's details: the end reason, the grounds, the outcome… each labelled, in words.
function details(d) {
  if (!d || typeof d !== "object") return null;
  const entries = Object.entries(d);
  if (!entries.length) return null;
  return h("dl", { class: "facts" }, entries.map(([k, v]) => [
    h("dt", {}, t("audit.detail." + k) === "audit.detail." + k ? k : t("audit.detail." + k)),
    h("dd", {}, detailValue(k, v)),
  ]));
}

function detailValue(key, value) {
  if (key === "reason" && typeof value === "string") return state.strings["end_reason." + value] || reasonText(value, value);
  const kinds = {
    grounds: "ground", control: "control", category: "category", outcome: "outcome", by: "appeal_by",
    status: "contact_status", initiation: "initiation", relation: "relation", role: "role",
  };
  const one = (v) => {
    if (typeof v === "boolean") return t(v ? "audit.yes" : "audit.no");
    if (typeof v === "string" && kinds[key]) return label(kinds[key], v);
    if (typeof v === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(v)) return fmtDateTime(v);
    return typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
  };
  return Array.isArray(value) ? value.map(one).join(", ") || "—" : one(value);
}
