// Energy: PUE now and over time, and the monthly energy report, all computed on the server
// (`/api/energy/pue`, `/api/energy/report`): facility and IT energy per day of the month in
// the browser's time zone, PUE per day and for the month, and how much of each day the meters
// covered (a day the server did not see is empty, never zero). The report downloads as CSV.

import { get } from './api.js';
import { h, clear } from './ui.js';
import { state, on } from './state.js';
import { historyChart } from './chart.js';
import { pueNode } from './view-overview.js';
import { tableWrap } from './common.js';
import { RANGES, stepFor } from './view-trends.js';
import { t, fmtNumber, fmtDuration, fmtDate, zoneLabel, fmtTime } from './i18n.js';

const offsetMin = () => -new Date().getTimezoneOffset();

function thisMonth() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

export const energy = {
  title: 'view.energy',
  render(main) {
    let range = '24h';
    let month = thisMonth();
    main.appendChild(h('h1', null, t('view.energy')));
    const nowBox = h('section.card#energy-now', null, h('h2', null, t('energy.now')));
    const nowInner = h('div');
    nowBox.appendChild(nowInner);
    const histBox = h('section.card#energy-history');
    const repBox = h('section.card#energy-report');
    main.appendChild(nowBox);
    main.appendChild(histBox);
    main.appendChild(repBox);
    const drawNow = () => {
      clear(nowInner);
      nowInner.appendChild(pueNode());
      const n = state.energy?.now;
      if (n) nowInner.appendChild(h('p.muted.small', null, t('energy.basis', { basis: t(`energy.basis.${n.basis}`), f: n.facility_reporting, fm: n.facility_meters, i: n.it_reporting, im: n.it_meters })));
    };
    let seq = 0;
    const drawHistory = async () => {
      const my = ++seq;
      const span = RANGES.find(([k]) => k === range)[1];
      const to = Date.now();
      const from = to - span;
      const step = stepFor(span, span <= 48 * 3600_000 ? 60_000 : 3600_000);
      let r;
      try {
        r = await get(`/api/energy/pue?from=${from}&to=${to}&step=${step}`);
      } catch (e) {
        clear(histBox);
        histBox.appendChild(h('p.error', null, t('energy.failed', { why: e.message })));
        return;
      }
      if (my !== seq) return;
      clear(histBox);
      histBox.appendChild(h('h2', null, t('energy.history')));
      histBox.appendChild(h('div.controls.ranges', { role: 'group', 'aria-label': t('trends.range') },
        RANGES.map(([k]) => h('button.range', { type: 'button', 'data-range': k, 'aria-pressed': String(k === range), onclick: () => { range = k; drawHistory(); } }, t(`range.${k}`)))));
      const hist = r.history;
      const keptFrom = hist.kept_from_ms;
      const notKept = keptFrom == null ? to : keptFrom;
      if (notKept > from) histBox.appendChild(h('p.warn#energy-kept', null, keptFrom == null ? t('energy.noHistory') : t('energy.keptSince', { from: fmtTime(keptFrom, { minutes: true, tz: true }) })));
      histBox.appendChild(h('p.muted.small', null, t('energy.resolution', { res: fmtDuration(hist.resolution_ms), minutes: fmtDuration(hist.minutes_kept_ms) })));
      const buckets = hist.buckets.filter((b) => b.pue != null).map((b) => ({ t_ms: b.t_ms, last: b.pue, min: b.pue, max: b.pue }));
      histBox.appendChild(historyChart({
        from, to, step: hist.step_ms,
        series: [{ key: 'pue', label: 'PUE', unit: 'PUE', buckets }],
        keptFrom: notKept > from ? notKept : null,
        keptText: t('energy.notKept'),
        label: t('energy.chartLabel', { range: t(`range.${range}`) }),
        emptyText: t('chart.noData'),
      }));
    };
    const drawReport = async () => {
      clear(repBox);
      repBox.appendChild(h('h2', null, t('energy.report')));
      const input = h('input#energy-month', { type: 'month', value: month, 'aria-label': t('energy.month') });
      input.addEventListener('change', () => { if (input.value) { month = input.value; drawReport(); } });
      const csv = `/api/energy/report?month=${month}&offset_min=${offsetMin()}&format=csv`;
      repBox.appendChild(h('div.controls', null, h('label', { for: 'energy-month' }, t('energy.month')), input,
        h('a.button#energy-csv', { href: csv, download: `energy-${month}.csv` }, t('energy.csv'))));
      repBox.appendChild(h('p.muted', null, t('energy.reportNote', { zone: zoneLabel() })));
      let r;
      try {
        r = await get(`/api/energy/report?month=${month}&offset_min=${offsetMin()}`);
      } catch (e) {
        repBox.appendChild(h('p.error', null, t('energy.failed', { why: e.message })));
        return;
      }
      const cov = (p) => (p.elapsed_ms > 0 ? `${fmtNumber((100 * p.covered_ms) / p.elapsed_ms, 0)} %` : '—');
      const row = (p, total) => h(`tr${total ? '.total' : ''}`, { 'data-date': p.date },
        h(total ? 'th' : 'td', total ? { scope: 'row' } : null, total ? t('energy.total', { month: fmtDate(p.from_ms + 86400_000, { month: true }) }) : fmtDate(p.from_ms + 43200_000, { weekday: true })),
        h('td.num', null, p.covered_ms > 0 ? fmtNumber(p.facility_kwh, 1) : '—'),
        h('td.num', null, p.covered_ms > 0 ? fmtNumber(p.it_kwh, 1) : '—'),
        h('td.num.pue', null, p.pue != null ? fmtNumber(p.pue, 2) : '—'),
        h('td.num', null, cov(p)));
      const days = r.days.filter((d) => d.elapsed_ms > 0);
      repBox.appendChild(h('p.summary#energy-total', null, r.total.covered_ms > 0
        ? t('energy.totalLine', { f: fmtNumber(r.total.facility_kwh, 0), i: fmtNumber(r.total.it_kwh, 0), pue: r.total.pue != null ? fmtNumber(r.total.pue, 2) : '—', cov: cov(r.total) })
        : t('energy.nothingMeasured')));
      repBox.appendChild(tableWrap(h('table.data#energy-table', null,
        h('thead', null, h('tr', null, [t('energy.col.day'), t('energy.col.facility'), t('energy.col.it'), 'PUE', t('energy.col.covered')].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, days.map((d) => row(d, false)), row(r.total, true))), t('energy.report')));
    };
    drawNow();
    drawHistory();
    drawReport();
    const offs = [on('energy', drawNow)];
    const timer = setInterval(drawHistory, 60_000);
    return () => {
      clearInterval(timer);
      offs.forEach((x) => x());
    };
  },
};
