// Fire stages as people read them: every label comes from the stage table the server serves
// (`GET /api/fire/stages`, the firmware's STAGE_TABLE), never from the raw code. Each code 0-6
// has its own colour class `stage-N`; the higher the stage, the heavier its mark (stripes from
// the agent on, the room gas the strongest), so the most severe is always the most visible.

import { h, fmtTime, ago, withUnit } from './ui.js';
import { state, compPoint, readingStale } from './state.js';

/// The stage table row of a code, or undefined.
export function stageInfo(code) {
  return state.stages?.stages?.[code];
}

/// The name of a stage code: "Power cut and fire blanket". A code outside the table is shown
/// as such, never as a healthy state.
export function stageName(code) {
  if (code === null || code === undefined || code === '') return 'No stage reading';
  const info = stageInfo(Number(code));
  if (info) return info.name;
  return state.stages ? `Unknown stage code ${code}` : `Stage code ${code} (stage table not loaded)`;
}

/// The CSS class of a stage code (`stage-x`: no reading).
export function stageClass(code) {
  return code === null || code === undefined || code === '' || !(Number(code) >= 0 && Number(code) <= 6) ? 'stage-x' : `stage-${Number(code)}`;
}

/// A coloured chip with the stage's name.
export function stageChip(code, extra = '') {
  return h(`span.chip.stagechip.${stageClass(code)}${extra}`, { 'data-stage': code ?? '' }, stageName(code));
}

/// The human name of an action key (`contactor_open` -> "Power cut (battery contactor opened)").
export function actionName(key) {
  return state.stages?.actions?.find((a) => a.key === key)?.name ?? key.replace(/_/g, ' ');
}

/// The stage code of a `fire.stage` value (a number, or a profile's text label).
export function stageCode(v) {
  if (typeof v === 'number' && v >= 0 && v < 7) return Math.floor(v);
  if (typeof v === 'string') {
    if (v === 'normal') return 0;
    if (v === 'pre_alarm') return 1;
    const m = v.match(/^stage([1-5])/);
    if (m) return Number(m[1]) + 1;
  }
  return null;
}

/// The stage to draw for a component, from its `fire.stage` reading: null for no reading, and
/// for a stale or bad reading at normal (never drawn healthy); a stale reading at a fire stage
/// keeps its stage (a burning rack that went silent stays marked).
export function stageOf(c) {
  const p = compPoint(c, 'fire.stage');
  if (!p) return null;
  const code = stageCode(p.value);
  if (code === 0 && readingStale(p)) return null;
  return code;
}

/// The fire summary's entry of a component (a rack or battery room in a stage), if any.
export function fireEntry(id) {
  return state.fire?.racks?.find((r) => r.id === id);
}

/// Where a component is, in words: "demo › hall-1 › row h1-02 › position 7".
export function placeText(id, { building = false } = {}) {
  const p = state.places?.[id];
  if (!p) return 'place not in the site model';
  const parts = [];
  if (building && p.building) parts.push(p.building);
  if (p.room) parts.push(p.room_name ? `${p.room} (${p.room_name})` : p.room);
  if (p.row) parts.push(`row ${p.row.replace(/^row-/, '')}`);
  if (p.position) parts.push(`position ${p.position}`);
  if (p.zone && !p.room) parts.push(`zone ${p.zone}`);
  return parts.length ? parts.join(' › ') : 'place not in the site model';
}

/// The trigger of a fire entry in words: "68.4 °C, BMS highest cell temperature".
export function triggerText(t) {
  if (!t) return 'not reported';
  const v = t.value_c === null || t.value_c === undefined ? '' : `${withUnit(t.value_c, 'degC')}, `;
  const basis = t.basis === 'reading' ? ' (highest reading now; the controller did not report why)' : '';
  return `${v}${t.source_name}${t.detail ? ` — ${t.detail}` : ''}${basis}`;
}

/// A list of the actions of a fire entry with their feedback.
export function actionList(entry) {
  return h('ul.actions', null, (entry.actions ?? []).map((a) => {
    const f = a.feedback;
    let mark = 'commanded';
    let cls = 'cmd';
    if (f && f.confirmed === true && !f.stale) {
      mark = 'confirmed';
      cls = 'ok';
    } else if (f && f.confirmed === false && !f.stale) {
      mark = 'NOT confirmed';
      cls = 'bad';
    } else if (f && f.stale) {
      mark = 'feedback stale';
      cls = 'bad';
    }
    return h(`li.act-${cls}`, { 'data-action': a.key }, h('span.actname', null, a.name), ' ', h(`span.actmark.${cls}`, null, mark));
  }));
}

/// Since when an entry is in its stage: time with zone and a counting age.
export function sinceNode(entry) {
  if (!entry?.since_ms) return h('span.muted', null, 'entry time not reported');
  return h('span', null, `${entry.since_basis === 'history' ? 'about ' : ''}${fmtTime(entry.since_ms, { tz: true })} (`, ago(entry.since_ms), ')');
}

/// Whether the component's stage reading is missing or not current.
export function stageStale(c) {
  return readingStale(compPoint(c, 'fire.stage'));
}

/// The legend of all stages, most severe first.
export function stageLegend() {
  const codes = [6, 5, 4, 3, 2, 1, 0];
  return h('p.legend.stage-legend', null, codes.map((c) => stageChip(c)), stageChip(null));
}

/// An event's text for people: a stage event by the stage's name from the table (whatever the
/// agent wrote), with its trigger when reported; others as the agent wrote them.
export function eventText(e) {
  const d = e?.data ?? {};
  if (e?.kind === 'fire.stage') {
    let code = typeof d.stage_code === 'number' ? d.stage_code : null;
    if (code === null && typeof d.stage === 'string') code = stageCode(d.stage);
    if (code !== null && code >= 0) {
      const t = d.trigger ? ` — ${triggerText({ ...d.trigger, source_name: sourceName(d.trigger.source) })}` : '';
      return `fire stage entered: ${stageName(code)}${t}`;
    }
  }
  return e?.message ?? '';
}

const SOURCES = {
  bms_max: 'BMS highest cell temperature', rack_temp1: 'rack temperature sensor 1', rack_temp2: 'rack temperature sensor 2',
  camera_max: 'thermal camera hot spot', smoke: 'smoke detector', offgas: 'off-gas detector', governing: 'governing temperature', manual: 'manual release',
};
function sourceName(k) {
  return SOURCES[k] ?? k ?? 'unknown source';
}
