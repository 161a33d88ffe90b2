// Small DOM helpers: element builders (HTML and SVG), formatting, and a dependency-free trend
// chart.

const SVGNS = 'http://www.w3.org/2000/svg';

/// h('div.card#x', {attrs}, children...) - class and id shorthand, `on*` attributes as listeners.
export function h(tag, attrs, ...children) {
  return build(document.createElement.bind(document), tag, attrs, children);
}

export function s(tag, attrs, ...children) {
  return build((t) => document.createElementNS(SVGNS, t), tag, attrs, children);
}

function build(create, spec, attrs, children) {
  const m = spec.match(/^([a-zA-Z0-9]+)((?:[.#][\w-]+)*)$/);
  const el = create(m ? m[1] : spec);
  if (m && m[2]) {
    for (const part of m[2].match(/[.#][\w-]+/g)) {
      if (part[0] === '.') el.classList.add(part.slice(1));
      else el.id = part.slice(1);
    }
  }
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
  return String(v);
}

/// A trend chart as SVG: `series` is [[ts_ms, number], ...], oldest first. The SVG carries
/// `data-n` (samples drawn) and `data-from` (time of the first one, ms).
export function trendChart(series, opts = {}) {
  const w = opts.width ?? 560;
  const hgt = opts.height ?? 160;
  const pad = { l: 56, r: 12, t: 12, b: 26 };
  const svg = s('svg.chart', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': opts.label ?? 'trend' });
  const pts = series.filter((p) => typeof p[1] === 'number' && Number.isFinite(p[1]));
  svg.setAttribute('data-n', String(pts.length));
  if (pts.length) svg.setAttribute('data-from', String(pts[0][0]));
  if (pts.length === 0) {
    svg.appendChild(s('text.muted', { x: w / 2, y: hgt / 2, 'text-anchor': 'middle' }, 'no samples yet'));
    return svg;
  }
  let t0 = pts[0][0];
  let t1 = pts[pts.length - 1][0];
  if (t1 === t0) t1 = t0 + 1000;
  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const x = (t) => pad.l + ((t - t0) / (t1 - t0)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (hgt - pad.t - pad.b);
  svg.appendChild(s('line.axis', { x1: pad.l, y1: hgt - pad.b, x2: w - pad.r, y2: hgt - pad.b }));
  svg.appendChild(s('line.axis', { x1: pad.l, y1: pad.t, x2: pad.l, y2: hgt - pad.b }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.appendChild(s('text.tick', { x: pad.l - 6, y: y(v) + 5, 'text-anchor': 'end' }, fmtValue(v)));
  }
  const tl = (t) => fmtTime(t).slice(11);
  svg.appendChild(s('text.tick', { x: pad.l, y: hgt - 6 }, tl(t0)));
  svg.appendChild(s('text.tick', { x: w - pad.r, y: hgt - 6, 'text-anchor': 'end' }, tl(t1)));
  // Step line: a value holds until the next sample.
  let d = '';
  pts.forEach((p, i) => {
    d += i === 0 ? `M${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}` : `H${x(p[0]).toFixed(1)}V${y(p[1]).toFixed(1)}`;
  });
  d += `H${(w - pad.r).toFixed(1)}`;
  svg.appendChild(s('path.line', { d }));
  return svg;
}

export function toast(msg, kind = 'info') {
  const host = document.getElementById('toasts');
  if (!host) return;
  const t = h(`div.toast.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, msg);
  host.appendChild(t);
  setTimeout(() => t.remove(), 5000);
}
