// Small DOM helpers: element builders (HTML and SVG), formatting (times with their time zone,
// ages that keep counting, values with units; the formats themselves are in i18n.js), dialogs,
// and a small dependency-free trend chart for detail panels (the trends page has chart.js).

import { t, fmtTime, fmtAgo, fmtNumber } from './i18n.js';

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

export { zoneLabel, fmtTime, fmtAgo, fmtDate, fmtNumber, fmtDuration, utcOffset } from './i18n.js';

/// An age that keeps counting: a <span data-ago> updated every second by `tickAges`.
export function ago(ms, cls = 'ago') {
  return h(`span.${cls}`, { 'data-ago': ms || '' }, fmtAgo(ms));
}

/// Updates every `[data-ago]` under `root` (called every second by the shell).
export function tickAges(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('[data-ago]')) {
    const ms = Number(el.dataset.ago);
    if (ms) el.textContent = fmtAgo(ms, now);
  }
}

export function fmtValue(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'boolean') return v ? t('value.yes') : t('value.no');
  if (typeof v === 'number') return fmtNumber(v);
  return String(v);
}

const UNIT = { degC: '°C', m3: 'm³', 'm3/h': 'm³/h', pct: '%', 'l/min': 'l/min' };
/// A unit of the role vocabulary as people write it (`degC` -> `°C`).
export function fmtUnit(u) {
  return UNIT[u] ?? u ?? '';
}

/// A value with its unit: `180 m³/h`, `68.4 °C`, `12 %`.
export function withUnit(v, unit) {
  const t = fmtValue(v);
  const u = fmtUnit(unit);
  if (v === null || v === undefined || !u) return t;
  return u === '%' ? `${t} %` : `${t} ${u}`;
}

/// A trend chart as SVG: `series` is [[ts_ms, number], ...], oldest first. The SVG carries
/// `data-n` (samples drawn) and `data-from` (time of the first one, ms).
export function trendChart(series, opts = {}) {
  const w = opts.width ?? 560;
  const hgt = opts.height ?? 160;
  const padd = { l: 56, r: 12, t: 12, b: 26 };
  const svg = s('svg.chart', { viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': opts.label ?? t('chart.trend') });
  const pts = series.filter((p) => typeof p[1] === 'number' && Number.isFinite(p[1]));
  svg.setAttribute('data-n', String(pts.length));
  if (pts.length) svg.setAttribute('data-from', String(pts[0][0]));
  if (pts.length === 0) {
    svg.appendChild(s('text.muted', { x: w / 2, y: hgt / 2, 'text-anchor': 'middle' }, t('chart.noSamples')));
    return svg;
  }
  const t0 = pts[0][0];
  let t1 = pts[pts.length - 1][0];
  if (t1 === t0) t1 = t0 + 1000;
  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  if (hi === lo) {
    hi += 1;
    lo -= 1;
  }
  const x = (t) => padd.l + ((t - t0) / (t1 - t0)) * (w - padd.l - padd.r);
  const y = (v) => padd.t + (1 - (v - lo) / (hi - lo)) * (hgt - padd.t - padd.b);
  svg.appendChild(s('line.axis', { x1: padd.l, y1: hgt - padd.b, x2: w - padd.r, y2: hgt - padd.b }));
  svg.appendChild(s('line.axis', { x1: padd.l, y1: padd.t, x2: padd.l, y2: hgt - padd.b }));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.appendChild(s('text.tick', { x: padd.l - 6, y: y(v) + 5, 'text-anchor': 'end' }, opts.fmt ? opts.fmt(v) : fmtValue(v)));
  }
  const tl = (ms) => fmtTime(ms, { short: true });
  svg.appendChild(s('text.tick', { x: padd.l, y: hgt - 6 }, tl(t0)));
  svg.appendChild(s('text.tick', { x: w - padd.r, y: hgt - 6, 'text-anchor': 'end' }, tl(t1)));
  // Step line: a value holds until the next sample.
  let d = '';
  pts.forEach((p, i) => {
    d += i === 0 ? `M${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}` : `H${x(p[0]).toFixed(1)}V${y(p[1]).toFixed(1)}`;
  });
  d += `H${(w - padd.r).toFixed(1)}`;
  svg.appendChild(s('path.line', { d }));
  return svg;
}

export function toast(msg, kind = 'info') {
  const host = document.getElementById('toasts');
  if (!host) return;
  const t = h(`div.toast.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, msg);
  host.appendChild(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 5000);
}

/// A modal form: resolves with the values of its fields, or null when cancelled. `fields`:
/// [{name, label, type: 'textarea'|'text'|'select'|'checkbox', required, value, options:[[v, label]]}].
/// `validate(values)` may return an error text that keeps the dialog open.
export function formDialog({ id, title, text, fields, submit, validate, danger }) {
  return new Promise((resolve) => {
    const dlg = h(`dialog.form-dialog${danger ? '.danger' : ''}`, { id: id ?? undefined, 'aria-labelledby': `${id ?? 'form-dialog'}-title` });
    const err = h('p.error', { role: 'alert' });
    const inputs = {};
    const form = h('form', { method: 'dialog' }, h('h2', { id: `${id ?? 'form-dialog'}-title` }, title), text ? h('p', null, text) : null);
    for (const f of fields) {
      const fid = `${id ?? 'form-dialog'}-${f.name}`;
      let input;
      if (f.type === 'select') {
        input = h('select', { id: fid, name: f.name }, f.options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(f.value) }, l)));
      } else if (f.type === 'checkbox') {
        input = h('input', { id: fid, name: f.name, type: 'checkbox', checked: !!f.value });
        form.appendChild(h('label.check', { for: fid }, input, ` ${f.label}`));
        inputs[f.name] = input;
        continue;
      } else if (f.type === 'datetime') {
        input = h('input', { id: fid, name: f.name, type: 'datetime-local', step: 60 });
        input.value = f.value ?? '';
      } else if (f.type === 'textarea') {
        input = h('textarea', { id: fid, name: f.name, rows: 3, maxlength: 500 });
        input.value = f.value ?? '';
      } else {
        input = h('input', { id: fid, name: f.name, type: 'text', maxlength: 200 });
        input.value = f.value ?? '';
      }
      form.appendChild(h('label', { for: fid }, f.label));
      form.appendChild(input);
      inputs[f.name] = input;
    }
    form.appendChild(err);
    const ok = h('button.primary', { type: 'submit' }, submit ?? t('form.ok'));
    const cancel = h('button', { type: 'button', onclick: () => dlg.close('cancel') }, t('form.cancel'));
    form.appendChild(h('div.controls', null, ok, cancel));
    dlg.appendChild(form);
    const values = () => Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.type === 'checkbox' ? el.checked : el.value.trim()]));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = values();
      for (const f of fields) {
        if (f.required && (f.type === 'checkbox' ? !v[f.name] : !v[f.name])) {
          err.textContent = f.type === 'checkbox' ? t('form.confirm', { what: f.label }) : t('form.required', { what: f.label });
          inputs[f.name].focus();
          return;
        }
      }
      const why = validate ? validate(v) : null;
      if (why) {
        err.textContent = why;
        return;
      }
      dlg.dataset.done = '1';
      dlg.close('ok');
      resolve(v);
    });
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (!dlg.dataset.done) resolve(null);
    });
    document.body.appendChild(dlg);
    dlg.showModal();
    const first = Object.values(inputs)[0];
    if (first) first.focus();
  });
}
