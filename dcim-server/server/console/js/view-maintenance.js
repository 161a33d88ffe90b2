// Maintenance: what is in maintenance now (by hand or by a window) and the windows scheduled
// in advance (who, what, from, to, why), which start and end by themselves on the server. An
// operator schedules a window here or from a component's panel, and cancels one (ending an
// active one early, which authority control refuses).

import { post } from './api.js';
import { h, clear, fmtTime, formDialog } from './ui.js';
import { state, on, loadWindows, refusedWhy } from './state.js';
import { act, tableWrap, scheduleWindow, compLabel } from './common.js';
import { placeText } from './fire.js';
import { t, zoneLabel, utcOffset } from './i18n.js';

const ORDER = { active: 0, scheduled: 1, ended: 2, cancelled: 3 };

export const maintenance = {
  title: 'view.maintenance',
  render(main, _args, ctx) {
    main.appendChild(h('h1', null, t('view.maintenance')));
    main.appendChild(h('p.muted', null, t('maintv.intro', { zone: zoneLabel() })));
    if (ctx.canOperate) main.appendChild(h('div.controls', null, h('button.primary#window-new', { type: 'button', onclick: () => scheduleWindow([]) }, t('window.scheduleButton'))));
    const now = h('section.card#maint-now');
    const list = h('section.card#windows');
    main.appendChild(now);
    main.appendChild(list);
    const cancel = async (w) => {
      const active = w.status === 'active';
      const v = await formDialog({
        id: 'cancel-window-dialog',
        title: active ? t('maintv.endTitle', { id: w.id }) : t('maintv.cancelTitle', { id: w.id }),
        text: active ? t('maintv.endText') : t('maintv.cancelText'),
        fields: [{ name: 'reason', label: t('maint.reason'), type: 'textarea', required: true }],
        submit: active ? t('maintv.endSubmit') : t('maintv.cancelSubmit'),
      });
      if (!v) return;
      const r = await act(() => post(`/api/maintenance/windows/${w.id}/cancel`, { reason: v.reason }), active ? t('maintv.ended', { id: w.id }) : t('maintv.cancelled', { id: w.id }));
      if (r) await loadWindows().catch(() => {});
    };
    const draw = () => {
      clear(now);
      now.appendChild(h('h2', null, t('maintv.now')));
      const inMaint = [...state.maintenance].sort();
      now.appendChild(inMaint.length ? h('ul.plain', null, inMaint.map((id) => {
        const w = state.windows.find((x) => x.status === 'active' && x.applied?.includes(id));
        return h('li', { 'data-id': id }, h('strong', null, compLabel(id)), state.places?.[id] ? h('span.muted', null, ` — ${placeText(id)}`) : null, ' ',
          h('span.muted', null, w ? t('maintv.byWindow', { id: w.id, to: fmtTime(w.to_ms, { minutes: true, tz: true }) }) : t('maintv.byHand')));
      })) : h('p.muted', null, t('maintv.nothing')));
      clear(list);
      list.appendChild(h('h2', null, t('maintv.windows')));
      const ws = [...state.windows].sort((a, b) => (ORDER[a.status] - ORDER[b.status]) || (a.status === 'scheduled' ? a.from_ms - b.from_ms : b.from_ms - a.from_ms));
      if (!ws.length) {
        list.appendChild(h('p.muted', null, t('maintv.noWindows')));
        return;
      }
      const why = refusedWhy('maintenance');
      const tb = h('tbody');
      for (const w of ws) {
        const acts = h('td.actions');
        if (ctx.canOperate && (w.status === 'scheduled' || w.status === 'active')) {
          const blocked = w.status === 'active' && why;
          acts.appendChild(h('button.cancel-window', { type: 'button', disabled: !!blocked, title: blocked || undefined, onclick: () => cancel(w) }, w.status === 'active' ? t('maintv.endNow') : t('maintv.cancel')));
        }
        tb.appendChild(h(`tr.window.w-${w.status}`, { 'data-window': w.id, 'data-status': w.status },
          h('td', { 'data-label': '#' }, `#${w.id}`),
          h('td', { 'data-label': t('maintv.col.status') }, h(`span.chip.wstatus.ws-${w.status}`, null, t(`window.status.${w.status}`)),
            w.held ? h('div.warn', null, t('window.held', { what: t(`window.heldWhat.${w.held.what}`) })) : null,
            w.end_cause && w.status !== 'active' ? h('div.muted', null, t(`window.cause.${w.end_cause}`)) : null),
          h('td', { 'data-label': t('maintv.col.what') }, w.subjects.join(', ')),
          h('td', { 'data-label': t('maintv.col.who') }, w.who, h('div.muted', null, t('maintv.scheduledBy', { user: w.created_by }))),
          h('td', { 'data-label': t('maintv.col.from') }, fmtTime(w.from_ms, { minutes: true }), h('div.muted', null, utcOffset(w.from_ms))),
          h('td', { 'data-label': t('maintv.col.to') }, fmtTime(w.to_ms, { minutes: true }), h('div.muted', null, utcOffset(w.to_ms))),
          h('td', { 'data-label': t('maintv.col.reason') }, w.reason, w.cancel_reason ? h('div.muted', null, t('maintv.cancelReason', { who: w.cancelled_by, why: w.cancel_reason })) : null),
          ctx.canOperate ? acts : null));
      }
      const cols = ['#', t('maintv.col.status'), t('maintv.col.what'), t('maintv.col.who'), t('maintv.col.from'), t('maintv.col.to'), t('maintv.col.reason')];
      if (ctx.canOperate) cols.push(t('alarms.col.actions'));
      list.appendChild(tableWrap(h('table.data.cardtable#window-table', null, h('thead', null, h('tr', null, cols.map((x) => h('th', { scope: 'col' }, x)))), tb), t('maintv.windows')));
    };
    draw();
    const offs = [on('windows', draw), on('maintenance', draw), on('authority', draw)];
    return () => offs.forEach((x) => x());
  },
};
