// Client-side model of the facility: the site model, latest point values (with a short history
// for trend charts: live samples since the page loaded, seeded on demand with the server's
// recent history of the point), redundancy, alarms and incidents. Views subscribe to topics and
// re-render when the server pushes changes over the live stream.

import { get, stream } from './api.js';

const HISTORY = 720;
/// How far back a detail panel's trends reach when seeded from the server.
const SEED_MS = 3600_000;
/// At most this many history requests per detail panel (sent in parallel).
const SEED_MAX = 12;

export const state = {
  me: null,
  site: null,
  byId: new Map(),
  points: new Map(), // `${device}|${role}` -> {value, ts_ms, quality, device, role, point}
  history: new Map(), // same key -> [[ts, number], ...]
  redundancy: null,
  compState: new Map(), // id -> {state, available, supply[]}
  alarms: [],
  flooding: false,
  incidents: [],
  events: [],
  pue: [], // [[ts, pue]]
  live: 'connecting',
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

/// Authority control: why an action kind (`device_command`, `maintenance`, `alarm_shelve`, ...)
/// is refused now, or null when it is allowed.
export function refusedWhy(kind) {
  const a = state.authority;
  if (!a || !a.active) return null;
  const r = (a.refused_actions ?? []).find((x) => x.kind === kind);
  return r ? `Refused under authority control: ${r.why} while the fire authority is in command.` : null;
}

export async function loadEvents() {
  const r = await get('/api/events?limit=500');
  state.events = r.events ?? [];
  emit('events');
}

/// Facility power (utility feeds) over IT power (racks).
export function computePue() {
  if (!state.site) return null;
  let facility = 0;
  let it = 0;
  let haveF = false;
  let haveI = false;
  for (const c of state.site.components) {
    if (c.kind === 'utility_feed') {
      const v = compValue(c, 'feed.power_kw');
      if (typeof v === 'number') {
        facility += v;
        haveF = true;
      }
    } else if (c.kind === 'rack') {
      const v = compValue(c, 'it.power_kw');
      if (typeof v === 'number') {
        it += v;
        haveI = true;
      }
    }
  }
  if (!haveF || !haveI || it <= 0) return null;
  return { facility, it, pue: facility / it };
}

const refreshRedundancy = throttle(loadRedundancy, 250);
const refreshAlarms = throttle(loadAlarms, 250);
const refreshIncidents = throttle(loadIncidents, 500);
const refreshEvents = throttle(loadEvents, 1000);
const pointsChanged = throttle(async () => {
  const p = computePue();
  if (p) {
    state.pue.push([Date.now(), p.pue]);
    if (state.pue.length > HISTORY) state.pue.shift();
  }
  emit('points');
}, 250);

let es = null;
export async function start() {
  const [site, pts] = await Promise.all([get('/api/site'), get('/api/points?limit=100000')]);
  state.site = site.site;
  state.byId = new Map(state.site.components.map((c) => [c.id, c]));
  for (const p of pts.points ?? []) setPoint(p, p.agent);
  const p = computePue();
  if (p) state.pue.push([Date.now(), p.pue]);
  await Promise.all([loadRedundancy(), loadAlarms(), loadIncidents(), loadEvents()]);
  if (es) es.close();
  es = stream(
    {
      points: (d) => {
        for (const smp of d.samples ?? []) setPoint(smp, d.agent);
        pointsChanged();
        refreshRedundancy();
      },
      alarm: () => refreshAlarms(),
      incident: () => refreshIncidents(),
      event: () => refreshEvents(),
      authority: (d) => {
        state.authority = d;
        emit('authority');
      },
      lagged: () => {
        loadAuthority().catch((e) => console.warn('authority refresh failed:', e.message));
        refreshRedundancy();
        refreshAlarms();
        refreshIncidents();
      },
    },
    (st) => {
      state.live = st;
      emit('live');
    },
  );
}

export function stop() {
  if (es) es.close();
  es = null;
}

export { emit };
