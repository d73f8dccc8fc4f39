// The console's plumbing: the staff API, strings, DOM building, time zones, dialogs.
// No framework; nothing is ever written as HTML from data (text nodes only).

const API = "/api/v1";

export const state = {
  // Shared by the tabs of this browser, like the session cookie it goes with.
  csrf: localStorage.getItem("console-csrf") || "",
  me: null, // {staff, via, actions}
  facility: null,
  lang: "en",
  strings: {},
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch (_) {
    throw new ApiError(0, "network", t("error.network"));
  }
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const err = (data && data.error) || {};
    const code = err.code || "http_" + response.status;
    // The session ended (expired, logged out elsewhere): back to the login form.
    if ((response.status === 401 && path !== "/login") || code === "csrf_failed") {
      window.dispatchEvent(new Event("console:signed-out"));
    }
    throw new ApiError(response.status, code, reasonText(code, err.message));
  }
  return data;
}

export function setCsrf(token) {
  state.csrf = token || "";
  if (token) localStorage.setItem("console-csrf", token);
  else localStorage.removeItem("console-csrf");
}

export function may(action) {
  return !!(state.me && state.me.actions && state.me.actions.includes(action));
}

// --- strings ---------------------------------------------------------------

export async function loadStrings(lang) {
  const response = await fetch(`/console/static/i18n/${lang}.json`, { cache: "no-cache" });
  state.strings = await response.json();
  state.lang = lang;
  document.documentElement.lang = lang;
  localStorage.setItem("console-lang", lang);
}

export function preferredLanguage() {
  const saved = localStorage.getItem("console-lang");
  if (saved === "en" || saved === "nb") return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const primary = tag.toLowerCase().split("-")[0];
    if (["nb", "no", "nn"].includes(primary)) return "nb";
    if (primary === "en") return "en";
  }
  return "en";
}

export function t(key, vars) {
  let text = state.strings[key];
  if (text === undefined) text = key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

// A count in words: "1 breach recorded", "3 breaches recorded" (keys KEY_one, KEY_other).
export function plural(key, n) {
  const form = new Intl.PluralRules(locale()).select(n);
  const text = state.strings[`${key}_${form}`] ?? state.strings[`${key}_other`];
  return text === undefined ? t(key, { n }) : text.split("{n}").join(String(n));
}

export function reasonText(code, fallback) {
  const key = "reason." + code;
  return state.strings[key] !== undefined ? state.strings[key] : fallback || code;
}

// A label for an enum value: category, control, relation, ground, status...
export function label(kind, value) {
  if (value === null || value === undefined || value === "") return "—";
  const key = `${kind}.${value}`;
  return state.strings[key] !== undefined ? state.strings[key] : String(value);
}

// --- DOM -------------------------------------------------------------------

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

let fieldSeq = 0;

// A labelled form field: {label, name, type, value, options:[[value,text]], hint, required}
export function field(spec) {
  const id = spec.id || `f-${spec.name}-${++fieldSeq}`;
  const hintId = spec.hint ? id + "-hint" : null;
  let control;
  if (spec.type === "select") {
    control = h("select", { id, name: spec.name, required: spec.required, disabled: spec.disabled, "aria-describedby": hintId },
      spec.options.map(([value, text]) => h("option", { value, selected: String(spec.value) === String(value) }, text)));
  } else if (spec.type === "textarea") {
    control = h("textarea", { id, name: spec.name, rows: spec.rows || 3, required: spec.required, maxlength: spec.maxlength, "aria-describedby": hintId });
    control.value = spec.value || "";
  } else if (spec.type === "checkbox") {
    control = h("input", { id, name: spec.name, type: "checkbox", checked: !!spec.value, disabled: spec.disabled, "aria-describedby": hintId });
    return h("div", { class: "field check" }, control, h("label", { for: id }, spec.label),
      spec.hint ? h("p", { class: "hint", id: hintId }, spec.hint) : null);
  } else {
    control = h("input", {
      id, name: spec.name, type: spec.type || "text", required: spec.required, min: spec.min, max: spec.max,
      step: spec.step, maxlength: spec.maxlength, autocomplete: spec.autocomplete || "off", "aria-describedby": hintId,
      disabled: spec.disabled,
    });
    if (spec.value !== undefined && spec.value !== null) control.value = spec.value;
  }
  return h("div", { class: "field" }, h("label", { for: id }, spec.label), control,
    spec.hint ? h("p", { class: "hint", id: hintId }, spec.hint) : null);
}

// Checkbox group in a fieldset with a legend.
export function checkboxes(legend, name, options, checked, hint) {
  return h("fieldset", { class: "checks" }, h("legend", {}, legend),
    hint ? h("p", { class: "hint" }, hint) : null,
    options.map(([value, text]) => {
      const id = `f-${name}-${value}-${++fieldSeq}`;
      return h("div", { class: "field check" },
        h("input", { type: "checkbox", id, name, value, checked: (checked || []).includes(value) }),
        h("label", { for: id }, text));
    }));
}

export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") {
      if (form.querySelectorAll(`input[type=checkbox][name="${el.name}"]`).length > 1) {
        out[el.name] = out[el.name] || [];
        if (el.checked) out[el.name].push(el.value);
      } else out[el.name] = el.checked;
    } else out[el.name] = el.value;
  }
  return out;
}

export function badge(text, tone) {
  return h("span", { class: `badge ${tone || ""}` }, text);
}

export function toast(message, tone) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast show ${tone || ""}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(hideToast, 5000);
}

export function hideToast() {
  document.getElementById("toast").className = "toast";
}

export function errorBox(err) {
  return h("p", { class: "error", role: "alert" }, err.message || String(err));
}

// A modal dialog: build(body) fills it; submit(values, form) may throw to show an error.
export function dialog({ title, okText, build, submit, danger }) {
  const dlg = document.getElementById("dialog");
  const body = clear(document.getElementById("dialog-body"));
  const form = document.getElementById("dialog-form");
  const error = document.getElementById("dialog-error");
  const ok = document.getElementById("dialog-ok");
  const cancel = document.getElementById("dialog-cancel");
  document.getElementById("dialog-h").textContent = title;
  ok.textContent = okText || t("action.save");
  ok.className = danger ? "btn danger" : "btn primary";
  cancel.textContent = t("action.cancel");
  error.textContent = "";
  build(body);
  return new Promise((resolve) => {
    const done = (value) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dlg.onclose = null;
      if (dlg.open) dlg.close();
      resolve(value);
    };
    form.onsubmit = async (event) => {
      event.preventDefault();
      error.textContent = "";
      ok.disabled = true;
      try {
        const result = await submit(formValues(form), form);
        done(result === undefined ? true : result);
      } catch (err) {
        error.textContent = err.message || String(err);
      } finally {
        ok.disabled = false;
      }
    };
    cancel.onclick = () => done(null);
    // The close event of a dialog just closed may arrive after the next one opened
    // (one dialog after another): only a close that left it closed cancels.
    dlg.onclose = () => { if (!dlg.open) done(null); };
    dlg.showModal();
    const first = body.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}

// --- time: everything is shown in the facility's time zone -----------------

export function zone() {
  return (state.facility && state.facility.timezone) || "UTC";
}

function parts(date, tz) {
  const fmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hourCycle: "h23",
  });
  const out = {};
  for (const p of fmt.formatToParts(date)) out[p.type] = p.value;
  return out;
}

// "YYYY-MM-DD" of an instant in the facility's zone.
export function dayOf(date) {
  const p = parts(date instanceof Date ? date : new Date(date), zone());
  return `${p.year}-${p.month}-${p.day}`;
}

export function today() {
  return dayOf(new Date());
}

export function addDays(day, n) {
  const d = new Date(day + "T12:00:00Z");
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// Monday of the ISO week of a day.
export function mondayOf(day) {
  const d = new Date(day + "T12:00:00Z");
  const back = (d.getUTCDay() + 6) % 7;
  return addDays(day, -back);
}

function offsetMs(instant, tz) {
  const p = parts(new Date(instant), tz);
  const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
  return asUtc - Math.floor(instant / 1000) * 1000;
}

// A wall-clock date and time in the facility's zone to an instant (Date).
export function zonedInstant(day, time) {
  const [y, m, d] = day.split("-").map(Number);
  const [hh, mm] = time.split(":").map(Number);
  const wall = Date.UTC(y, m - 1, d, hh, mm);
  let guess = wall - offsetMs(wall, zone());
  guess = wall - offsetMs(guess, zone());
  return new Date(guess);
}

export function minutesOfDay(date) {
  const p = parts(date instanceof Date ? date : new Date(date), zone());
  return +p.hour * 60 + +p.minute;
}

export function fmtTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale(), { timeZone: zone(), hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
    .format(new Date(iso));
}

export function fmtDateTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale(), {
    timeZone: zone(), year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).format(new Date(iso));
}

export function fmtDay(day, long) {
  const text = new Intl.DateTimeFormat(locale(), {
    timeZone: "UTC", weekday: long ? "long" : "short", day: "numeric", month: long ? "long" : "short",
    year: long ? "numeric" : undefined,
  }).format(new Date(day + "T12:00:00Z"));
  return long ? text.charAt(0).toUpperCase() + text.slice(1) : text;
}

// The facility's time zone named in the reader's language: "Norwegian time", "norsk tid".
export function zoneName() {
  const key = "zone." + zone();
  if (state.strings[key] !== undefined) return state.strings[key];
  try {
    const named = new Intl.DateTimeFormat(locale(), { timeZone: zone(), timeZoneName: "longGeneric" })
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName");
    return named ? named.value : zone();
  } catch (_) {
    return zone();
  }
}

export function locale() {
  return state.lang === "nb" ? "nb-NO" : "en-GB";
}

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  const r = s % 60;
  return `${m}:${String(r).padStart(2, "0")}`;
}

export function isoUtc(date) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}
