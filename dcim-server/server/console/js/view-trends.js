// Trends: the history of one point, or two compared (each on its own axis when their units
// differ), over 1 h to 30 d, with zoom (drag across the chart, or the buttons). Read from the
// server's point history (`GET /api/points/{device}/{point}/history`), whatever it can serve:
// the server says how far back it keeps history, and the part of the range before that is
// hatched and named ("this server keeps history for the last 1 h"), never drawn as a flat line
// or as nothing. The range, zoom and points are in the page's address, so it can be shared.

import { get } from './api.js';
import { h, clear, fmtTime, withUnit, fmtUnit } from './ui.js';
import { state, on, roleInfo } from './state.js';
import { historyChart } from './chart.js';
import { t, fmtDuration, zoneLabel } from './i18n.js';

export const RANGES = [['1h', 3600_000], ['6h', 6 * 3600_000], ['24h', 86400_000], ['7d', 7 * 86400_000], ['30d', 30 * 86400_000]];
/// Buckets drawn across the chart at most.
const MAX_BUCKETS = 600;

/// The step for a range: a multiple of the resolution, at most MAX_BUCKETS buckets.
export function stepFor(span, res) {
  const r = Math.max(1000, res || 60_000);
  return Math.max(r, Math.ceil(span / MAX_BUCKETS / r) * r);
}

function numericPoints() {
  const out = [];
  for (const p of state.points.values()) {
    if (!p.point || (typeof p.value !== 'number' && typeof p.value !== 'boolean')) continue;
    out.push(p);
  }
  return out.sort((a, b) => `${a.device}/${a.point}`.localeCompare(`${b.device}/${b.point}`));
}

function pointOf(ref) {
  if (!ref) return null;
  const i = ref.indexOf('/');
  if (i < 0) return null;
  const device = ref.slice(0, i);
  const point = ref.slice(i + 1);
  for (const p of state.points.values()) if (p.device === device && p.point === point) return p;
  return { device, point, role: '' };
}

export const trends = {
  title: 'view.trends',
  render(main) {
    const q = new URLSearchParams(location.search);
    const st = {
      a: q.get('a') ?? '',
      b: q.get('b') ?? '',
      range: q.get('range') ?? '1h',
      from: Number(q.get('from')) || null,
      to: Number(q.get('to')) || null,
    };
    main.appendChild(h('h1', null, t('view.trends')));
    main.appendChild(h('p.muted', null, t('trends.intro', { zone: zoneLabel() })));
    const list = h('datalist#trend-points');
    const pick = (id, label, value) => h('div.pointpick', null, h('label', { for: id }, label),
      h(`input#${id}`, { type: 'text', list: 'trend-points', value, placeholder: t('trends.pointPlaceholder'), autocomplete: 'off', spellcheck: 'false' }));
    const pa = pick('trend-a', t('trends.pointA'), st.a);
    const pb = pick('trend-b', t('trends.pointB'), st.b);
    const ranges = h('div.controls.ranges', { role: 'group', 'aria-label': t('trends.range') },
      RANGES.map(([k]) => h('button.range', { type: 'button', 'data-range': k, 'aria-pressed': String(!st.from && st.range === k), onclick: () => { st.range = k; st.from = null; st.to = null; refresh(); } }, t(`range.${k}`))),
      h('button#zoom-in', { type: 'button', onclick: () => zoom(0.5) }, t('trends.zoomIn')),
      h('button#zoom-out', { type: 'button', onclick: () => zoom(2) }, t('trends.zoomOut')),
      h('button#zoom-reset', { type: 'button', onclick: () => { st.from = null; st.to = null; refresh(); } }, t('trends.zoomReset')));
    main.appendChild(h('div.card.trendform', null, list, h('div.pickrow', null, pa, pb,
      h('button.primary#trend-show', { type: 'button', onclick: () => { st.a = pa.querySelector('input').value.trim(); st.b = pb.querySelector('input').value.trim(); refresh(); } }, t('trends.show'))), ranges));
    const note = h('div#trend-note', { 'aria-live': 'polite' });
    const chartBox = h('div.card#trend-chart');
    const legend = h('div#trend-legend');
    main.appendChild(note);
    main.appendChild(chartBox);
    main.appendChild(legend);
    const fillList = (prefix) => {
      clear(list);
      const pts = numericPoints();
      const p = (prefix ?? '').toLowerCase();
      let n = 0;
      for (const x of pts) {
        const id = `${x.device}/${x.point}`;
        if (p && !id.toLowerCase().includes(p)) continue;
        list.appendChild(h('option', { value: id }, `${roleInfo(x.role).description}`));
        n += 1;
        if (n >= 300) break;
      }
    };
    for (const inp of [pa, pb].map((x) => x.querySelector('input'))) {
      inp.addEventListener('input', () => fillList(inp.value));
      inp.addEventListener('keydown', (e) => { if (e.key === 'Enter') main.querySelector('#trend-show').click(); });
    }
    fillList('');
    const range = () => {
      if (st.from && st.to) return [st.from, st.to];
      const span = RANGES.find(([k]) => k === st.range)?.[1] ?? 3600_000;
      const to = Date.now();
      return [to - span, to];
    };
    const zoom = (f) => {
      const [a, b] = range();
      const mid = (a + b) / 2;
      const half = Math.max(60_000, ((b - a) * f) / 2);
      st.from = Math.round(mid - half);
      st.to = Math.min(Date.now(), Math.round(mid + half));
      refresh();
    };
    let seq = 0;
    let timer = null;
    const refresh = async () => {
      const params = new URLSearchParams();
      if (st.a) params.set('a', st.a);
      if (st.b) params.set('b', st.b);
      if (st.from && st.to) {
        params.set('from', String(st.from));
        params.set('to', String(st.to));
      } else params.set('range', st.range);
      history.replaceState(null, '', `/console/trends?${params}`);
      for (const b of ranges.querySelectorAll('button.range')) b.setAttribute('aria-pressed', String(!st.from && b.dataset.range === st.range));
      clearTimeout(timer);
      const my = ++seq;
      const [from, to] = range();
      const refs = [st.a, st.b].filter(Boolean);
      clear(note);
      clear(legend);
      if (!refs.length) {
        clear(chartBox);
        chartBox.appendChild(h('p.muted', null, t('trends.choose')));
        return;
      }
      const results = await Promise.all(refs.map(async (ref) => {
        const p = pointOf(ref);
        if (!p) return { ref, error: t('trends.badRef', { ref }) };
        const span = to - from;
        const probe = stepFor(span, 60_000);
        const qs = new URLSearchParams({ from: String(from), to: String(to), step: String(probe) });
        if (p.site) qs.set('site', p.site);
        try {
          const r = await get(`/api/points/${encodeURIComponent(p.device)}/${encodeURIComponent(p.point)}/history?${qs}`);
          return { ref, p, r };
        } catch (e) {
          return { ref, p, error: e.status === 404 ? t('trends.noSuchPoint', { ref }) : t('trends.failed', { ref, why: e.message }) };
        }
      }));
      if (my !== seq) return;
      const now = Date.now();
      const series = [];
      let keptFrom = null;
      let retention = null;
      for (const [i, res] of results.entries()) {
        if (res.error) {
          note.appendChild(h('p.error', null, res.error));
          continue;
        }
        const role = res.p.role;
        const unit = fmtUnit(roleInfo(role).unit);
        series.push({ key: res.ref, label: res.ref, unit, buckets: res.r.buckets ?? [], step: res.r.step_ms });
        const kept = now - (res.r.retention_ms ?? 0);
        if (res.r.retention_ms != null && (keptFrom === null || kept > keptFrom)) {
          keptFrom = kept;
          retention = res.r.retention_ms;
        }
        const last = (res.r.buckets ?? []).at(-1);
        legend.appendChild(h(`p.legendline.c${i}`, { 'data-ref': res.ref },
          h('span.swatch', { 'aria-hidden': 'true' }), ' ', h('strong', null, res.ref), ` — ${roleInfo(role).description}`,
          h('span.muted', null, ` · ${t('trends.buckets', { n: (res.r.buckets ?? []).length, step: fmtDuration(res.r.step_ms) })}`,
            last ? ` · ${t('trends.last', { value: withUnit(last.last, roleInfo(role).unit), time: fmtTime(last.t_ms, { short: true, minutes: true }) })}` : '')));
      }
      // The ring holds whole buckets: a range within one bucket of the retention is covered.
      const slack = Math.max(...results.map((r) => r.r?.resolution_ms ?? 0), 0);
      if (keptFrom !== null && from < keptFrom - slack) {
        note.appendChild(h('p.warn#trend-kept', null, t('trends.keptFor', { dur: fmtDuration(retention), from: fmtTime(keptFrom, { minutes: true, tz: true }) })));
      }
      clear(chartBox);
      const step = Math.max(...series.map((x) => x.step ?? 60_000), 60_000);
      chartBox.appendChild(historyChart({
        from, to, step, series,
        keptFrom: keptFrom !== null && from < keptFrom - slack ? keptFrom : null,
        keptText: t('chart.notKeptShort', { dur: fmtDuration(retention ?? 0) }),
        label: t('trends.chartLabel', { refs: refs.join(', '), from: fmtTime(from, { minutes: true }), to: fmtTime(to, { minutes: true }) }),
        emptyText: t('chart.noData'),
        onZoom: (a, b) => { st.from = a; st.to = b; refresh(); },
      }));
      chartBox.appendChild(h('p.muted.small', null, t('trends.zoomHint')));
      // A range that ends now follows the present.
      if (!st.to) timer = setTimeout(refresh, 30_000);
    };
    refresh();
    const offs = [on('points', () => { if (!list.childElementCount) fillList(''); })];
    return () => {
      clearTimeout(timer);
      offs.forEach((x) => x());
    };
  },
};
