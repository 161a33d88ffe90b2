// Client-side model of the facility: the site model (with its floor plans) and places, latest
// point values (with a short history for trend charts: live samples since the page loaded,
// seeded on demand with the server's recent history of the point), redundancy, alarms,
// incidents, maintenance and the maintenance windows, PUE as the server computes it, the fire
// summary, the stage table, the role vocabulary and the alarm rules. Views subscribe to topics
// and re-render when the server pushes changes over the live stream.
//
// Liveness: `state.live` says whether the live stream is open and when anything was last heard
// (heartbeats included). Without word from the server for STALE_MS, or with the stream down,
// `state.stale` is set (topic 'live'): the shell shows it across the page and greys live values.
// When the stream is back, everything is loaded again before `stale` clears.

import { get } from './api.js';
import { openLive } from './live.js';
import { t, tOr } from './i18n.js';

const HISTORY = 720;
/// How far back a detail panel's trends reach when seeded from the server.
const SEED_MS = 3600_000;
/// At most this many history requests per detail panel (sent in parallel).
const SEED_MAX = 12;
/// No word from the server for this long is a lost stream (heartbeats come every 1.5 s).
export const STALE_MS = 4000;

export const state = {
  me: null,
  site: null,
  byId: new Map(),
  places: {}, // id -> {building, room, room_name, row, position, zone}
  points: new Map(), // `${device}|${role}` -> {value, ts_ms, quality, device, role, point}
  history: new Map(), // same key -> [[ts, number], ...]
  redundancy: null,
  redundancyAt: 0, // when the redundancy evaluation was loaded (ms)
  compState: new Map(), // id -> {state, available, supply[]}
  alarms: [],
  flooding: false,
  incidents: [],
  events: [],
  maintenance: new Set(),
  windows: [], // GET /api/maintenance/windows
  energy: null, // GET /api/energy/pue: {now, history}
  fire: null, // GET /api/fire/summary
  stages: null, // GET /api/fire/stages: {stages: [...], actions: [...]}
  roles: new Map(), // role name -> {unit, description, kind}
  rules: new Map(), // alarm rule id -> rule (with `role`)
  live: { state: 'connecting', lastMsgMs: 0, opened: 0, shared: false },
  stale: false,
  lastDataMs: 0, // last time anything was heard from the server, or data loaded
  authority: null, // GET /api/authority: {active, since_ms, cause, keys_on, refused_actions}
};

const subs = new Map();
export function on(topic, fn) {
  if (!subs.has(topic)) subs.set(topic, new Set());
  subs.get(topic).add(fn);
  return () => subs.get(topic).delete(fn);
}
function emit(topic) {
  for (const fn of subs.get(topic) ?? []) {
    try {
      fn();
    } catch (e) {
      console.warn(`view update (${topic}) failed:`, e);
    }
  }
}

export const key = (device, role) => `${device}|${role}`;

export function point(device, role) {
  return state.points.get(key(device, role));
}

/// Latest value of a component's binding with `role`.
export function compValue(c, role) {
  const b = (c.bindings ?? []).find((x) => x.role === role);
  if (!b) return undefined;
  return point(b.device, role)?.value;
}

/// The latest reading of a component's binding with `role` ({value, ts_ms, quality, ...}).
export function compPoint(c, role) {
  const b = (c.bindings ?? []).find((x) => x.role === role);
  return b ? point(b.device, role) : undefined;
}

/// Whether a reading cannot be taken at face value: missing, not of good quality, or older
/// than the site's `stale_after_ms`.
export function readingStale(p, now = Date.now()) {
  if (!p || p.value === null || p.value === undefined) return true;
  if (p.quality && p.quality !== 'good') return true;
  return now - (p.ts_ms ?? 0) > (state.site?.stale_after_ms ?? 30000);
}

/// The vocabulary entry of a role: {unit, description, kind}; the description in the
/// console's language when the catalogue has it, else the server's.
export function roleInfo(role) {
  const r = state.roles.get(role) ?? { unit: '', description: role, kind: '' };
  return { ...r, description: tOr(`srv.role.${role}`, r.description ?? role) };
}

function setPoint(p, agent) {
  const k = key(p.device, p.role);
  state.points.set(k, { ...p, agent });
  const v = typeof p.value === 'boolean' ? (p.value ? 1 : 0) : p.value;
  if (typeof v === 'number') {
    let hst = state.history.get(k);
    if (!hst) state.history.set(k, (hst = []));
    hst.push([p.ts_ms ?? Date.now(), v]);
    if (hst.length > HISTORY) hst.splice(0, hst.length - HISTORY);
  }
}

// `${device}|${role}` -> 'pending' | 'done': each point's history is fetched once per page.
const seeded = new Map();

/// Seeds the trend history of points (`[[device, role], ...]`, most wanted first; at most
/// SEED_MAX of them) with the last hour from `GET /api/points/{device}/{point}/history`, in
/// parallel and in the background: the caller renders at once, and topic 'history' is emitted
/// for each point that gained samples. Only points the server has reported are asked for; a
/// failed or empty answer leaves the live-only history.
export function seedHistory(pairs) {
  const todo = [];
  for (const [device, role] of pairs) {
    const k = key(device, role);
    const p = state.points.get(k);
    const v = p?.value;
    if (seeded.has(k) || !p?.point || (typeof v !== 'number' && typeof v !== 'boolean')) continue;
    if (todo.some((t) => t.k === k)) continue;
    todo.push({ k, p });
    if (todo.length >= SEED_MAX) break;
  }
  for (const { k, p } of todo) {
    seeded.set(k, 'pending');
    const q = new URLSearchParams({ from: String(Date.now() - SEED_MS) });
    if (p.site) q.set('site', p.site);
    get(`/api/points/${encodeURIComponent(p.device)}/${encodeURIComponent(p.point)}/history?${q}`)
      .then((r) => {
        seeded.set(k, 'done');
        if (mergeHistory(k, r?.buckets ?? [], r?.resolution_ms ?? 60_000)) emit('history');
      })
      .catch((e) => {
        // 404 (the server has no such point any more): live samples only. Other failures may
        // be transient: a later panel may ask again.
        if (e?.status === 404) seeded.set(k, 'done');
        else seeded.delete(k);
        console.warn(`history of ${k} not loaded:`, e?.message ?? e);
      });
  }
}

/// Puts the server's buckets (`{t_ms, n, min, max, last}`) that end before the first live
/// sample in front of the live history, one point per bucket at its start with its last value
/// (the chart holds a value until the next one). Returns whether anything was added.
export function mergeHistory(k, buckets, resolutionMs) {
  const live = state.history.get(k) ?? [];
  const liveStart = live.length ? live[0][0] : Infinity;
  const older = [];
  for (const b of buckets) {
    if (!b || typeof b.t_ms !== 'number' || typeof b.last !== 'number' || !Number.isFinite(b.last)) continue;
    if (b.n === 0 || b.t_ms + resolutionMs > liveStart) continue;
    if (older.length && b.t_ms <= older[older.length - 1][0]) continue;
    older.push([b.t_ms, b.last]);
  }
  if (!older.length) return false;
  const merged = older.concat(live);
  if (merged.length > HISTORY) merged.splice(0, merged.length - HISTORY);
  state.history.set(k, merged);
  return true;
}

function throttle(fn, ms) {
  let busy = false;
  let again = false;
  const schedule = () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    again = false;
    Promise.resolve()
      .then(fn)
      .catch((e) => console.warn('refresh failed:', e.message))
      .finally(() =>
        setTimeout(() => {
          busy = false;
          if (again) schedule();
        }, ms),
      );
  };
  return schedule;
}

export async function loadRedundancy() {
  const [sub, comp] = await Promise.all([
    get('/api/site/redundancy'),
    get('/api/site/redundancy?components=true'),
  ]);
  state.redundancy = sub;
  state.redundancyAt = Date.now();
  state.compState = new Map((comp.components ?? []).map((c) => [c.id, c]));
  emit('redundancy');
}

export async function loadAlarms() {
  const r = await get('/api/alarms');
  state.alarms = r.alarms ?? [];
  state.flooding = !!r.flooding;
  emit('alarms');
}

export async function loadIncidents() {
  const r = await get('/api/incidents');
  state.incidents = r.incidents ?? [];
  emit('incidents');
}

export async function loadAuthority() {
  const r = await get('/api/authority');
  state.authority = r.authority ?? null;
  emit('authority');
}

export async function loadMaintenance() {
  const r = await get('/api/maintenance');
  state.maintenance = new Set(r.maintenance ?? []);
  emit('maintenance');
}

export async function loadWindows() {
  const r = await get('/api/maintenance/windows');
  state.windows = r.windows ?? [];
  emit('windows');
}

/// PUE now and over the last hour, as the server computes it.
export async function loadEnergy() {
  state.energy = await get(`/api/energy/pue?from=${Date.now() - 3600_000}&step=60000`);
  emit('energy');
}

/// The active maintenance window covering a subject, if any.
export function windowOf(subject) {
  return state.windows.find((w) => w.status === 'active' && w.subjects.includes(subject));
}

/// Scheduled (not yet started) windows of a subject, soonest first.
export function upcomingWindows(subject) {
  return state.windows.filter((w) => w.status === 'scheduled' && w.subjects.includes(subject)).sort((a, b) => a.from_ms - b.from_ms);
}

export async function loadFire() {
  state.fire = await get('/api/fire/summary');
  emit('fire');
}

/// Authority control: why an action kind (`device_command`, `maintenance`, `alarm_shelve`, ...)
/// is refused now, or null when it is allowed.
export function refusedWhy(kind) {
  const a = state.authority;
  if (!a || !a.active) return null;
  const r = (a.refused_actions ?? []).find((x) => x.kind === kind);
  return r ? t('authority.refusedWhy', { why: tOr(`refused.${kind}`, r.why) }) : null;
}

export async function loadEvents() {
  const r = await get('/api/events?limit=500');
  state.events = r.events ?? [];
  emit('events');
}

async function loadPoints() {
  const pts = await get('/api/points?limit=100000');
  for (const p of pts.points ?? []) setPoint(p, p.agent);
}

/// The tables that do not change while the server runs: stage table, roles, alarm rules,
/// places. A failure leaves the console usable (names fall back to what the API sent).
async function loadStatic() {
  const tries = await Promise.allSettled([get('/api/fire/stages'), get('/api/roles'), get('/api/alarm-rules'), get('/api/site/places')]);
  const [st, ro, ru, pl] = tries.map((t) => (t.status === 'fulfilled' ? t.value : null));
  if (st) state.stages = st;
  if (ro) state.roles = new Map((ro.roles ?? []).map((r) => [r.name, r]));
  if (ru) state.rules = new Map((ru.rules ?? []).map((r) => [r.id, r]));
  if (pl) state.places = pl.places ?? {};
  for (const t of tries) if (t.status === 'rejected') console.warn('table not loaded:', t.reason?.message);
}

const refreshRedundancy = throttle(loadRedundancy, 250);
const refreshAlarms = throttle(loadAlarms, 250);
const refreshIncidents = throttle(loadIncidents, 500);
const refreshEvents = throttle(loadEvents, 1000);
const refreshMaintenance = throttle(loadMaintenance, 1000);
export const refreshFire = throttle(loadFire, 1500);
const refreshWindows = throttle(loadWindows, 500);
const refreshEnergy = throttle(loadEnergy, 5000);
const pointsChanged = throttle(async () => {
  emit('points');
}, 250);

/// Roles whose change may change the fire summary.
const FIRE_ROLES = /^(fire\.|drain_tank\.|battery\.cell_temp|rack\.temp|camera\.)/;

let live = null;
let resyncing = false;

/// Everything the views show, loaded again (at start, and when the stream is back).
async function loadAll() {
  await Promise.all([loadPoints(), loadRedundancy(), loadAlarms(), loadIncidents(), loadEvents(), loadMaintenance(), loadWindows(),
    loadFire().catch((e) => console.warn('fire summary:', e.message)), loadEnergy().catch((e) => console.warn('energy:', e.message))]);
  state.lastDataMs = Date.now();
  emit('points');
}

function onLiveEvent(name, d, at) {
  state.lastDataMs = Math.max(state.lastDataMs, at ?? Date.now());
  state.live.lastMsgMs = state.lastDataMs;
  switch (name) {
    case 'points': {
      let fire = false;
      for (const smp of d.samples ?? []) {
        setPoint(smp, d.agent);
        if (FIRE_ROLES.test(smp.role)) fire = true;
      }
      pointsChanged();
      refreshRedundancy();
      refreshEnergy();
      if (fire) refreshFire();
      break;
    }
    case 'maintenance':
      refreshWindows();
      refreshMaintenance();
      break;
    case 'redundancy':
      // A level changed at the server's tick: also without any new sample (a component
      // Unknown for longer than down_after turning Down, a level becoming unverified).
      refreshRedundancy();
      break;
    case 'alarm':
      refreshAlarms();
      refreshMaintenance();
      break;
    case 'incident':
      refreshIncidents();
      break;
    case 'event':
      refreshEvents();
      if (String(d?.kind ?? '').startsWith('fire.')) refreshFire();
      break;
    case 'authority':
      state.authority = d;
      emit('authority');
      break;
    case 'lagged':
      loadAuthority().catch((e) => console.warn('authority refresh failed:', e.message));
      refreshWindows();
      refreshRedundancy();
      refreshAlarms();
      refreshIncidents();
      refreshFire();
      break;
    default:
      break;
  }
  checkStale();
}

function onLiveStatus(st) {
  const wasOpen = state.live.state === 'open';
  state.live = { ...state.live, ...st };
  if (st.lastMsgMs) state.lastDataMs = Math.max(state.lastDataMs, st.lastMsgMs);
  emit('live');
  // Back after a loss: reload everything that may have changed meanwhile, then clear.
  if (st.state === 'open' && !wasOpen && state.stale) resync();
  checkStale();
}

async function resync() {
  if (resyncing) return;
  resyncing = true;
  try {
    await Promise.all([loadAll(), loadAuthority()]);
    resyncing = false;
    checkStale();
  } catch (e) {
    resyncing = false;
    console.warn('reload after reconnection failed:', e.message);
    setTimeout(() => state.stale && state.live.state === 'open' && resync(), 2000);
  }
}

/// Sets `state.stale` from the stream's state and the time of the last word from the server.
export function checkStale(now = Date.now()) {
  // Just opened: the stream has STALE_MS to connect before that counts as lost.
  const heard = Math.max(state.live.lastMsgMs || 0, startedMs);
  const silent = now - heard > STALE_MS;
  const connecting = state.live.state === 'connecting' && !silent;
  const stale = !live || (state.live.state !== 'open' && !connecting) || silent || resyncing;
  if (stale !== state.stale) {
    state.stale = stale;
    emit('stale');
  }
}

let ticker = null;
let startedMs = 0;
export async function start() {
  const site = await get('/api/site');
  state.site = site.site;
  state.byId = new Map(state.site.components.map((c) => [c.id, c]));
  await Promise.all([loadStatic(), loadAll()]);
  startedMs = Date.now();
  if (live) live.restart();
  else live = openLive(onLiveEvent, onLiveStatus);
  state.live.shared = live.shared;
  if (!ticker) ticker = setInterval(() => checkStale(), 500);
}

/// Stops this tab's use of the live stream. `reauth`: the session ended (sign-out), so the
/// browser's shared connection reconnects and is refused for every tab.
export function stop(reauth = false) {
  if (live && reauth) live.restart();
  if (live) live.close();
  live = null;
  clearInterval(ticker);
  ticker = null;
  state.stale = false;
}

export { emit };
