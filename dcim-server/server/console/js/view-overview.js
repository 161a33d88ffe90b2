// The site overview: fire first when a rack is in a fire stage, redundancy per subsystem,
// alarms by grade, open incidents, PUE and the cooling ride-through.

import { h, clear, fmtValue, trendChart, ago } from './ui.js';
import { state, on, computePue } from './state.js';
import { GRADE_LABEL, levelOk, levelBadge, tableWrap } from './common.js';
import { stageChip, placeText, sinceNode } from './fire.js';
import { PHASE_LABEL } from './view-incidents.js';

function subsystemCard(sub, go) {
  return h(
    `section.card.sub.${levelOk(sub) ? 'ok' : sub.verified === false ? 'unverified' : 'bad'}`,
    { 'data-subsystem': sub.subsystem, 'data-verified': String(sub.verified !== false) },
    h('h2', null, h('a', { href: `/console/${sub.subsystem}`, onclick: (e) => { e.preventDefault(); go(sub.subsystem); } }, sub.subsystem[0].toUpperCase() + sub.subsystem.slice(1))),
    h('div.big', null, levelBadge(sub), h('span.of', null, ` designed ${sub.designed}`)),
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
      h('dt', null, 'Unknown'),
      h('dd', null, sub.unknown?.length ? `${sub.unknown.length} (no current reading)` : 'none'),
      sub.unverified?.length ? h('dt', null, 'Not proven (unknown, relied on)') : null,
      sub.unverified?.length ? h('dd.unverified-list', null, sub.unverified.length > 8 ? `${sub.unverified.slice(0, 8).join(', ')} and ${sub.unverified.length - 8} more` : sub.unverified.join(', ')) : null,
      sub.unmonitored?.length ? h('dt', null, 'Unmonitored (no state point)') : null,
      sub.unmonitored?.length ? h('dd', null, String(sub.unmonitored.length)) : null,
    ),
  );
}

/// The ride-through of a tank in words. `minutes` is set only while the tank is drawn (the
/// chillers that are Up cannot carry the heat load); not drawn, the figure that matters is how
/// long it would last if every chiller stopped. Never a number the inputs do not support.
export function rideThroughText(t) {
  if (t.minutes != null) return `${fmtValue(t.minutes)} min (tank drawn)`;
  if (t.heat_load_kw == null) return '— (heat load unknown)';
  if (t.drawing) return '— (drawn; tank temperature unknown)';
  const stop = t.minutes_if_chillers_stop;
  return stop == null ? 'not drawing (tank temperature unknown)' : `not drawing (${fmtValue(stop)} min if the chillers stop)`;
}

/// Racks and battery rooms in a fire stage, most severe first.
export function fireCard(go) {
  const f = state.fire;
  const racks = f?.racks ?? [];
  if (!racks.length && !(f?.no_reading?.length)) return null;
  const top = racks[0];
  const card = h(`section.card.firecard.${top ? `stage-border-${top.stage.code}` : 'stage-border-x'}#fire-card`, null,
    h('h2', null, h('a', { href: '/console/racks', onclick: (e) => { e.preventDefault(); go('racks'); } }, 'Fire')));
  if (racks.length) {
    card.appendChild(h('ul.plain.firelist', null, racks.slice(0, 6).map((r) => h('li', { 'data-id': r.id, 'data-stage': r.stage.code },
      stageChip(r.stage.code), ' ', h('strong', null, r.id), ` — ${placeText(r.id)}; since `, sinceNode(r), r.reading.stale ? h('span.tag', null, 'reading lost') : null))));
    if (racks.length > 6) card.appendChild(h('p', null, `… and ${racks.length - 6} more`));
  }
  if (f?.no_reading?.length) card.appendChild(h('p.warn', null, `${f.no_reading.length} racks or battery rooms have no current stage reading.`));
  return card;
}

export const overview = {
  title: 'Overview',
  render(main, _args, ctx) {
    const root = h('div.overview');
    main.appendChild(h('h1', null, 'Site overview'));
    main.appendChild(root);
    const draw = () => {
      clear(root);
      const fc = fireCard(ctx.go);
      if (fc) root.appendChild(fc);
      const subs = state.redundancy?.subsystems ?? [];
      root.appendChild(h('p.muted.asof', null, 'Redundancy evaluated ', ago(state.redundancyAt), '.'));
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
          open.length === 0 ? h('p.muted', null, 'No open incident') : h('ul.plain', null, open.slice(0, 5).map((i) => h('li', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title} `, h('span.muted', null, `(${PHASE_LABEL[i.phase] ?? i.phase})`))))),
      );
      const pueCard = h('section.card#pue', null, h('h2', null, 'PUE'),
        h('div.big', null, pue ? pue.pue.toFixed(2) : '—'),
        h('p.muted', null, pue ? `facility ${fmtValue(pue.facility)} kW / IT ${fmtValue(pue.it)} kW` : 'needs feed and rack power points'),
        trendChart(state.pue, { width: 520, height: 130, label: 'PUE trend since this page opened' }));
      row.appendChild(pueCard);
      root.appendChild(row);
      if (rt.length) {
        root.appendChild(h('section.card#ride-through', null, h('h2', null, 'Cooling ride-through (buffer tank)'),
          tableWrap(h('table.data', null, h('thead', null, h('tr', null, ['Tank', 'Chillers up (proven)', 'Tank °C', 'Level %', 'Heat load kW', 'Minutes'].map((x) => h('th', { scope: 'col' }, x)))),
            h('tbody', null, rt.map((t) => h('tr', { 'data-tank': t.tank, 'data-drawing': String(!!t.drawing) }, h('td', null, t.tank),
              h('td', null, `${t.chillers_available}/${t.chillers_total}${t.chillers_unknown ? `, ${t.chillers_unknown} unknown` : ''}`),
              h('td', null, fmtValue(t.tank_temp_c)), h('td', null, fmtValue(t.level_pct)), h('td', null, fmtValue(t.heat_load_kw)), h('td.big2', null, rideThroughText(t)))))), 'Ride-through')));
      }
    };
    draw();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        draw();
      });
    };
    const offs = [on('redundancy', redraw), on('alarms', redraw), on('incidents', redraw), on('points', redraw), on('fire', redraw)];
    return () => offs.forEach((f) => f());
  },
};
