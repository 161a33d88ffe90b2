// Wall screen (NOC) mode: a kiosk layout for a 4K wall (3840 x 2160) without the navigation.
// It cycles through the site status, the floor plans, the alarm list and the fire view (every
// 20 s; `?cycle=SECONDS`), or stays on one (`?pin=status|plans|alarms|fire`, or the pin
// button). A fire stage anywhere is always on screen, above whatever view is shown. When the
// data goes stale the whole wall says so, loudly: a striped frame and a full-width message
// with the time of the last data over greyed values, until the data is back.

import { h, clear, fmtTime, ago } from './ui.js';
import { state, on } from './state.js';
import { levelOk, levelBadge, redLabel, gradeLabel, subsystemLabel, alarmState, stateLabel, windowText } from './common.js';
import { pueNode } from './view-overview.js';
import { roomPlan, planRooms, planLegend } from './plan.js';
import { stageChip, placeText, sinceNode } from './fire.js';
import { ruleName } from './view-alarms.js';
import { t, utcOffset } from './i18n.js';

const VIEWS = ['status', 'plans', 'alarms', 'fire'];

function statusView() {
  const box = h('div.wallgrid.wallstatus');
  for (const sub of state.redundancy?.subsystems ?? []) {
    // A level Unknown components could change is never shown healthy (nor as a failure).
    const cls = levelOk(sub) ? 'ok' : sub.verified === false ? 'unverified' : 'bad';
    box.appendChild(h(`section.wallcard.sub.${cls}`, { 'data-subsystem': sub.subsystem, 'data-verified': String(sub.verified !== false) },
      h('h2', null, subsystemLabel(sub.subsystem)),
      h('div.huge', null, levelBadge(sub)),
      h('p', null, t('overview.designed', { level: redLabel(sub.designed) })),
      sub.unknown?.length ? h('p.warn', null, t('overview.unknownN', { n: sub.unknown.length })) : null));
  }
  const byGrade = { 1: 0, 2: 0, 3: 0 };
  for (const a of state.alarms) byGrade[a.grade] = (byGrade[a.grade] ?? 0) + 1;
  box.appendChild(h('section.wallcard#wall-grades', null, h('h2', null, t('overview.activeAlarms')),
    h('div.grades', null, [1, 2, 3].map((g) => h(`div.grade.g${g}`, { 'data-grade': g }, h('span.n', null, String(byGrade[g])), h('span.l', null, gradeLabel(g)))))));
  box.appendChild(h('section.wallcard#wall-pue', null, h('h2', null, 'PUE'), pueNode(true)));
  const active = state.windows.filter((w) => w.status === 'active');
  box.appendChild(h('section.wallcard#wall-maint', null, h('h2', null, t('view.maintenance')),
    active.length ? h('ul.plain', null, active.map((w) => h('li', null, h('strong', null, w.subjects.join(', ')), h('div.muted', null, windowText(w))))) : h('p.muted', null, t('overview.noMaintNow'))));
  return box;
}

function plansView() {
  const box = h('div.wallplans');
  box.appendChild(planLegend('worst'));
  const grid = h('div.wallplangrid');
  for (const room of planRooms()) grid.appendChild(roomPlan(room, { mode: 'worst' }));
  box.appendChild(grid);
  return box;
}

function alarmsView() {
  const list = [...state.alarms].sort((a, b) => a.grade - b.grade || (b.active_since_ms ?? 0) - (a.active_since_ms ?? 0)).slice(0, 16);
  if (!list.length) return h('p.wallquiet', null, t('alarms.none'));
  return h('ol.wallalarms', null, list.map((a) => h(`li.st-${alarmState(a)}`, { 'data-id': a.id },
    h(`span.gradechip.g${a.grade}`, null, `G${a.grade}`), ' ', h('strong', null, ruleName(a)), ` ${a.component ?? a.subject} `,
    h('span.muted', null, stateLabel(alarmState(a)), ' · ', ago(a.active_since_ms ?? a.last_change_ms)))));
}

function fireView() {
  const box = h('div.wallfire');
  const racks = state.fire?.racks ?? [];
  box.appendChild(racks.length ? h('ul.plain.wallfirelist', null, racks.slice(0, 8).map((r) => h('li', { 'data-id': r.id, 'data-stage': r.stage.code },
    stageChip(r.stage.code), ' ', h('strong', null, r.id), ` — ${placeText(r.id, { building: true })} · `, sinceNode(r)))) : h('p.wallquiet', null, t('fire.noneInStage')));
  const grid = h('div.wallplangrid');
  for (const room of planRooms()) grid.appendChild(roomPlan(room, { mode: 'stage' }));
  box.appendChild(grid);
  return box;
}

const DRAW = { status: statusView, plans: plansView, alarms: alarmsView, fire: fireView };

export const wall = {
  title: 'view.wall',
  render(main) {
    const q = new URLSearchParams(location.search);
    const cycleS = Math.min(600, Math.max(5, Number(q.get('cycle')) || 20));
    let pinned = VIEWS.includes(q.get('pin')) ? q.get('pin') : null;
    let current = pinned ?? 'status';
    const root = h('div.wall#wall', { 'data-view': current });
    const clock = h('span.wallclock#wall-clock');
    const which = h('span.wallwhich#wall-which');
    const pinBtn = h('button#wall-pin', { type: 'button', 'aria-pressed': String(!!pinned), onclick: () => { pinned = pinned ? null : current; syncUrl(); draw(); } });
    const bar = h('div.wallbar', null,
      h('strong.wallsite', null, `DCIM ${state.site?.name ?? ''}`), which, clock,
      h('nav.wallnav', { 'aria-label': t('wall.views') }, VIEWS.map((v) => h('button.wallview', { type: 'button', 'data-view': v, onclick: () => { current = v; if (pinned) pinned = v; syncUrl(); draw(); } }, t(`wall.view.${v}`)))),
      pinBtn,
      h('a.button#wall-exit', { href: '/console/overview' }, t('wall.exit')));
    const fireStrip = h('div#wall-fire');
    const body = h('div.wallbody#wall-body');
    const lost = h('div.walllost#wall-lost', { role: 'alert', hidden: true });
    root.append(bar, fireStrip, body, lost);
    main.appendChild(root);
    const syncUrl = () => {
      const p = new URLSearchParams();
      if (pinned) p.set('pin', pinned);
      if (cycleS !== 20) p.set('cycle', String(cycleS));
      history.replaceState(null, '', `/console/wall${p.toString() ? `?${p}` : ''}`);
    };
    /// Every rack and battery room in a fire stage, worst first, compact: always on screen.
    const drawFire = () => {
      clear(fireStrip);
      const f = state.fire;
      const racks = f?.racks ?? [];
      const none = f?.no_reading?.length ?? 0;
      if (!racks.length && !none) return;
      const shown = racks.slice(0, 8);
      fireStrip.appendChild(h('section.wallfirestrip#fire-card', null,
        shown.length ? h('ul', null, shown.map((r) => h('li', { 'data-id': r.id, 'data-stage': r.stage.code }, stageChip(r.stage.code), ' ', h('strong', null, r.id), ` — ${placeText(r.id)} · `, sinceNode(r)))) : null,
        racks.length > shown.length ? h('p', null, t('list.more', { n: racks.length - shown.length })) : null,
        none ? h('p.warn', null, t('overview.noReading', { n: none })) : null));
    };
    const draw = () => {
      root.dataset.view = current;
      pinBtn.textContent = pinned ? t('wall.unpin') : t('wall.pin');
      pinBtn.setAttribute('aria-pressed', String(!!pinned));
      which.textContent = pinned ? t('wall.pinned', { view: t(`wall.view.${current}`) }) : t('wall.cycling', { view: t(`wall.view.${current}`), s: cycleS });
      for (const b of bar.querySelectorAll('button.wallview')) b.setAttribute('aria-current', b.dataset.view === current ? 'true' : 'false');
      drawFire();
      clear(body);
      body.appendChild(DRAW[current]());
    };
    const tick = () => {
      const now = Date.now();
      clock.textContent = `${fmtTime(now)} ${utcOffset(now)}`;
      const stale = state.stale;
      lost.hidden = !stale;
      root.classList.toggle('lost', stale);
      if (stale) {
        const last = state.lastDataMs;
        const text = last ? t('wall.lost', { time: fmtTime(last, { tz: true }), ago: ago(last).textContent }) : t('wall.lostNever');
        if (lost.textContent !== text) lost.textContent = text;
      }
    };
    const cycle = setInterval(() => {
      if (pinned) return;
      current = VIEWS[(VIEWS.indexOf(current) + 1) % VIEWS.length];
      draw();
    }, cycleS * 1000);
    const clockTimer = setInterval(tick, 1000);
    draw();
    tick();
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      setTimeout(() => { pending = false; draw(); }, 500);
    };
    const offs = [on('redundancy', redraw), on('alarms', redraw), on('fire', redraw), on('energy', redraw), on('windows', redraw), on('stale', tick)];
    return () => {
      clearInterval(cycle);
      clearInterval(clockTimer);
      offs.forEach((x) => x());
    };
  },
};
