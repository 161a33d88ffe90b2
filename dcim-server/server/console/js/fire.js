// Fire stages as people read them: every stage comes from the stage table the server serves
// (`GET /api/fire/stages`, the firmware's STAGE_TABLE), never from the raw code; its name is
// the catalogue's text for the stage's key (`stage.<key>`), else the server's. Each code 0-6
// has its own colour class `stage-N`; the higher the stage, the heavier its mark (stripes from
// the agent on, the room gas the strongest), so the most severe is always the most visible.

import { h, fmtTime, ago, withUnit } from './ui.js';
import { state, compPoint, readingStale } from './state.js';
import { t, tOr } from './i18n.js';

/// The stage table row of a code, or undefined.
export function stageInfo(code) {
  return state.stages?.stages?.[code];
}

/// The name of a stage code: "Power cut and fire blanket". A code outside the table is shown
/// as such, never as a healthy state.
export function stageName(code) {
  if (code === null || code === undefined || code === '') return t('stage.none');
  const info = stageInfo(Number(code));
  if (info) return tOr(`srv.stage.${info.key}`, info.name);
  return state.stages ? t('stage.unknownCode', { code }) : t('stage.tableMissing', { code });
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
  return tOr(`srv.action.${key}`, state.stages?.actions?.find((a) => a.key === key)?.name ?? key.replace(/_/g, ' '));
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

/// Where a component is, in words: "Main building › 1F › hall-1 (Data hall 1) › row h1-02 ›
/// position 7".
export function placeText(id, { building = false } = {}) {
  const p = state.places?.[id];
  if (!p) return t('place.none');
  const parts = [];
  if (building && p.building) parts.push(p.building);
  if (building && p.floor) parts.push(t('place.floor', { floor: p.floor }));
  if (p.room) parts.push(p.room_name ? `${p.room} (${p.room_name})` : p.room);
  if (p.row) parts.push(t('place.row', { row: p.row.replace(/^row-/, '') }));
  if (p.position) parts.push(t('place.position', { n: p.position }));
  if (p.zone && !p.room) parts.push(t('place.zone', { zone: p.zone }));
  return parts.length ? parts.join(' › ') : t('place.none');
}

/// The name of a fire-logic input source, or of the point role a trigger names.
export function sourceName(k, fallback) {
  return tOr(`source.${k}`, tOr(`srv.role.${k}`, fallback ?? k ?? t('source.unknown')));
}

/// The trigger of a fire entry in words: "68.4 °C, BMS highest cell temperature".
export function triggerText(tr) {
  if (!tr) return t('fire.triggerNone');
  const v = tr.value_c === null || tr.value_c === undefined ? '' : `${withUnit(tr.value_c, 'degC')}, `;
  const basis = tr.basis === 'reading' ? ` (${t('fire.triggerReading')})` : '';
  return `${v}${sourceName(tr.source, tr.source_name)}${tr.detail ? ` — ${tr.detail}` : ''}${basis}`;
}

/// A list of the actions of a fire entry with their feedback.
export function actionList(entry) {
  return h('ul.actions', null, (entry.actions ?? []).map((a) => {
    const f = a.feedback;
    let mark = t('fire.act.commanded');
    let cls = 'cmd';
    if (f && f.confirmed === true && !f.stale) {
      mark = t('fire.act.confirmed');
      cls = 'ok';
    } else if (f && f.confirmed === false && !f.stale) {
      mark = t('fire.act.notConfirmed');
      cls = 'bad';
    } else if (f && f.stale) {
      mark = t('fire.act.stale');
      cls = 'bad';
    }
    return h(`li.act-${cls}`, { 'data-action': a.key }, h('span.actname', null, actionName(a.key)), ' ', h(`span.actmark.${cls}`, null, mark));
  }));
}

/// Since when an entry is in its stage: time with zone and a counting age.
export function sinceNode(entry) {
  if (!entry?.since_ms) return h('span.muted', null, t('fire.sinceNone'));
  return h('span', null, `${entry.since_basis === 'history' ? `${t('fire.about')} ` : ''}${fmtTime(entry.since_ms, { tz: true })} (`, ago(entry.since_ms), ')');
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
      const tr = d.trigger ? ` — ${triggerText({ ...d.trigger, source_name: sourceName(d.trigger.source) })}` : '';
      return `${t('fire.stageEntered', { stage: stageName(code) })}${tr}`;
    }
  }
  return e?.message ?? '';
}
