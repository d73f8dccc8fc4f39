// The visit office's work queue: what waits for staff, searchable by name or inmate id,
// each item a link to where it is dealt with. The navigation shows the count.
import { api, badge, clear, fmtDateTime, h, t } from "./core.js";

const KINDS = ["contact_confirmation", "contact_assessment", "appeal", "police_clearance", "held"];

export async function queueCount() {
  try {
    return (await api("GET", "/queue")).total;
  } catch (_) {
    return null; // the count is a help, never a blocker
  }
}

export async function renderQueue(main, { query }) {
  const search = (query.get("q") || "").trim();
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("queue.title")), h("p", { class: "lede" }, t("queue.lede"))));
  const input = h("input", { id: "queue-search", type: "search", name: "q", maxlength: 200, autocomplete: "off" });
  input.value = search;
  const form = h("form", { class: "card inline-form", role: "search", id: "queue-form", novalidate: true },
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "queue-search" }, t("queue.search")), input),
      h("div", { class: "field" }, h("button", { type: "submit", class: "btn" }, t("queue.search_button")))));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = input.value.trim();
    location.hash = q ? `#/queue?q=${encodeURIComponent(q)}` : "#/queue";
  });
  main.append(form);

  const result = await api("GET", search ? `/queue?q=${encodeURIComponent(search)}` : "/queue");
  main.append(h("p", { id: "queue-total", "aria-live": "polite" },
    search ? t("queue.found", { n: result.total, q: search }) : t("queue.total", { n: result.total })));
  for (const kind of KINDS) {
    const items = result.items.filter((i) => i.kind === kind);
    const headingId = `queue-${kind}-h`;
    main.append(h("section", { class: "panel", id: `queue-${kind}`, "aria-labelledby": headingId },
      h("h2", { id: headingId }, t(`queue.kind.${kind}`), " ", badge(String(result.counts[kind]), items.length ? "warn" : "")),
      items.length ? h("ul", { class: "queue" }, items.map(entry))
        : h("p", { class: "empty" }, t("queue.nothing"))));
  }
}

function entry(item) {
  const inmate = `#/inmate/${encodeURIComponent(item.inmate_id)}`;
  const when = item.start ? t("queue.window", { from: fmtDateTime(item.start) }) : t("queue.since", { at: fmtDateTime(item.since) });
  return h("li", { dataset: { kind: item.kind, contact: item.contact_id, booking: item.booking_id || "" } },
    h("a", { href: inmate }, t("queue.item", { inmate: item.inmate_name, contact: item.contact_name })),
    h("span", { class: "muted" }, " · ", when));
}
