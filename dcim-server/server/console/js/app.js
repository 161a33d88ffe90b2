// Console shell: sign-in, navigation (history API under /console/; a menu button on a phone),
// keyboard shortcuts, the live status, the banner of lost live data, the alarm flood banner,
// and ages that keep counting.

import { get, post, login, logout, ApiError } from './api.js';
import { h, clear, toast, fmtTime, fmtAgo, tickAges } from './ui.js';
import { state, start, stop, on, emit, loadAuthority } from './state.js';
import { VIEWS } from './views.js';

const NAV = [
  ['overview', 'Overview', 'o'],
  ['power', 'Power', 'p'],
  ['cooling', 'Cooling', 'c'],
  ['network', 'Network', 'n'],
  ['racks', 'Battery rooms', 'b'],
  ['alarms', 'Alarms', 'a'],
  ['incidents', 'Incidents', 'i'],
  ['whatif', 'What-if', 'w'],
  ['fire', 'Fire authority', 'f'],
];

let cleanup = null;

export const canOperate = () => state.me && (state.me.role === 'operator' || state.me.role === 'admin');

function route() {
  const rest = location.pathname.replace(/^\/console\/?/, '');
  const [name, ...args] = rest.split('/').filter(Boolean);
  // Under authority control the fire-authority view is every role's default page.
  const home = state.me?.role === 'fire_authority' || state.authority?.active ? 'fire' : 'overview';
  return { name: name || home, args: args.map(decodeURIComponent) };
}

export function go(path) {
  history.pushState(null, '', `/console/${path}`);
  render();
}

function setMenu(open) {
  const btn = document.getElementById('menu-toggle');
  btn.setAttribute('aria-expanded', String(open));
  document.getElementById('top').classList.toggle('menu-open', open);
}

function renderNav(current) {
  setMenu(false);
  const nav = clear(document.getElementById('nav'));
  const items = state.me?.role === 'fire_authority' ? NAV.filter(([n]) => ['fire', 'racks', 'power', 'alarms', 'incidents'].includes(n)) : NAV;
  for (const [name, label] of items) {
    const a = h('a', { href: `/console/${name}`, 'data-view': name }, label);
    if (name === 'alarms') a.appendChild(h('span.badge#alarm-count', { 'aria-label': 'alarms to acknowledge' }, ''));
    if (name === current) a.setAttribute('aria-current', 'page');
    a.addEventListener('click', (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      go(name);
    });
    nav.appendChild(a);
  }
  updateBadges();
}

function updateBadges() {
  const b = document.getElementById('alarm-count');
  if (b) {
    const unack = state.alarms.filter((a) => a.base === 'unacknowledged' || a.base === 'rtn_unacknowledged').length;
    b.textContent = unack ? String(unack) : '';
    b.classList.toggle('hot', state.alarms.some((a) => a.grade === 1));
  }
  const f = document.getElementById('flood');
  if (state.flooding) {
    f.hidden = false;
    f.textContent = `Alarm flood: ${state.alarms.length} alarms active. Work from the incident and the grade-1 alarms first.`;
  } else f.hidden = true;
}

// ------------------------------------------------------------------ authority control

function causeText(c) {
  if (!c) return '';
  if (c.by === 'key_switch') return `the authority key switch at ${c.device} (agent ${c.agent})`;
  return `${c.user} (${(c.role ?? '').replace('_', ' ')}): “${c.reason}”`;
}

/// The red banner on every page, the enter/leave button and the page's state class.
function renderAuthority() {
  const a = state.authority;
  const banner = document.getElementById('authority-banner');
  const btn = document.getElementById('authority-toggle');
  const active = !!a?.active;
  document.body.classList.toggle('authority-active', active);
  if (active) {
    banner.hidden = false;
    clear(banner);
    const keys = (a.keys_on ?? []).map((k) => k.device);
    banner.appendChild(h('span', null, `AUTHORITY CONTROL — the fire authority is in command since ${fmtTime(a.since_ms)} (${fmtAgo(a.since_ms)}).`));
    banner.appendChild(h('span.sub', null, `Entered by ${causeText(a.cause)}.`,
      keys.length ? ` Key switch on at ${keys.join(', ')}.` : '',
      ` Refused: ${(a.refused_actions ?? []).map((r) => r.kind.replace(/_/g, ' ')).join(', ')}.`));
  } else {
    banner.hidden = true;
    clear(banner);
  }
  const role = state.me?.role;
  const canLeave = role === 'operator' || role === 'admin';
  const canEnter = canLeave || role === 'fire_authority';
  if (active && canLeave) {
    btn.hidden = false;
    btn.textContent = 'Leave authority control';
    btn.disabled = keysOn().length > 0;
    btn.title = btn.disabled ? `The authority key switch is still on at ${keysOn().join(', ')}` : 'Leave authority control (reason required)';
  } else if (!active && canEnter) {
    btn.hidden = false;
    btn.textContent = 'Enter authority control';
    btn.disabled = false;
    btn.title = 'The fire authority takes command: device commands, maintenance and shelving are refused';
  } else btn.hidden = true;
}

const keysOn = () => (state.authority?.keys_on ?? []).map((k) => k.device);

function openAuthorityDialog() {
  const entering = !state.authority?.active;
  const dlg = document.getElementById('authority-dialog');
  document.getElementById('authority-dialog-title').textContent = entering ? 'Enter authority control' : 'Leave authority control';
  document.getElementById('authority-dialog-text').textContent = entering
    ? 'The fire authority takes command of the site. Device commands, maintenance, shelving and out-of-service are refused until an operator leaves authority control.'
    : 'Remote actions will be allowed again. Leaving is recorded with your name, the reason and how long the site was under authority control.';
  document.getElementById('authority-submit').textContent = entering ? 'Enter authority control' : 'Leave authority control';
  document.getElementById('authority-reason').value = '';
  document.getElementById('authority-dialog-error').textContent = '';
  dlg.dataset.op = entering ? 'enter' : 'exit';
  dlg.showModal();
  document.getElementById('authority-reason').focus();
}

async function submitAuthority(e) {
  e.preventDefault();
  const dlg = document.getElementById('authority-dialog');
  const reason = document.getElementById('authority-reason').value.trim();
  const err = document.getElementById('authority-dialog-error');
  if (!reason) {
    err.textContent = 'A reason is required.';
    return;
  }
  try {
    const r = await post(`/api/authority/${dlg.dataset.op}`, { reason });
    dlg.close();
    toast(dlg.dataset.op === 'enter' ? 'Authority control entered' : 'Authority control left', 'ok');
    setAuthority(r.authority);
  } catch (x) {
    err.textContent = `Refused: ${x.message}`;
  }
}

/// A new authority state (from the stream or an answer). Entering switches every console to the
/// fire-authority view; any change re-renders the page so refused controls are (un)disabled.
function setAuthority(a) {
  state.authority = a;
  emit('authority');
}

let wasActive = false;
let ready = false; // the shell has rendered once (site and state loaded)
on('authority', () => {
  if (!state.me || !ready) return;
  const active = !!state.authority?.active;
  renderAuthority();
  if (active && !wasActive) {
    wasActive = active;
    go('fire');
    return;
  }
  wasActive = active;
  render();
});

function render() {
  if (!state.me) return;
  const r = route();
  const view = VIEWS[r.name];
  renderNav(r.name);
  if (cleanup) cleanup();
  cleanup = null;
  const main = clear(document.getElementById('main'));
  if (!view) {
    main.appendChild(h('h1', null, 'Not found'));
    main.appendChild(h('p', null, `No view named “${r.name}”.`));
    return;
  }
  document.title = `${view.title} — DCIM`;
  document.body.dataset.view = r.name;
  cleanup = view.render(main, r.args, { go, canOperate: canOperate() }) || null;
}

// ------------------------------------------------------------------ lost live data

/// The banner across every page while live data is lost, the greyed values (body.stale), and
/// the time of the last word from the server. Clears by itself once the stream is back and
/// everything was loaded again.
function renderStale() {
  const b = document.getElementById('stale-banner');
  const stale = !!state.me && ready && state.stale;
  document.body.classList.toggle('stale', stale);
  if (!stale) {
    if (!b.hidden) {
      b.hidden = true;
      clear(b);
      toast('Live data is back.', 'ok');
    }
    return;
  }
  const last = state.lastDataMs;
  const text = `LIVE DATA LOST — nothing heard from the server since ${last ? fmtTime(last, { tz: true }) : 'this page opened'}${last ? ` (${fmtAgo(last)})` : ''}. The values below are from then and may be wrong. Reconnecting…`;
  if (b.hidden) b.hidden = false;
  if (b.textContent !== text) b.textContent = text;
}

let sessionCheck = 0;
/// While the stream is down, ask whether the session still exists: a sign-out in another tab
/// (or an expired session) shows the sign-in form instead of a banner that never clears.
async function checkSession() {
  if (!state.stale || !state.me || Date.now() - sessionCheck < 3000) return;
  sessionCheck = Date.now();
  try {
    await get('/api/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) showLogin('Your session has ended. Sign in again.');
  }
}

function showLogin(message) {
  stop();
  state.me = null;
  ready = false;
  document.getElementById('top').hidden = true;
  document.getElementById('authority-banner').hidden = true;
  document.getElementById('stale-banner').hidden = true;
  document.body.classList.remove('stale');
  document.body.dataset.view = 'login';
  const main = clear(document.getElementById('main'));
  const err = h('p.error#login-error', { role: 'alert' }, message ?? '');
  const user = h('input#username', { name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const pass = h('input#password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const form = h(
    'form.login',
    {
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = '';
        try {
          await login(user.value, pass.value);
          await boot();
        } catch (x) {
          err.textContent = x instanceof ApiError && x.status === 401 ? 'Wrong user name or password.' : `Sign-in failed: ${x.message}`;
        }
      },
    },
    h('h1', null, 'DCIM console'),
    h('label', { for: 'username' }, 'User name'),
    user,
    h('label', { for: 'password' }, 'Password'),
    pass,
    h('button#login-submit', { type: 'submit' }, 'Sign in'),
    err,
  );
  main.appendChild(form);
  user.focus();
}

async function boot() {
  // Without the CSRF cookie there is no session (both are set together): go straight to the
  // sign-in form instead of asking the server and getting a 401.
  if (!document.cookie.split(';').some((c) => c.trim().startsWith('dcim_csrf='))) return showLogin();
  try {
    state.me = await get('/api/me');
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin();
    return showLogin(`The server cannot be reached: ${e.message}`);
  }
  document.getElementById('top').hidden = false;
  document.getElementById('who').textContent = `${state.me.user} (${state.me.role.replace('_', ' ')})`;
  document.body.dataset.role = state.me.role;
  try {
    await loadAuthority();
  } catch (e) {
    toast(`Loading the authority-control state failed: ${e.message}`, 'error');
  }
  wasActive = !!state.authority?.active;
  renderAuthority();
  try {
    await start();
  } catch (e) {
    toast(`Loading the facility failed: ${e.message}`, 'error');
  }
  document.getElementById('site-name').textContent = state.site?.name ?? '';
  const rest = location.pathname.replace(/^\/console\/?/, '');
  if (!rest) history.replaceState(null, '', `/console/${route().name}`);
  wasActive = !!state.authority?.active;
  renderAuthority();
  ready = true;
  render();
}

on('alarms', updateBadges);
const renderLive = () => {
  const l = document.getElementById('live');
  const ok = state.live.state === 'open' && !state.stale;
  l.classList.toggle('ok', ok);
  const text = ok ? 'Live' : 'Live stream interrupted; reconnecting';
  l.title = text;
  l.setAttribute('aria-label', `Live stream: ${ok ? 'live' : 'interrupted, reconnecting'}`);
};
on('live', renderLive);
on('stale', () => {
  renderLive();
  renderStale();
});
setInterval(() => {
  tickAges();
  renderStale();
  checkSession();
}, 1000);
document.getElementById('menu-toggle').addEventListener('click', () => setMenu(document.getElementById('menu-toggle').getAttribute('aria-expanded') !== 'true'));

window.addEventListener('popstate', render);
document.getElementById('authority-toggle').addEventListener('click', openAuthorityDialog);
document.getElementById('authority-form').addEventListener('submit', submitAuthority);
document.getElementById('authority-cancel').addEventListener('click', () => document.getElementById('authority-dialog').close());
document.getElementById('logout').addEventListener('click', async () => {
  try {
    await logout();
  } catch {
    /* the session is gone either way */
  }
  stop(true);
  showLogin('Signed out.');
});

let pendingG = 0;
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT')) return;
  if (!state.me) return;
  if (e.key === '?') {
    document.getElementById('help').showModal();
    e.preventDefault();
    return;
  }
  if (e.key === 'g') {
    pendingG = Date.now();
    return;
  }
  if (Date.now() - pendingG < 1500) {
    pendingG = 0;
    const hit = NAV.find((n) => n[2] === e.key);
    if (hit) {
      e.preventDefault();
      go(hit[0]);
    }
    return;
  }
  const view = VIEWS[route().name];
  if (view && view.key) view.key(e);
});

boot();
