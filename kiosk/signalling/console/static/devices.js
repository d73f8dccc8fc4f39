// Tablets: assignment to an inmate, revocation, tamper events (R18).
import { api, badge, clear, dialog, field, fmtDateTime, h, may, t, toast } from "./core.js";
import * as data from "./data.js";

export async function renderDevices(main) {
  const [devices, inmates] = await Promise.all([api("GET", "/devices"), data.inmates()]);
  const rerender = () => window.dispatchEvent(new Event("console:refresh"));
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("devices.title")), h("p", { class: "lede" }, t("devices.lede"))));
  if (may("device.write")) {
    const form = h("form", { class: "card inline-form", id: "device-form", novalidate: true },
      h("h2", {}, t("devices.register")),
      h("p", { class: "hint" }, t("devices.register_hint")),
      h("div", { class: "row" },
        field({ label: t("devices.serial"), name: "serial", required: true, maxlength: 100, id: "device-serial" }),
        field({ label: t("devices.model"), name: "model", maxlength: 100, id: "device-model" }),
        h("div", { class: "field" }, h("button", { type: "submit", class: "btn" }, t("devices.register_button")))));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const serial = form.elements.serial.value.trim();
      if (!serial) return toast(t("devices.serial_missing"), "bad");
      try {
        await api("POST", "/devices", { serial, model: form.elements.model.value.trim() });
        rerender();
      } catch (err) {
        toast(err.message, "bad");
      }
    });
    main.append(form);
  }
  const active = [...inmates.values()].filter((i) => i.active).sort((a, z) => a.name.localeCompare(z.name));
  const rows = devices.items.map((d) => {
    const inmate = d.inmate_id ? inmates.get(d.inmate_id) : null;
    const tamper = h("tr", { class: "tamper-row", hidden: true }, h("td", { colspan: 6 }));
    const actions = h("div", { class: "row-actions" },
      h("button", {
        type: "button", class: "btn small", "aria-expanded": "false", "aria-label": t("devices.tamper_for", { serial: d.serial }),
        onclick: async (event) => {
          const button = event.currentTarget;
          const open = button.getAttribute("aria-expanded") === "true";
          button.setAttribute("aria-expanded", String(!open));
          tamper.hidden = open;
          if (!open) await showTamper(d, tamper.firstChild);
        },
      }, t("devices.tamper")));
    if (may("device.write") && !d.revoked) {
      actions.append(
        h("button", {
          type: "button", class: "btn small", "aria-label": t("devices.assign_for", { serial: d.serial }), onclick: async () => {
            const ok = await dialog({
              title: t("devices.assign_title", { serial: d.serial }),
              build: (body) => body.append(field({ label: t("col.inmate"), name: "inmate_id", type: "select", value: d.inmate_id || "", id: "assign-inmate",
                options: [["", t("devices.nobody")], ...active.map((i) => [i.id, i.name])] })),
              submit: (v) => api("PUT", `/devices/${d.id}/assignment`, { inmate_id: v.inmate_id || null }),
            });
            if (ok) { toast(t("devices.assigned"), "good"); rerender(); }
          },
        }, t("devices.assign")),
        h("button", {
          type: "button", class: "btn small danger", "aria-label": t("devices.revoke_for", { serial: d.serial }), onclick: async () => {
            const ok = await dialog({
              title: t("devices.revoke_title", { serial: d.serial }), okText: t("devices.revoke"), danger: true,
              build: (body) => body.append(h("p", {}, t("devices.revoke_lede"))),
              submit: () => api("POST", `/devices/${d.id}/revoke`),
            });
            if (ok) { toast(t("devices.revoked_done"), "good"); rerender(); }
          },
        }, t("devices.revoke")));
    }
    return [h("tr", { dataset: { device: d.id } },
      h("th", { scope: "row" }, d.serial, d.model ? h("span", { class: "muted small" }, ` ${d.model}`) : null),
      h("td", {}, d.revoked ? badge(t("devices.revoked"), "bad") : badge(t("devices.active"), "good")),
      h("td", {}, inmate ? inmate.name : d.inmate_id ? d.inmate_id : h("span", { class: "muted" }, t("devices.nobody"))),
      h("td", {}, d.last_seen_at ? fmtDateTime(d.last_seen_at) : "—"),
      h("td", { class: "mono small" }, d.certificate_serial ? d.certificate_serial.slice(0, 16) : "—"),
      h("td", {}, actions)), tamper];
  });
  main.append(h("section", { class: "panel", "aria-labelledby": "devices-h" },
    h("h2", { id: "devices-h" }, t("devices.list", { n: devices.items.length })),
    devices.items.length ? h("div", { class: "table-wrap" }, h("table", { id: "devices-table" },
      h("caption", { class: "sr" }, t("devices.title")),
      h("thead", {}, h("tr", {}, [t("devices.serial"), t("col.state"), t("devices.assigned_to"), t("devices.last_seen"), t("devices.certificate"), h("span", { class: "sr" }, t("col.actions"))].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows))) : h("p", { class: "empty" }, t("devices.none"))));
}

async function showTamper(device, cell) {
  clear(cell);
  try {
    const events = await api("GET", `/devices/${device.id}/tamper-events`);
    if (!events.items.length) {
      cell.append(h("p", { class: "muted" }, t("devices.no_tamper")));
      return;
    }
    cell.append(h("ul", { class: "tamper" }, events.items.map((e) => h("li", {},
      badge(e.kind, "bad"), " ", fmtDateTime(e.at), " ",
      h("span", { class: "mono small" }, Object.entries(e.details).map(([k, v]) => `${k}=${v}`).join(" "))))));
  } catch (err) {
    cell.append(h("p", { class: "error" }, err.message));
  }
}
