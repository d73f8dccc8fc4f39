// Names behind ids (inmates, contacts, tablets), read once per screen and cached briefly,
// and the domain facts the console shows (mirrors of kiosk/domain/model.py, for display only:
// the API decides).
import { api } from "./core.js";

export const CATEGORIES = ["personal", "defence_counsel", "police", "court", "official"];
// R5 / R13: only these categories may ever be put under control; the form offers nothing else.
export const CONTROLLABLE = ["personal", "official"];
export const PRIVILEGED = ["defence_counsel", "police"];
export const CONTROLS = ["none", "sight", "hearing", "sight_and_hearing"];
export const GROUNDS = [
  "sexual_offence", "abuse_in_home", "witness_tampering", "domestic_violence", "threats", "drugs",
  "escape_risk", "other",
];
export const RELATIONS = ["child", "parent", "partner", "sibling", "other_family", "friend", "professional"];
export const LIVE_BOOKING = ["booked", "held", "used"];
// R9: a used booking's call has ended, and its slot is free again (kiosk/domain/policy/outlook.py).
export const HOLDING_CAPACITY = ["booked", "held"];

// R6: what staff may receive under each control level.
export function mediaKinds(control) {
  return { sight: ["video"], hearing: ["audio"], sight_and_hearing: ["video", "audio"] }[control] || [];
}

const cache = { inmates: null, contacts: new Map(), devices: null, at: 0 };

export function forget() {
  cache.inmates = null;
  cache.devices = null;
  cache.contacts.clear();
}

export async function inmates() {
  if (!cache.inmates || Date.now() - cache.at > 30000) {
    const list = await api("GET", "/inmates");
    cache.inmates = new Map(list.items.map((i) => [i.id, i]));
    cache.at = Date.now();
  }
  return cache.inmates;
}

export async function devices() {
  const list = await api("GET", "/devices");
  cache.devices = new Map(list.items.map((d) => [d.id, d]));
  return cache.devices;
}

export async function contact(id) {
  if (!cache.contacts.has(id)) {
    cache.contacts.set(id, api("GET", `/contacts/${encodeURIComponent(id)}`).catch(() => null));
  }
  return cache.contacts.get(id);
}

export async function contactsFor(ids) {
  const out = new Map();
  await Promise.all([...new Set(ids)].map(async (id) => out.set(id, await contact(id))));
  return out;
}

export function rememberContact(c) {
  cache.contacts.set(c.id, Promise.resolve(c));
}
