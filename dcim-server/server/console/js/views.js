// The console's views. Each view: { title, render(main, args, ctx) -> cleanup?, key?(event) }.

import { get, post } from './api.js';
import { h, s, clear, fmtTime, fmtAgo, fmtValue, trendChart, toast } from './ui.js';
import { state, on, key, point, compValue, computePue, loadAlarms, loadIncidents, refusedWhy, seedHistory } from './state.js';
import { diagram, recolour, displayState, rackSummary, LAYERS } from './diagram.js';

// ------------------------------------------------------------------ shared helpers

const GRADE_LABEL = { 1: 'Grade 1', 2: 'Grade 2', 3: 'Grade 3' };
const RANK = { below_n: 0, N: 1, 'N+1': 2, '2N': 3 };

export function alarmState(a) {
  const o = a.overlays ?? {};
  if (o.out_of_service_by) return 'out_of_service';
  if (o.suppressed_by) return 'suppressed_by_design';
  if (o.maintenance) return 'suppressed_by_maintenance';
  if (o.shelved_until) return 'shelved';
  return a.base;
}

function stateLabel(st) {
  return (
    {
      unacknowledged: 'Unacknowledged',
      acknowledged: 'Acknowledged',
      rtn_unacknowledged: 'Returned, unacknowledged',
      shelved: 'Shelved',
      suppressed_by_design: 'Suppressed (by design)',
      suppressed_by_maintenance: 'Suppressed (maintenance)',
      out_of_service: 'Out of service',
      normal: 'Normal',
    }[st] ?? st
  );
}

function redBadge(cur, des) {
  const ok = (RANK[cur] ?? 0) >= (RANK[des] ?? 0);
  return h(`span.red.${ok ? 'ok' : (cur === 'below_n' ? 'bad' : 'warn')}`, null, cur === 'below_n' ? 'below N' : (cur ?? '?'));
}

async function act(fn, okMsg) {
  try {
    const r = await fn();
    if (okMsg) toast(okMsg, 'ok');
    return r;
  } catch (e) {
    toast(`Refused: ${e.message}`, 'error');
    return null;
  }
}

function subsystemCard(sub, go) {
  return h(
    `section.card.sub.${(RANK[sub.current] ?? 0) >= (RANK[sub.designed] ?? 0) ? 'ok' : 'bad'}`,
    { 'data-subsystem': sub.subsystem },
    h('h2', null, h('a', { href: `/console/${sub.subsystem}`, onclick: (e) => { e.preventDefault(); go(sub.subsystem); } }, sub.subsystem[0].toUpperCase() + sub.subsystem.slice(1))),
    h('div.big', null, redBadge(sub.current, sub.designed), h('span.of', null, ` designed ${sub.designed}`)),
    h(
      'dl.kv',
      null,
      h('dt', null, 'Live paths (min)'),
      h('dd', null, String(sub.min_live_paths ?? '—')),
      h('dt', null, 'Single points of failure'),
      h('dd', null, sub.single_points_of_failure?.length ? sub.single_points_of_failure.join(', ') : 'none'),
      h('dt', null, 'Spare after one more failure'),
      h('dd', null, sub.spare_after_one == null ? '—' : `${fmtValue(sub.spare_after_one)} kW${sub.spare_after_one_at ? ` (at ${sub.spare_after_one_at})` : ''}`),
      h('dt', null, 'Down / lost / degraded'),
      h('dd', null, `${sub.down?.length ?? 0} / ${sub.lost?.length ?? 0} / ${sub.degraded?.length ?? 0}`),
    ),
  );
}

// ------------------------------------------------------------------ overview

const overview = {
  title: 'Overview',
  render(main, _args, ctx) {
    const root = h('div.overview');
    main.appendChild(h('h1', null, 'Site overview'));
    main.appendChild(root);
    const draw = () => {
      clear(root);
      const subs = state.redundancy?.subsystems ?? [];
      const grid = h('div.grid3');
      for (const sub of subs) grid.appendChild(subsystemCard(sub, ctx.go));
      root.appendChild(grid);
      const byGrade = { 1: 0, 2: 0, 3: 0 };
      for (const a of state.alarms) byGrade[a.grade] = (byGrade[a.grade] ?? 0) + 1;
      const open = state.incidents.filter((i) => i.phase !== 'closed' && i.phase !== 'follow_up');
      const pue = computePue();
      const rt = state.redundancy?.ride_through ?? [];
      const row = h('div.grid3');
      row.appendChild(
        h('section.card#alarms-by-grade', null, h('h2', null, h('a', { href: '/console/alarms', onclick: (e) => { e.preventDefault(); ctx.go('alarms'); } }, 'Active alarms')),
          h('div.grades', null, [1, 2, 3].map((g) => h(`div.grade.g${g}`, { 'data-grade': g }, h('span.n', null, String(byGrade[g])), h('span.l', null, GRADE_LABEL[g])))),
          state.flooding ? h('p.warn', null, 'Alarm flood in progress') : null),
      );
      row.appendChild(
        h('section.card#incidents-card', null, h('h2', null, h('a', { href: '/console/incidents', onclick: (e) => { e.preventDefault(); ctx.go('incidents'); } }, 'Incidents')),
          open.length === 0 ? h('p.muted', null, 'No open incident') : h('ul.plain', null, open.slice(0, 5).map((i) => h('li', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title} `, h('span.muted', null, `(${i.phase})`))))),
      );
      const pueCard = h('section.card#pue', null, h('h2', null, 'PUE'),
        h('div.big', null, pue ? pue.pue.toFixed(2) : '—'),
        h('p.muted', null, pue ? `facility ${fmtValue(pue.facility)} kW / IT ${fmtValue(pue.it)} kW` : 'needs feed and rack power points'),
        trendChart(state.pue, { width: 520, height: 130, label: 'PUE trend since this page opened' }));
      row.appendChild(pueCard);
      root.appendChild(row);
      if (rt.length) {
        root.appendChild(h('section.card', null, h('h2', null, 'Cooling ride-through (buffer tank)'),
          h('table.data', null, h('thead', null, h('tr', null, ['Tank', 'Chillers', 'Tank °C', 'Level %', 'Heat load kW', 'Minutes'].map((x) => h('th', null, x)))),
            h('tbody', null, rt.map((t) => h('tr', null, h('td', null, t.tank), h('td', null, `${t.chillers_available}/${t.chillers_total}`), h('td', null, fmtValue(t.tank_temp_c)), h('td', null, fmtValue(t.level_pct)), h('td', null, fmtValue(t.heat_load_kw)), h('td.big2', null, t.minutes == null ? '—' : fmtValue(t.minutes))))))));
      }
    };
    draw();
    const offs = [on('redundancy', draw), on('alarms', draw), on('incidents', draw), on('points', draw)];
    return () => offs.forEach((f) => f());
  },
};

// ------------------------------------------------------------------ component panel

function componentPanel(id, subsystem, close) {
  const c = state.byId.get(id);
  const panel = h('aside.panel#component-panel', { 'aria-label': `Component ${id}`, tabindex: -1 });
  if (!c) {
    panel.appendChild(h('p', null, `Unknown component ${id}`));
    return { el: panel, update() {} };
  }
  let chartKey = null;
  const bindings = c.bindings ?? [];
  const firstNum = bindings.find((b) => typeof point(b.device, b.role)?.value === 'number');
  if (firstNum) chartKey = key(firstNum.device, firstNum.role);
  const update = () => {
    clear(panel);
    const st = displayState(id, subsystem);
    const cs = state.compState.get(id);
    panel.appendChild(h('div.panel-head', null, h('h2', null, c.id), h('button.close', { type: 'button', onclick: close, 'aria-label': 'Close panel' }, '✕')));
    panel.appendChild(h('p', null, c.name ?? c.kind, ' ', h(`span.state.st-${st}`, null, st)));
    if (cs?.supply?.length) {
      panel.appendChild(h('table.data', null, h('thead', null, h('tr', null, ['Subsystem', 'Designed', 'Current', 'Live paths', 'SPOF'].map((x) => h('th', null, x)))),
        h('tbody', null, cs.supply.map((x) => h('tr', null, h('td', null, x.subsystem), h('td', null, x.designed), h('td', null, redBadge(x.current, x.designed)), h('td', null, `${x.live_paths}/${x.designed_paths}`), h('td', null, x.single_points_of_failure.join(', ') || '—'))))));
    }
    panel.appendChild(h('h3', null, 'Points'));
    const tb = h('tbody');
    for (const b of bindings) {
      const p = point(b.device, b.role);
      const k = key(b.device, b.role);
      const numeric = typeof p?.value === 'number' || typeof p?.value === 'boolean';
      tb.appendChild(h(`tr${k === chartKey ? '.sel' : ''}`, null,
        h('td', null, numeric ? h('button.link', { type: 'button', onclick: () => { chartKey = k; update(); } }, b.role) : b.role),
        h('td.num', null, fmtValue(p?.value)), h('td', null, p?.quality ?? 'no value'), h('td.muted', null, p ? fmtAgo(p.ts_ms) : '')));
    }
    panel.appendChild(h('table.data.points', null, h('thead', null, h('tr', null, ['Role', 'Value', 'Quality', 'Age'].map((x) => h('th', null, x)))), tb));
    if (chartKey) {
      panel.appendChild(h('h3', null, `Trend: ${chartKey.split('|')[1]}`));
      panel.appendChild(trendChart(state.history.get(chartKey) ?? [], { label: chartKey }));
    }
    const devices = new Set(bindings.map((b) => b.device));
    const alarms = state.alarms.filter((a) => a.component === id || devices.has(a.subject));
    panel.appendChild(h('h3', null, `Alarms (${alarms.length})`));
    panel.appendChild(alarms.length ? h('ul.plain', null, alarms.map((a) => h('li', null, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), ` ${a.message} `, h('span.muted', null, stateLabel(alarmState(a)))))) : h('p.muted', null, 'none'));
  };
  update();
  // The charted point first, then the others; the panel is already drawn and redraws when
  // the history arrives.
  const pairs = bindings.map((b) => [b.device, b.role]);
  if (firstNum) pairs.unshift([firstNum.device, firstNum.role]);
  seedHistory(pairs);
  return { el: panel, update };
}

// ------------------------------------------------------------------ power / cooling / network

function subsystemView(subsystem, title) {
  return {
    title,
    render(main, args, ctx) {
      let selected = args[0] ?? null;
      const sub = () => (state.redundancy?.subsystems ?? []).find((x) => x.subsystem === subsystem);
      const head = h('div.viewhead');
      main.appendChild(h('h1', null, title));
      main.appendChild(head);
      const wrap = h('div.split');
      const svg = diagram(subsystem, {
        selected,
        onSelect: (id) => {
          selected = id;
          history.replaceState(null, '', `/console/${subsystem}/${encodeURIComponent(id)}`);
          for (const g of svg.querySelectorAll('g.node')) g.classList.toggle('selected', g.getAttribute('data-id') === id);
          showPanel();
        },
      });
      const diag = h('div.diagram-wrap', null, svg);
      wrap.appendChild(diag);
      const side = h('div.side');
      wrap.appendChild(side);
      main.appendChild(wrap);
      let panel = null;
      const showPanel = () => {
        clear(side);
        panel = null;
        if (!selected) {
          side.appendChild(h('p.muted', null, 'Select a component (click, or Tab then Enter) to see its points, trend and alarms.'));
          return;
        }
        panel = componentPanel(selected, subsystem, () => {
          selected = null;
          history.replaceState(null, '', `/console/${subsystem}`);
          for (const g of svg.querySelectorAll('g.node.selected')) g.classList.remove('selected');
          showPanel();
        });
        side.appendChild(panel.el);
      };
      const drawHead = () => {
        clear(head);
        const x = sub();
        const racks = rackSummary(subsystem);
        if (x) head.appendChild(h('p.summary', null, 'Redundancy ', redBadge(x.current, x.designed), ` designed ${x.designed}. SPOF: ${x.single_points_of_failure.join(', ') || 'none'}. `,
          `Racks: ${racks.up} full, ${racks.degraded} degraded, ${racks.down} without ${subsystem}, ${racks.unknown} unknown.`));
        head.appendChild(h('p.legend', null, ['up', 'degraded', 'down', 'maintenance', 'unknown'].map((st) => h(`span.state.st-${st}`, null, st))));
      };
      drawHead();
      showPanel();
      const offs = [
        on('redundancy', () => {
          recolour(svg, subsystem);
          drawHead();
          if (panel) panel.update();
        }),
        on('points', () => panel && panel.update()),
        on('history', () => panel && panel.update()),
        on('alarms', () => panel && panel.update()),
      ];
      return () => offs.forEach((f) => f());
    },
    key(e) {
      if (e.key === 'Escape') document.querySelector('#component-panel button.close')?.click();
    },
  };
}

// ------------------------------------------------------------------ battery rooms and racks

const STAGE_LABEL = ['normal', 'stage 1: watch', 'stage 2: alarm', 'stage 3: release', 'stage 4'];

function rackLayout() {
  const comps = state.site.components;
  const halls = new Map();
  for (const c of comps) {
    if (c.kind !== 'rack') continue;
    const net = (c.groups ?? []).find((g) => g.subsystem === 'network');
    const row = net ? comps[net.members[0]]?.id : 'row-?';
    const hall = c.room ?? 'hall-?';
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

function stageOf(c) {
  const v = compValue(c, 'fire.stage');
  return typeof v === 'number' ? v : null;
}

function tempClass(t) {
  if (typeof t !== 'number') return 't-unknown';
  if (t >= 45) return 't-hot';
  if (t >= 35) return 't-warm';
  return 't-ok';
}

const racks = {
  title: 'Battery rooms and racks',
  render(main, args, ctx) {
    let mode = 'stage';
    let selected = args[0] ?? null;
    main.appendChild(h('h1', null, 'Battery rooms and racks'));
    const controls = h('div.controls', { role: 'radiogroup', 'aria-label': 'Colour racks by' },
      h('button#mode-stage', { type: 'button', 'aria-pressed': 'true', onclick: () => { mode = 'stage'; draw(); } }, 'Colour by fire stage'),
      h('button#mode-temp', { type: 'button', 'aria-pressed': 'false', onclick: () => { mode = 'temp'; draw(); } }, 'Colour by temperature'));
    main.appendChild(controls);
    const rooms = h('div.battrooms');
    const floor = h('div.floor');
    const side = h('div.side');
    main.appendChild(rooms);
    main.appendChild(h('div.split', null, floor, side));
    const drawRooms = () => {
      clear(rooms);
      for (const b of state.site.components.filter((c) => c.kind === 'battery_room')) {
        const st = stageOf(b);
        const ups = state.site.components.find((u) => u.kind === 'ups' && u.zone === b.zone);
        rooms.appendChild(h(`section.card.battroom.bstage-${st ?? 'x'}`, { 'data-id': b.id, 'data-stage': st ?? '' },
          h('h2', null, `Zone ${b.zone ?? '?'} — ${b.id}`),
          h('dl.kv', null, h('dt', null, 'Fire stage'), h('dd', null, st == null ? '—' : STAGE_LABEL[st] ?? `stage ${st}`),
            h('dt', null, 'Max cell °C'), h('dd', null, fmtValue(compValue(b, 'battery.cell_temp.max'))),
            h('dt', null, 'Contactor'), h('dd', null, compValue(b, 'battery.contactor_closed') === false ? 'OPEN' : compValue(b, 'battery.contactor_closed') === true ? 'closed' : '—'),
            h('dt', null, 'UPS'), h('dd', null, ups ? `${ups.id}: ${displayState(ups.id, 'power')}, ${fmtValue(compValue(ups, 'ups.load_pct'))} % load, ${fmtValue(compValue(ups, 'ups.runtime_s'))} s runtime` : '—'))));
      }
    };
    const draw = () => {
      controls.querySelector('#mode-stage').setAttribute('aria-pressed', String(mode === 'stage'));
      controls.querySelector('#mode-temp').setAttribute('aria-pressed', String(mode === 'temp'));
      drawRooms();
      clear(floor);
      for (const [hall, rows] of rackLayout()) {
        const hallEl = h('section.hall', { 'aria-label': hall }, h('h2', null, hall));
        for (const [row, list] of rows) {
          const zones = [...new Set(list.flatMap(rackZones))];
          const rowEl = h('div.rackrow', null, h('span.rowname', null, row.replace(/^row-/, '')));
          for (const c of list) {
            const st = stageOf(c);
            const t = compValue(c, 'rack.temp');
            const cls = mode === 'stage' ? `stage-${st ?? 'x'}` : tempClass(t);
            const b = h(`button.rack.${cls}`, {
              type: 'button', 'data-id': c.id, 'data-stage': st ?? '', title: `${c.id}: ${st == null ? 'no stage' : STAGE_LABEL[st] ?? st}, ${fmtValue(t)} °C`,
              onclick: () => { selected = c.id; history.replaceState(null, '', `/console/racks/${c.id}`); drawSide(); },
            }, c.id.replace(/^r/, ''));
            if (selected === c.id) b.classList.add('selected');
            rowEl.appendChild(b);
          }
          rowEl.appendChild(h('span.zones', null, zones.join(' + ')));
          hallEl.appendChild(rowEl);
        }
        floor.appendChild(hallEl);
      }
      floor.appendChild(h('p.legend', null, mode === 'stage'
        ? [0, 1, 2, 3].map((i) => h(`span.chip.stage-${i}`, null, STAGE_LABEL[i]))
        : [h('span.chip.t-ok', null, '< 35 °C'), h('span.chip.t-warm', null, '35–45 °C'), h('span.chip.t-hot', null, '≥ 45 °C')]));
      drawSide();
    };
    const drawSide = () => {
      clear(side);
      if (!selected) {
        side.appendChild(h('p.muted', null, 'Select a rack for its inputs, stage timeline and event log.'));
        return;
      }
      const c = state.byId.get(selected);
      if (!c) return;
      const comps = state.site.components;
      const panel = h('aside.panel#rack-panel', { 'aria-label': `Rack ${c.id}` });
      panel.appendChild(h('div.panel-head', null, h('h2', null, `Rack ${c.id}`), h('button.close', { type: 'button', 'aria-label': 'Close panel', onclick: () => { selected = null; history.replaceState(null, '', '/console/racks'); draw(); } }, '✕')));
      const inputs = h('tbody');
      for (const g of c.groups ?? []) {
        for (const m of g.members) {
          const up = comps[m];
          const st = displayState(up.id, g.subsystem);
          inputs.appendChild(h('tr', null, h('td', null, g.subsystem), h('td', null, up.id), h('td', null, h(`span.state.st-${st}`, null, st))));
        }
      }
      panel.appendChild(h('h3', null, 'Inputs'));
      panel.appendChild(h('table.data', null, h('thead', null, h('tr', null, ['Subsystem', 'From', 'State'].map((x) => h('th', null, x)))), inputs));
      panel.appendChild(h('p', null, `UPS zones: ${rackZones(c).join(', ') || '—'}`));
      panel.appendChild(h('h3', null, 'Now'));
      panel.appendChild(h('dl.kv', null, (c.bindings ?? []).flatMap((b) => [h('dt', null, b.role), h('dd', null, fmtValue(point(b.device, b.role)?.value))])));
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
      panel.appendChild(h('h3', null, 'Stage timeline'));
      const hist = dev ? state.history.get(key(dev, 'fire.stage')) ?? [] : [];
      panel.appendChild(trendChart(hist, { height: 120, label: 'fire stage' }));
      panel.appendChild(h('h3', null, 'Temperature'));
      panel.appendChild(trendChart(dev ? state.history.get(key(dev, 'rack.temp')) ?? [] : [], { height: 120, label: 'rack temperature' }));
      panel.appendChild(h('h3', null, 'Event log'));
      const devs = new Set((c.bindings ?? []).map((b) => b.device));
      const evs = state.events.filter((e) => devs.has(e.device)).slice(0, 50);
      panel.appendChild(evs.length ? h('ul.log', null, evs.map((e) => h('li', null, h('span.ts', null, fmtTime(e.ts_ms)), ` ${e.kind}: ${e.message}`))) : h('p.muted', null, 'No events from this rack.'));
      side.appendChild(panel);
      // Charted points first; drawSide runs again when the history arrives (once per point).
      seedHistory([...(dev ? [[dev, 'fire.stage'], [dev, 'rack.temp']] : []), ...(c.bindings ?? []).map((b) => [b.device, b.role])]);
    };
    draw();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(); });
    };
    const offs = [on('points', redraw), on('redundancy', redraw), on('events', drawSide), on('history', drawSide)];
    return () => offs.forEach((f) => f());
  },
};

// ------------------------------------------------------------------ alarms

const alarms = {
  title: 'Alarms',
  sel: 0,
  render(main, _args, ctx) {
    const self = this;
    let showAll = false;
    let list = state.alarms;
    main.appendChild(h('h1', null, 'Alarms'));
    const bar = h('div.controls', null,
      h('label', null, h('input#show-all', { type: 'checkbox', onchange: async (e) => { showAll = e.target.checked; await reload(); } }), ' include alarms in normal'));
    main.appendChild(bar);
    const table = h('table.data.alarms#alarm-table');
    main.appendChild(table);
    const detail = h('div#alarm-detail');
    main.appendChild(detail);
    const reload = async () => {
      if (showAll) {
        const r = await get('/api/alarms?all=true');
        list = r.alarms ?? [];
      } else list = state.alarms;
      draw();
    };
    const draw = () => {
      if (!showAll) list = state.alarms;
      const sorted = [...list].sort((a, b) => a.grade - b.grade || (b.last_change_ms ?? 0) - (a.last_change_ms ?? 0));
      self.rows = sorted;
      if (self.sel >= sorted.length) self.sel = Math.max(0, sorted.length - 1);
      clear(table);
      table.appendChild(h('thead', null, h('tr', null, ['Grade', 'State', 'Alarm', 'Component', 'Since', ctx.canOperate ? 'Actions' : null].filter(Boolean).map((x) => h('th', { scope: 'col' }, x)))));
      const tb = h('tbody');
      if (sorted.length === 0) tb.appendChild(h('tr', null, h('td', { colspan: 6 }, h('p.muted', null, 'No active alarm.'))));
      sorted.forEach((a, i) => {
        const st = alarmState(a);
        const tr = h(`tr.alarm.st-${st}${i === self.sel ? '.sel' : ''}`, { 'data-id': a.id, 'data-state': st, tabindex: 0, onfocus: () => { self.sel = i; markSel(); } },
          h('td', null, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), a.grade_raised ? h('span.muted', null, ' raised') : null),
          h('td.state', null, stateLabel(st), a.acked_by ? h('div.muted', null, `by ${a.acked_by}`) : null, a.overlays?.shelved_until ? h('div.muted', null, `until ${fmtTime(a.overlays.shelved_until)}`) : null),
          h('td', null, h('div', null, a.message), h('div.muted.mono', null, a.id)),
          h('td', null, a.component ?? a.subject ?? ''),
          h('td', null, fmtAgo(a.active_since_ms ?? a.last_change_ms)),
        );
        if (ctx.canOperate) {
          const acts = h('td.actions');
          if (st === 'unacknowledged' || st === 'rtn_unacknowledged') acts.appendChild(h('button.ack', { type: 'button', onclick: () => ack(a) }, 'Acknowledge'));
          if (st === 'shelved') acts.appendChild(h('button', { type: 'button', onclick: () => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/unshelve`), 'Unshelved') }, 'Unshelve'));
          else {
            const why = refusedWhy('alarm_shelve');
            const sel = h('select.shelve-min', { 'aria-label': 'Shelve for', disabled: !!why }, [15, 60, 240, 480].map((m) => h('option', { value: m }, m < 60 ? `${m} min` : `${m / 60} h`)));
            acts.appendChild(h('span.shelve', { title: why ?? undefined }, sel, h('button.shelve-btn', { type: 'button', disabled: !!why, title: why ?? undefined, onclick: () => shelve(a, +sel.value) }, 'Shelve')));
          }
          acts.appendChild(h('button', { type: 'button', onclick: () => showDetail(a, true) }, 'Comment'));
          tr.appendChild(acts);
        }
        tr.addEventListener('dblclick', () => showDetail(a, false));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') showDetail(a, false); });
        tb.appendChild(tr);
      });
      table.appendChild(tb);
    };
    const markSel = () => {
      table.querySelectorAll('tr.alarm').forEach((tr, i) => tr.classList.toggle('sel', i === self.sel));
    };
    const ack = (a) => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/ack`), `Acknowledged ${a.id}`).then(() => loadAlarms());
    // The server requires a reason (and refuses fire-stage and battery-temperature alarms).
    const shelve = (a, minutes) => {
      const reason = (window.prompt(`Reason for shelving ${a.id} for ${minutes} min`) ?? '').trim();
      if (!reason) return Promise.resolve(toast('Shelving needs a reason', 'error'));
      return act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/shelve`, { minutes, reason }), `Shelved ${a.id} for ${minutes} min`).then(() => loadAlarms());
    };
    self.ack = ack;
    self.shelve = shelve;
    const showDetail = async (a, focusComment) => {
      clear(detail);
      const panel = h('section.card#alarm-journal', null, h('div.panel-head', null, h('h2', null, a.id), h('button.close', { type: 'button', 'aria-label': 'Close', onclick: () => clear(detail) }, '✕')), h('p', null, a.message));
      if (ctx.canOperate) {
        const text = h('input#comment-text', { type: 'text', placeholder: 'Comment for the journal', 'aria-label': 'Comment' });
        panel.appendChild(h('form.inline', { onsubmit: async (e) => { e.preventDefault(); if (!text.value.trim()) return; await act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/comment`, { text: text.value }), 'Comment added'); showDetail(a, false); } }, text, h('button', { type: 'submit' }, 'Add comment')));
        if (focusComment) setTimeout(() => text.focus(), 0);
      }
      const j = await act(() => get(`/api/alarms/${encodeURIComponent(a.id)}/journal`));
      const recs = j?.journal ?? j?.records ?? (Array.isArray(j) ? j : []);
      panel.appendChild(h('ul.log', null, recs.map((row) => row.record ?? row).sort((x, y) => (y.ts_ms ?? 0) - (x.ts_ms ?? 0)).map((r) => h('li', null, h('span.ts', null, fmtTime(r.ts_ms)),
        ` ${r.event?.type ?? ''}: ${r.from ?? ''} → ${r.to ?? ''}${r.event?.text ? ` “${r.event.text}”` : ''}${r.user ? ` (${r.user})` : ''}`))));
      detail.appendChild(panel);
    };
    draw();
    const offs = [on('alarms', () => (showAll ? reload() : draw()))];
    return () => offs.forEach((f) => f());
  },
  key(e) {
    const rows = this.rows ?? [];
    if (e.key === 'j' || e.key === 'ArrowDown') this.sel = Math.min(rows.length - 1, (this.sel ?? 0) + 1);
    else if (e.key === 'k' || e.key === 'ArrowUp') this.sel = Math.max(0, (this.sel ?? 0) - 1);
    else if (e.key === 'a' && rows[this.sel] && state.me.role !== 'viewer' && state.me.role !== 'fire_authority') return this.ack(rows[this.sel]);
    else if (e.key === 's' && rows[this.sel] && state.me.role !== 'viewer' && state.me.role !== 'fire_authority') {
      const why = refusedWhy('alarm_shelve');
      if (why) return toast(why, 'error');
      return this.shelve(rows[this.sel], 60);
    }
    else return;
    e.preventDefault();
    const trs = document.querySelectorAll('#alarm-table tr.alarm');
    trs[this.sel]?.focus();
  },
};

// ------------------------------------------------------------------ incidents

const PHASES = ['detected', 'declared', 'handling', 'closed', 'follow_up'];
const ROLES = ['control_tower', 'operator', 'communicator', 'responsible_manager'];

const incidents = {
  title: 'Incidents',
  render(main, args, ctx) {
    let selected = args[0] ? Number(args[0]) : null;
    main.appendChild(h('h1', null, 'Incidents'));
    const wrap = h('div.split');
    const listEl = h('div.inclist');
    const side = h('div.side.wide');
    wrap.appendChild(listEl);
    wrap.appendChild(side);
    if (ctx.canOperate) {
      const title = h('input#new-incident-title', { type: 'text', placeholder: 'Title of a new incident', 'aria-label': 'New incident title', required: true });
      const grade = h('select#new-incident-grade', { 'aria-label': 'Grade' }, [1, 2, 3].map((g) => h('option', { value: g, selected: g === 3 }, `Grade ${g}`)));
      main.appendChild(h('form.inline', { onsubmit: async (e) => { e.preventDefault(); const r = await act(() => post('/api/incidents', { title: title.value, grade: +grade.value }), 'Incident opened'); title.value = ''; await loadIncidents(); if (r?.id) { selected = r.id; draw(); } } }, title, grade, h('button', { type: 'submit' }, 'Open incident')));
    }
    main.appendChild(wrap);
    const op = (id, name, body) => act(() => post(`/api/incidents/${id}/${name}`, body)).then(() => loadIncidents());
    const draw = () => {
      clear(listEl);
      const list = [...state.incidents].sort((a, b) => b.id - a.id);
      if (!list.length) listEl.appendChild(h('p.muted', null, 'No incidents.'));
      for (const i of list) {
        listEl.appendChild(h(`button.incident${i.id === selected ? '.sel' : ''}`, { type: 'button', 'data-id': i.id, onclick: () => { selected = i.id; history.replaceState(null, '', `/console/incidents/${i.id}`); draw(); } },
          h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`, h('div.muted', null, `${i.phase} · opened ${fmtTime(i.opened_ms)}`)));
      }
      clear(side);
      const i = state.incidents.find((x) => x.id === selected);
      if (!i) {
        side.appendChild(h('p.muted', null, 'Select an incident.'));
        return;
      }
      const p = h('section.card#incident-detail', { 'data-id': i.id });
      p.appendChild(h('h2', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`));
      p.appendChild(h('ol.phases', null, PHASES.map((ph) => h(`li${ph === i.phase ? '.cur' : ''}`, null, ph.replace('_', '-')))));
      p.appendChild(h('p', null, h('a', { href: `/api/incidents/${i.id}/export?format=markdown`, download: `incident-${i.id}.md` }, 'Export Markdown'), ' · ', h('a', { href: `/api/incidents/${i.id}/export?format=json`, download: `incident-${i.id}.json` }, 'Export JSON')));
      if (ctx.canOperate) {
        const next = PHASES[PHASES.indexOf(i.phase) + 1];
        const row = h('div.controls');
        if (next) row.appendChild(h('button', { type: 'button', onclick: () => op(i.id, 'advance', { phase: next }) }, `Advance to ${next.replace('_', '-')}`));
        const g = h('select', { 'aria-label': 'Grade' }, [1, 2, 3].map((x) => h('option', { value: x, selected: x === i.grade }, `Grade ${x}`)));
        row.appendChild(h('span', null, g, h('button', { type: 'button', onclick: () => op(i.id, 'grade', { grade: +g.value }) }, 'Set grade')));
        p.appendChild(row);
      }
      p.appendChild(h('h3', null, 'Roles'));
      const roles = i.roles ?? {};
      p.appendChild(h('dl.kv', null, ROLES.flatMap((r) => [h('dt', null, r.replace('_', ' ')), h('dd', null, r === 'operator' ? (roles.operators ?? []).join(', ') || '—' : roles[r] ?? '—')])));
      if (ctx.canOperate) {
        const rsel = h('select', { 'aria-label': 'Role' }, ROLES.map((r) => h('option', { value: r }, r.replace('_', ' '))));
        const person = h('input', { type: 'text', placeholder: 'Person', 'aria-label': 'Person' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (person.value) op(i.id, 'assign', { role: rsel.value, person: person.value }); } }, rsel, person, h('button', { type: 'submit' }, 'Assign')));
      }
      p.appendChild(h('h3', null, 'Cause, impact, recovery'));
      p.appendChild(h('dl.kv', null, ['cause', 'impact', 'recovery', 'retrospective'].flatMap((f) => [h('dt', null, f), h('dd', null, i[f] || '—')])));
      if (ctx.canOperate) {
        const fsel = h('select', { 'aria-label': 'Field' }, ['cause', 'impact', 'recovery', 'retrospective'].map((f) => h('option', { value: f }, f)));
        const ftext = h('input', { type: 'text', placeholder: 'Text', 'aria-label': 'Field text' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ftext.value) op(i.id, 'field', { field: fsel.value, text: ftext.value }); } }, fsel, ftext, h('button', { type: 'submit' }, 'Save')));
      }
      p.appendChild(h('h3', null, 'Follow-up items'));
      p.appendChild((i.follow_ups ?? []).length ? h('ul.plain', null, i.follow_ups.map((f, idx) => h('li', null, f.done ? '☑ ' : '☐ ', f.text, f.owner ? h('span.muted', null, ` (${f.owner})`) : null,
        ctx.canOperate && !f.done ? h('button', { type: 'button', onclick: () => op(i.id, 'complete_follow_up', { index: idx }) }, 'Done') : null))) : h('p.muted', null, 'none'));
      if (ctx.canOperate) {
        const ft = h('input', { type: 'text', placeholder: 'Follow-up item', 'aria-label': 'Follow-up item' });
        const fo = h('input', { type: 'text', placeholder: 'Owner', 'aria-label': 'Owner' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ft.value) op(i.id, 'follow_up', { text: ft.value, owner: fo.value || undefined }); } }, ft, fo, h('button', { type: 'submit' }, 'Add')));
      }
      p.appendChild(h('h3', null, 'Journal'));
      if (ctx.canOperate) {
        const nt = h('input#incident-note', { type: 'text', placeholder: 'Note for the journal', 'aria-label': 'Note' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (nt.value) op(i.id, 'note', { text: nt.value }); } }, nt, h('button', { type: 'submit' }, 'Add note')));
      }
      p.appendChild(h('ol.timeline', null, (i.journal ?? []).slice().reverse().map((j) => h(`li.k-${j.kind}`, null, h('span.ts', null, fmtTime(j.ts_ms)), h('span.kind', null, j.kind), ` ${j.text} `, h('span.muted', null, j.user ?? '')))));
      side.appendChild(p);
    };
    if (selected == null && state.incidents.length) selected = Math.max(...state.incidents.map((i) => i.id));
    draw();
    const offs = [on('incidents', draw)];
    return () => offs.forEach((f) => f());
  },
};

// ------------------------------------------------------------------ what-if

const whatif = {
  title: 'What-if',
  render(main) {
    main.appendChild(h('h1', null, 'What-if: fail components'));
    const chosen = new Set();
    let result = null;
    const picker = h('div.picker');
    const out = h('div.whatif-out');
    const diagrams = h('div.whatif-diagrams');
    main.appendChild(h('div.split', null, picker, out));
    main.appendChild(diagrams);
    const overlay = () => {
      const m = new Map();
      if (!result) return m;
      for (const x of result.loses_redundancy ?? []) m.set(x.id, 'weakened');
      for (const k of ['loses_power', 'loses_cooling', 'loses_network']) for (const x of result[k] ?? []) m.set(typeof x === 'string' ? x : x.id, 'loses');
      for (const id of result.failed ?? []) m.set(id, 'failed');
      return m;
    };
    const toggle = (id) => {
      if (chosen.has(id)) chosen.delete(id);
      else chosen.add(id);
      drawPicker();
      evaluate();
    };
    const drawPicker = () => {
      clear(picker);
      for (const [sub, kinds] of Object.entries(LAYERS)) {
        const fs = h('fieldset', null, h('legend', null, sub));
        for (const c of state.site.components.filter((x) => kinds.flat().includes(x.kind) && x.kind !== 'pdu' && x.kind !== 'row')) {
          fs.appendChild(h('label.check', null, h('input', { type: 'checkbox', value: c.id, checked: chosen.has(c.id), onchange: () => toggle(c.id) }), ` ${c.id}`));
        }
        picker.appendChild(fs);
      }
      picker.appendChild(h('button#whatif-clear', { type: 'button', onclick: () => { chosen.clear(); drawPicker(); evaluate(); } }, 'Clear'));
    };
    const list = (title, items, fmt) => h('section.card', null, h('h3', null, `${title} (${items.length})`), items.length ? h('p.ids', null, items.slice(0, 80).map(fmt).join(', ') + (items.length > 80 ? `, … ${items.length - 80} more` : '')) : h('p.muted', null, 'none'));
    const evaluate = async () => {
      clear(out);
      if (!chosen.size) {
        result = null;
        out.appendChild(h('p.muted', null, 'Pick components to fail. The diagrams below show what fails (hatched), loses supply (red outline) and loses redundancy (amber outline).'));
      } else {
        result = await act(() => get(`/api/site/whatif?fail=${[...chosen].map(encodeURIComponent).join(',')}`));
        if (result) {
          const id = (x) => (typeof x === 'string' ? x : x.id);
          out.appendChild(h('div#whatif-result', null,
            list('Loses power', result.loses_power ?? [], id), list('Loses cooling', result.loses_cooling ?? [], id), list('Loses network', result.loses_network ?? [], id),
            list('Loses redundancy', result.loses_redundancy ?? [], (x) => `${x.id} ${x.before}→${x.after}`)));
        }
      }
      clear(diagrams);
      const ov = overlay();
      for (const sub of Object.keys(LAYERS)) {
        diagrams.appendChild(h('h2', null, sub));
        diagrams.appendChild(h('div.diagram-wrap', null, diagram(sub, { overlay: ov, onSelect: (id) => state.byId.get(id)?.kind !== 'pdu' && toggle(id) })));
      }
    };
    drawPicker();
    evaluate();
  },
};

// ------------------------------------------------------------------ fire authority

function pointsWithRole(role) {
  return [...state.points.values()].filter((p) => p.role === role);
}

const fire = {
  title: 'Fire authority',
  render(main) {
    const root = h('div.fire');
    main.appendChild(root);
    const draw = () => {
      clear(root);
      root.appendChild(h('div.viewhead', null, h('h1', null, `Fire authority view — ${state.site?.name ?? ''}`),
        h('p.muted', null, `Printed ${fmtTime(Date.now())}. Read-only.`), h('button.noprint#print', { type: 'button', onclick: () => window.print() }, 'Print')));
      const comps = state.site.components;
      // Racks and battery rooms by stage.
      const byStage = new Map();
      for (const c of comps.filter((x) => x.kind === 'rack' || x.kind === 'battery_room')) {
        const st = stageOf(c);
        const k = st == null ? 'unknown' : st;
        if (!byStage.has(k)) byStage.set(k, []);
        byStage.get(k).push(c.id);
      }
      const stages = [...byStage.keys()].sort((a, b) => (b === 'unknown' ? -1 : a === 'unknown' ? 1 : b - a));
      root.appendChild(h('section.card#fire-stages', null, h('h2', null, 'Racks and battery rooms by fire stage'),
        h('table.data', null, h('thead', null, h('tr', null, h('th', null, 'Stage'), h('th', null, 'Count'), h('th', null, 'Where'))),
          h('tbody', null, stages.map((st) => h(`tr.stage-row.stage-${st}`, { 'data-stage': st }, h('td', null, st === 'unknown' ? 'no reading' : STAGE_LABEL[st] ?? `stage ${st}`), h('td.num', null, String(byStage.get(st).length)),
            h('td', null, st === 0 ? 'all others' : byStage.get(st).join(', '))))))));
      // Live feeds and breakers.
      const live = [];
      for (const c of comps.filter((x) => ['utility_feed', 'ups', 'pdu', 'battery_room'].includes(x.kind))) {
        const role = { utility_feed: 'feed.breaker_closed', pdu: 'pdu.breaker_closed', battery_room: 'battery.contactor_closed', ups: null }[c.kind];
        const v = role ? compValue(c, role) : null;
        const st = displayState(c.id, 'power');
        const energised = c.kind === 'ups' ? st !== 'down' : v === true;
        live.push({ id: c.id, kind: c.kind, energised, known: c.kind === 'ups' ? st !== 'unknown' : typeof v === 'boolean', name: c.name });
      }
      const liveRows = (kind, label) => {
        const xs = live.filter((x) => x.kind === kind);
        const on = xs.filter((x) => x.known && x.energised).map((x) => x.id);
        const off = xs.filter((x) => x.known && !x.energised).map((x) => x.id);
        const unk = xs.filter((x) => !x.known).map((x) => x.id);
        return h('tr', { 'data-kind': kind }, h('td', null, label), h('td.live', null, on.length ? on.join(', ') : '—'), h('td.dead', null, off.length ? off.join(', ') : '—'), h('td', null, unk.length ? unk.join(', ') : '—'));
      };
      root.appendChild(h('section.card#fire-power', null, h('h2', null, 'Which feeds and breakers are live'),
        h('table.data', null, h('thead', null, h('tr', null, ['', 'LIVE (energised)', 'Open / de-energised', 'Unknown'].map((x) => h('th', null, x)))),
          h('tbody', null, liveRows('utility_feed', 'Utility feeds (breaker)'), liveRows('ups', 'UPS outputs'), liveRows('battery_room', 'Battery contactors'), liveRows('pdu', 'PDU breakers')))));
      // Coolant and drain tank.
      const cool = h('tbody');
      for (const c of comps.filter((x) => x.kind === 'chilled_water_loop' || x.kind === 'buffer_tank')) {
        for (const b of c.bindings ?? []) cool.appendChild(h('tr', null, h('td', null, c.id), h('td', null, b.role), h('td.num', null, fmtValue(point(b.device, b.role)?.value))));
      }
      for (const role of ['fire.coolant_flow', 'drain_tank.level_pct']) {
        const ps = pointsWithRole(role);
        if (!ps.length) cool.appendChild(h('tr', null, h('td', null, '—'), h('td', null, role), h('td.muted', null, 'no reading')));
        for (const p of ps) cool.appendChild(h('tr', null, h('td', null, p.device), h('td', null, role), h('td.num', null, fmtValue(p.value))));
      }
      root.appendChild(h('section.card#fire-coolant', null, h('h2', null, 'Coolant and drain tank'), h('table.data', null, h('thead', null, h('tr', null, ['Where', 'What', 'Value'].map((x) => h('th', null, x)))), cool)));
      // Gas released.
      const gas = pointsWithRole('fire.gas_released');
      const released = gas.filter((p) => p.value === true || (typeof p.value === 'number' && p.value > 0));
      root.appendChild(h('section.card#fire-gas', null, h('h2', null, 'Extinguishing gas released'),
        gas.length === 0 ? h('p.muted', null, 'No gas-release points reported.') : released.length === 0 ? h('p', null, `Not released (${gas.length} systems reporting).`) :
          h('ul.plain.hot', null, released.map((p) => h('li', null, `RELEASED at ${p.device} (${fmtTime(p.ts_ms)})`)))));
      // Automatic actions.
      const evs = state.events.slice(0, 100);
      root.appendChild(h('section.card#fire-log', null, h('h2', null, 'Log of automatic actions and events'),
        evs.length ? h('ol.log', null, evs.map((e) => h('li', null, h('span.ts', null, fmtTime(e.ts_ms)), ` ${e.device}: ${e.message}`))) : h('p.muted', null, 'No events recorded.')));
    };
    draw();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; draw(); }, 300);
    };
    const offs = [on('points', redraw), on('redundancy', redraw), on('events', redraw)];
    return () => offs.forEach((f) => f());
  },
};

export const VIEWS = {
  overview,
  power: subsystemView('power', 'Power chain'),
  cooling: subsystemView('cooling', 'Cooling'),
  network: subsystemView('network', 'Network'),
  racks,
  alarms,
  incidents,
  whatif,
  fire,
};
