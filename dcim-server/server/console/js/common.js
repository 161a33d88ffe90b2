// Helpers shared by the views: alarm states, redundancy badges, actions with feedback, values
// with their unit and age, and the maintenance control of a component.

import { post } from './api.js';
import { h, toast, fmtValue, withUnit, ago, formDialog } from './ui.js';
import { state, roleInfo, readingStale, refusedWhy, loadMaintenance } from './state.js';
import { stageName, stageCode } from './fire.js';

export const GRADE_LABEL = { 1: 'Grade 1', 2: 'Grade 2', 3: 'Grade 3' };
export const RANK = { below_n: 0, N: 1, 'N+1': 2, '2N': 3 };

export function alarmState(a) {
  const o = a.overlays ?? {};
  if (o.out_of_service_by) return 'out_of_service';
  if (o.suppressed_by) return 'suppressed_by_design';
  if (o.maintenance) return 'suppressed_by_maintenance';
  if (o.shelved_until) return 'shelved';
  return a.base;
}

export function stateLabel(st) {
  return (
    {
      unacknowledged: 'Unacknowledged',
      acknowledged: 'Acknowledged',
      rtn_unacknowledged: 'Returned, unacknowledged',
      shelved: 'Shelved',
      suppressed_by_design: 'Suppressed (by design)',
      suppressed_by_maintenance: 'Suppressed (maintenance)',
      out_of_service: 'Out of service',
      normal: 'Normal',
    }[st] ?? st
  );
}

export function redBadge(cur, des) {
  const ok = (RANK[cur] ?? 0) >= (RANK[des] ?? 0);
  return h(`span.red.${ok ? 'ok' : cur === 'below_n' ? 'bad' : 'warn'}`, null, cur === 'below_n' ? 'below N' : cur ?? '?');
}

/// Whether a redundancy level (a subsystem's or a supply's, as the API gives it) is healthy:
/// at its designed level *and* verified. `current` is the level proven by components that are
/// Up; a level that Unknown components could change is never shown as healthy.
export function levelOk(x) {
  return x.verified !== false && (RANK[x.current] ?? 0) >= (RANK[x.designed] ?? 0);
}

/// A redundancy level for people: the proven level, or, when it is not verified, the server's
/// summary ("unverified: N proven, 2N if the 1 unknown component is up"), never in green.
export function levelBadge(x) {
  if (x.verified === false) {
    const text = x.summary || `unverified: ${x.current === 'below_n' ? 'below N' : x.current ?? '?'} proven`;
    return h(`span.red.unverified.${x.current === 'below_n' ? 'bad' : 'warn'}`, { 'data-verified': 'false', title: 'Not every component this level depends on has reported: only what is proven is counted.' }, text);
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
    toast(`Refused: ${e.message}`, 'error');
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
  if (v === null || v === undefined) return 'no value';
  if (role === 'fire.stage') {
    const c = stageCode(v);
    return c === null ? String(v) : stageName(c);
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return withUnit(v, roleInfo(role).unit);
}

/// A point's value with its unit, and marked when it is not current (stale, bad, missing).
export function pointValue(p, role) {
  if (!p) return h('span.novalue', null, 'no value');
  const stale = readingStale(p);
  return h(`span.pv${stale ? '.stale-value' : ''}`, { title: stale ? `${p.quality ?? ''} reading` : undefined },
    valueText(role, p.value), stale ? h('span.tag', null, p.quality && p.quality !== 'good' ? p.quality.replace('_', ' ') : 'stale') : null);
}

/// A point's age (counting).
export function pointAge(p) {
  return p ? ago(p.ts_ms) : h('span.muted', null, '—');
}

export { fmtValue };

/// The maintenance state of a component and the control to set or clear it (reason asked
/// for; refused under authority control). `onDone` after a change.
export function maintenanceControl(id, ctx, onDone) {
  const on = state.maintenance.has(id);
  const box = h('div.maint#maintenance', { 'data-on': on ? 'true' : 'false' },
    h('p', null, on ? h('span.state.st-maintenance', null, 'In maintenance') : 'Not in maintenance', on ? ' — its alarms are suppressed and it carries no supply in the redundancy figures.' : ''));
  if (!ctx.canOperate) return box;
  const why = refusedWhy('maintenance');
  const label = on ? 'End maintenance…' : 'Put in maintenance…';
  box.appendChild(h('button#maintenance-toggle', {
    type: 'button', disabled: !!why, title: why ?? undefined,
    onclick: async () => {
      const v = await formDialog({
        id: 'maintenance-dialog',
        title: on ? `End maintenance of ${id}` : `Put ${id} in maintenance`,
        text: on ? 'Its alarms are annunciated again and it counts in the redundancy figures.' : 'Its alarms are suppressed and it carries no supply in the redundancy figures until maintenance ends.',
        fields: [{ name: 'reason', label: 'Reason (required, recorded in the audit log)', type: 'textarea', required: true }],
        submit: on ? 'End maintenance' : 'Put in maintenance',
      });
      if (!v) return;
      const r = await act(() => post('/api/maintenance', { subject: id, on: !on, reason: v.reason }), on ? `${id}: maintenance ended` : `${id}: in maintenance`);
      if (r) {
        state.maintenance = new Set(r.maintenance ?? []);
        await loadMaintenance().catch(() => {});
        if (onDone) onDone();
      }
    },
  }, label));
  if (why) box.appendChild(h('p.warn', null, why));
  return box;
}

/// Wraps a wide table so that it scrolls by itself on a narrow screen instead of the page.
export function tableWrap(table, label) {
  return h('div.tablewrap', { tabindex: 0, role: 'region', 'aria-label': label ?? 'table' }, table);
}
