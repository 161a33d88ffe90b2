// Alarms: a list that can hold hundreds: search, filters (grade, subsystem, state, room),
// sorting by any column, the current value of what each alarm watches (with its unit and
// age), ages that keep counting, the maintenance window an alarm's component is in, CSV export
// of what the filters show (the server applies the same filters), and the operator's actions.
// Shelving asks for a reason (and a confirmation for grade 1); fire-stage and
// battery-temperature alarms are not offered for shelving.

import { get, post } from './api.js';
import { h, clear, fmtTime, ago, formDialog, toast } from './ui.js';
import { state, on, point, loadAlarms, refusedWhy, windowOf } from './state.js';
import { alarmState, stateLabel, act, compLabel, pointValue, tableWrap, gradeLabel, redLabel, windowText, unverifiedText } from './common.js';
import { stageChip } from './fire.js';
import { t, tOr } from './i18n.js';

const KIND_SUBSYSTEM = {
  utility_feed: 'power', generator: 'power', switchgear: 'power', ats: 'power', transformer: 'power', ups: 'power', battery_room: 'fire', pdu: 'power',
  chiller: 'cooling', chilled_water_loop: 'cooling', buffer_tank: 'cooling', crah: 'cooling', room: 'cooling', carrier: 'network', mmr: 'network', core: 'network', row: 'network',
};
const ROLE_SUBSYSTEM = [[/^(fire|battery|drain_tank)\./, 'fire'], [/^(feed|ups|pdu|ats|transformer|generator)\./, 'power'], [/^(chiller|crah|loop|buffer_tank|room)\./, 'cooling'], [/^(link|device)\./, 'network']];

/// The rule of an alarm, as the server serves it (`/api/alarm-rules`).
function ruleOf(a) {
  return state.rules.get(a.rule);
}

/// A rule's name in the console's language (the server's when the catalogue lacks it).
export function ruleName(a) {
  const r = ruleOf(a);
  return tOr(`srv.rule.${a.rule}`, r?.name ?? a.rule);
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

/// The subsystem an alarm is filed under (the server's CSV export uses the same rules).
export function alarmSubsystem(a) {
  const r = ruleOf(a);
  if (isFireAlarm(a)) return 'fire';
  if (r?.condition?.type === 'redundancy' || r?.condition?.type === 'redundancy_unverified') return String(a.subject).split('/')[0];
  if (r?.condition?.type === 'comm_lost') return 'communication';
  const kind = state.byId.get(a.component)?.kind;
  if (kind && kind !== 'rack' && KIND_SUBSYSTEM[kind]) return KIND_SUBSYSTEM[kind];
  const role = r?.role ?? '';
  for (const [re, sub] of ROLE_SUBSYSTEM) if (re.test(role)) return sub;
  return 'other';
}

/// The component an alarm is about: its own, the rack of a per-rack redundancy alarm, or the
/// first component bound to the device it names.
export function alarmComponent(a) {
  if (a.component) return a.component;
  const rack = String(a.subject ?? '').split('/')[1];
  if (rack && state.byId.has(rack)) return rack;
  const dev = deviceOf(a);
  return state.site?.components.find((c) => (c.bindings ?? []).some((b) => b.device === dev))?.id ?? null;
}

export function alarmRoom(a) {
  const c = alarmComponent(a);
  return c ? state.places?.[c]?.room ?? null : null;
}

/// What the alarm watches, now: the live value of its point, or the current redundancy.
function currentNode(a) {
  const r = ruleOf(a);
  const cond = r?.condition?.type;
  if (cond === 'redundancy' || cond === 'redundancy_unverified') {
    const [sub, rack] = String(a.subject).split('/');
    const x = rack ? state.compState.get(rack)?.supply?.find((y) => y.subsystem === sub) : state.redundancy?.subsystems?.find((y) => y.subsystem === sub);
    if (!x?.current) return h('span', null, t('alarms.notEvaluated'));
    // The proven level; when Unknown components could change it, what is proven and what
    // it would be if they are up.
    if (x.verified === false) return h('span.unverified', null, unverifiedText(x));
    return h('span', null, redLabel(x.current));
  }
  if (!r?.role) return h('span.muted', null, '—');
  const p = point(deviceOf(a), r.role);
  if (r.role === 'fire.stage' && p) return h('span', null, stageChip(typeof p.value === 'number' ? p.value : null), ' ', ago(p.ts_ms));
  return h('span', null, pointValue(p, r.role), ' ', p ? ago(p.ts_ms) : null);
}

const STATE_FILTERS = ['', 'needs_ack', 'acknowledged', 'shelved', 'suppressed', 'out_of_service'];

function stateMatches(st, f) {
  if (!f) return true;
  if (f === 'needs_ack') return st === 'unacknowledged' || st === 'rtn_unacknowledged';
  if (f === 'suppressed') return st === 'suppressed_by_design' || st === 'suppressed_by_maintenance';
  return st === f;
}

const STATE_ORDER = { unacknowledged: 0, rtn_unacknowledged: 1, acknowledged: 2, shelved: 3, suppressed_by_design: 4, suppressed_by_maintenance: 5, out_of_service: 6, normal: 7 };

const COLUMNS = [
  { key: 'grade', cmp: (a, b) => a.grade - b.grade },
  { key: 'state', cmp: (a, b) => (STATE_ORDER[alarmState(a)] ?? 9) - (STATE_ORDER[alarmState(b)] ?? 9) },
  { key: 'alarm', cmp: (a, b) => String(a.message).localeCompare(String(b.message)) },
  { key: 'now', cmp: null },
  { key: 'component', cmp: (a, b) => String(a.component ?? a.subject).localeCompare(String(b.component ?? b.subject)) },
  { key: 'since', cmp: (a, b) => (b.active_since_ms ?? b.last_change_ms ?? 0) - (a.active_since_ms ?? a.last_change_ms ?? 0) },
];
const colLabel = (k) => t(`alarms.col.${k}`);

/// The rooms of the site (for the room filters).
export function roomOptions() {
  const rooms = new Set();
  for (const p of Object.values(state.places ?? {})) if (p.room) rooms.add(p.room);
  return [...rooms].sort();
}

/// The browser's offset from UTC, in minutes east (for exports in local time).
export const offsetMin = () => -new Date().getTimezoneOffset();

export const alarms = {
  title: 'view.alarms',
  sel: 0,
  render(main, _args, ctx) {
    const self = this;
    let showAll = false;
    let list = state.alarms;
    let sortKey = 'grade';
    let sortDir = 1;
    const f = { q: '', grade: '', sub: '', st: '', room: '' };
    main.appendChild(h('h1', null, t('view.alarms')));
    const search = h('input#alarm-search', { type: 'search', placeholder: t('alarms.search'), 'aria-label': t('alarms.searchLabel') });
    const grade = h('select#filter-grade', { 'aria-label': t('col.grade') }, [['', t('alarms.allGrades')], ...[1, 2, 3].map((g) => [String(g), gradeLabel(g)])].map(([v, l]) => h('option', { value: v }, l)));
    const sub = h('select#filter-subsystem', { 'aria-label': t('col.subsystem') }, [['', t('alarms.allSubsystems')], ...['fire', 'power', 'cooling', 'network', 'communication', 'other'].map((s) => [s, t(`subsystem.${s}`)])].map(([v, l]) => h('option', { value: v }, l)));
    const st = h('select#filter-state', { 'aria-label': t('col.state') }, STATE_FILTERS.map((v) => h('option', { value: v }, t(`alarms.stateFilter.${v || 'all'}`))));
    const room = h('select#filter-room', { 'aria-label': t('col.room') }, [['', t('alarms.allRooms')], ...roomOptions().map((r) => [r, r])].map(([v, l]) => h('option', { value: v }, l)));
    const sortSel = h('select#alarm-sort', { 'aria-label': t('alarms.sortBy') }, COLUMNS.filter((c) => c.cmp).flatMap((c) => [h('option', { value: `${c.key}:1` }, t('alarms.sortUp', { col: colLabel(c.key) })), h('option', { value: `${c.key}:-1` }, t('alarms.sortDown', { col: colLabel(c.key) }))]));
    sortSel.addEventListener('change', () => {
      const [k, d] = sortSel.value.split(':');
      sortKey = k;
      sortDir = Number(d);
      draw();
    });
    const all = h('input#show-all', { type: 'checkbox' });
    const count = h('p.muted#alarm-count-text', { 'aria-live': 'polite' });
    const exportLink = h('a.button#alarm-export', { href: '#', download: '' }, t('alarms.exportCsv'));
    const bar = h('div.controls.filters', null, search, grade, sub, st, room, sortSel, h('label.check', { for: 'show-all' }, all, ` ${t('alarms.includeNormal')}`), exportLink);
    main.appendChild(bar);
    const windowsBox = h('div#alarm-windows');
    main.appendChild(windowsBox);
    main.appendChild(count);
    const table = h('table.data.alarms.cardtable#alarm-table');
    main.appendChild(tableWrap(table, t('alarms.listLabel')));
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
    room.addEventListener('change', () => { f.room = room.value; draw(); });
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
      if (f.room && alarmRoom(a) !== f.room) return false;
      if (f.q) {
        const c = state.byId.get(a.component);
        const hay = [a.message, a.id, a.component, a.subject, c?.name, ruleOf(a)?.name, ruleName(a)].filter(Boolean).join(' ').toLowerCase();
        if (!f.q.split(/\s+/).every((w) => hay.includes(w))) return false;
      }
      return true;
    };
    /// The export link carries the filters the list shows, so the file holds the same rows.
    const exportHref = () => {
      const q = new URLSearchParams({ offset_min: String(offsetMin()) });
      if (f.grade) q.set('grade', f.grade);
      if (f.sub) q.set('subsystem', f.sub);
      if (f.st) q.set('state', f.st);
      if (f.room) q.set('room', f.room);
      if (f.q) q.set('q', f.q);
      if (showAll) q.set('all', 'true');
      return `/api/export/alarms.csv?${q}`;
    };
    const drawWindows = () => {
      clear(windowsBox);
      const act = state.windows.filter((w) => w.status === 'active');
      const soon = state.windows.filter((w) => w.status === 'scheduled' && w.from_ms - Date.now() < 86400_000);
      if (!act.length && !soon.length) return;
      windowsBox.appendChild(h('section.card.maintstrip', { 'aria-label': t('view.maintenance') },
        act.length ? h('p', null, h('strong', null, t('alarms.windowsNow')), ' ', act.map((w) => h('span.wintext', { 'data-window': w.id }, `${w.subjects.join(', ')} — ${windowText(w)}`)).reduce((acc, x) => (acc.length ? [...acc, '; ', x] : [x]), [])) : null,
        soon.length ? h('p.muted', null, h('strong', null, t('alarms.windowsSoon')), ' ', soon.map((w) => `${w.subjects.join(', ')} — ${windowText(w)}`).join('; ')) : null));
    };
    const draw = () => {
      if (!showAll) list = state.alarms;
      const col = COLUMNS.find((c) => c.key === sortKey);
      const shown = list.filter(matches).sort((a, b) => sortDir * col.cmp(a, b) || a.grade - b.grade || (b.last_change_ms ?? 0) - (a.last_change_ms ?? 0));
      self.rows = shown;
      if (self.sel >= shown.length) self.sel = Math.max(0, shown.length - 1);
      count.textContent = t('alarms.showing', { n: shown.length, total: list.length });
      sortSel.value = `${sortKey}:${sortDir}`;
      exportLink.href = exportHref();
      drawWindows();
      clear(table);
      const cols = ctx.canOperate ? [...COLUMNS, { key: 'actions' }] : COLUMNS;
      table.appendChild(h('thead', null, h('tr', null, cols.map((c) => {
        const th = h('th', { scope: 'col', 'data-col': c.key });
        if (c.cmp) {
          th.setAttribute('aria-sort', c.key === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
          th.appendChild(h('button.sort', { type: 'button', onclick: () => { sortDir = sortKey === c.key ? -sortDir : 1; sortKey = c.key; draw(); } }, colLabel(c.key), c.key === sortKey ? (sortDir > 0 ? ' ▲' : ' ▼') : ''));
        } else th.textContent = colLabel(c.key);
        return th;
      }))));
      const tb = h('tbody');
      if (shown.length === 0) tb.appendChild(h('tr', null, h('td', { colspan: cols.length }, h('p.muted', null, list.length ? t('alarms.noMatch') : t('alarms.none')))));
      shown.forEach((a, i) => {
        const s2 = alarmState(a);
        const comp = alarmComponent(a);
        const win = comp ? windowOf(comp) ?? windowOf(deviceOf(a)) : windowOf(deviceOf(a));
        const tr = h(`tr.alarm.st-${s2}${i === self.sel ? '.sel' : ''}`, { 'data-id': a.id, 'data-state': s2, 'data-grade': a.grade, tabindex: 0, onfocus: () => { self.sel = i; markSel(); } },
          h('td', null, h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), a.grade_raised ? h('span.muted', null, ` ${t('alarms.raised')}`) : null),
          h('td.state', null, stateLabel(s2), a.acked_by ? h('div.muted', null, t('alarms.by', { who: a.acked_by })) : null, a.overlays?.shelved_until ? h('div.muted', null, t('alarms.until', { time: fmtTime(a.overlays.shelved_until, { short: true }) })) : null,
            win ? h('div.chip.maintchip', { 'data-window': win.id, title: windowText(win) }, t('window.chipNow', { id: win.id, to: fmtTime(win.to_ms, { short: true, minutes: true }) })) : null),
          h('td', null, h('div.aname', null, ruleName(a)), h('div', null, a.message), h('div.muted.mono', null, a.id)),
          h('td.now', null, currentNode(a)),
          h('td', null, a.component ? compLabel(a.component) : a.subject ?? '', alarmRoom(a) ? h('div.muted', null, alarmRoom(a)) : null),
          h('td', null, ago(a.active_since_ms ?? a.last_change_ms)),
        );
        if (ctx.canOperate) {
          const acts = h('td.actions');
          if (s2 === 'unacknowledged' || s2 === 'rtn_unacknowledged') acts.appendChild(h('button.ack', { type: 'button', onclick: () => ack(a) }, t('alarms.ack')));
          if (s2 === 'shelved') acts.appendChild(h('button', { type: 'button', onclick: () => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/unshelve`), t('alarms.unshelved')).then(() => loadAlarms()) }, t('alarms.unshelve')));
          else if (notShelvable(a)) acts.appendChild(h('span.muted.noshelve', null, isFireAlarm(a) ? t('alarms.fireNoShelve') : t('alarms.safetyNoShelve')));
          else {
            const why = refusedWhy('alarm_shelve');
            acts.appendChild(h('button.shelve-btn', { type: 'button', disabled: !!why, title: why ?? t('alarms.shelveTitle'), onclick: () => shelve(a) }, t('alarms.shelve')));
          }
          acts.appendChild(h('button', { type: 'button', onclick: () => showDetail(a, true) }, t('alarms.comment')));
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
    const ack = (a) => act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/ack`), t('alarms.acked', { id: a.id })).then(() => loadAlarms());
    const shelve = async (a) => {
      if (notShelvable(a)) return toast(t('alarms.fireNoShelveToast'), 'error');
      const why = refusedWhy('alarm_shelve');
      if (why) return toast(why, 'error');
      const fields = [
        { name: 'minutes', label: t('alarms.shelveFor'), type: 'select', value: 60, options: [[15, t('dur.min', { n: 15 })], [60, t('dur.h', { n: 1 })], [240, t('dur.h', { n: 4 })], [480, t('dur.h', { n: 8 })]] },
        { name: 'reason', label: t('alarms.shelveReason'), type: 'textarea', required: true },
      ];
      if (a.grade === 1) fields.push({ name: 'confirm', label: t('alarms.shelveConfirm'), type: 'checkbox', required: true });
      const v = await formDialog({ id: 'shelve-dialog', title: t('alarms.shelveTitleId', { id: a.id }), text: a.message, fields, submit: t('alarms.shelveSubmit'), danger: a.grade === 1 });
      if (!v) return;
      await act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/shelve`, { minutes: Number(v.minutes), reason: v.reason }), t('alarms.shelved', { id: a.id, n: v.minutes }));
      await loadAlarms();
    };
    self.ack = ack;
    self.shelve = shelve;
    const showDetail = async (a, focusComment) => {
      clear(detail);
      const panel = h('section.card#alarm-journal', null, h('div.panel-head', null, h('h2', null, a.id), h('button.close', { type: 'button', 'aria-label': t('panel.close'), onclick: () => clear(detail) }, '✕')), h('p', null, a.message));
      if (ctx.canOperate) {
        const text = h('input#comment-text', { type: 'text', placeholder: t('alarms.commentPlaceholder'), 'aria-label': t('alarms.comment') });
        panel.appendChild(h('form.inline', { onsubmit: async (e) => { e.preventDefault(); if (!text.value.trim()) return; await act(() => post(`/api/alarms/${encodeURIComponent(a.id)}/comment`, { text: text.value }), t('alarms.commentAdded')); showDetail(a, false); } }, text, h('button', { type: 'submit' }, t('alarms.addComment'))));
        if (focusComment) setTimeout(() => text.focus(), 0);
      }
      const j = await act(() => get(`/api/alarms/${encodeURIComponent(a.id)}/journal`));
      const recs = j?.journal ?? j?.records ?? (Array.isArray(j) ? j : []);
      panel.appendChild(h('ul.log', null, recs.map((row) => row.record ?? row).sort((x, y) => (y.ts_ms ?? 0) - (x.ts_ms ?? 0)).map((r) => h('li', null, h('span.ts', null, fmtTime(r.ts_ms, { tz: true })),
        ` ${tOr(`journalEvent.${r.event?.type}`, (r.event?.type ?? '').replace(/_/g, ' '))}: ${stateLabel(r.from ?? '')} → ${stateLabel(r.to ?? '')}${r.event?.text ?? r.event?.reason ? ` “${r.event.text ?? r.event.reason}”` : ''}${r.user ? ` (${r.user})` : ''}`))));
      detail.appendChild(panel);
      detail.scrollIntoView({ block: 'nearest' });
    };
    draw();
    const offs = [on('alarms', () => (showAll ? reload() : draw())), on('authority', draw), on('windows', draw)];
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
