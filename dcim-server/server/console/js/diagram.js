// Layered SVG diagrams of the site model (power chain, cooling, network), coloured by the live
// state from the redundancy engine. Each component is a <g class="node" data-id data-state>.
//
// Large sites: a layer with more than MAX_NODES components (400 PDUs of 2,000 racks) is drawn
// as one node per room (or per block of components when rooms are missing or too many), showing
// how many members are up, degraded, down or unknown and coloured by its worst member; such a
// node is <g class="node group" data-group>, and activating it lists its members
// (`opts.onSelectGroup`). Every node stays wide enough to read and to hit.

import { s } from './ui.js';
import { state } from './state.js';
import { t } from './i18n.js';

export const LAYERS = {
  power: ['utility_feed', 'ats', 'transformer', ['ups', 'battery_room'], 'pdu'],
  cooling: ['chiller', 'chilled_water_loop', 'buffer_tank', 'crah', 'room'],
  network: ['carrier', 'mmr', 'core', 'row'],
};

/// Most nodes drawn side by side in one layer before it is drawn per room.
export const MAX_NODES = 40;

/// A layer's name (`ups+battery_room` is the UPS layer with its battery rooms).
const layerLabel = (kind) => t(`layer.${kind}`);
/// A display state in words.
const stLabel = (st) => t(`compState.${st}`);

const RANK = { N: 1, 'N+1': 2, '2N': 3 };
function rank(r) {
  if (!r || r === 'below_n') return 0;
  return RANK[r] ?? 1;
}

/// A node's level: the proven one, marked unverified when Unknown components could change it.
function supText(sup, short) {
  const r = (x) => (x === 'below_n' ? '<N' : x ?? '?');
  if (sup.verified === false) return short ? `${r(sup.current)}? / ${r(sup.designed)}` : t('diagram.supplyUnverified', { cur: r(sup.current), des: r(sup.designed) });
  if (!short) return t('diagram.supply', { cur: r(sup.current), des: r(sup.designed) });
  return `${r(sup.current)} / ${r(sup.designed)}`;
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
    // Known degradation (even with Unknown components counted as up).
    if (rank(sup.if_unknown_up ?? sup.current) < rank(sup.designed)) return 'degraded';
    // Not proven: what it depends on has not all reported. Never drawn healthy.
    if (sup.verified === false) return 'unknown';
    if (rank(sup.current) < rank(sup.designed)) return 'degraded';
  }
  return 'up';
}

/// Worst first: the state a group of components is drawn in.
const WORST = ['down', 'degraded', 'unknown', 'warning', 'maintenance', 'up'];

/// Counts per display state of some components, and the worst of them.
export function groupState(ids, subsystem) {
  const counts = {};
  for (const id of ids) {
    const st = displayState(id, subsystem);
    counts[st] = (counts[st] ?? 0) + 1;
  }
  const worst = WORST.find((st) => counts[st]) ?? 'unknown';
  return { counts, worst };
}

function countsText(counts) {
  return WORST.filter((st) => counts[st]).map((st) => `${counts[st]} ${stLabel(st)}`).join(' · ');
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

/// The layer's nodes, grouped when there are too many to draw side by side.
function layerNodes(nodes, kind) {
  if (nodes.length <= MAX_NODES) return nodes.map((c) => ({ c, id: c.id }));
  const byRoom = new Map();
  for (const c of nodes) {
    const k = c.room ?? c.zone ?? '';
    if (!byRoom.has(k)) byRoom.set(k, []);
    byRoom.get(k).push(c);
  }
  let groups = [...byRoom.entries()].map(([k, list]) => ({ key: k || 'no room', list }));
  if (groups.length > MAX_NODES || byRoom.has('')) {
    const size = Math.ceil(nodes.length / MAX_NODES);
    groups = [];
    for (let i = 0; i < nodes.length; i += size) {
      const list = nodes.slice(i, i + size);
      groups.push({ key: `${list[0].id} … ${list[list.length - 1].id}`, list });
    }
  }
  return groups.map((g) => ({ group: true, id: `group:${kind}:${g.key}`, key: g.key, members: g.list.map((c) => c.id), kind }));
}

/// Builds the diagram. `opts.onSelect(id)` when a node is activated, `opts.onSelectGroup(node)`
/// when a group is; `opts.overlay` maps ids to an extra class (what-if: failed, loses,
/// weakened).
export function diagram(subsystem, opts = {}) {
  const comps = state.site.components;
  const layers = LAYERS[subsystem]
    .map((k) => {
      const kinds = Array.isArray(k) ? k : [k];
      const nodes = comps.filter((c) => kinds.includes(c.kind));
      // Mixed layers (UPS with its battery room) are ordered by zone, then by kind.
      if (kinds.length > 1) nodes.sort((a, b) => String(a.zone).localeCompare(String(b.zone)) || kinds.indexOf(a.kind) - kinds.indexOf(b.kind));
      const kind = kinds.join('+');
      return { kind, nodes: layerNodes(nodes, kind) };
    })
    .filter((l) => l.nodes.length > 0);
  const W = 1600;
  const rowH = 118;
  const top = 20;
  const H = top + layers.length * rowH + 10;
  const svg = s('svg.diagram', { viewBox: `0 0 ${W} ${H}`, role: 'group', 'aria-label': t('diagram.label', { sub: t(`subsystem.${subsystem}`) }), 'data-subsystem': subsystem });
  const pos = new Map(); // component or group id -> box
  const at = new Map(); // component id -> the id of the node it is drawn in
  const left = 210;
  layers.forEach((l, li) => {
    const n = l.nodes.length;
    const compact = n > 14;
    const span = W - left - 20;
    const step = span / n;
    const bw = compact ? Math.max(10, Math.min(40, step - 4)) : Math.min(200, step - 16);
    const bh = compact ? 40 : 64;
    const y = top + li * rowH + 24;
    l.nodes.forEach((node, i) => {
      const x = left + step * i + (step - bw) / 2;
      pos.set(node.id, { x, y, w: bw, h: bh, compact });
      if (node.group) for (const m of node.members) at.set(m, node.id);
      else at.set(node.id, node.id);
    });
    svg.appendChild(s('text.layer', { x: 12, y: y + bh / 2 + 6 }, layerLabel(l.kind)));
  });
  // Edges first, under the nodes; one per pair of drawn nodes.
  const edges = s('g.edges');
  const drawn = new Set();
  for (const l of layers) {
    for (const node of l.nodes) {
      const to = pos.get(node.id);
      const members = node.group ? node.members.map((id) => state.byId.get(id)) : [node.c];
      for (const c of members) {
        for (const g of c.groups ?? []) {
          if (g.subsystem !== subsystem) continue;
          for (const m of g.members) {
            const fromId = at.get(comps[m]?.id);
            const from = fromId && pos.get(fromId);
            if (!from || drawn.has(`${fromId}>${node.id}`)) continue;
            drawn.add(`${fromId}>${node.id}`);
            const st = fromId.startsWith('group:') ? 'unknown' : displayState(fromId, subsystem);
            edges.appendChild(
              s(`path.edge.st-${st}`, {
                d: `M${from.x + from.w / 2},${from.y + from.h} C${from.x + from.w / 2},${from.y + from.h + 30} ${to.x + to.w / 2},${to.y - 30} ${to.x + to.w / 2},${to.y}`,
                'data-from': fromId,
                'data-to': node.id,
              }),
            );
          }
        }
        if (!node.group && c.kind === 'battery_room' && c.zone) {
          const ups = comps.find((u) => u.kind === 'ups' && u.zone === c.zone);
          const from = ups && pos.get(ups.id);
          if (from) edges.appendChild(s('path.edge.batt', { d: `M${from.x + from.w},${from.y + from.h / 2} L${to.x},${to.y + to.h / 2}` }));
        }
      }
    }
  }
  svg.appendChild(edges);
  svg.groupMembers = new Map();
  for (const l of layers) {
    for (const node of l.nodes) {
      const p = pos.get(node.id);
      if (node.group) svg.groupMembers.set(node.id, node.members);
      svg.appendChild(node.group ? groupNode(node, p, subsystem, opts) : compNode(node.c, p, subsystem, opts));
    }
  }
  return svg;
}

function activate(g, fn) {
  g.addEventListener('click', fn);
  g.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      fn();
    }
  });
}

function compNode(c, p, subsystem, opts) {
  const st = displayState(c.id, subsystem);
  const extra = opts.overlay?.get(c.id);
  const cs = state.compState.get(c.id);
  const sup = (cs?.supply ?? []).find((x) => x.subsystem === subsystem);
  const sub = sup ? supText(sup, p.w < 150) : stLabel(st);
  const visible = p.compact ? (p.w >= 34 ? c.id.split('-').pop() : '') : `${c.id} ${sub}`;
  const g = s(`g.node.st-${st}${extra ? `.${extra}` : ''}`, {
    'data-id': c.id,
    'data-state': st,
    tabindex: 0,
    role: 'button',
    // The accessible name starts with what is written on the node.
    'aria-label': `${p.compact ? c.id : visible}${c.name ? `, ${c.name}` : ''}: ${stLabel(st)}`,
  });
  activate(g, () => opts.onSelect && opts.onSelect(c.id));
  g.appendChild(s('title', null, `${c.id}${c.name ? ` — ${c.name}` : ''} (${stLabel(st)})`));
  g.appendChild(s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 6 }));
  if (p.compact) {
    if (p.w >= 34) g.appendChild(s('text.small', { x: p.x + p.w / 2, y: p.y + p.h / 2 + 5, 'text-anchor': 'middle' }, c.id.split('-').pop()));
  } else {
    // The trailing space keeps the two lines apart in the text read out (not drawn).
    g.appendChild(s('text.id', { x: p.x + p.w / 2, y: p.y + 27, 'text-anchor': 'middle' }, `${c.id} `));
    g.appendChild(s('text.sub', { x: p.x + p.w / 2, y: p.y + 51, 'text-anchor': 'middle' }, sub));
  }
  if (opts.selected === c.id) g.classList.add('selected');
  return g;
}

function groupNode(node, p, subsystem, opts) {
  const { counts, worst } = groupState(node.members, subsystem);
  const head = t('diagram.group', { key: node.key, n: node.members.length, what: layerLabel(node.kind) });
  const short = p.w < 150;
  const g = s(`g.node.group.st-${worst}`, {
    'data-id': node.id,
    'data-group': node.key,
    'data-state': worst,
    'data-members': node.members.length,
    tabindex: 0,
    role: 'button',
    'aria-label': `${short ? node.key : head} ${short ? `${node.members.length}, ${stLabel(worst)}` : countsText(counts)}${short ? `: ${head}` : ''}`,
  });
  activate(g, () => opts.onSelectGroup && opts.onSelectGroup(node));
  g.appendChild(s('title', null, `${head} (${countsText(counts)})`));
  g.appendChild(s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 6 }));
  g.appendChild(s('text.id', { x: p.x + p.w / 2, y: p.y + (p.compact ? 17 : 27), 'text-anchor': 'middle' }, `${short ? node.key : head} `));
  g.appendChild(s('text.sub', { x: p.x + p.w / 2, y: p.y + (p.compact ? 35 : 51), 'text-anchor': 'middle' }, short ? `${node.members.length}, ${stLabel(worst)}` : countsText(counts)));
  if (opts.selectedGroup === node.id) g.classList.add('selected');
  return g;
}

/// Recolours an existing diagram in place (no re-layout, keeps focus).
export function recolour(svg, subsystem, overlay) {
  for (const g of svg.querySelectorAll('g.node')) {
    const id = g.getAttribute('data-id');
    if (g.classList.contains('group')) continue;
    const st = displayState(id, subsystem);
    if (g.getAttribute('data-state') !== st) {
      g.setAttribute('data-state', st);
      for (const cl of [...g.classList]) if (cl.startsWith('st-')) g.classList.remove(cl);
      g.classList.add(`st-${st}`);
      const title = g.querySelector('title');
      if (title) title.textContent = title.textContent.replace(/\([^)]*\)$/, `(${stLabel(st)})`);
      const al = g.getAttribute('aria-label');
      if (al) g.setAttribute('aria-label', al.replace(/: [^:]*$/, `: ${stLabel(st)}`));
    }
    const cs = state.compState.get(id);
    const sup = (cs?.supply ?? []).find((x) => x.subsystem === subsystem);
    const sub = g.querySelector('text.sub');
    if (sub && sup) sub.textContent = supText(sup, Number(g.querySelector('rect')?.getAttribute('width')) < 150);
    for (const cl of ['failed', 'loses', 'weakened']) g.classList.toggle(cl, overlay?.get(id) === cl);
  }
  for (const e of svg.querySelectorAll('path.edge[data-from]')) {
    const from = e.getAttribute('data-from');
    if (from.startsWith('group:')) continue;
    const st = displayState(from, subsystem);
    for (const cl of [...e.classList]) if (cl.startsWith('st-')) e.classList.remove(cl);
    e.classList.add(`st-${st}`);
  }
}

/// Recolours the group nodes of a diagram: worst member state, counts.
export function recolourGroups(svg, subsystem) {
  for (const g of svg.querySelectorAll('g.node.group')) {
    const ids = svg.groupMembers?.get(g.getAttribute('data-id')) ?? [];
    const { counts, worst } = groupState(ids, subsystem);
    g.setAttribute('data-state', worst);
    for (const cl of [...g.classList]) if (cl.startsWith('st-')) g.classList.remove(cl);
    g.classList.add(`st-${worst}`);
    const sub = g.querySelector('text.sub');
    const wide = Number(g.querySelector('rect')?.getAttribute('width')) >= 150;
    const text = wide ? countsText(counts) : `${ids.length}, ${stLabel(worst)}`;
    if (sub) sub.textContent = text;
    const idText = g.querySelector('text.id')?.textContent ?? '';
    g.setAttribute('aria-label', `${idText}${text}`);
  }
}
