// The console shell: log in, the navigation the role may use, and the hash router.
import {
  api, ApiError, clear, field, h, hideToast, loadStrings, may, preferredLanguage, setCsrf, state, t,
  toast, zoneName,
} from "./core.js";
import { forget } from "./data.js";
import { renderBoard } from "./board.js";
import { renderCalendar } from "./calendar.js";
import { renderInmate, renderInmates } from "./inmates.js";
import { renderNewBooking } from "./booking.js";
import { renderDevices } from "./devices.js";
import { renderFacility } from "./facility.js";
import { renderAudit } from "./audit.js";
import { renderStaff } from "./staff.js";
import { renderMonitor } from "./monitor.js";
import { queueCount, renderQueue } from "./queue.js";
import { changeOwnPassword } from "./password.js";

// Each screen: the hash, the action needed to see it, its renderer.
const SCREENS = [
  { path: "board", action: "call.read", render: renderBoard, nav: true },
  { path: "queue", action: "contact.decide", render: renderQueue, nav: true },
  { path: "calendar", action: "booking.read", render: renderCalendar, nav: true },
  { path: "inmates", action: "inmate.read", render: renderInmates, nav: true },
  { path: "book", action: "booking.write", render: renderNewBooking, nav: true },
  { path: "devices", action: "device.read", render: renderDevices, nav: true },
  { path: "facility", action: "facility.read", render: renderFacility, nav: true },
  { path: "staff", action: "staff.read", render: renderStaff, nav: true },
  { path: "audit", action: "audit.read", render: renderAudit, nav: true },
  { path: "inmate", action: "inmate.read", render: renderInmate, parent: "inmates" },
  { path: "monitor", action: "call.monitor", render: renderMonitor, parent: "board" },
];

let cleanup = null;

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, ...rest] = hash.split("?")[0].split("/");
  const query = new URLSearchParams(hash.split("?")[1] || "");
  return { path: path || "board", args: rest.map(decodeURIComponent), query };
}

async function show() {
  if (cleanup) {
    const fn = cleanup;
    cleanup = null;
    try { fn(); } catch (_) { /* a screen's clean-up never blocks the next */ }
  }
  const main = clear(document.getElementById("main"));
  if (!state.me) return renderLogin(main);
  const { path, args, query } = route();
  const screen = SCREENS.find((s) => s.path === path && may(s.action)) ||
    SCREENS.find((s) => s.nav && may(s.action));
  document.body.dataset.view = screen.path;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.path === (screen.parent || screen.path)) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    const result = await screen.render(main, { args, query });
    if (typeof result === "function") cleanup = result;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return signedOut();
    main.appendChild(h("p", { class: "error", role: "alert" }, err.message || String(err)));
  }
  showQueueCount();
  const heading = main.querySelector("h1");
  document.title = `${heading ? heading.textContent + " – " : ""}${t("app.title")}`;
}

function renderShell() {
  const top = document.getElementById("top");
  top.hidden = !state.me;
  document.getElementById("skip-link").textContent = t("app.skip");
  document.getElementById("btn-logout").textContent = t("action.logout");
  document.getElementById("btn-password").textContent = t("action.password");
  const lang = clear(document.getElementById("lang"));
  lang.setAttribute("aria-label", t("app.language"));
  lang.append(...languageButtons().childNodes);
  if (!state.me) return;
  document.getElementById("facility-name").textContent = state.facility ? state.facility.name : t("app.title");
  document.getElementById("who").textContent =
    `${state.me.staff.display_name} · ${t("role." + state.me.staff.role)}`;
  // One time everywhere: every time on every screen is the facility's, and the bar says so.
  document.getElementById("zone-note").textContent = t("app.times_in", { zone: zoneName() });
  const nav = clear(document.getElementById("nav"));
  const list = h("ul", {});
  for (const screen of SCREENS.filter((s) => s.nav && may(s.action))) {
    list.appendChild(h("li", {}, h("a", { href: `#/${screen.path}`, dataset: { path: screen.path } }, t(`nav.${screen.path}`))));
  }
  nav.appendChild(list);
}

// The number of things waiting for the visit office, beside "Work queue" in the navigation.
async function showQueueCount() {
  const link = document.querySelector("#nav a[data-path=queue]");
  if (!link) return;
  const n = await queueCount();
  const old = link.querySelector(".count");
  if (old) old.remove();
  if (n) link.append(h("span", { class: "count" }, String(n), h("span", { class: "sr" }, " " + t("queue.waiting"))));
}

function languageButtons(className) {
  const group = h("div", { class: className || "", role: "group", "aria-label": t("app.language") });
  for (const [code, name] of [["en", "English"], ["nb", "Norsk bokmål"]]) {
    group.appendChild(h("button", {
      type: "button", class: "btn ghost small", lang: code, "aria-pressed": String(state.lang === code),
      onclick: async () => { await loadStrings(code); renderShell(); show(); },
    }, code === "en" ? "EN" : "NB", h("span", { class: "sr" }, " " + name)));
  }
  return group;
}

function renderLogin(main) {
  document.body.dataset.view = "login";
  document.title = t("login.title") + " – " + t("app.title");
  const error = h("p", { class: "error", role: "alert", id: "login-error" });
  const form = h("form", { class: "card login", id: "login-form", novalidate: true },
    h("h1", {}, t("login.title")),
    h("p", { class: "lede" }, t("login.lede")),
    field({ label: t("login.username"), name: "username", autocomplete: "username", required: true, id: "login-username" }),
    field({ label: t("login.password"), name: "password", type: "password", autocomplete: "current-password", required: true, id: "login-password" }),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "btn primary", id: "login-submit" }, t("login.submit"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const username = form.elements.username.value.trim();
    const password = form.elements.password.value;
    if (!username || !password) {
      error.textContent = t("login.missing");
      return;
    }
    try {
      const result = await api("POST", "/login", { username, password });
      setCsrf(result.csrf_token);
      await start();
    } catch (err) {
      error.textContent = err.message;
      form.elements.password.value = "";
      form.elements.password.focus();
    }
  });
  main.appendChild(h("div", { class: "login-wrap" },
    h("p", { class: "login-brand" }, h("span", { class: "brand-mark", "aria-hidden": "true" }), t("app.title")),
    form, languageButtons("login-lang")));
  renderShell();
  form.elements.username.focus();
}

function signedOut() {
  state.me = null;
  setCsrf("");
  forget();
  renderShell();
  show();
}

async function start() {
  try {
    state.me = await api("GET", "/me");
  } catch (err) {
    state.me = null;
    if (!(err instanceof ApiError && err.status === 401)) toast(err.message, "bad");
  }
  // The console works by session only, and needs the CSRF token its login returned.
  if (state.me && (state.me.via !== "session" || !state.csrf)) state.me = null;
  if (state.me) {
    try {
      state.facility = await api("GET", "/facility");
    } catch (_) {
      state.facility = null;
    }
  }
  renderShell();
  await show();
}

document.getElementById("btn-logout").addEventListener("click", async () => {
  try {
    await api("POST", "/logout");
  } catch (_) {
    // Already gone: log out here anyway.
  }
  signedOut();
  toast(t("login.logged_out"));
});

document.getElementById("btn-password").addEventListener("click", () => changeOwnPassword());

// The skip link moves focus without touching the address (the hash is the router's).
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});

window.addEventListener("hashchange", () => { hideToast(); show(); });
window.addEventListener("console:signed-out", () => {
  if (!state.me) return;
  signedOut();
  toast(t("login.expired"), "bad");
});

// A screen asks for a fresh render (after it changed something).
window.addEventListener("console:refresh", () => show());
window.addEventListener("console:facility", async () => {
  state.facility = await api("GET", "/facility");
  renderShell();
});

(async () => {
  await loadStrings(preferredLanguage());
  await start();
})();
