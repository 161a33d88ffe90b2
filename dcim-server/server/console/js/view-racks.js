// Battery rooms and racks: what is in a fire stage (by name, since when, what triggered it,
// the actions with their feedback, where), the battery rooms, the floor map of the halls (rows
// of racks coloured by stage or temperature) and the side panel of the selected rack. The
// panel stays in view when the page is long (sticky beside the map; over it on a phone).

import { post } from './api.js';
import { h, clear, fmtTime, trendChart, withUnit } from './ui.js';
import { state, on, key, point, compValue, compPoint, refusedWhy, seedHistory, roleInfo } from './state.js';
import { displayState } from './diagram.js';
import { act, pointValue, pointAge, maintenanceControl, tableWrap } from './common.js';
import { stageChip, stageName, stageClass, stageOf, stageStale, fireEntry, placeText, triggerText, actionList, sinceNode, stageLegend, eventText } from './fire.js';

/// Halls -> rows -> racks, from the places the server derived from the site model.
function rackLayout() {
  const halls = new Map();
  for (const c of state.site.components) {
    if (c.kind !== 'rack') continue;
    const p = state.places?.[c.id] ?? {};
    const hall = p.room ?? c.room ?? 'no room in the site model';
    const row = p.row ?? 'no row';
    if (!halls.has(hall)) halls.set(hall, new Map());
    const rows = halls.get(hall);
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push(c);
  }
  return halls;
}

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

/// What a rack's button shows (its number), and its name for screen readers, which starts
/// with the same text.
const rackText = (c) => c.id.replace(/^r(?=\d)/, '');
const rackLabel = (c, st, t) => `${rackText(c)}: rack ${c.id}, ${stageName(st)}, ${withUnit(t, 'degC')}`;

function tempClass(t) {
  if (typeof t !== 'number') return 't-unknown';
  if (t >= 45) return 't-hot';
  if (t >= 35) return 't-warm';
  return 't-ok';
}

/// One card per rack or battery room in a fire stage, most severe first.
export function fireEntries(onPick) {
  const racks = state.fire?.racks ?? [];
  const box = h('section.card#fire-racks', { 'aria-label': 'Racks and battery rooms in a fire stage' });
  box.appendChild(h('h2', null, racks.length ? `In a fire stage (${racks.length})` : 'No rack or battery room is in a fire stage'));
  if (!racks.length) {
    box.classList.add('quiet');
    return box;
  }
  for (const r of racks) {
    box.appendChild(h(`article.fireentry.${stageClass(r.stage.code)}-edge`, { 'data-id': r.id, 'data-stage': r.stage.code },
      h('h3', null, stageChip(r.stage.code), ' ', onPick ? h('button.link', { type: 'button', onclick: () => onPick(r.id) }, r.id) : r.id, r.name ? ` ${r.name}` : '',
        r.reading.stale ? h('span.tag.hot', null, `stage reading lost ${fmtTime(r.reading.ts_ms, { short: true })}: last reported stage`) : null),
      h('dl.kv', null,
        h('dt', null, 'Where'), h('dd.place', null, placeText(r.id, { building: true })),
        h('dt', null, 'Since'), h('dd', null, sinceNode(r)),
        h('dt', null, 'Triggered by'), h('dd.trigger', null, triggerText(r.trigger)),
        h('dt', null, 'Actions'), h('dd', null, r.actions.length ? actionList(r) : 'none at this stage'))));
  }
  return box;
}

export const racks = {
  title: 'Battery rooms and racks',
  render(main, args, ctx) {
    let mode = 'stage';
    let selected = args[0] ?? null;
    main.appendChild(h('h1', null, 'Battery rooms and racks'));
    const fireBox = h('div#fire-box');
    main.appendChild(fireBox);
    const controls = h('div.controls', { role: 'group', 'aria-label': 'Colour racks by' },
      h('button#mode-stage', { type: 'button', 'aria-pressed': 'true', onclick: () => { mode = 'stage'; draw(); } }, 'Colour by fire stage'),
      h('button#mode-temp', { type: 'button', 'aria-pressed': 'false', onclick: () => { mode = 'temp'; draw(); } }, 'Colour by temperature'));
    main.appendChild(controls);
    const rooms = h('div.battrooms');
    const floor = h('div.floor');
    const side = h('div.side.sticky');
    main.appendChild(rooms);
    main.appendChild(h('div.split.racksplit', null, floor, side));
    const pick = (id) => {
      selected = id;
      history.replaceState(null, '', `/console/racks/${id}`);
      for (const b of floor.querySelectorAll('button.rack.selected')) b.classList.remove('selected');
      floor.querySelector(`button.rack[data-id="${CSS.escape(id)}"]`)?.classList.add('selected');
      drawSide();
      // On a narrow screen the panel lies over the map; elsewhere it is sticky beside it.
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
          h('h2', null, `Zone ${b.zone ?? '?'} — ${b.id}`),
          h('dl.kv', null, h('dt', null, 'Fire stage'), h('dd', null, stageChip(st), stale && st !== null ? h('span.tag', null, 'not current') : null),
            h('dt', null, 'Max cell'), h('dd', null, pointValue(compPoint(b, 'battery.cell_temp.max'), 'battery.cell_temp.max')),
            h('dt', null, 'Contactor'), h('dd', null, contactor === false ? h('strong', null, 'OPEN') : contactor === true ? 'closed' : 'no reading'),
            h('dt', null, 'UPS'), h('dd', null, ups ? `${ups.id}: ${displayState(ups.id, 'power')}, ${withUnit(compValue(ups, 'ups.load_pct'), '%')} load, ${withUnit(compValue(ups, 'ups.runtime_s'), 's')} runtime` : '—'))));
      }
    };
    const draw = () => {
      controls.querySelector('#mode-stage').setAttribute('aria-pressed', String(mode === 'stage'));
      controls.querySelector('#mode-temp').setAttribute('aria-pressed', String(mode === 'temp'));
      drawFire();
      drawRooms();
      clear(floor);
      floor.appendChild(mode === 'stage' ? stageLegend()
        : h('p.legend', null, h('span.chip.t-ok', null, '< 35 °C'), h('span.chip.t-warm', null, '35–45 °C'), h('span.chip.t-hot', null, '≥ 45 °C'), h('span.chip.t-unknown', null, 'no reading')));
      for (const [hall, rows] of rackLayout()) {
        const room = state.byId.get(hall);
        const hallEl = h('section.hall', { 'aria-label': `Room ${hall}`, 'data-room': hall }, h('h2', null, room?.name ? `${hall} — ${room.name}` : hall));
        for (const [row, list] of rows) {
          const zones = [...new Set(list.flatMap(rackZones))];
          const rowEl = h('div.rackrow', { 'data-row': row }, h('span.rowname', null, row.replace(/^row-/, '')));
          const cells = h('div.rackcells');
          for (const c of list) {
            const st = stageOf(c);
            const t = compValue(c, 'rack.temp');
            const cls = mode === 'stage' ? stageClass(st) : tempClass(t);
            const label = rackLabel(c, st, t);
            const b = h(`button.rack.${cls}`, {
              type: 'button', 'data-id': c.id, 'data-stage': st ?? '', title: label, 'aria-label': label,
              onclick: () => pick(c.id),
            }, rackText(c));
            if (selected === c.id) b.classList.add('selected');
            cells.appendChild(b);
          }
          rowEl.appendChild(cells);
          rowEl.appendChild(h('span.zones', null, zones.join(' + ')));
          hallEl.appendChild(rowEl);
        }
        floor.appendChild(hallEl);
      }
      drawSide();
    };
    /// Recolours the racks in place (the map of 2,000 racks is not rebuilt on every sample).
    const update = () => {
      drawFire();
      drawRooms();
      for (const b of floor.querySelectorAll('button.rack')) {
        const c = state.byId.get(b.dataset.id);
        const st = stageOf(c);
        const t = compValue(c, 'rack.temp');
        const cls = mode === 'stage' ? stageClass(st) : tempClass(t);
        if (!b.classList.contains(cls)) {
          for (const x of [...b.classList]) if (x.startsWith('stage-') || x.startsWith('t-')) b.classList.remove(x);
          b.classList.add(cls);
        }
        const label = rackLabel(c, st, t);
        if (b.getAttribute('aria-label') !== label) {
          b.setAttribute('aria-label', label);
          b.title = label;
          b.dataset.stage = st ?? '';
        }
      }
      drawSide();
    };
    const drawSide = () => {
      // Keep the keyboard focus where it was when the panel is redrawn.
      const focusId = side.contains(document.activeElement) ? document.activeElement.id : null;
      clear(side);
      if (!selected) {
        side.appendChild(h('p.muted', null, 'Select a rack for its fire stage, inputs, stage timeline and event log.'));
        return;
      }
      const c = state.byId.get(selected);
      if (!c) return;
      const comps = state.site.components;
      const panel = h('aside.panel#rack-panel', { 'aria-label': `Rack ${c.id}`, tabindex: -1 });
      const close = () => { selected = null; history.replaceState(null, '', '/console/racks'); draw(); };
      panel.appendChild(h('div.panel-head', null, h('h2', null, `Rack ${c.id}`), h('button.close', { type: 'button', 'aria-label': 'Close panel', onclick: close }, '✕')));
      const st = stageOf(c);
      panel.appendChild(h('p', null, stageChip(st), stageStale(c) && st !== null ? h('span.tag', null, 'reading not current') : null));
      panel.appendChild(h('p.place', null, `Where: ${placeText(c.id, { building: true })}`));
      const entry = fireEntry(c.id);
      if (entry) {
        panel.appendChild(h('dl.kv#rack-fire', null,
          h('dt', null, 'Since'), h('dd', null, sinceNode(entry)),
          h('dt', null, 'Triggered by'), h('dd', null, triggerText(entry.trigger)),
          h('dt', null, 'Actions'), h('dd', null, entry.actions.length ? actionList(entry) : 'none at this stage')));
      }
      const inputs = h('tbody');
      for (const g of c.groups ?? []) {
        for (const m of g.members) {
          const up = comps[m];
          const s2 = displayState(up.id, g.subsystem);
          inputs.appendChild(h('tr', null, h('td', null, g.subsystem), h('td', null, up.id), h('td', null, h(`span.state.st-${s2}`, null, s2))));
        }
      }
      panel.appendChild(h('h3', null, 'Inputs'));
      panel.appendChild(tableWrap(h('table.data', null, h('thead', null, h('tr', null, ['Subsystem', 'From', 'State'].map((x) => h('th', { scope: 'col' }, x)))), inputs), 'Inputs'));
      panel.appendChild(h('p', null, `UPS zones: ${rackZones(c).join(', ') || '—'}`));
      panel.appendChild(h('h3', null, 'Now'));
      panel.appendChild(h('dl.kv', null, (c.bindings ?? []).flatMap((b) => [h('dt', { title: b.role }, roleInfo(b.role).description ?? b.role), h('dd', null, pointValue(point(b.device, b.role), b.role), ' ', pointAge(point(b.device, b.role)))])));
      const dev = (c.bindings ?? [])[0]?.device;
      if (ctx.canOperate && dev) {
        // Commands to the rack controller through its agent; refused under authority control.
        const why = refusedWhy('device_command');
        const send = (kind, label) => act(() => post(`/api/devices/${encodeURIComponent(dev)}/commands`, kind), `${label}: sent to ${dev}`);
        panel.appendChild(h('h3', null, 'Commands'));
        panel.appendChild(h('div.controls#rack-commands', { title: why ?? undefined },
          h('button#cmd-ack', { type: 'button', disabled: !!why, title: why ?? `Acknowledge and silence the buzzer at ${dev}`, onclick: () => send({ kind: 'acknowledge' }, 'Acknowledge') }, 'Acknowledge / silence'),
          h('button#cmd-time', { type: 'button', disabled: !!why, title: why ?? `Set the clock of ${dev}`, onclick: () => send({ kind: 'time_sync', unix_ms: Date.now() }, 'Clock sync') }, 'Sync clock')));
        if (why) panel.appendChild(h('p.warn#rack-commands-why', null, why));
      }
      panel.appendChild(h('h3', null, 'Maintenance'));
      panel.appendChild(maintenanceControl(c.id, ctx, drawSide));
      panel.appendChild(h('h3', null, 'Stage timeline (stage code)'));
      const hist = dev ? state.history.get(key(dev, 'fire.stage')) ?? [] : [];
      panel.appendChild(trendChart(hist, { height: 120, label: 'fire stage code over time' }));
      panel.appendChild(h('h3', null, 'Temperature (°C)'));
      panel.appendChild(trendChart(dev ? state.history.get(key(dev, 'rack.temp')) ?? [] : [], { height: 120, label: 'rack temperature over time' }));
      panel.appendChild(h('h3', null, 'Event log'));
      const devs = new Set((c.bindings ?? []).map((b) => b.device));
      const evs = state.events.filter((e) => devs.has(e.device)).slice(0, 50);
      panel.appendChild(evs.length ? h('ul.log', null, evs.map((e) => h('li', null, h('span.ts', null, fmtTime(e.ts_ms, { tz: true })), ` ${eventText(e)}`))) : h('p.muted', null, 'No events from this rack.'));
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
    const offs = [on('points', redraw), on('redundancy', redraw), on('fire', redraw), on('events', drawSide), on('history', drawSide), on('maintenance', drawSide), on('authority', drawSide)];
    return () => offs.forEach((f) => f());
  },
  key(e) {
    if (e.key === 'Escape') document.querySelector('#rack-panel button.close')?.click();
  },
};
