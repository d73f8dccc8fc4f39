// The audit chain: entries page by page, and its verification (hash chain + signed checkpoints).
import { api, clear, fmtDateTime, h, t } from "./core.js";

const PAGE = 50;

export async function renderAudit(main, { query }) {
  const after = Math.max(0, Number.parseInt(query.get("after") || "0", 10) || 0);
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("audit.title")), h("p", { class: "lede" }, t("audit.lede"))));
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
  main.append(h("section", { class: "card" }, h("h2", {}, t("audit.verification")), h("p", {}, t("audit.verify_lede")), verify, result));

  const list = await api("GET", `/audit?after_seq=${after}&limit=${PAGE}`);
  const items = list.items;
  const last = items.length ? items[items.length - 1].seq : after;
  main.append(h("section", { class: "panel", "aria-labelledby": "entries-h" },
    h("div", { class: "panel-head" }, h("h2", { id: "entries-h" }, t("audit.entries", { from: after + 1, to: last })),
      h("nav", { class: "toolbar", "aria-label": t("audit.paging") },
        after > 0 ? h("a", { class: "btn small", href: `#/audit?after=${Math.max(0, after - PAGE)}` }, "‹ ", t("audit.earlier")) : null,
        items.length === PAGE ? h("a", { class: "btn small", href: `#/audit?after=${last}` }, t("audit.later"), " ›") : null)),
    items.length ? h("div", { class: "table-wrap" }, h("table", { id: "audit-table", class: "dense" },
      h("caption", { class: "sr" }, t("audit.title")),
      h("thead", {}, h("tr", {}, [t("audit.seq"), t("audit.at"), t("audit.actor"), t("audit.action"), t("audit.subjects"), t("audit.hash")].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, items.map((e) => h("tr", {},
        h("th", { scope: "row", class: "num" }, String(e.seq)),
        h("td", { class: "num" }, fmtDateTime(e.at)),
        h("td", { class: "mono small", title: e.actor }, shortActor(e.actor)),
        h("td", {}, e.action),
        h("td", { class: "mono small" }, Object.entries(e.subjects).map(([k, v]) => `${k}:${v.slice(0, 8)}`).join(" ")),
        h("td", { class: "mono small", title: e.hash }, e.hash.slice(0, 12)))))))
      : h("p", { class: "empty" }, t("audit.none"))));
}

// "staff:0b323654-1090-…" reads as "staff:0b323654"; the full id is in the title and the chain.
function shortActor(actor) {
  const [kind, id] = actor.split(":", 2);
  return id ? `${kind}:${id.slice(0, 8)}` : actor;
}
