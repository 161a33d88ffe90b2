// The fire authority's view: what an officer must read at a glance and on paper. Which racks
// and battery rooms are in which stage and since when, what triggered it and what was done,
// where they are (the floor plans of the rooms, the same ones the racks page draws, coloured
// by fire stage), which feeds and breakers are live (as the server evaluates them), coolant
// and drain tank levels with their units, where gas was released, and the log of automatic
// actions. Every time carries its zone; "printed at" appears on paper only.

import { h, clear, fmtTime, ago, zoneLabel } from './ui.js';
import { state, on, point, roleInfo, readingStale, compPoint } from './state.js';
import { displayState } from './diagram.js';
import { stageChip, stageClass, placeText, triggerText, actionList, sinceNode, stageLegend, eventText } from './fire.js';
import { tableWrap, pointValue } from './common.js';
import { roomPlan, planRooms } from './plan.js';
import { t } from './i18n.js';

/// Energised or not, as the API says: the evaluation's `energised` when it decided it (from a
/// voltage, else current or power, else the switch position: `energised_by`), otherwise its
/// breaker or contactor reading, then its evaluated state (a lost supply is down). `null`: not
/// known (no current reading, or in maintenance) — never shown as live or dead.
function energised(c) {
  const cs = state.compState.get(c.id);
  if (cs?.energised === true || cs?.energised === false) return cs.energised;
  // The server has measurement or switch points for it, none of them current: not known.
  if (cs && cs.energised_by == null && hasEnergyPoint(c)) return null;
  const role = { utility_feed: 'feed.breaker_closed', pdu: 'pdu.breaker_closed', battery_room: 'battery.contactor_closed' }[c.kind];
  const p = role ? compPoint(c, role) : null;
  if (p && !readingStale(p) && p.value === false) return false;
  // A battery string is live while its contactor reports closed, whatever else is said of
  // the room (a fire stage that should have opened it does not make it safe).
  if (c.kind === 'battery_room') return p && !readingStale(p) && p.value === true ? true : null;
  const st = displayState(c.id, 'power');
  if (st === 'unknown' || st === 'maintenance') return null;
  return st !== 'down';
}

const ENERGY_ROLES = ['feed.voltage', 'ups.output_voltage', 'ups.input_voltage', 'feed.current', 'feed.power_kw', 'ups.output_kw', 'pdu.power_kw', 'feed.breaker_closed', 'pdu.breaker_closed', 'battery.contactor_closed'];

function hasEnergyPoint(c) {
  return (c.bindings ?? []).some((b) => ENERGY_ROLES.includes(b.role));
}

/// Decided by a switch position alone (nothing measured).
function bySwitchOnly(c) {
  const by = state.compState.get(c.id)?.energised_by ?? '';
  return /breaker|contactor/.test(by);
}

const POWER_ROWS = ['utility_feed', 'generator', 'ups', 'battery_room', 'pdu'];

/// The component a device is bound to, for places of points the site model does not bind.
function deviceComponents() {
  const m = new Map();
  for (const c of state.site.components) for (const b of c.bindings ?? []) if (!m.has(b.device)) m.set(b.device, c.id);
  return m;
}

const COOLANT_ROLES = ['loop.flow', 'loop.supply_temp', 'loop.return_temp', 'buffer_tank.temp', 'buffer_tank.level_pct', 'fire.coolant_flow', 'drain_tank.level_pct'];

function whereOf(device, devComp) {
  const id = devComp.get(device);
  if (!id) return device;
  const place = state.places?.[id];
  return place ? `${id} (${placeText(id)})` : id;
}

/// The floor plans of every room and battery room, coloured by fire stage. The table above is
/// the text of it; the cells are not announced one by one.
function floorPlans() {
  const wrap = h('div.plans.fireplans', { role: 'img', 'aria-label': t('firev.planLabel') });
  for (const room of planRooms()) wrap.appendChild(roomPlan(room, { mode: 'stage' }));
  return wrap;
}

export const fire = {
  title: 'view.fire',
  render(main) {
    const root = h('div.fire');
    main.appendChild(root);
    const printed = h('p.printonly#printed');
    const setPrinted = () => {
      printed.textContent = t('firev.printed', { time: fmtTime(Date.now(), { tz: true }), site: state.site?.name ?? '' });
    };
    window.addEventListener('beforeprint', setPrinted);
    const draw = () => {
      clear(root);
      setPrinted();
      const f = state.fire;
      const asOf = f?.as_of_ms ?? state.lastDataMs;
      root.appendChild(h('div.viewhead', null,
        h('h1', null, t('firev.title', { site: state.site?.name ?? '' })),
        h('p.asof#fire-asof', null, t('firev.asOf', { time: fmtTime(asOf, { tz: true }) }), ' (', ago(asOf), '). ', t('firev.zone', { zone: zoneLabel(asOf) })),
        h('button.noprint#print', { type: 'button', onclick: () => window.print() }, t('firev.print')),
        printed));
      const comps = state.site.components;
      // 1. Stages.
      const racks = f?.racks ?? [];
      const tb = h('tbody');
      for (const r of racks) {
        tb.appendChild(h(`tr.stage-row.${stageClass(r.stage.code)}-edge`, { 'data-stage': r.stage.code, 'data-id': r.id },
          h('td', null, stageChip(r.stage.code), r.reading.stale ? h('div.tag.hot', null, t('firev.readingLostSince', { time: fmtTime(r.reading.ts_ms, { short: true }) })) : null),
          h('td', null, h('strong', null, r.id), r.kind === 'battery_room' ? ` (${t('firev.batteryRoom')})` : ''),
          h('td.place', { 'data-label': t('fire.where') }, placeText(r.id, { building: true })),
          h('td', { 'data-label': t('fire.since') }, sinceNode(r)),
          h('td', { 'data-label': t('fire.triggeredBy') }, triggerText(r.trigger)),
          h('td', { 'data-label': t('fire.actions') }, r.actions.length ? actionList(r) : t('fire.noActions'))));
      }
      if (!racks.length) tb.appendChild(h('tr', { 'data-stage': 'none' }, h('td', { colspan: 6 }, t('fire.noneInStage'))));
      const noReading = f?.no_reading ?? [];
      if (noReading.length) {
        tb.appendChild(h('tr.stage-row.stage-x-edge', { 'data-stage': 'x' }, h('td', null, stageChip(null)),
          h('td', { colspan: 5 }, `${noReading.length}: `, noReading.slice(0, 40).map((n) => `${n.id} (${placeText(n.id)})`).join('; '), noReading.length > 40 ? ` ${t('list.more', { n: noReading.length - 40 })}` : '')));
      }
      const counts = f?.counts ?? [];
      root.appendChild(h('section.card#fire-stages', null, h('h2', null, t('firev.byStage')),
        tableWrap(h('table.data.firetable.cardtable', null, h('thead', null, h('tr', null, [t('col.stage'), t('col.rackRoom'), t('fire.where'), t('fire.since'), t('fire.triggeredBy'), t('col.actionsFeedback')].map((x) => h('th', { scope: 'col' }, x)))), tb), t('firev.byStage')),
        h('p.counts', null, [6, 5, 4, 3, 2, 1, 0].filter((c) => counts[c]).map((c) => h('span.count', { 'data-stage': c }, stageChip(c), ` ${counts[c]}`)), noReading.length ? h('span.count', null, stageChip(null), ` ${noReading.length}`) : null)));
      // 2. Floor plans.
      root.appendChild(h('section.card#fire-plan', null, h('h2', null, t('firev.where')),
        h('p.muted', null, t('firev.planNote')),
        stageLegend(), floorPlans()));
      // 3. Feeds and breakers.
      const rows = [];
      for (const kind of POWER_ROWS) {
        const xs = comps.filter((c) => c.kind === kind);
        if (!xs.length) continue;
        const live = [];
        const dead = [];
        const unknown = [];
        for (const c of xs) {
          const e = energised(c);
          (e === true ? live : e === false ? dead : unknown).push(c);
        }
        const names = (list) => list.map((c) => `${c.name && list.length < 8 ? `${c.id} (${c.name})` : c.id}${bySwitchOnly(c) ? ` ${t('firev.breakerOnly')}` : ''}`).join(', ');
        const liveText = live.length === xs.length && xs.length > 12 ? t('firev.allN', { n: xs.length }) : live.length > 12 ? t('firev.nOfAll', { n: live.length, total: xs.length }) : names(live);
        rows.push(h('tr', { 'data-kind': kind }, h('th', { scope: 'row' }, t(`firev.kind.${kind}`)), h('td.live', null, live.length ? liveText : '—'), h('td.dead', null, dead.length ? names(dead) : '—'), h('td.unknown', null, unknown.length ? names(unknown) : '—')));
      }
      const mismatches = comps.map((c) => [c, state.compState.get(c.id)?.mismatch]).filter(([, m]) => m);
      root.appendChild(h('section.card#fire-power', null, h('h2', null, t('firev.live')),
        tableWrap(h('table.data', null, h('thead', null, h('tr', null, [t('col.equipment'), t('firev.colLive'), t('firev.colDead'), t('firev.colUnknown')].map((x) => h('th', { scope: 'col' }, x)))), h('tbody', null, rows)), t('firev.live')),
        mismatches.length ? h('div.warn#fire-mismatch', null, h('p', null, h('strong', null, t('firev.mismatch'))),
          h('ul.plain', null, mismatches.map(([c, m]) => h('li', { 'data-id': c.id }, `${c.id}${c.name ? ` (${c.name})` : ''}: ${m}`)))) : null,
        h('p.muted', null, t('firev.measuredNote')),
        h('p.muted', null, t('firev.unknownNote'))));
      // 4. Coolant and tanks.
      const devComp = deviceComponents();
      const cool = h('tbody');
      const seen = new Set();
      const addRow = (device, role, p, where) => {
        const k = `${device}|${role}`;
        if (seen.has(k)) return;
        seen.add(k);
        const ri = roleInfo(role);
        cool.appendChild(h('tr', { 'data-role': role, 'data-device': device }, h('td', null, where), h('td', null, ri.description), h('td.num', null, pointValue(p, role)), h('td', null, p ? fmtTime(p.ts_ms, { short: true }) : '—')));
      };
      for (const c of comps.filter((x) => x.kind === 'chilled_water_loop' || x.kind === 'buffer_tank')) {
        for (const b of c.bindings ?? []) if (COOLANT_ROLES.includes(b.role)) addRow(b.device, b.role, point(b.device, b.role), c.name ? `${c.id} (${c.name})` : c.id);
      }
      for (const role of ['fire.coolant_flow', 'drain_tank.level_pct']) {
        const ps = [...state.points.values()].filter((p) => p.role === role);
        if (!ps.length) cool.appendChild(h('tr', { 'data-role': role }, h('td', null, '—'), h('td', null, roleInfo(role).description), h('td.num', null, h('span.novalue', null, t('plan.noReading'))), h('td', null, '—')));
        for (const p of ps) addRow(p.device, role, p, whereOf(p.device, devComp));
      }
      root.appendChild(h('section.card#fire-coolant', null, h('h2', null, t('firev.coolant')),
        tableWrap(h('table.data', null, h('thead', null, h('tr', null, [t('fire.where'), t('col.what'), t('col.value'), t('col.readingAt')].map((x) => h('th', { scope: 'col' }, x)))), cool), t('firev.coolant'))));
      // 5. Gas.
      const gasPts = [...state.points.values()].filter((p) => p.role === 'fire.gas_released');
      const released = gasPts.filter((p) => p.value === true || (typeof p.value === 'number' && p.value > 0));
      const gasRacks = racks.filter((r) => r.stage.code >= 6);
      const gasItems = [
        ...gasRacks.map((r) => h('li', { 'data-id': r.id }, t('firev.gasStageAt', { id: r.id, place: placeText(r.id, { building: true }) }), ' ', sinceNode(r))),
        ...released.map((p) => h('li', { 'data-device': p.device }, t('firev.gasReleasedAt', { where: whereOf(p.device, devComp), time: fmtTime(p.ts_ms, { tz: true }) }))),
      ];
      const unknownGas = gasPts.filter((p) => readingStale(p));
      root.appendChild(h('section.card#fire-gas', null, h('h2', null, t('firev.gas')),
        gasItems.length ? h('ul.plain.hot', null, gasItems) : gasPts.length === 0 ? h('p.muted', null, t('firev.gasNone')) : h('p', null, t('firev.gasNotReleased', { n: gasPts.length })),
        unknownGas.length ? h('p.warn', null, t('firev.gasNoReading', { list: unknownGas.map((p) => whereOf(p.device, devComp)).join(', ') })) : null));
      // 6. Log.
      const evs = state.events.slice(0, 100);
      root.appendChild(h('section.card#fire-log', null, h('h2', null, t('firev.log')),
        evs.length ? h('ol.log', null, evs.map((e) => h('li', { 'data-kind': e.kind }, h('span.ts', null, fmtTime(e.ts_ms, { tz: true })), ` ${e.device}: ${eventText(e)}`))) : h('p.muted', null, t('firev.noEvents'))));
    };
    draw();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; draw(); }, 300);
    };
    const offs = [on('points', redraw), on('redundancy', redraw), on('events', redraw), on('fire', redraw), on('windows', redraw)];
    return () => {
      window.removeEventListener('beforeprint', setPrinted);
      offs.forEach((x) => x());
    };
  },
};
