// The site overview: fire first when a rack is in a fire stage, redundancy per subsystem,
// alarms by grade, open incidents, maintenance now and next, PUE as the server computes it
// (never from a partial sum: what is missing is said instead) and the cooling ride-through.

import { h, clear, fmtValue, trendChart, ago, fmtTime } from './ui.js';
import { state, on } from './state.js';
import { levelOk, levelBadge, redLabel, tableWrap, gradeLabel, subsystemLabel, windowText } from './common.js';
import { stageChip, placeText, sinceNode } from './fire.js';
import { phaseLabel } from './view-incidents.js';
import { t, fmtNumber } from './i18n.js';

function subsystemCard(sub, go) {
  return h(
    `section.card.sub.${levelOk(sub) ? 'ok' : sub.verified === false ? 'unverified' : 'bad'}`,
    { 'data-subsystem': sub.subsystem, 'data-verified': String(sub.verified !== false) },
    h('h2', null, h('a', { href: `/console/${sub.subsystem}`, onclick: (e) => { e.preventDefault(); go(sub.subsystem); } }, subsystemLabel(sub.subsystem))),
    h('div.big', null, levelBadge(sub), h('span.of', null, ` ${t('overview.designed', { level: redLabel(sub.designed) })}`)),
    h(
      'dl.kv',
      null,
      h('dt', null, t('overview.livePaths')),
      h('dd', null, String(sub.min_live_paths ?? '—')),
      h('dt', null, t('overview.spof')),
      h('dd', null, sub.single_points_of_failure?.length ? sub.single_points_of_failure.join(', ') : t('overview.none')),
      h('dt', null, t('overview.spare')),
      h('dd', null, sub.spare_after_one == null ? '—' : `${fmtValue(sub.spare_after_one)} kW${sub.spare_after_one_at ? ` (${t('overview.at', { id: sub.spare_after_one_at })})` : ''}`),
      h('dt', null, t('overview.downLostDegraded')),
      h('dd', null, `${sub.down?.length ?? 0} / ${sub.lost?.length ?? 0} / ${sub.degraded?.length ?? 0}`),
      h('dt', null, t('overview.unknown')),
      h('dd', null, sub.unknown?.length ? t('overview.unknownN', { n: sub.unknown.length }) : t('overview.none')),
      sub.unverified?.length ? h('dt', null, t('overview.unverified')) : null,
      sub.unverified?.length ? h('dd.unverified-list', null, sub.unverified.length > 8 ? t('overview.andMore', { list: sub.unverified.slice(0, 8).join(', '), n: sub.unverified.length - 8 }) : sub.unverified.join(', ')) : null,
      sub.unmonitored?.length ? h('dt', null, t('overview.unmonitored')) : null,
      sub.unmonitored?.length ? h('dd', null, String(sub.unmonitored.length)) : null,
    ),
  );
}

/// The ride-through of a tank in words. `minutes` is set only while the tank is drawn (the
/// chillers that are Up cannot carry the heat load); not drawn, the figure that matters is how
/// long it would last if every chiller stopped. Never a number the inputs do not support.
export function rideThroughText(x) {
  if (x.minutes != null) return t('ride.drawn', { min: fmtValue(x.minutes) });
  if (x.heat_load_kw == null) return t('ride.noLoad');
  if (x.drawing) return t('ride.drawnNoTemp');
  const stop = x.minutes_if_chillers_stop;
  return stop == null ? t('ride.notDrawingNoTemp') : t('ride.notDrawing', { min: fmtValue(stop) });
}

/// The fire card: every rack and battery room in a stage, worst first (from the server's
/// summary), and how many have no stage reading at all.
export function fireCard(go) {
  const f = state.fire;
  const racks = f?.racks ?? [];
  if (!racks.length && !(f?.no_reading?.length)) return null;
  const top = racks[0];
  const card = h(`section.card.firecard.${top ? `stage-border-${top.stage.code}` : 'stage-border-x'}#fire-card`, null,
    h('h2', null, go ? h('a', { href: '/console/racks', onclick: (e) => { e.preventDefault(); go('racks'); } }, t('overview.fire')) : t('overview.fire')));
  if (racks.length) {
    card.appendChild(h('ul.plain.firelist', null, racks.slice(0, 6).map((r) => h('li', { 'data-id': r.id, 'data-stage': r.stage.code },
      stageChip(r.stage.code), ' ', h('strong', null, r.id), ` — ${placeText(r.id)}; ${t('overview.since')} `, sinceNode(r), r.reading.stale ? h('span.tag', null, t('overview.readingLost')) : null))));
    if (racks.length > 6) card.appendChild(h('p', null, t('list.more', { n: racks.length - 6 })));
  }
  if (f?.no_reading?.length) card.appendChild(h('p.warn', null, t('overview.noReading', { n: f.no_reading.length })));
  return card;
}

/// PUE now (the server's), with what is missing when it cannot be computed.
export function pueNode(compact = false) {
  const e = state.energy;
  const now = e?.now;
  const box = h('div.pue');
  const value = now?.pue;
  box.appendChild(h(`div.big${now?.implausible ? '.warn' : ''}`, { 'data-pue': value ?? '' }, value == null ? '—' : fmtNumber(value, 2)));
  if (!now) box.appendChild(h('p.muted', null, t('pue.notLoaded')));
  else if (value == null) {
    const parts = [];
    if (now.basis === 'none') parts.push(t('pue.noMeters'));
    if (now.facility_reporting < now.facility_meters) parts.push(t('pue.facilityMissing', { n: now.facility_meters - now.facility_reporting, total: now.facility_meters }));
    if (now.it_reporting < now.it_meters) parts.push(t('pue.itMissing', { n: now.it_meters - now.it_reporting, total: now.it_meters }));
    if (!parts.length) parts.push(t('pue.noIt'));
    box.appendChild(h('p.warn#pue-missing', null, t('pue.unknown', { why: parts.join('; ') })));
    if (now.missing?.length && !compact) box.appendChild(h('p.muted.small', null, t('pue.missingList', { list: now.missing.slice(0, 8).join(', ') + (now.missing.length > 8 ? ' …' : '') })));
  } else {
    box.appendChild(h('p.muted', null, t('pue.sums', { f: fmtNumber(now.facility_kw, 0), i: fmtNumber(now.it_kw, 0) })));
    if (now.implausible) box.appendChild(h('p.warn', null, t('pue.implausible')));
  }
  return box;
}

export const overview = {
  title: 'view.overview',
  render(main, _args, ctx) {
    const root = h('div.overview');
    main.appendChild(h('h1', null, t('overview.title')));
    main.appendChild(root);
    const draw = () => {
      clear(root);
      const fc = fireCard(ctx.go);
      if (fc) root.appendChild(fc);
      const subs = state.redundancy?.subsystems ?? [];
      root.appendChild(h('p.muted.asof', null, t('overview.evaluated'), ' ', ago(state.redundancyAt), '.'));
      const grid = h('div.grid3');
      for (const sub of subs) grid.appendChild(subsystemCard(sub, ctx.go));
      root.appendChild(grid);
      const byGrade = { 1: 0, 2: 0, 3: 0 };
      for (const a of state.alarms) byGrade[a.grade] = (byGrade[a.grade] ?? 0) + 1;
      const open = state.incidents.filter((i) => i.phase !== 'closed' && i.phase !== 'follow_up');
      const rt = state.redundancy?.ride_through ?? [];
      const row = h('div.grid3');
      row.appendChild(
        h('section.card#alarms-by-grade', null, h('h2', null, h('a', { href: '/console/alarms', onclick: (e) => { e.preventDefault(); ctx.go('alarms'); } }, t('overview.activeAlarms'))),
          h('div.grades', null, [1, 2, 3].map((g) => h(`div.grade.g${g}`, { 'data-grade': g }, h('span.n', null, String(byGrade[g])), h('span.l', null, gradeLabel(g))))),
          state.flooding ? h('p.warn', null, t('overview.flood')) : null),
      );
      row.appendChild(
        h('section.card#incidents-card', null, h('h2', null, h('a', { href: '/console/incidents', onclick: (e) => { e.preventDefault(); ctx.go('incidents'); } }, t('view.incidents'))),
          open.length === 0 ? h('p.muted', null, t('overview.noIncident')) : h('ul.plain', null, open.slice(0, 5).map((i) => h('li', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title} `, h('span.muted', null, `(${phaseLabel(i.phase)})`))))),
      );
      const hist = (state.energy?.history?.buckets ?? []).filter((b) => b.pue != null).map((b) => [b.t_ms, b.pue]);
      row.appendChild(h('section.card#pue', null, h('h2', null, h('a', { href: '/console/energy', onclick: (e) => { e.preventDefault(); ctx.go('energy'); } }, 'PUE')),
        pueNode(), trendChart(hist, { width: 520, height: 130, label: t('pue.trendLabel'), fmt: (v) => fmtNumber(v, 2) })));
      const active = state.windows.filter((w) => w.status === 'active');
      const next = state.windows.filter((w) => w.status === 'scheduled').sort((a, b) => a.from_ms - b.from_ms).slice(0, 3);
      row.appendChild(h('section.card#maint-card', null, h('h2', null, h('a', { href: '/console/maintenance', onclick: (e) => { e.preventDefault(); ctx.go('maintenance'); } }, t('view.maintenance'))),
        active.length ? h('ul.plain', null, active.map((w) => h('li', { 'data-window': w.id }, h('span.chip.maintchip', null, t('window.active')), ' ', w.subjects.join(', '), h('div.muted', null, windowText(w))))) : h('p.muted', null, t('overview.noMaintNow')),
        next.length ? h('ul.plain', null, next.map((w) => h('li', { 'data-window': w.id }, h('span.chip.maintsoon', null, t('window.scheduledAt', { from: fmtTime(w.from_ms, { minutes: true }) })), ' ', w.subjects.join(', ')))) : null));
      root.appendChild(row);
      if (rt.length) {
        root.appendChild(h('section.card#ride-through', null, h('h2', null, t('overview.rideThrough')),
          tableWrap(h('table.data', null, h('thead', null, h('tr', null, [t('col.tank'), t('col.chillersProven'), t('col.tankTemp'), t('col.level'), t('col.heatLoad'), t('col.minutes')].map((x) => h('th', { scope: 'col' }, x)))),
            h('tbody', null, rt.map((x) => h('tr', { 'data-tank': x.tank, 'data-drawing': String(!!x.drawing) }, h('td', null, x.tank),
              h('td', null, `${x.chillers_available}/${x.chillers_total}${x.chillers_unknown ? `, ${t('ride.unknownChillers', { n: x.chillers_unknown })}` : ''}`),
              h('td', null, fmtValue(x.tank_temp_c)), h('td', null, fmtValue(x.level_pct)), h('td', null, fmtValue(x.heat_load_kw)), h('td.big2', null, rideThroughText(x)))))), t('overview.rideThrough'))));
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
    const offs = [on('redundancy', redraw), on('alarms', redraw), on('incidents', redraw), on('energy', redraw), on('fire', redraw), on('windows', redraw)];
    return () => offs.forEach((f) => f());
  },
};
