// The history chart of the trends and energy pages (SVG, no library): one or two series over a
// fixed time range, each on its own axis (left, right) when their units differ; the band from
// the minimum to the maximum of each bucket and the line of its last value; a gap where the
// server has no bucket (never a line across missing data); the part of the range the server
// does not keep hatched and labelled; drag across the chart to zoom.

import { s } from './ui.js';
import { t, fmtTime, fmtNumber } from './i18n.js';

const W = 1000;
const H = 320;
const PAD = { l: 72, r: 72, t: 34, b: 34 };

function ticks(lo, hi, n = 4) {
  const out = [];
  for (let i = 0; i <= n; i += 1) out.push(lo + ((hi - lo) * i) / n);
  return out;
}

function extent(series) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const b of series.buckets) {
    for (const v of [b.min, b.max, b.last]) {
      if (typeof v === 'number' && Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (hi === lo) return [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

/// `opts`: {from, to, step, series: [{key, label, unit, buckets: [{t_ms, min, max, last}]}],
/// keptFrom (ms before which the server holds nothing), keptText, label, onZoom(from, to)}.
export function historyChart(opts) {
  const { from, to, step } = opts;
  const span = Math.max(1, to - from);
  const svg = s('svg.hchart', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': opts.label ?? t('chart.trend'), 'data-from': from, 'data-to': to });
  const x = (ms) => PAD.l + ((ms - from) / span) * (W - PAD.l - PAD.r);
  const bottom = H - PAD.b;
  // The part of the range the server does not keep.
  if (opts.keptFrom != null && opts.keptFrom > from) {
    const x1 = Math.min(x(opts.keptFrom), W - PAD.r);
    svg.appendChild(s('rect.notkept', { x: PAD.l, y: PAD.t, width: Math.max(0, x1 - PAD.l), height: bottom - PAD.t }));
    if (x1 - PAD.l > 120) svg.appendChild(s('text.notkept-label', { x: PAD.l + (x1 - PAD.l) / 2, y: PAD.t + 26, 'text-anchor': 'middle' }, opts.keptText ?? t('chart.notKept')));
    svg.setAttribute('data-kept-from', String(opts.keptFrom));
  }
  svg.appendChild(s('line.axis', { x1: PAD.l, y1: bottom, x2: W - PAD.r, y2: bottom }));
  const longRange = span > 36 * 3600_000;
  for (const tm of ticks(from, to, 4)) {
    const label = longRange ? fmtTime(tm, { minutes: true }) : fmtTime(tm, { short: true, minutes: true });
    svg.appendChild(s('text.tick', { x: x(tm), y: H - 10, 'text-anchor': tm === from ? 'start' : tm === to ? 'end' : 'middle' }, label));
  }
  const units = [...new Set(opts.series.map((se) => se.unit ?? ''))];
  opts.series.forEach((se, i) => {
    const side = i === 0 || units.length === 1 ? 'left' : 'right';
    const [lo, hi] = units.length === 1 && opts.series.length > 1 ? extent({ buckets: opts.series.flatMap((z) => z.buckets) }) : extent(se);
    const y = (v) => PAD.t + (1 - (v - lo) / (hi - lo)) * (bottom - PAD.t);
    if (i === 0 || side === 'right') {
      const ax = side === 'left' ? PAD.l : W - PAD.r;
      svg.appendChild(s('line.axis', { x1: ax, y1: PAD.t, x2: ax, y2: bottom }));
      for (const v of ticks(lo, hi, 4)) {
        svg.appendChild(s(`text.tick.c${i}`, { x: side === 'left' ? ax - 6 : ax + 6, y: y(v) + 5, 'text-anchor': side === 'left' ? 'end' : 'start' }, fmtNumber(v, Math.abs(hi - lo) < 10 ? 2 : 1)));
      }
      if (se.unit) svg.appendChild(s(`text.unit.c${i}`, { x: side === 'left' ? PAD.l : W - PAD.r, y: 20, 'text-anchor': side === 'left' ? 'middle' : 'middle' }, se.unit));
    }
    // Contiguous runs of buckets: a missing bucket breaks the line.
    const pts = se.buckets.filter((b) => typeof b.last === 'number' && Number.isFinite(b.last) && b.t_ms >= from - step && b.t_ms <= to).sort((a, b) => a.t_ms - b.t_ms);
    const runs = [];
    for (const b of pts) {
      const run = runs[runs.length - 1];
      if (run && b.t_ms - run[run.length - 1].t_ms <= step * 1.5) run.push(b);
      else runs.push([b]);
    }
    const g = s(`g.series.c${i}`, { 'data-key': se.key, 'data-n': pts.length, 'data-runs': runs.length });
    for (const run of runs) {
      if (run.some((b) => typeof b.min === 'number' && typeof b.max === 'number' && b.min !== b.max)) {
        const top = run.map((b) => `${x(b.t_ms).toFixed(1)},${y(b.max ?? b.last).toFixed(1)}`);
        const bot = run.slice().reverse().map((b) => `${x(b.t_ms + step).toFixed(1)},${y(b.min ?? b.last).toFixed(1)}`);
        g.appendChild(s('polygon.band', { points: [...top, ...bot].join(' ') }));
      }
      // Step line: a bucket's last value holds across the bucket.
      let d = '';
      run.forEach((b, k) => {
        const x0 = x(Math.max(from, b.t_ms));
        const x1 = x(Math.min(to, b.t_ms + step));
        d += k === 0 ? `M${x0.toFixed(1)},${y(b.last).toFixed(1)}H${x1.toFixed(1)}` : `V${y(b.last).toFixed(1)}H${x1.toFixed(1)}`;
      });
      g.appendChild(s('path.line', { d }));
      // A lone bucket between gaps is a mark of its own, so it is not lost as a speck.
      if (run.length === 1) g.appendChild(s('circle.dot', { cx: x(Math.min(to, run[0].t_ms + step / 2)).toFixed(1), cy: y(run[0].last).toFixed(1), r: 4 }));
    }
    svg.appendChild(g);
  });
  if (!opts.series.some((se) => se.buckets.length)) {
    svg.appendChild(s('text.empty', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, opts.emptyText ?? t('chart.noData')));
  }
  if (opts.onZoom) zoomable(svg, from, to, x, opts.onZoom);
  return svg;
}

/// Drag across the chart to choose a narrower range.
function zoomable(svg, from, to, x, onZoom) {
  const sel = s('rect.zoomsel', { x: 0, y: PAD.t, width: 0, height: H - PAD.b - PAD.t, visibility: 'hidden' });
  svg.appendChild(sel);
  const toUser = (ev) => {
    const r = svg.getBoundingClientRect();
    return ((ev.clientX - r.left) / r.width) * W;
  };
  const toMs = (ux) => from + ((Math.min(Math.max(ux, PAD.l), W - PAD.r) - PAD.l) / (W - PAD.l - PAD.r)) * (to - from);
  let start = null;
  svg.addEventListener('pointerdown', (ev) => {
    start = toUser(ev);
    svg.setPointerCapture?.(ev.pointerId);
    sel.setAttribute('visibility', 'visible');
    sel.setAttribute('x', String(start));
    sel.setAttribute('width', '0');
  });
  svg.addEventListener('pointermove', (ev) => {
    if (start === null) return;
    const cur = toUser(ev);
    sel.setAttribute('x', String(Math.min(start, cur)));
    sel.setAttribute('width', String(Math.abs(cur - start)));
  });
  svg.addEventListener('pointerup', (ev) => {
    if (start === null) return;
    const end = toUser(ev);
    sel.setAttribute('visibility', 'hidden');
    const [a, b] = [toMs(Math.min(start, end)), toMs(Math.max(start, end))];
    start = null;
    if (b - a >= 60_000) onZoom(Math.floor(a), Math.ceil(b));
  });
  svg.classList.add('zoomable');
}
