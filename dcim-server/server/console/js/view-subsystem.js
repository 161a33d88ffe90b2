// Power chain, cooling and network: the layered diagram, the summary of the subsystem, and
// the panel of the selected component (its supply, points with units and ages, trend, alarms
// and maintenance) or of a group of components drawn as one node.

import { h, clear, trendChart, fmtUnit } from './ui.js';
import { state, on, key, point, seedHistory, roleInfo } from './state.js';
import { diagram, recolour, recolourGroups, displayState, rackSummary, groupState } from './diagram.js';
import { alarmState, stateLabel, levelBadge, redLabel, pointValue, pointAge, maintenanceControl, tableWrap, compStateLabel, subsystemLabel } from './common.js';
import { placeText } from './fire.js';
import { t } from './i18n.js';

/// Energised or not, as the server decides it from measurement (voltage, then current or
/// power, then the switch position), what decided it, and a breaker that disagrees with the
/// measurement. Null for components the server says nothing about.
export function energisedNode(cs) {
  if (!cs || !('energised' in cs) || (cs.energised == null && !cs.energised_by && !cs.mismatch)) return null;
  const word = cs.energised === true ? t('energised.live') : cs.energised === false ? t('energised.dead') : t('energised.unknown');
  const by = cs.energised_by ? ` ${t('energised.by', { what: roleInfo(cs.energised_by).description ?? cs.energised_by })}${/breaker|contactor/.test(cs.energised_by) ? ` ${t('energised.switchOnly')}` : ''}` : '';
  return h('div.energised', { 'data-energised': String(cs.energised) },
    h('p', null, h('strong', null, `${t('energised.label')} `), word, by),
    cs.mismatch ? h('p.warn.mismatch', null, t('energised.mismatch', { what: cs.mismatch })) : null);
}

/// A component's supply per subsystem: the proven level (an unverified one never green) and
/// the live paths, with the paths the unknown components would add.
export function supplyTable(supply) {
  return tableWrap(h('table.data', null, h('thead', null, h('tr', null, [t('col.subsystem'), t('col.designed'), t('col.currentProven'), t('col.livePaths'), t('col.spof')].map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', null, supply.map((x) => h('tr', { 'data-subsystem': x.subsystem, 'data-verified': String(x.verified !== false) }, h('td', null, subsystemLabel(x.subsystem)), h('td', null, redLabel(x.designed)), h('td', null, levelBadge(x)),
      h('td', null, `${x.live_paths}/${x.designed_paths}${x.live_paths_if_unknown_up != null && x.live_paths_if_unknown_up !== x.live_paths ? ` ${t('comp.ifUnknownUp', { n: x.live_paths_if_unknown_up })}` : ''}`), h('td', null, x.single_points_of_failure.join(', ') || '—'))))), t('comp.supply'));
}

export function componentPanel(id, subsystem, close, ctx) {
  const c = state.byId.get(id);
  const panel = h('aside.panel#component-panel', { 'aria-label': t('comp.panelLabel', { id }), tabindex: -1 });
  if (!c) {
    panel.appendChild(h('p', null, t('comp.unknown', { id })));
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
    panel.appendChild(h('div.panel-head', null, h('h2', null, c.id), h('button.close', { type: 'button', onclick: close, 'aria-label': t('panel.close') }, '✕')));
    panel.appendChild(h('p', null, c.name ?? t(`kind.${c.kind}`), ' ', h(`span.state.st-${st}`, null, compStateLabel(st))));
    if (state.places?.[id]) panel.appendChild(h('p.muted', null, t('rack.where', { place: placeText(id, { building: true }) })));
    if (cs?.reason) panel.appendChild(h('p.muted.reason', null, t('comp.why', { state: compStateLabel(cs.state), reason: cs.reason })));
    if (cs && cs.monitored === false) panel.appendChild(h('p.warn.unmonitored', null, t('comp.unmonitored')));
    const en = energisedNode(cs);
    if (en) panel.appendChild(en);
    if (cs?.supply?.length) panel.appendChild(supplyTable(cs.supply));
    panel.appendChild(h('h3', null, t('comp.points')));
    const tb = h('tbody');
    for (const b of bindings) {
      const p = point(b.device, b.role);
      const k = key(b.device, b.role);
      const numeric = typeof p?.value === 'number' || typeof p?.value === 'boolean';
      const label = roleInfo(b.role).description;
      tb.appendChild(h(`tr${k === chartKey ? '.sel' : ''}`, { 'data-role': b.role },
        h('td', null, numeric ? h('button.link', { type: 'button', title: b.role, onclick: () => { chartKey = k; update(); } }, label) : h('span', { title: b.role }, label)),
        h('td.num', null, pointValue(p, b.role)), h('td', null, pointAge(p))));
    }
    panel.appendChild(tableWrap(h('table.data.points', null, h('thead', null, h('tr', null, [t('col.point'), t('col.value'), t('col.age')].map((x) => h('th', { scope: 'col' }, x)))), tb), t('comp.points')));
    if (chartKey) {
      const role = chartKey.split('|')[1];
      const ri = roleInfo(role);
      const unit = fmtUnit(ri.unit);
      panel.appendChild(h('h3', null, t('comp.trend', { what: `${ri.description}${unit ? ` (${unit})` : ''}` })));
      panel.appendChild(trendChart(state.history.get(chartKey) ?? [], { label: t('comp.trendLabel', { what: ri.description }) }));
      const p = point(...chartKey.split('|'));
      if (p?.point) panel.appendChild(h('p', null, h('a', { href: `/console/trends?a=${encodeURIComponent(`${p.device}/${p.point}`)}`, onclick: (e) => { e.preventDefault(); ctx.go(`trends?a=${encodeURIComponent(`${p.device}/${p.point}`)}`); } }, t('rack.openTrends'))));
    }
    panel.appendChild(h('h3', null, t('rack.maintenance')));
    panel.appendChild(maintenanceControl(id, ctx, update));
    const devices = new Set(bindings.map((b) => b.device));
    const alarms = state.alarms.filter((a) => a.component === id || devices.has(a.subject));
    panel.appendChild(h('h3', null, t('rack.alarms', { n: alarms.length })));
    panel.appendChild(alarms.length ? h('ul.plain', null, alarms.map((a) => h('li', null, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), ` ${a.message} `, h('span.muted', null, stateLabel(alarmState(a)))))) : h('p.muted', null, t('overview.none')));
  };
  update();
  // The charted point first, then the others; the panel is already drawn and redraws when
  // the history arrives.
  const pairs = bindings.map((b) => [b.device, b.role]);
  if (firstNum) pairs.unshift([firstNum.device, firstNum.role]);
  seedHistory(pairs);
  return { el: panel, update };
}

/// The members of a group node, each selectable.
function groupPanel(node, subsystem, close, select) {
  const panel = h('aside.panel#group-panel', { 'aria-label': t('comp.groupLabel', { key: node.key }), tabindex: -1 });
  const update = () => {
    clear(panel);
    const { counts } = groupState(node.members, subsystem);
    panel.appendChild(h('div.panel-head', null, h('h2', null, t('comp.groupTitle', { key: node.key, n: node.members.length })), h('button.close', { type: 'button', onclick: close, 'aria-label': t('panel.close') }, '✕')));
    panel.appendChild(h('p', null, Object.entries(counts).map(([st, n]) => h(`span.state.st-${st}`, null, `${n} ${compStateLabel(st)}`)).reduce((a, x) => (a.length ? [...a, ' ', x] : [x]), [])));
    // Worst first.
    const order = { down: 0, degraded: 1, unknown: 2, warning: 3, maintenance: 4, up: 5 };
    const ids = [...node.members].sort((a, b) => (order[displayState(a, subsystem)] ?? 9) - (order[displayState(b, subsystem)] ?? 9) || a.localeCompare(b));
    panel.appendChild(h('div.members', null, ids.map((id) => {
      const st = displayState(id, subsystem);
      return h(`button.member.st-${st}`, { type: 'button', 'data-id': id, onclick: () => select(id) }, `${id}: ${compStateLabel(st)}`);
    })));
  };
  update();
  return { el: panel, update };
}

export function subsystemView(subsystem, title) {
  return {
    title,
    render(main, args, ctx) {
      let selected = args[0] ?? null;
      let selectedGroup = null;
      const sub = () => (state.redundancy?.subsystems ?? []).find((x) => x.subsystem === subsystem);
      const head = h('div.viewhead');
      main.appendChild(h('h1', null, t(title)));
      main.appendChild(head);
      const wrap = h('div.split');
      const side = h('div.side.sticky');
      let svg = null;
      const markSel = () => {
        for (const g of svg.querySelectorAll('g.node')) g.classList.toggle('selected', g.getAttribute('data-id') === selected || g.getAttribute('data-id') === selectedGroup?.id);
      };
      const selectComp = (id) => {
        selected = id;
        selectedGroup = null;
        history.replaceState(null, '', `/console/${subsystem}/${encodeURIComponent(id)}`);
        markSel();
        showPanel();
      };
      svg = diagram(subsystem, {
        selected,
        onSelect: selectComp,
        onSelectGroup: (node) => {
          selected = null;
          selectedGroup = node;
          markSel();
          showPanel();
        },
      });
      const diag = h('div.diagram-wrap', null, svg);
      wrap.appendChild(diag);
      wrap.appendChild(side);
      main.appendChild(wrap);
      let panel = null;
      const closePanel = () => {
        selected = null;
        selectedGroup = null;
        history.replaceState(null, '', `/console/${subsystem}`);
        markSel();
        showPanel();
      };
      const showPanel = () => {
        clear(side);
        panel = null;
        if (selectedGroup) {
          panel = groupPanel(selectedGroup, subsystem, closePanel, selectComp);
        } else if (selected) {
          panel = componentPanel(selected, subsystem, closePanel, ctx);
        } else {
          side.appendChild(h('p.muted', null, t('comp.selectHint')));
          return;
        }
        side.appendChild(panel.el);
        if (window.matchMedia('(max-width: 1100px)').matches) panel.el.scrollIntoView({ block: 'start' });
      };
      const drawHead = () => {
        clear(head);
        const x = sub();
        const racks = rackSummary(subsystem);
        if (x) head.appendChild(h('p.summary', null, `${t('comp.redundancy')} `, levelBadge(x), ` ${t('comp.summary', { designed: redLabel(x.designed), spof: x.single_points_of_failure.join(', ') || t('overview.none') })} `,
          t('comp.racks', { up: racks.up, degraded: racks.degraded, down: racks.down, unknown: racks.unknown, sub: subsystemLabel(subsystem) })));
        head.appendChild(h('p.legend', null, ['up', 'degraded', 'down', 'maintenance', 'unknown'].map((st) => h(`span.state.st-${st}`, null, compStateLabel(st)))));
      };
      drawHead();
      showPanel();
      const offs = [
        on('redundancy', () => {
          recolour(svg, subsystem);
          recolourGroups(svg, subsystem);
          drawHead();
          if (panel) panel.update();
        }),
        on('points', () => panel && panel.update()),
        on('history', () => panel && panel.update()),
        on('alarms', () => panel && panel.update()),
        on('maintenance', () => panel && panel.update()),
        on('windows', () => panel && panel.update()),
        on('authority', () => panel && panel.update()),
      ];
      return () => offs.forEach((f) => f());
    },
    key(e) {
      if (e.key === 'Escape') document.querySelector('#component-panel button.close, #group-panel button.close')?.click();
    },
  };
}
