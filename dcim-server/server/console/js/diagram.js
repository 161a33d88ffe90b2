// Layered SVG diagrams of the site model (power chain, cooling, network), coloured by the live
// state from the redundancy engine. Each component is a <g class="node" data-id data-state>.

import { s } from './ui.js';
import { state } from './state.js';

export const LAYERS = {
  power: ['utility_feed', 'ats', 'transformer', ['ups', 'battery_room'], 'pdu'],
  cooling: ['chiller', 'chilled_water_loop', 'buffer_tank', 'crah', 'room'],
  network: ['carrier', 'mmr', 'core', 'row'],
};

const LABEL = {
  utility_feed: 'Utility feeds', ats: 'Switchgear / ATS', transformer: 'Transformers', ups: 'UPS zones',
  battery_room: 'Battery rooms', 'ups+battery_room': 'UPS + batteries', pdu: 'PDUs', chiller: 'Chillers', chilled_water_loop: 'Chilled-water loops',
  buffer_tank: 'Buffer tank', crah: 'CRAH units', room: 'Halls', carrier: 'Carriers', mmr: 'Meet-me rooms',
  core: 'Core switches', row: 'Row switches',
};

const RANK = { N: 1, 'N+1': 2, '2N': 3 };
function rank(r) {
  if (!r || r === 'below_n') return 0;
  return RANK[r] ?? 1;
}

function supText(sup, short) {
  const r = (x) => (x === 'below_n' ? '<N' : x ?? '?');
  return short ? `${r(sup.current)} / ${r(sup.designed)}` : `${r(sup.current)} (design ${r(sup.designed)})`;
}

/// The display state of a component: up | degraded | down | maintenance | warning | unknown.
export function displayState(id, subsystem) {
  const cs = state.compState.get(id);
  if (!cs) return 'unknown';
  const st = cs.state ?? 'unknown';
  if (st !== 'up') return st;
  const sup = (cs.supply ?? []).find((x) => !subsystem || x.subsystem === subsystem) ?? (cs.supply ?? [])[0];
  if (sup) {
    if (!sup.supplied) return 'down';
    if (rank(sup.current) < rank(sup.designed)) return 'degraded';
  }
  return 'up';
}

/// Racks of a subsystem summarised: counts per display state.
export function rackSummary(subsystem) {
  const out = { up: 0, degraded: 0, down: 0, unknown: 0, maintenance: 0, warning: 0 };
  for (const c of state.site.components) {
    if (c.kind !== 'rack') continue;
    const st = displayState(c.id, subsystem);
    out[st] = (out[st] ?? 0) + 1;
  }
  return out;
}

/// Builds the diagram. `opts.onSelect(id)` when a node is activated; `opts.overlay` maps ids to
/// an extra class (what-if: failed, loses, degraded).
export function diagram(subsystem, opts = {}) {
  const comps = state.site.components;
  const layers = LAYERS[subsystem]
    .map((k) => {
      const kinds = Array.isArray(k) ? k : [k];
      const nodes = comps.filter((c) => kinds.includes(c.kind));
      // Mixed layers (UPS with its battery room) are ordered by zone, then by kind.
      if (kinds.length > 1) nodes.sort((a, b) => String(a.zone).localeCompare(String(b.zone)) || kinds.indexOf(a.kind) - kinds.indexOf(b.kind));
      return { kind: kinds.join('+'), nodes };
    })
    .filter((l) => l.nodes.length > 0);
  const W = 1600;
  const rowH = 118;
  const top = 20;
  const H = top + layers.length * rowH + 10;
  const svg = s('svg.diagram', { viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': `${subsystem} diagram`, 'data-subsystem': subsystem });
  const pos = new Map();
  const left = 210;
  layers.forEach((l, li) => {
    const n = l.nodes.length;
    const compact = n > 14;
    const span = W - left - 20;
    const step = span / n;
    const bw = compact ? Math.max(10, Math.min(40, step - 4)) : Math.min(200, step - 16);
    const bh = compact ? 40 : 64;
    const y = top + li * rowH + 24;
    l.nodes.forEach((c, i) => {
      const x = left + step * i + (step - bw) / 2;
      pos.set(c.id, { x, y, w: bw, h: bh, compact });
    });
    svg.appendChild(s('text.layer', { x: 12, y: y + bh / 2 + 6 }, LABEL[l.kind] ?? l.kind));
  });
  // Edges first, under the nodes.
  const edges = s('g.edges');
  for (const l of layers) {
    for (const c of l.nodes) {
      const to = pos.get(c.id);
      for (const g of c.groups ?? []) {
        if (g.subsystem !== subsystem) continue;
        for (const m of g.members) {
          const from = pos.get(comps[m]?.id);
          if (!from) continue;
          const st = displayState(comps[m].id, subsystem);
          edges.appendChild(
            s(`path.edge.st-${st}`, {
              d: `M${from.x + from.w / 2},${from.y + from.h} C${from.x + from.w / 2},${from.y + from.h + 30} ${to.x + to.w / 2},${to.y - 30} ${to.x + to.w / 2},${to.y}`,
              'data-from': comps[m].id,
              'data-to': c.id,
            }),
          );
        }
      }
      if (c.kind === 'battery_room' && c.zone) {
        const ups = comps.find((u) => u.kind === 'ups' && u.zone === c.zone);
        const from = ups && pos.get(ups.id);
        if (from) edges.appendChild(s('path.edge.batt', { d: `M${from.x + from.w},${from.y + from.h / 2} L${to.x},${to.y + to.h / 2}` }));
      }
    }
  }
  svg.appendChild(edges);
  for (const l of layers) {
    for (const c of l.nodes) {
      const p = pos.get(c.id);
      const st = displayState(c.id, subsystem);
      const extra = opts.overlay?.get(c.id);
      const g = s(`g.node.st-${st}${extra ? `.${extra}` : ''}`, {
        'data-id': c.id,
        'data-state': st,
        tabindex: 0,
        role: 'button',
        'aria-label': `${c.id} ${c.name ?? ''}: ${st}`,
        onclick: () => opts.onSelect && opts.onSelect(c.id),
        onkeydown: (e) => {
          if ((e.key === 'Enter' || e.key === ' ') && opts.onSelect) {
            e.preventDefault();
            opts.onSelect(c.id);
          }
        },
      });
      g.appendChild(s('title', null, `${c.id}${c.name ? ` — ${c.name}` : ''} (${st})`));
      g.appendChild(s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 6 }));
      if (p.compact) {
        if (p.w >= 34) g.appendChild(s('text.small', { x: p.x + p.w / 2, y: p.y + p.h / 2 + 5, 'text-anchor': 'middle' }, c.id.split('-').pop()));
      } else {
        g.appendChild(s('text.id', { x: p.x + p.w / 2, y: p.y + 27, 'text-anchor': 'middle' }, c.id));
        const cs = state.compState.get(c.id);
        const sup = (cs?.supply ?? []).find((x) => x.subsystem === subsystem);
        const sub = sup ? supText(sup, p.w < 150) : st;
        g.appendChild(s('text.sub', { x: p.x + p.w / 2, y: p.y + 51, 'text-anchor': 'middle' }, sub));
      }
      if (opts.selected === c.id) g.classList.add('selected');
      svg.appendChild(g);
    }
  }
  return svg;
}

/// Recolours an existing diagram in place (no re-layout, keeps focus).
export function recolour(svg, subsystem, overlay) {
  for (const g of svg.querySelectorAll('g.node')) {
    const id = g.getAttribute('data-id');
    const st = displayState(id, subsystem);
    if (g.getAttribute('data-state') !== st) {
      g.setAttribute('data-state', st);
      for (const cl of [...g.classList]) if (cl.startsWith('st-')) g.classList.remove(cl);
      g.classList.add(`st-${st}`);
      const t = g.querySelector('title');
      if (t) t.textContent = t.textContent.replace(/\([^)]*\)$/, `(${st})`);
    }
    const cs = state.compState.get(id);
    const sup = (cs?.supply ?? []).find((x) => x.subsystem === subsystem);
    const sub = g.querySelector('text.sub');
    if (sub && sup) sub.textContent = supText(sup, Number(g.querySelector('rect')?.getAttribute('width')) < 150);
    for (const cl of ['failed', 'loses', 'weakened']) g.classList.toggle(cl, overlay?.get(id) === cl);
  }
  for (const e of svg.querySelectorAll('path.edge[data-from]')) {
    const st = displayState(e.getAttribute('data-from'), subsystem);
    for (const cl of [...e.classList]) if (cl.startsWith('st-')) e.classList.remove(cl);
    e.classList.add(`st-${st}`);
  }
}
