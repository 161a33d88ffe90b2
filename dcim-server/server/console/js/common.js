// Helpers shared by the views: alarm states, redundancy badges, actions with feedback, values
// with their unit and age, the maintenance control of a component (now, or a window scheduled
// in advance) and the text of a maintenance window.

import { post } from './api.js';
import { h, toast, fmtValue, withUnit, ago, formDialog, fmtTime } from './ui.js';
import { state, roleInfo, readingStale, refusedWhy, loadMaintenance, loadWindows, windowOf, upcomingWindows } from './state.js';
import { stageName, stageCode } from './fire.js';
import { t, utcOffset, zoneLabel } from './i18n.js';

export const RANK = { below_n: 0, N: 1, 'N+1': 2, '2N': 3 };

export const gradeLabel = (g) => t('grade.n', { g });

/// The state an alarm shows: the strongest overlay (out of service > maintenance > design >
/// shelved, as the server orders them), else its base state.
export function alarmState(a) {
  const o = a.overlays ?? {};
  if (o.out_of_service_by) return 'out_of_service';
  if (o.maintenance) return 'suppressed_by_maintenance';
  if (o.suppressed_by) return 'suppressed_by_design';
  if (o.shelved_until) return 'shelved';
  return a.base;
}

export function stateLabel(st) {
  return st ? t(`alarmState.${st}`) : '';
}

/// The state of a component for people (up, degraded, down, maintenance, unknown, warning).
export const compStateLabel = (st) => t(`compState.${st}`);

/// A subsystem's name.
export const subsystemLabel = (s) => t(`subsystem.${s}`);

export function redLabel(r) {
  return r === 'below_n' ? t('red.belowN') : r ?? '?';
}

export function redBadge(cur, des) {
  const ok = (RANK[cur] ?? 0) >= (RANK[des] ?? 0);
  return h(`span.red.${ok ? 'ok' : cur === 'below_n' ? 'bad' : 'warn'}`, null, redLabel(cur));
}

/// Whether a redundancy level (a subsystem's or a supply's, as the API gives it) is healthy:
/// at its designed level *and* verified. `current` is the level proven by components that are
/// Up; a level that Unknown components could change is never shown as healthy.
export function levelOk(x) {
  return x.verified !== false && (RANK[x.current] ?? 0) >= (RANK[x.designed] ?? 0);
}

/// A level that Unknown components could change, for people: "unverified: N proven, 2N if the
/// 1 unknown component is up" (the server's `summary`, from the catalogue in the user's
/// language: built from `current`, `if_unknown_up` and the unverified components).
export function unverifiedText(x) {
  const n = x.unverified?.length ?? 0;
  if (x.if_unknown_up == null || n === 0) return t('level.unverifiedShort', { cur: redLabel(x.current) });
  return t('level.unverified', { cur: redLabel(x.current), ifUp: redLabel(x.if_unknown_up), n });
}

/// A redundancy level for people: the proven level, or, when it is not verified, what is proven
/// and what it would be if the unknown components are up ([`unverifiedText`]), never in green.
export function levelBadge(x) {
  if (x.verified === false) {
    return h(`span.red.unverified.${x.current === 'below_n' ? 'bad' : 'warn'}`, { 'data-verified': 'false', title: t('level.unverifiedTitle') }, unverifiedText(x));
  }
  return redBadge(x.current, x.designed);
}

/// Runs an API call; a toast says what happened (success when `okMsg` is given, refusal
/// always). Resolves with the answer, or null when refused.
export async function act(fn, okMsg) {
  try {
    const r = await fn();
    if (okMsg) toast(okMsg, 'ok');
    return r;
  } catch (e) {
    toast(t('toast.refused', { why: e.message }), 'error');
    return null;
  }
}

/// A component's id and name for people: "ups-z1 (UPS zone 1)".
export function compLabel(id) {
  const c = state.byId.get(id);
  return c?.name ? `${id} (${c.name})` : id;
}

/// A role's value in words, with its unit: stage codes by name, booleans as yes/no.
export function valueText(role, v) {
  if (v === null || v === undefined) return t('value.none');
  if (role === 'fire.stage') {
    const c = stageCode(v);
    return c === null ? String(v) : stageName(c);
  }
  if (typeof v === 'boolean') return v ? t('value.yes') : t('value.no');
  return withUnit(v, roleInfo(role).unit);
}

/// A point's value with its unit, and marked when it is not current (stale, bad, missing).
export function pointValue(p, role) {
  if (!p) return h('span.novalue', null, t('value.none'));
  const stale = readingStale(p);
  const q = p.quality && p.quality !== 'good' ? t(`quality.${p.quality}`) : t('quality.stale');
  return h(`span.pv${stale ? '.stale-value' : ''}`, { title: stale ? q : undefined },
    valueText(role, p.value), stale ? h('span.tag', null, q) : null);
}

/// A point's age (counting).
export function pointAge(p) {
  return p ? ago(p.ts_ms) : h('span.muted', null, '—');
}

export { fmtValue };

/// "#3 Kim (UPS vendor), 14:00–16:00 UTC+09:00: battery replacement".
export function windowText(w) {
  const same = new Date(w.from_ms).toDateString() === new Date(w.to_ms).toDateString();
  return t('window.text', {
    id: w.id,
    who: w.who,
    from: fmtTime(w.from_ms, { minutes: true }),
    to: same ? fmtTime(w.to_ms, { short: true, minutes: true }) : fmtTime(w.to_ms, { minutes: true }),
    tz: utcOffset(w.from_ms),
    reason: w.reason,
  });
}

/// A chip saying a subject is in a maintenance window now, or has one coming.
export function windowChip(subject) {
  const w = windowOf(subject);
  if (w) return h('span.chip.maintchip', { 'data-window': w.id, title: windowText(w) }, t('window.chipNow', { id: w.id, to: fmtTime(w.to_ms, { short: true, minutes: true }) }));
  const next = upcomingWindows(subject)[0];
  if (next) return h('span.chip.maintsoon', { 'data-window': next.id, title: windowText(next) }, t('window.chipNext', { id: next.id, from: fmtTime(next.from_ms, { minutes: true }) }));
  return null;
}

/// `datetime-local` value of a time (the browser's zone).
export function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

/// Asks for a window (what, who, from, to, reason) and schedules it. Resolves with the window
/// or null.
export async function scheduleWindow(subjects) {
  const now = Date.now();
  const start = Math.ceil((now + 3600_000) / 900_000) * 900_000;
  const v = await formDialog({
    id: 'window-dialog',
    title: t('window.scheduleTitle'),
    text: t('window.scheduleText', { zone: zoneLabel() }),
    fields: [
      { name: 'subjects', label: t('window.fieldWhat'), type: 'text', required: true, value: subjects.join(', ') },
      { name: 'who', label: t('window.fieldWho'), type: 'text', required: true },
      { name: 'from', label: t('window.fieldFrom', { zone: utcOffset(start) }), type: 'datetime', required: true, value: localInput(start) },
      { name: 'to', label: t('window.fieldTo', { zone: utcOffset(start) }), type: 'datetime', required: true, value: localInput(start + 2 * 3600_000) },
      { name: 'reason', label: t('window.fieldReason'), type: 'textarea', required: true },
    ],
    submit: t('window.schedule'),
    validate: (x) => {
      const from = new Date(x.from).getTime();
      const to = new Date(x.to).getTime();
      if (!Number.isFinite(from) || !Number.isFinite(to)) return t('window.badTime');
      if (to <= from) return t('window.endBeforeStart');
      return null;
    },
  });
  if (!v) return null;
  const body = {
    subjects: v.subjects.split(/[\s,]+/).filter(Boolean),
    who: v.who,
    reason: v.reason,
    from_ms: new Date(v.from).getTime(),
    to_ms: new Date(v.to).getTime(),
  };
  const r = await act(() => post('/api/maintenance/windows', body), t('window.scheduled'));
  if (r) await loadWindows().catch(() => {});
  return r?.window ?? null;
}

/// The maintenance state of a component and the controls to set or clear it now (reason
/// asked for; refused under authority control) or to schedule a window. `onDone` after a
/// change.
export function maintenanceControl(id, ctx, onDone) {
  const on = state.maintenance.has(id);
  const w = windowOf(id);
  const box = h('div.maint#maintenance', { 'data-on': on ? 'true' : 'false' },
    h('p', null, on ? h('span.state.st-maintenance', null, t('maint.in')) : t('maint.notIn'), on ? ` — ${t('maint.inWhat')}` : ''),
    w ? h('p.muted', null, windowText(w)) : null,
    upcomingWindows(id).map((x) => h('p.muted.upcoming', null, t('window.upcoming', { text: windowText(x) }))));
  if (!ctx.canOperate) return box;
  const why = refusedWhy('maintenance');
  const label = on ? t('maint.end') : t('maint.start');
  box.appendChild(h('div.controls', null, h('button#maintenance-toggle', {
    type: 'button', disabled: !!why, title: why ?? undefined,
    onclick: async () => {
      const v = await formDialog({
        id: 'maintenance-dialog',
        title: on ? t('maint.endTitle', { id }) : t('maint.startTitle', { id }),
        text: on ? t('maint.endText') : t('maint.startText'),
        fields: [{ name: 'reason', label: t('maint.reason'), type: 'textarea', required: true }],
        submit: on ? t('maint.endSubmit') : t('maint.startSubmit'),
      });
      if (!v) return;
      const r = await act(() => post('/api/maintenance', { subject: id, on: !on, reason: v.reason }), on ? t('maint.ended', { id }) : t('maint.started', { id }));
      if (r) {
        state.maintenance = new Set(r.maintenance ?? []);
        await loadMaintenance().catch(() => {});
        if (onDone) onDone();
      }
    },
  }, label), h('button#window-schedule', { type: 'button', onclick: async () => { if (await scheduleWindow([id]) && onDone) onDone(); } }, t('window.scheduleButton'))));
  if (why) box.appendChild(h('p.warn', null, why));
  return box;
}

/// Wraps a wide table so that it scrolls by itself on a narrow screen instead of the page.
export function tableWrap(table, label) {
  return h('div.tablewrap', { tabindex: 0, role: 'region', 'aria-label': label ?? t('table.label') }, table);
}
