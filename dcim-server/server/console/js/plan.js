// Floor plans: each room drawn as a grid of floor tiles from the site model's `[[plan]]` (racks,
// battery racks and other equipment where the file puts them), or, for a room without a plan,
// its rows of racks stacked as the site graph gives them (said so on the plan). Every rack is
// coloured by its worst state: a fire stage first, then power, cooling and network (down, then
// degraded), then no reading or a level the server could not prove ("unverified"); maintenance
// and maintenance windows are marked on top. The same
// renderer serves the racks page (buttons), the fire authority's view and the wall (read-only).
//
// Layout uses CSS grid placement set through the CSSOM (element.style), which the console's
// Content-Security-Policy allows (no inline style attributes).

import { h } from './ui.js';
import { state, compValue, windowOf, upcomingWindows } from './state.js';
import { displayState } from './diagram.js';
import { stageOf, stageClass, stageName, stageChip } from './fire.js';
import { t } from './i18n.js';
import { withUnit } from './ui.js';

const SUBS = ['power', 'cooling', 'network'];
const SEV = { down: 3, degraded: 2, unknown: 1 };

/// A rack's worst state: {key, cls, rank, text}. Fire first: a fire stage (1 and up), then a
/// missing stage reading (a rack whose fire reading is lost may be burning: never normal, and
/// above any supply state); then down, degraded and unknown supply, power before cooling before
/// network (an unknown supply includes a level the server could not prove: `verified: false`,
/// named "unverified"); maintenance below that; `ok` only when everything is known good.
export function rackWorst(c) {
  const st = stageOf(c);
  if (st !== null && st >= 1) return { key: `stage-${st}`, cls: stageClass(st), rank: 100 + st, text: stageName(st) };
  if (st === null && (c.bindings ?? []).some((b) => b.role === 'fire.stage')) return { key: 'fire-unknown', cls: 'stage-x', rank: 90, text: stageName(null) };
  let best = null;
  SUBS.forEach((sub, i) => {
    if (!(c.groups ?? []).some((g) => g.subsystem === sub)) return;
    const ds = displayState(c.id, sub);
    const sev = SEV[ds];
    if (!sev) return;
    const rank = sev * 10 + (3 - i);
    if (best && rank <= best.rank) return;
    // Up, yet drawn unknown: its supply level is not proven (what it depends on has not all
    // reported). Said so, never normal.
    const unverified = ds === 'unknown' && supplyOf(c.id, sub)?.verified === false && state.compState.get(c.id)?.state === 'up';
    best = unverified
      ? { key: `${sub}-unverified`, cls: 'w-unknown', rank, text: t('plan.worstUnverified', { sub: t(`subsystem.${sub}`) }) }
      : { key: `${sub}-${ds}`, cls: `w-${ds}`, rank, text: t('plan.worst', { sub: t(`subsystem.${sub}`), state: t(`compState.${ds}`) }) };
  });
  if (best) return best;
  if (state.maintenance.has(c.id) || SUBS.some((s) => displayState(c.id, s) === 'maintenance')) return { key: 'maintenance', cls: 'w-maintenance', rank: 5, text: t('compState.maintenance') };
  return { key: 'ok', cls: 'w-ok', rank: 0, text: t('plan.ok') };
}

/// A component's supply in one subsystem, as the server evaluated it.
function supplyOf(id, sub) {
  return (state.compState.get(id)?.supply ?? []).find((x) => x.subsystem === sub);
}

export function tempClass(v) {
  if (typeof v !== 'number') return 't-unknown';
  if (v >= 45) return 't-hot';
  if (v >= 35) return 't-warm';
  return 't-ok';
}

/// The class and words of a rack in a colour mode (`worst`, `stage`, `temp`).
export function rackLook(c, mode) {
  const st = stageOf(c);
  const temp = compValue(c, 'rack.temp');
  if (mode === 'stage') return { cls: stageClass(st), state: st ?? '', text: stageName(st), temp };
  if (mode === 'temp') return { cls: tempClass(temp), state: st ?? '', text: stageName(st), temp };
  const w = rackWorst(c);
  const text = (st !== null && st >= 1) || w.key === 'fire-unknown' ? w.text : `${stageName(st)}; ${w.text}`;
  return { cls: w.cls, state: st ?? '', text, worst: w.key, temp };
}

/// The number a rack's cell shows (`r017` -> `017`).
export const rackText = (c) => c.id.replace(/^r(?=\d)/, '');

function rackLabel(c, look) {
  const w = windowOf(c.id);
  const extra = w ? `, ${t('plan.inWindow', { id: w.id })}` : '';
  return `${rackText(c)}: ${t('plan.rack', { id: c.id })}, ${look.text}, ${withUnit(look.temp, 'degC')}${extra}`;
}

/// The cells of a room: from its plan, or arranged from its rows.
export function roomCells(room) {
  const plan = state.site.layout?.plans?.find((p) => p.room === room);
  if (plan) return { plan, cells: plan.cells, width: plan.width, depth: plan.depth, labels: rowLabels(plan), arranged: false };
  // No plan: one line per row of the graph, in site-file order.
  const rows = new Map();
  for (const c of state.site.components) {
    if (c.kind !== 'rack') continue;
    const p = state.places?.[c.id] ?? {};
    if ((p.room ?? c.room ?? '') !== room) continue;
    const r = p.row ?? '—';
    if (!rows.has(r)) rows.set(r, []);
    rows.get(r).push(c);
  }
  const cells = [];
  const labels = [];
  let y = 0;
  let width = 3;
  for (const [row, list] of rows) {
    labels.push({ x: 0, y, w: 2, text: row.replace(/^row-/, '') });
    list.forEach((c, i) => cells.push({ kind: 'rack', component: c.id, x: 2 + i, y, w: 1, h: 1, row, position: i + 1 }));
    width = Math.max(width, 2 + list.length);
    y += 1;
  }
  return { plan: null, cells, width, depth: Math.max(1, y), labels, arranged: true };
}

/// Row names placed left of a row's first rack, where two tiles are free.
function rowLabels(plan) {
  const taken = new Set();
  for (const c of plan.cells) for (let dx = 0; dx < c.w; dx += 1) for (let dy = 0; dy < c.h; dy += 1) taken.add(`${c.x + dx},${c.y + dy}`);
  const out = [];
  for (const r of plan.rows ?? []) {
    if (r.direction !== 'east' && r.direction !== 'west') continue;
    const x = r.direction === 'east' ? r.x - 2 : r.x + 1;
    if (x < 0 || x + 1 >= plan.width || taken.has(`${x},${r.y}`) || taken.has(`${x + 1},${r.y}`)) continue;
    taken.add(`${x},${r.y}`);
    taken.add(`${x + 1},${r.y}`);
    out.push({ x, y: r.y, w: 2, text: r.name.replace(/^row-/, '') });
  }
  return out;
}

function place(el, x, y, w = 1, hgt = 1) {
  el.style.gridColumn = `${x + 1} / span ${w}`;
  el.style.gridRow = `${y + 1} / span ${hgt}`;
  return el;
}

/// The rooms to draw: halls with racks (plan or not), then battery rooms with a plan.
export function planRooms() {
  const rooms = [];
  const seen = new Set();
  for (const p of state.site.layout?.plans ?? []) {
    if (state.byId.get(p.room)?.kind === 'room') {
      rooms.push(p.room);
      seen.add(p.room);
    }
  }
  for (const c of state.site.components) {
    if (c.kind !== 'rack') continue;
    const r = state.places?.[c.id]?.room ?? c.room ?? '';
    if (!seen.has(r)) {
      seen.add(r);
      rooms.push(r);
    }
  }
  for (const p of state.site.layout?.plans ?? []) if (!seen.has(p.room)) rooms.push(p.room);
  return rooms;
}

/// Draws one room. `opts.mode`: worst | stage | temp; `opts.onPick(id)` makes racks buttons;
/// `opts.selected`: the selected rack.
export function roomPlan(room, opts = {}) {
  const mode = opts.mode ?? 'worst';
  const { plan, cells, width, depth, labels, arranged } = roomCells(room);
  const comp = state.byId.get(room);
  const battery = comp?.kind === 'battery_room';
  const head = h('div.planhead', null,
    h('h2', null, room ? `${room}${comp?.name ? ` — ${comp.name}` : ''}` : t('plan.noRoom')),
    plan?.building || plan?.floor ? h('span.muted', null, [plan.building, plan.floor ? t('place.floor', { floor: plan.floor }) : null].filter(Boolean).join(' › ')) : null,
    arranged ? h('span.muted.arranged', null, t('plan.arranged')) : null);
  const grid = h('div.plangrid', { 'data-room': room, 'data-width': width, 'data-depth': depth });
  grid.style.gridTemplateColumns = `repeat(${width}, var(--tile))`;
  grid.style.gridTemplateRows = `repeat(${depth}, var(--tile))`;
  let worst = -1;
  for (const l of labels) grid.appendChild(place(h('span.rowlabel', { 'aria-hidden': 'true' }, l.text), l.x, l.y, l.w, 1));
  for (const cell of cells) {
    const c = state.byId.get(cell.component);
    if (!c) continue;
    if (cell.kind === 'rack') {
      const look = rackLook(c, mode);
      const st = stageOf(c);
      if (st !== null && st > worst) worst = st;
      const label = rackLabel(c, look);
      const win = windowOf(c.id);
      const soon = !win && upcomingWindows(c.id).some((w) => w.from_ms - Date.now() < 86400_000);
      const cls = `${look.cls}${win || state.maintenance.has(c.id) ? '.in-maint' : ''}${soon ? '.maint-soon' : ''}`;
      const attrs = { 'data-id': c.id, 'data-stage': look.state, 'data-worst': look.worst ?? '', title: label };
      let el;
      if (opts.onPick) {
        el = h(`button.rack.${cls}`, { ...attrs, type: 'button', 'aria-label': label, onclick: () => opts.onPick(c.id) }, rackText(c));
        if (opts.selected === c.id) el.classList.add('selected');
      } else {
        el = h(`span.plancell.${cls}`, attrs, st !== null && st >= 2 ? rackText(c) : '');
      }
      grid.appendChild(place(el, cell.x, cell.y, cell.w, cell.h));
    } else if (cell.kind === 'battery_rack') {
      const st = stageOf(c);
      if (st !== null && st > worst) worst = st;
      const cls = mode === 'temp' ? tempClass(compValue(c, 'battery.cell_temp.max')) : stageClass(st);
      const label = t('plan.batteryRack', { n: cell.label ?? cell.position, room: c.id, stage: stageName(st) });
      grid.appendChild(place(h(`span.plancell.battcell.${cls}`, { 'data-id': c.id, 'data-stage': st ?? '', title: label }, cell.label ?? ''), cell.x, cell.y, cell.w, cell.h));
    } else {
      const sub = c.kind === 'rack' ? 'power' : (['crah', 'chiller', 'chilled_water_loop', 'buffer_tank', 'room'].includes(c.kind) ? 'cooling' : ['carrier', 'mmr', 'core', 'row'].includes(c.kind) ? 'network' : 'power');
      const ds = displayState(c.id, sub);
      const label = `${cell.label ?? c.id}: ${t(`compState.${ds}`)}`;
      grid.appendChild(place(h(`span.planitem.st-${ds}${windowOf(c.id) ? '.in-maint' : ''}`, { 'data-id': c.id, 'data-state': ds, title: label }, cell.label ?? c.id), cell.x, cell.y, cell.w, cell.h));
    }
  }
  if (worst > 0) head.appendChild(h('span.worst', null, ` ${t('plan.worstStage')} `, stageChip(worst)));
  const wins = state.windows.filter((w) => w.status === 'active' && w.subjects.some((s) => cellsHold(cells, s)));
  if (wins.length) head.appendChild(h('p.planwindows', null, t('plan.windowsNow', { list: wins.map((w) => `#${w.id} (${w.who})`).join(', ') })));
  // The grid scrolls in its own box on a narrow screen (never the page).
  const box = h('div.planscroll', { tabindex: 0, role: 'region', 'aria-label': t('plan.regionLabel', { room: room || t('plan.noRoom') }) }, grid);
  return h(`section.planroom${battery ? '.planbatt' : ''}`, { 'data-room': room, 'aria-label': t('plan.sectionLabel', { room: room || t('plan.noRoom') }) }, head, box);
}

function cellsHold(cells, id) {
  return cells.some((c) => c.component === id);
}

/// The legend of a colour mode.
export function planLegend(mode) {
  if (mode === 'temp') return h('p.legend', null, h('span.chip.t-ok', null, '< 35 °C'), h('span.chip.t-warm', null, '35–45 °C'), h('span.chip.t-hot', null, '≥ 45 °C'), h('span.chip.t-unknown', null, t('plan.noReading')));
  if (mode === 'stage') return h('p.legend.stage-legend', null, [6, 5, 4, 3, 2, 1, 0].map((c) => stageChip(c)), stageChip(null));
  return h('p.legend.worst-legend', null,
    h('span.chip.stage-3', null, t('plan.legendFire')),
    h('span.chip.w-down', null, t('plan.legendDown')),
    h('span.chip.w-degraded', null, t('plan.legendDegraded')),
    h('span.chip.stage-x', null, t('plan.legendUnknown')),
    h('span.chip.w-unknown', null, t('plan.legendUnverified')),
    h('span.chip.w-maintenance', null, t('compState.maintenance')),
    h('span.chip.w-ok', null, t('plan.ok')),
    h('span.chip.in-maint.w-ok', null, t('plan.legendWindow')));
}
