// Floor plans, battery rooms and racks: what is in a fire stage (by name, since when, what
// triggered it, the actions with their feedback, where), the battery rooms, the plan of every
// room with each rack coloured by its worst state (or by fire stage, or by temperature), and
// the panel of the selected rack: its place, fire state, redundancy per subsystem, elevation
// (when the site model lists what it holds), points, alarms, maintenance and windows, trends
// and event log. The panel stays in view when the page is long (sticky beside the plans; over
// them on a phone).

import { post } from './api.js';
import { h, clear, fmtTime, trendChart, withUnit } from './ui.js';
import { state, on, key, point, compValue, compPoint, refusedWhy, seedHistory, roleInfo } from './state.js';
import { displayState } from './diagram.js';
import { act, pointValue, pointAge, maintenanceControl, tableWrap, levelBadge, redLabel, alarmState, stateLabel, subsystemLabel, compStateLabel, windowChip } from './common.js';
import { stageChip, stageClass, stageOf, stageStale, fireEntry, placeText, triggerText, actionList, sinceNode, eventText } from './fire.js';
import { roomPlan, planRooms, planLegend, rackLook, rackText } from './plan.js';
import { t } from './i18n.js';

function rackZones(c) {
  const comps = state.site.components;
  const pw = (c.groups ?? []).find((g) => g.subsystem === 'power');
  const zones = [];
  for (const m of pw?.members ?? []) {
    const pdu = comps[m];
    const up = (pdu?.groups ?? []).find((g) => g.subsystem === 'power');
    for (const u of up?.members ?? []) if (comps[u]?.zone) zones.push(comps[u].zone);
  }
  return zones;
}

/// One card per rack or battery room in a fire stage, most severe first.
export function fireEntries(onPick) {
  const racks = state.fire?.racks ?? [];
  const box = h('section.card#fire-racks', { 'aria-label': t('fire.entriesLabel') });
  box.appendChild(h('h2', null, racks.length ? t('fire.inStage', { n: racks.length }) : t('fire.noneInStage')));
  if (!racks.length) {
    box.classList.add('quiet');
    return box;
  }
  for (const r of racks) {
    box.appendChild(h(`article.fireentry.${stageClass(r.stage.code)}-edge`, { 'data-id': r.id, 'data-stage': r.stage.code },
      h('h3', null, stageChip(r.stage.code), ' ', onPick ? h('button.link', { type: 'button', onclick: () => onPick(r.id) }, r.id) : r.id, r.name ? ` ${r.name}` : '',
        r.reading.stale ? h('span.tag.hot', null, t('fire.readingLostAt', { time: fmtTime(r.reading.ts_ms, { short: true }) })) : null),
      h('dl.kv', null,
        h('dt', null, t('fire.where')), h('dd.place', null, placeText(r.id, { building: true })),
        h('dt', null, t('fire.since')), h('dd', null, sinceNode(r)),
        h('dt', null, t('fire.triggeredBy')), h('dd.trigger', null, triggerText(r.trigger)),
        h('dt', null, t('fire.actions')), h('dd', null, r.actions.length ? actionList(r) : t('fire.noActions')))));
  }
  return box;
}

/// The elevation of a rack from the site model's assets: U 1 at the bottom.
export function elevation(c) {
  const units = state.site.layout?.rack_units ?? 42;
  const assets = (state.site.layout?.assets ?? []).filter((a) => a.rack === c.id);
  if (!assets.length) return h('p.muted#rack-elevation', null, t('rack.noAssets'));
  const grid = h('div.elev#rack-elevation', { role: 'list', 'aria-label': t('rack.elevationLabel', { id: c.id, units }) });
  grid.style.gridTemplateRows = `repeat(${units}, var(--u))`;
  for (let u = units; u >= 1; u -= 1) {
    const n = h('span.unum', { 'aria-hidden': 'true' }, u % 5 === 0 || u === 1 ? String(u) : '');
    n.style.gridRow = `${units - u + 1}`;
    grid.appendChild(n);
  }
  for (const a of assets) {
    const top = a.u + a.height - 1;
    const range = a.height > 1 ? `U${a.u}–${top}` : `U${a.u}`;
    const el = h('div.asset', { role: 'listitem', 'data-u': a.u, title: `${range} ${a.name}${a.kind ? ` (${a.kind})` : ''}` },
      h('strong', null, a.name), ' ', h('span.muted', null, `${range}${a.kind ? ` · ${a.kind}` : ''}`));
    el.style.gridRow = `${units - top + 1} / span ${a.height}`;
    grid.appendChild(el);
  }
  const used = assets.reduce((n, a) => n + a.height, 0);
  return h('div', null, grid, h('p.muted', null, t('rack.unitsUsed', { used, units })));
}

export const racks = {
  title: 'view.racks',
  render(main, args, ctx) {
    let mode = 'worst';
    let selected = args[0] ?? null;
    main.appendChild(h('h1', null, t('racks.title')));
    const fireBox = h('div#fire-box');
    main.appendChild(fireBox);
    const modes = [['worst', t('racks.modeWorst')], ['stage', t('racks.modeStage')], ['temp', t('racks.modeTemp')]];
    const controls = h('div.controls', { role: 'group', 'aria-label': t('racks.colourBy') },
      modes.map(([m, label]) => h(`button#mode-${m}`, { type: 'button', 'aria-pressed': String(m === mode), onclick: () => { mode = m; draw(); } }, label)));
    const rooms = h('div.battrooms');
    const floor = h('div.floor');
    const side = h('div.side.sticky');
    main.appendChild(rooms);
    main.appendChild(controls);
    main.appendChild(h('div.split.racksplit', null, floor, side));
    const pick = (id) => {
      selected = id;
      history.replaceState(null, '', `/console/racks/${id}`);
      for (const b of floor.querySelectorAll('button.rack.selected')) b.classList.remove('selected');
      floor.querySelector(`button.rack[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
      drawSide();
      // On a narrow screen the panel lies over the plans; elsewhere it is sticky beside them.
      document.getElementById('rack-panel')?.focus({ preventScroll: true });
    };
    const drawFire = () => {
      clear(fireBox);
      fireBox.appendChild(fireEntries(pick));
    };
    const drawRooms = () => {
      clear(rooms);
      for (const b of state.site.components.filter((c) => c.kind === 'battery_room')) {
        const st = stageOf(b);
        const stale = stageStale(b);
        const ups = state.site.components.find((u) => u.kind === 'ups' && u.zone === b.zone);
        const contactor = compValue(b, 'battery.contactor_closed');
        rooms.appendChild(h(`section.card.battroom.b${stageClass(st)}`, { 'data-id': b.id, 'data-stage': st ?? '' },
          h('h2', null, t('racks.battroom', { zone: b.zone ?? '?', id: b.id })),
          h('dl.kv', null, h('dt', null, t('racks.fireStage')), h('dd', null, stageChip(st), stale && st !== null ? h('span.tag', null, t('racks.notCurrent')) : null),
            h('dt', null, t('racks.maxCell')), h('dd', null, pointValue(compPoint(b, 'battery.cell_temp.max'), 'battery.cell_temp.max')),
            h('dt', null, t('racks.contactor')), h('dd', null, contactor === false ? h('strong', null, t('racks.open')) : contactor === true ? t('racks.closed') : t('plan.noReading')),
            h('dt', null, 'UPS'), h('dd', null, ups ? t('racks.ups', { id: ups.id, state: compStateLabel(displayState(ups.id, 'power')), load: withUnit(compValue(ups, 'ups.load_pct'), '%'), runtime: withUnit(compValue(ups, 'ups.runtime_s'), 's') }) : '—')),
          windowChip(b.id)));
      }
    };
    const draw = () => {
      for (const [m] of modes) controls.querySelector(`#mode-${m}`).setAttribute('aria-pressed', String(mode === m));
      drawFire();
      drawRooms();
      clear(floor);
      floor.appendChild(planLegend(mode));
      for (const room of planRooms()) floor.appendChild(roomPlan(room, { mode, onPick: pick, selected }));
      drawSide();
    };
    /// Recolours the racks in place (the plans of 2,000 racks are not rebuilt on every sample).
    const update = () => {
      drawFire();
      drawRooms();
      for (const b of floor.querySelectorAll('button.rack')) {
        const c = state.byId.get(b.dataset.id);
        const look = rackLook(c, mode);
        if (!b.classList.contains(look.cls)) {
          for (const x of [...b.classList]) if (x.startsWith('stage-') || x.startsWith('t-') || x.startsWith('w-')) b.classList.remove(x);
          b.classList.add(look.cls);
        }
        const label = `${rackText(c)}: ${t('plan.rack', { id: c.id })}, ${look.text}, ${withUnit(look.temp, 'degC')}`;
        if (!(b.getAttribute('aria-label') ?? '').startsWith(label)) {
          b.setAttribute('aria-label', label);
          b.title = label;
        }
        b.dataset.stage = look.state;
        b.dataset.worst = look.worst ?? '';
      }
      drawSide();
    };
    const drawSide = () => {
      // Keep the keyboard focus where it was when the panel is redrawn.
      const focusId = side.contains(document.activeElement) ? document.activeElement.id : null;
      clear(side);
      if (!selected) {
        side.appendChild(h('p.muted', null, t('racks.selectHint')));
        return;
      }
      const c = state.byId.get(selected);
      if (!c) return;
      const panel = h('aside.panel#rack-panel', { 'aria-label': t('rack.panelLabel', { id: c.id }), tabindex: -1 });
      const close = () => { selected = null; history.replaceState(null, '', '/console/racks'); draw(); };
      panel.appendChild(h('div.panel-head', null, h('h2', null, t('rack.title', { id: c.id })), h('button.close', { type: 'button', 'aria-label': t('panel.close'), onclick: close }, '✕')));
      const st = stageOf(c);
      panel.appendChild(h('p', null, stageChip(st), stageStale(c) && st !== null ? h('span.tag', null, t('rack.readingNotCurrent')) : null, ' ', windowChip(c.id)));
      panel.appendChild(h('p.place', null, t('rack.where', { place: placeText(c.id, { building: true }) })));
      const entry = fireEntry(c.id);
      if (entry) {
        panel.appendChild(h('dl.kv#rack-fire', null,
          h('dt', null, t('fire.since')), h('dd', null, sinceNode(entry)),
          h('dt', null, t('fire.triggeredBy')), h('dd', null, triggerText(entry.trigger)),
          h('dt', null, t('fire.actions')), h('dd', null, entry.actions.length ? actionList(entry) : t('fire.noActions'))));
      }
      // Redundancy per subsystem, and what it hangs off.
      const cs = state.compState.get(c.id);
      panel.appendChild(h('h3', null, t('rack.redundancy')));
      panel.appendChild(tableWrap(h('table.data#rack-redundancy', null, h('thead', null, h('tr', null, [t('col.subsystem'), t('col.designed'), t('col.currentProven'), t('col.livePaths'), t('col.spof')].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, (cs?.supply ?? []).map((x) => h('tr', { 'data-subsystem': x.subsystem, 'data-verified': String(x.verified !== false) }, h('td', null, subsystemLabel(x.subsystem)), h('td', null, redLabel(x.designed)), h('td', null, levelBadge(x)), h('td', null, `${x.live_paths}/${x.designed_paths}`), h('td', null, x.single_points_of_failure.join(', ') || '—'))))), t('rack.redundancy')));
      const inputs = h('tbody');
      const comps = state.site.components;
      for (const g of c.groups ?? []) {
        for (const m of g.members) {
          const up = comps[m];
          const s2 = displayState(up.id, g.subsystem);
          inputs.appendChild(h('tr', null, h('td', null, subsystemLabel(g.subsystem)), h('td', null, up.id), h('td', null, h(`span.state.st-${s2}`, null, compStateLabel(s2)))));
        }
      }
      panel.appendChild(h('h3', null, t('rack.inputs')));
      panel.appendChild(tableWrap(h('table.data', null, h('thead', null, h('tr', null, [t('col.subsystem'), t('col.from'), t('col.state')].map((x) => h('th', { scope: 'col' }, x)))), inputs), t('rack.inputs')));
      panel.appendChild(h('p', null, t('rack.zones', { zones: rackZones(c).join(', ') || '—' })));
      panel.appendChild(h('h3', null, t('rack.elevation')));
      panel.appendChild(elevation(c));
      panel.appendChild(h('h3', null, t('rack.now')));
      panel.appendChild(h('dl.kv', null, (c.bindings ?? []).flatMap((b) => [h('dt', { title: b.role }, roleInfo(b.role).description), h('dd', null, pointValue(point(b.device, b.role), b.role), ' ', pointAge(point(b.device, b.role)))])));
      const dev = (c.bindings ?? [])[0]?.device;
      if (dev) {
        const tempPoint = point(dev, 'rack.temp');
        if (tempPoint?.point) panel.appendChild(h('p', null, h('a', { href: `/console/trends?a=${encodeURIComponent(`${dev}/${tempPoint.point}`)}`, onclick: (e) => { e.preventDefault(); ctx.go(`trends?a=${encodeURIComponent(`${dev}/${tempPoint.point}`)}`); } }, t('rack.openTrends'))));
      }
      // Alarms of the rack: its own, its device's and its per-rack redundancy alarms.
      const devs = new Set((c.bindings ?? []).map((b) => b.device));
      const alarms = state.alarms.filter((a) => a.component === c.id || devs.has(String(a.subject).replace(/\[.*$/, '')) || String(a.subject).endsWith(`/${c.id}`));
      panel.appendChild(h('h3', null, t('rack.alarms', { n: alarms.length })));
      panel.appendChild(alarms.length ? h('ul.plain#rack-alarms', null, alarms.map((a) => h('li', { 'data-id': a.id }, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), ` ${a.message} `, h('span.muted', null, stateLabel(alarmState(a)))))) : h('p.muted#rack-alarms', null, t('rack.noAlarms')));
      if (ctx.canOperate && dev) {
        // Commands to the rack controller through its agent; refused under authority control.
        const why = refusedWhy('device_command');
        const send = (kind, label) => act(() => post(`/api/devices/${encodeURIComponent(dev)}/commands`, kind), t('rack.cmdSent', { what: label, dev }));
        panel.appendChild(h('h3', null, t('rack.commands')));
        panel.appendChild(h('div.controls#rack-commands', { title: why ?? undefined },
          h('button#cmd-ack', { type: 'button', disabled: !!why, title: why ?? t('rack.cmdAckTitle', { dev }), onclick: () => send({ kind: 'acknowledge' }, t('rack.cmdAckShort')) }, t('rack.cmdAck')),
          h('button#cmd-time', { type: 'button', disabled: !!why, title: why ?? t('rack.cmdTimeTitle', { dev }), onclick: () => send({ kind: 'time_sync', unix_ms: Date.now() }, t('rack.cmdTimeShort')) }, t('rack.cmdTime'))));
        if (why) panel.appendChild(h('p.warn#rack-commands-why', null, why));
      }
      panel.appendChild(h('h3', null, t('rack.maintenance')));
      panel.appendChild(maintenanceControl(c.id, ctx, drawSide));
      panel.appendChild(h('h3', null, t('rack.stageTimeline')));
      const hist = dev ? state.history.get(key(dev, 'fire.stage')) ?? [] : [];
      panel.appendChild(trendChart(hist, { height: 120, label: t('rack.stageTimelineLabel') }));
      panel.appendChild(h('h3', null, t('rack.temperature')));
      panel.appendChild(trendChart(dev ? state.history.get(key(dev, 'rack.temp')) ?? [] : [], { height: 120, label: t('rack.temperatureLabel') }));
      panel.appendChild(h('h3', null, t('rack.eventLog')));
      const evs = state.events.filter((e) => devs.has(e.device)).slice(0, 50);
      panel.appendChild(evs.length ? h('ul.log', null, evs.map((e) => h('li', null, h('span.ts', null, fmtTime(e.ts_ms, { tz: true })), ` ${eventText(e)}`))) : h('p.muted', null, t('rack.noEvents')));
      side.appendChild(panel);
      if (focusId) document.getElementById(focusId)?.focus({ preventScroll: true });
      // Charted points first; drawSide runs again when the history arrives (once per point).
      seedHistory([...(dev ? [[dev, 'fire.stage'], [dev, 'rack.temp']] : []), ...(c.bindings ?? []).map((b) => [b.device, b.role])]);
    };
    draw();
    if (selected) requestAnimationFrame(() => floor.querySelector(`button.rack[data-id="${CSS.escape(selected)}"]`)?.scrollIntoView({ block: 'center' }));
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; update(); });
    };
    const offs = [on('points', redraw), on('redundancy', redraw), on('fire', redraw), on('events', drawSide), on('history', drawSide), on('maintenance', draw), on('windows', draw), on('authority', drawSide), on('alarms', drawSide)];
    return () => offs.forEach((f) => f());
  },
  key(e) {
    if (e.key === 'Escape') document.querySelector('#rack-panel button.close')?.click();
  },
};
