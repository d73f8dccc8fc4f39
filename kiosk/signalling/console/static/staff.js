// Staff accounts (admins): add, change role, deactivate, send a set-password link.
// An admin never types another person's password (issue 16): the owner sets it through a
// one-time link, mailed to the account's address or shown here once. A change of role or
// a deactivation ends the account's sessions (the API does it); everything is audited.
import { api, badge, dialog, field, h, may, state, t, toast } from "./core.js";

const ROLES = ["officer", "visit_office", "admin"];

export async function renderStaff(main) {
  const list = await api("GET", "/staff");
  const rerender = () => window.dispatchEvent(new Event("console:refresh"));
  const me = state.me.staff.id;
  main.append(h("div", { class: "page-head" }, h("h1", {}, t("staff.title")), h("p", { class: "lede" }, t("staff.lede"))));
  if (may("staff.write")) {
    main.append(h("div", { class: "toolbar" }, h("button", {
      type: "button", class: "btn primary small", id: "btn-add-staff", onclick: async () => {
        const added = await dialog({
          title: t("staff.add"),
          okText: t("staff.add_ok"),
          build: (body) => body.append(
            field({ label: t("staff.username"), name: "username", required: true, maxlength: 100, id: "staff-username", hint: t("staff.username_hint") }),
            field({ label: t("staff.display_name"), name: "display_name", required: true, maxlength: 200, id: "staff-name" }),
            field({ label: t("staff.role"), name: "role", type: "select", value: "officer", id: "staff-role", options: ROLES.map((r) => [r, t("role." + r)]) }),
            field({ label: t("staff.email"), name: "email", type: "email", maxlength: 254, id: "staff-email", autocomplete: "off", hint: t("staff.email_hint") }),
            h("p", { class: "notice" }, t("staff.add_note"))),
          submit: (v) => {
            if (!v.username.trim() || !v.display_name.trim()) throw new Error(t("staff.missing"));
            return api("POST", "/staff", { username: v.username.trim(), display_name: v.display_name.trim(), role: v.role, email: v.email.trim() });
          },
        });
        if (added) {
          toast(t("staff.added"), "good");
          await sendLink(added);
          rerender();
        }
      },
    }, t("staff.add"))));
  }
  const items = list.items.sort((a, z) => a.username.localeCompare(z.username));
  main.append(h("section", { class: "panel", "aria-labelledby": "staff-h" },
    h("h2", { id: "staff-h" }, t("staff.list", { n: items.length })),
    h("div", { class: "table-wrap" }, h("table", { id: "staff-table" },
      h("caption", { class: "sr" }, t("staff.title")),
      h("thead", {}, h("tr", {}, [t("staff.username"), t("staff.display_name"), t("staff.role"), t("col.state"), h("span", { class: "sr" }, t("col.actions"))].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, items.map((s) => h("tr", { dataset: { staff: s.id } },
        h("th", { scope: "row", class: "mono" }, s.username),
        h("td", {}, s.display_name, s.id === me ? h("span", { class: "muted small" }, ` (${t("staff.you")})`) : null),
        h("td", {}, t("role." + s.role)),
        h("td", {}, s.active ? badge(t("staff.active"), "good") : badge(t("staff.inactive"))),
        h("td", { class: "row-actions" }, may("staff.write") ? [
          h("button", {
            type: "button", class: "btn small", "aria-label": t("staff.change_for", { name: s.username }),
            onclick: () => change(s, s.id === me, rerender),
          }, t("staff.change")),
          s.active && s.id !== me ? h("button", {
            type: "button", class: "btn small", "aria-label": t("staff.link_for", { name: s.username }),
            dataset: { action: "password-link" },
            onclick: () => sendLink(s),
          }, t("staff.link")) : null,
        ] : null))))))));
}

// A new one-time link for the account (its older links stop working): mailed, or shown once.
async function sendLink(s) {
  let link;
  try {
    link = await api("POST", `/staff/${encodeURIComponent(s.id)}/password-link`);
  } catch (err) {
    toast(err.message, "bad");
    return;
  }
  if (link.mailed) {
    toast(t("staff.link_mailed", { email: s.email }), "good");
    return;
  }
  await dialog({
    title: t("staff.link_title", { name: s.username }),
    okText: t("action.close"),
    build: (body) => {
      const input = field({ label: t("staff.link_label"), name: "url", value: link.url, id: "staff-link-url", hint: t("staff.link_hint") });
      input.querySelector("input").readOnly = true;
      body.append(input);
    },
    submit: () => true,
  });
}

async function change(s, self, rerender) {
  const ok = await dialog({
    title: t("staff.change_title", { name: s.username }),
    build: (body) => {
      body.append(field({ label: t("staff.display_name"), name: "display_name", value: s.display_name, required: true, maxlength: 200 }));
      body.append(field({ label: t("staff.email"), name: "email", type: "email", value: s.email, maxlength: 254, hint: t("staff.email_hint") }));
      if (self) body.append(h("p", { class: "notice" }, t("staff.self_note")));
      else {
        body.append(
          field({ label: t("staff.role"), name: "role", type: "select", value: s.role, options: ROLES.map((r) => [r, t("role." + r)]) }),
          field({ label: t("staff.active"), name: "active", type: "checkbox", value: s.active, hint: t("staff.active_hint") }));
      }
    },
    submit: (v) => {
      const payload = { display_name: v.display_name.trim(), email: v.email.trim() };
      if (!self) {
        payload.role = v.role;
        payload.active = v.active;
      }
      return api("PATCH", `/staff/${encodeURIComponent(s.id)}`, payload);
    },
  });
  if (ok) { toast(t("staff.changed"), "good"); rerender(); }
}
