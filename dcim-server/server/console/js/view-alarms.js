// Alarms: a list that can hold hundreds: search, filters (grade, subsystem, state), sorting by
// any column, the current value of what each alarm watches (with its unit and age), ages that
// keep counting, and the operator's actions. Shelving asks for a reason (and a confirmation
// for grade 1); fire-stage and battery-temperature alarms are not offered for shelving.

import { get, post } from './api.js';
import { h, clear, fmtTime, ago, formDialog, toast } from './ui.js';
import { state, on, point, loadAlarms, refusedWhy } from './state.js';
import { alarmState, stateLabel, act, compLabel, pointValue, tableWrap } from './common.js';
import { stageChip } from './fire.js';

const KIND_SUBSYSTEM = {
  utility_feed: 'power', generator: 'power', switchgear: 'power', ats: 'power', transformer: 'power', ups: 'power', battery_room: 'fire', pdu: 'power',
  chiller: 'cooling', chilled_water_loop: 'cooling', buffer_tank: 'cooling', crah: 'cooling', room: 'cooling', carrier: 'network', mmr: 'network', core: 'network', row: 'network',
};
const ROLE_SUBSYSTEM = [[/^(fire|battery|drain_tank)\./, 'fire'], [/^(feed|ups|pdu|ats|transformer|generator)\./, 'power'], [/^(chiller|crah|loop|buffer_tank|room)\./, 'cooling'], [/^(link|device)\./, 'network']];

/// The rule of an alarm, as the server serves it (`/api/alarm-rules`).
function ruleOf(a) {
  return state.rules.get(a.rule);
}

/// The device an alarm's subject names (`meter-a[feed=A]` -> `meter-a`).
function deviceOf(a) {
  return String(a.subject ?? '').replace(/\[.*$/, '');
}

/// Fire alarms (the stage and pre-alarm rules) are never shelved: not offered here, and the
/// server refuses them.
export function isFireAlarm(a) {
  if (a.shelvable === false) return true;
  const r = ruleOf(a);
  return r?.condition?.type === 'fire_stage' || String(r?.role ?? '').startsWith('fire.') || /^fire[-_.]/.test(a.rule ?? '');
}

/// Alarms the server never shelves (its rules say `shelvable: false`: fire stages, the
/// pre-alarm, battery temperature; it answers 403): no shelve control is offered for them.
export function notShelvable(a) {
  if (a.shelvable === false) return true;
  const r = ruleOf(a);
  if (r && typeof r.shelvable === 'boolean') return !r.shelvable;
  return isFireAlarm(a);
}

export function alarmSubsystem(a) {
  const r = ruleOf(a);
  if (isFireAlarm(a)) return 'fire';
  if (r?.condition?.type === 'redundancy' || r?.condition?.type === 'redundancy_unverified') return String(a.subject).split('/')[0];
  if (r?.condition?.type === 'comm_lost') return 'communication';
  const kind = state.byId.get(a.component)?.kind;
  if (kind && KIND_SUBSYSTEM[kind]) return KIND_SUBSYSTEM[kind];
  const role = r?.role ?? '';
  for (const [re, sub] of ROLE_SUBSYSTEM) if (re.test(role)) return sub;
  return 'other';
}

/// What the alarm watches, now: the live value of its point, or the current redundancy.
function currentNode(a) {
  const r = ruleOf(a);
  const cond = r?.condition?.type;
  if (cond === 'redundancy' || cond === 'redundancy_unverified') {
    const [sub, rack] = String(a.subject).split('/');
    const x = rack ? state.compState.get(rack)?.supply?.find((y) => y.subsystem === sub) : state.redundancy?.subsystems?.find((y) => y.subsystem === sub);
    if (!x) return h('span', null, 'not evaluated');
    // The proven level; when Unknown components could change it, the server's summary.
    if (x.verified === false) return h('span.unverified', null, x.summary || `unverified: ${x.current === 'below_n' ? 'below N' : x.current} proven`);
    return h('span', null, x.current === 'below_n' ? 'below N' : x.current ?? 'not evaluated');
  }
  if (!r?.role) return h('span.muted', null, '—');
  const p = point(deviceOf(a), r.role);
  if (r.role === 'fire.stage' && p) return h('span', null, stageChip(typeof p.value === 'number' ? p.value : null), ' ', ago(p.ts_ms));
  return h('span', null, pointValue(p, r.role), ' ', p ? ago(p.ts_ms) : null);
}

const STATE_FILTERS = [
  ['', 'All states'],
  ['needs_ack', 'Needs acknowledgement'],
  ['acknowledged', 'Acknowledged'],
  ['shelved', 'Shelved'],
  ['suppressed', 'Suppressed'],
  ['out_of_service', 'Out of service'],
];

function stateMatches(st, f) {
  if (!f) return true;
  if (f === 'needs_ack') return st === 'unacknowledged' || st === 'rtn_unacknowledged';
  if (f === 'suppressed') return st === 'suppressed_by_design' || st === 'suppressed_by_maintenance';
  return st === f;
}

const STATE_ORDER = { unacknowledged: 0, rtn_unacknowledged: 1, acknowledged: 2, shelved: 3, suppressed_by_design: 4, suppressed_by_maintenance: 5, out_of_service: 6, normal: 7 };

const COLUMNS = [
  { key: 'grade', label: 'Grade', cmp: (a, b) => a.grade - b.grade },
  { key: 'state', label: 'State', cmp: (a, b) => (STATE_ORDER[alarmState(a)] ?? 9) - (STATE_ORDER[alarmState(b)] ?? 9) },
  { key: 'alarm', label: 'Alarm', cmp: (a, b) => String(a.message).localeCompare(String(b.message)) },
  { key: 'now', label: 'Now', cmp: null },
  { key: 'component', label: 'Component', cmp: (a, b) => String(a.component ?? a.subject).localeCompare(String(b.component ?? b.subject)) },
  { key: 'since', label: 'Since', cmp: (a, b) => (b.active_since_ms ?? b.last_change_ms ?? 0) - (a.active_since_ms ?? a.last_change_ms ?? 0) },
];

export const alarms = {
  title: 'Alarms',
  sel: 0,
  render(main, _args, ctx) {
    const self = this;
    let showAll = false;
    let list = state.alarms;
    let sortKey = 'grade';
    let sortDir = 1;
    const f = { q: '', grade: '', sub: '', st: '' };
    main.appendChild(h('h1', null, 'Alarms'));
    const search = h('input#alarm-search', { type: 'search', placeholder: 'Search alarms', 'aria-label': 'Search alarms (text, id, component)' });
    const grade = h('select#filter-grade', { 'aria-label': 'Grade' }, [['', 'All grades'], ['1', 'Grade 1'], ['2', 'Grade 2'], ['3', 'Grade 3']].map(([v, l]) => h('option', { value: v }, l)));
    const sub = h('select#filter-subsystem', { 'aria-label': 'Subsystem' }, [['', 'All subsystems'], ['fire', 'Fire'], ['power', 'Power'], ['cooling', 'Cooling'], ['network', 'Network'], ['communication', 'Communication'], ['other', 'Other']].map(([v, l]) => h('option', { value: v }, l)));
    const st = h('select#filter-state', { 'aria-label': 'State' }, STATE_FILTERS.map(([v, l]) => h('option', { value: v }, l)));
    const sortSel = h('select#alarm-sort', { 'aria-label': 'Sort by' }, COLUMNS.filter((c) => c.cmp).flatMap((c) => [h('option', { value: `${c.key}:1` }, `Sort: ${c.label} ▲`), h('option', { value: `${c.key}:-1` }, `Sort: ${c.label} ▼`)]));
    sortSel.addEventListener('change', () => {
      const [k, d] = sortSel.value.split(':');
      sortKey = k;
      sortDir = Number(d);
      draw();
    });
    const all = h('input#show-all', { type: 'checkbox' });
    const count = h('p.muted#alarm-count-text', { 'aria-live': 'polite' });
    const bar = h('div.controls.filters', null, search, grade, sub, st, sortSel, h('label.check', { for: 'show-all' }, all, ' include alarms back to normal'));
    main.appendChild(bar);
    main.appendChild(count);
    const table = h('table.data.alarms.cardtable#alarm-table');
    main.appendChild(tableWrap(table, 'Alarm list'));
    const detail = h('div#alarm-detail');
    main.appendChild(detail);
    let timer = null;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        f.q = search.value.trim().toLowerCase();
        draw();
      }, 150);
    });
    grade.addEventListener('change', () => { f.grade = grade.value; draw(); });
    sub.addEventListener('change', () => { f.sub = sub.value; draw(); });
    st.addEventListener('change', () => { f.st = st.value; draw(); });
    all.addEventListener('change', async () => { showAll = all.checked; await reload(); });
    const reload = async () => {
      if (showAll) {
        const r = await get('/api/alarms?all=true');
        list = r.alarms ?? [];
      } else list = state.alarms;
      draw();
    };
    const matches = (a) => {
      if (f.grade && String(a.grade) !== f.grade) return false;
      if (f.sub && alarmSubsystem(a) !== f.sub) return false;
      if (!stateMatches(alarmState(a), f.st)) return false;
      if (f.q) {
        const c = state.byId.get(a.component);
        const hay = [a.message, a.id, a.component, a.subject, c?.name, ruleOf(a)?.name].filter(Boolean).join(' ').toLowerCase();
        if (!f.q.split(/\s+/).every((w) => hay.includes(w))) return false;
      }
      return true;
    };
    const draw = () => {
      if (!showAll) list = state.alarms;
      const col = COLUMNS.find((c) => c.key === sortKey);
      const shown = list.filter(matches).sort((a, b) => sortDir * col.cmp(a, b) || a.grade - b.grade || (b.last_change_ms ?? 0) - (a.last_change_ms ?? 0));
      self.rows = shown;
      if (self.sel >= shown.length) self.sel = Math.max(0, shown.length - 1);
      count.textContent = `Showing ${shown.length} of ${list.length} alarms.`;
      sortSel.value = `${sortKey}:${sortDir}`;
      clear(table);
      const cols = ctx.canOperate ? [...COLUMNS, { key: 'actions', label: 'Actions' }] : COLUMNS;
      table.appendChild(h('thead', null, h('tr', null, cols.map((c) => {
        const th = h('th', { scope: 'col', 'data-col': c.key });
        if (c.cmp) {
          th.setAttribute('aria-sort', c.key === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
          th.appendChild(h('button.sort', { type: 'button', onclick: () => { sortDir = sortKey === c.key ? -sortDir : 1; sortKey = c.key; draw(); } }, c.label, c.key === sortKey ? (sortDir > 0 ? ' ▲' : ' ▼') : ''));
        } else th.textContent = c.label;
        return th;
      }))));
      const tb = h('tbody');
      if (shown.length === 0) tb.appendChild(h('tr', null, h('td', { colspan: cols.length }, h('p.muted', null, list.length ? 'No alarm matches the filters.' : 'No active alarm.'))));
      shown.forEach((a, i) => {
        const s2 = alarmState(a);
        const tr = h(`tr.alarm.st-${s2}${i === self.sel ? '.sel' : ''}`, { 'data-id': a.id, 'data-state': s2, 'data-grade': a.grade, tabindex: 0, onfocus: () => { self.sel = i; markSel(); } },
          h('td', null, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), a.grade_raised ? h('span.muted', null, ' raised') : null),
          h('td.state', null, stateLabel(s2), a.acked_by ? h('div.muted', null, `by ${a.acked_by}`) : null, a.overlays?.shelved_until ? h('div.muted', null, `until ${fmtTime(a.overlays.shelved_until, { short: true })}`) : null),
          h('td', null, h('div.aname', null, ruleOf(a)?.name ?? a.rule), h('div', null, a.message), h('div.muted.mono', null, a.id)),
          h('td.now', null, currentNode(a)),
          h('td', null, a.component ? compLabel(a.component) : a.subject ?? ''),
          h('td', null, ago(a.active_since_ms ?? a.last_change_ms)),
        );
        if (ctx.canOperate) {
          const acts = h('td.actions');
          if (s2 === 'unacknowledged' || s2 === 'rtn_unacknowledged') acts.appendChild(h('button.ack', { type: 'button', onclick: () => ack(a) }, 'Acknowledge'));
          if (s2 === 'shelved') acts.appendChild(h('button', { type: 'button', onclick: () => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/unshelve`), 'Unshelved').then(() => loadAlarms()) }, 'Unshelve'));
          else if (notShelvable(a)) acts.appendChild(h('span.muted.noshelve', null, isFireAlarm(a) ? 'fire alarms cannot be shelved' : 'safety alarm: cannot be shelved'));
          else {
            const why = refusedWhy('alarm_shelve');
            acts.appendChild(h('button.shelve-btn', { type: 'button', disabled: !!why, title: why ?? 'Shelve: hide for a while (reason required)', onclick: () => shelve(a) }, 'Shelve…'));
          }
          acts.appendChild(h('button', { type: 'button', onclick: () => showDetail(a, true) }, 'Comment'));
          tr.appendChild(acts);
        }
        tr.addEventListener('dblclick', () => showDetail(a, false));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' && e.target === tr) showDetail(a, false); });
        tb.appendChild(tr);
      });
      table.appendChild(tb);
    };
    const markSel = () => {
      table.querySelectorAll('tr.alarm').forEach((tr, i) => tr.classList.toggle('sel', i === self.sel));
    };
    const ack = (a) => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/ack`), `Acknowledged ${a.id}`).then(() => loadAlarms());
    const shelve = async (a) => {
      if (notShelvable(a)) return toast('Fire-stage and battery-temperature alarms cannot be shelved.', 'error');
      const why = refusedWhy('alarm_shelve');
      if (why) return toast(why, 'error');
      const fields = [
        { name: 'minutes', label: 'Shelve for', type: 'select', value: 60, options: [[15, '15 min'], [60, '1 h'], [240, '4 h'], [480, '8 h']] },
        { name: 'reason', label: 'Reason (required, journalled with the alarm)', type: 'textarea', required: true },
      ];
      if (a.grade === 1) fields.push({ name: 'confirm', label: 'I understand this hides a grade-1 alarm until the time above', type: 'checkbox', required: true });
      const v = await formDialog({ id: 'shelve-dialog', title: `Shelve ${a.id}`, text: a.message, fields, submit: 'Shelve', danger: a.grade === 1 });
      if (!v) return;
      await act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/shelve`, { minutes: Number(v.minutes), reason: v.reason }), `Shelved ${a.id} for ${v.minutes} min`);
      await loadAlarms();
    };
    self.ack = ack;
    self.shelve = shelve;
    const showDetail = async (a, focusComment) => {
      clear(detail);
      const panel = h('section.card#alarm-journal', null, h('div.panel-head', null, h('h2', null, a.id), h('button.close', { type: 'button', 'aria-label': 'Close', onclick: () => clear(detail) }, '✕')), h('p', null, a.message));
      if (ctx.canOperate) {
        const text = h('input#comment-text', { type: 'text', placeholder: 'Comment for the journal', 'aria-label': 'Comment' });
        panel.appendChild(h('form.inline', { onsubmit: async (e) => { e.preventDefault(); if (!text.value.trim()) return; await act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/comment`, { text: text.value }), 'Comment added'); showDetail(a, false); } }, text, h('button', { type: 'submit' }, 'Add comment')));
        if (focusComment) setTimeout(() => text.focus(), 0);
      }
      const j = await act(() => get(`/api/alarms/${encodeURIComponent(a.id)}/journal`));
      const recs = j?.journal ?? j?.records ?? (Array.isArray(j) ? j : []);
      panel.appendChild(h('ul.log', null, recs.map((row) => row.record ?? row).sort((x, y) => (y.ts_ms ?? 0) - (x.ts_ms ?? 0)).map((r) => h('li', null, h('span.ts', null, fmtTime(r.ts_ms, { tz: true })),
        ` ${(r.event?.type ?? '').replace(/_/g, ' ')}: ${stateLabel(r.from ?? '')} → ${stateLabel(r.to ?? '')}${r.event?.text ?? r.event?.reason ? ` “${r.event.text ?? r.event.reason}”` : ''}${r.user ? ` (${r.user})` : ''}`))));
      detail.appendChild(panel);
      detail.scrollIntoView({ block: 'nearest' });
    };
    draw();
    const offs = [on('alarms', () => (showAll ? reload() : draw())), on('authority', draw)];
    return () => offs.forEach((x) => x());
  },
  key(e) {
    const rows = this.rows ?? [];
    const operator = state.me.role !== 'viewer' && state.me.role !== 'fire_authority';
    if (e.key === 'j' || e.key === 'ArrowDown') this.sel = Math.min(rows.length - 1, (this.sel ?? 0) + 1);
    else if (e.key === 'k' || e.key === 'ArrowUp') this.sel = Math.max(0, (this.sel ?? 0) - 1);
    else if (e.key === 'a' && rows[this.sel] && operator) return this.ack(rows[this.sel]);
    else if (e.key === 's' && rows[this.sel] && operator) return this.shelve(rows[this.sel]);
    else return;
    e.preventDefault();
    const trs = document.querySelectorAll('#alarm-table tr.alarm');
    trs[this.sel]?.focus();
  },
};
