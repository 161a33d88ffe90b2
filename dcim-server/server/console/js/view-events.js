// Events: what the agents reported (fire-logic actions, communication losses, key switches,
// ...), newest first: search, filters (severity, kind, room), sorting, and CSV export of what
// the filters show (the server applies the same filters to the same stored events).

import { get } from './api.js';
import { h, clear, fmtTime } from './ui.js';
import { state, on } from './state.js';
import { tableWrap } from './common.js';
import { eventText } from './fire.js';
import { roomOptions, offsetMin } from './view-alarms.js';
import { t, tOr } from './i18n.js';

/// Events looked at (the server's default for the export is the same).
const LIMIT = 1000;

function deviceComponent() {
  const m = new Map();
  for (const c of state.site?.components ?? []) for (const b of c.bindings ?? []) if (!m.has(b.device)) m.set(b.device, c.id);
  return m;
}

const COLUMNS = [
  { key: 'time', cmp: (a, b) => a.ts_ms - b.ts_ms },
  { key: 'severity', cmp: (a, b) => String(a.severity).localeCompare(String(b.severity)) },
  { key: 'kind', cmp: (a, b) => String(a.kind).localeCompare(String(b.kind)) },
  { key: 'device', cmp: (a, b) => String(a.device).localeCompare(String(b.device)) },
  { key: 'message', cmp: null },
];

export const events = {
  title: 'view.events',
  render(main) {
    let list = [];
    let sortKey = 'time';
    let sortDir = -1;
    const f = { q: '', severity: '', kind: '', room: '' };
    main.appendChild(h('h1', null, t('view.events')));
    const search = h('input#event-search', { type: 'search', placeholder: t('events.search'), 'aria-label': t('events.searchLabel') });
    const sev = h('select#event-severity', { 'aria-label': t('events.col.severity') }, [['', t('events.allSeverities')], ...['alarm', 'warning', 'info'].map((s) => [s, t(`severity.${s}`)])].map(([v, l]) => h('option', { value: v }, l)));
    const kind = h('select#event-kind', { 'aria-label': t('events.col.kind') });
    const room = h('select#event-room', { 'aria-label': t('col.room') }, [['', t('alarms.allRooms')], ...roomOptions().map((r) => [r, r])].map(([v, l]) => h('option', { value: v }, l)));
    const exportLink = h('a.button#event-export', { href: '#', download: '' }, t('alarms.exportCsv'));
    main.appendChild(h('div.controls.filters', null, search, sev, kind, room, exportLink));
    const count = h('p.muted#event-count-text', { 'aria-live': 'polite' });
    main.appendChild(count);
    const table = h('table.data.events.cardtable#event-table');
    main.appendChild(tableWrap(table, t('events.listLabel')));
    const devComp = deviceComponent();
    const roomOf = (e) => state.places?.[devComp.get(e.device)]?.room ?? null;
    const kinds = () => {
      const prefixes = new Set();
      const all = new Set();
      for (const e of list) {
        all.add(e.kind);
        prefixes.add(`${String(e.kind).split('.')[0]}.`);
      }
      const cur = kind.value;
      clear(kind);
      kind.appendChild(h('option', { value: '' }, t('events.allKinds')));
      for (const p of [...prefixes].sort()) kind.appendChild(h('option', { value: p }, t('events.kindPrefix', { prefix: p })));
      for (const k of [...all].sort()) kind.appendChild(h('option', { value: k }, k));
      kind.value = cur;
    };
    const matches = (e) => {
      if (f.severity && e.severity !== f.severity) return false;
      if (f.kind && (f.kind.endsWith('.') ? !String(e.kind).startsWith(f.kind) : e.kind !== f.kind)) return false;
      if (f.room && roomOf(e) !== f.room) return false;
      if (f.q) {
        const hay = `${e.device} ${e.kind} ${e.message} ${e.agent} ${devComp.get(e.device) ?? ''} ${eventText(e)}`.toLowerCase();
        if (!f.q.split(/\s+/).every((w) => hay.includes(w))) return false;
      }
      return true;
    };
    const exportHref = () => {
      const q = new URLSearchParams({ offset_min: String(offsetMin()), limit: String(LIMIT) });
      if (f.severity) q.set('severity', f.severity);
      if (f.kind) q.set('kind', f.kind);
      if (f.room) q.set('room', f.room);
      if (f.q) q.set('q', f.q);
      return `/api/export/events.csv?${q}`;
    };
    const draw = () => {
      const col = COLUMNS.find((c) => c.key === sortKey);
      const shown = list.filter(matches).sort((a, b) => sortDir * col.cmp(a, b) || b.ts_ms - a.ts_ms);
      count.textContent = t('events.showing', { n: shown.length, total: list.length });
      exportLink.href = exportHref();
      clear(table);
      table.appendChild(h('thead', null, h('tr', null, [...COLUMNS, { key: 'room' }].map((c) => {
        const th = h('th', { scope: 'col', 'data-col': c.key });
        if (c.cmp) {
          th.setAttribute('aria-sort', c.key === sortKey ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
          th.appendChild(h('button.sort', { type: 'button', onclick: () => { sortDir = sortKey === c.key ? -sortDir : 1; sortKey = c.key; draw(); } }, t(`events.col.${c.key}`), c.key === sortKey ? (sortDir > 0 ? ' ▲' : ' ▼') : ''));
        } else th.textContent = c.key === 'room' ? t('col.room') : t(`events.col.${c.key}`);
        return th;
      }))));
      const tb = h('tbody');
      if (!shown.length) tb.appendChild(h('tr', null, h('td', { colspan: 6 }, h('p.muted', null, list.length ? t('events.noMatch') : t('events.none')))));
      for (const e of shown.slice(0, 500)) {
        tb.appendChild(h(`tr.event.sev-${e.severity}`, { 'data-id': e.id, 'data-kind': e.kind, 'data-severity': e.severity },
          h('td', { 'data-label': t('events.col.time') }, fmtTime(e.ts_ms, { tz: true })),
          h('td', { 'data-label': t('events.col.severity') }, tOr(`severity.${e.severity}`, e.severity)),
          h('td.mono', { 'data-label': t('events.col.kind') }, e.kind, e.test ? h('span.tag', null, t('events.test')) : null),
          h('td', { 'data-label': t('events.col.device') }, e.device, devComp.get(e.device) && devComp.get(e.device) !== e.device ? h('div.muted', null, devComp.get(e.device)) : null),
          h('td', { 'data-label': t('events.col.message') }, eventText(e)),
          h('td', { 'data-label': t('col.room') }, roomOf(e) ?? '—')));
      }
      if (shown.length > 500) tb.appendChild(h('tr', null, h('td', { colspan: 6 }, h('p.muted', null, t('events.firstN', { n: 500 })))));
      table.appendChild(tb);
    };
    let timer = null;
    search.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { f.q = search.value.trim().toLowerCase(); draw(); }, 150);
    });
    sev.addEventListener('change', () => { f.severity = sev.value; draw(); });
    kind.addEventListener('change', () => { f.kind = kind.value; draw(); });
    room.addEventListener('change', () => { f.room = room.value; draw(); });
    const load = async () => {
      const r = await get(`/api/events?limit=${LIMIT}`);
      list = r.events ?? [];
      kinds();
      draw();
    };
    load().catch((e) => { count.textContent = t('events.loadFailed', { why: e.message }); });
    let pending = false;
    const refresh = () => {
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; load().catch(() => {}); }, 1000);
    };
    const offs = [on('events', refresh)];
    return () => offs.forEach((x) => x());
  },
};
