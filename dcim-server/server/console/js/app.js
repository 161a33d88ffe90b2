// Console shell: sign-in, navigation (history API under /console/), keyboard shortcuts, live
// status and the alarm flood banner.

import { get, login, logout, ApiError } from './api.js';
import { h, clear, toast } from './ui.js';
import { state, start, stop, on } from './state.js';
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
  return { name: name || (state.me?.role === 'fire_authority' ? 'fire' : 'overview'), args: args.map(decodeURIComponent) };
}

export function go(path) {
  history.pushState(null, '', `/console/${path}`);
  render();
}

function renderNav(current) {
  const nav = clear(document.getElementById('nav'));
  const items = state.me?.role === 'fire_authority' ? NAV.filter(([n]) => ['fire', 'racks', 'power', 'alarms', 'incidents'].includes(n)) : NAV;
  for (const [name, label] of items) {
    const a = h('a', { href: `/console/${name}`, 'data-view': name }, label);
    if (name === 'alarms') a.appendChild(h('span.badge#alarm-count', null, ''));
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
    const unack = state.alarms.filter((a) => a.base === 'unacknowledged' || a.base === 'returned_unacknowledged').length;
    b.textContent = unack ? String(unack) : '';
    b.classList.toggle('hot', state.alarms.some((a) => a.grade === 1));
  }
  const f = document.getElementById('flood');
  if (state.flooding) {
    f.hidden = false;
    f.textContent = `Alarm flood: ${state.alarms.length} alarms active. Work from the incident and the grade-1 alarms first.`;
  } else f.hidden = true;
}

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

function showLogin(message) {
  stop();
  state.me = null;
  document.getElementById('top').hidden = true;
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
    await start();
  } catch (e) {
    toast(`Loading the facility failed: ${e.message}`, 'error');
  }
  document.getElementById('site-name').textContent = state.site?.name ?? '';
  const rest = location.pathname.replace(/^\/console\/?/, '');
  if (!rest) history.replaceState(null, '', `/console/${route().name}`);
  render();
}

on('alarms', updateBadges);
on('live', () => {
  const l = document.getElementById('live');
  l.classList.toggle('ok', state.live === 'open');
  l.title = state.live === 'open' ? 'Live' : 'Live stream interrupted; reconnecting';
});

window.addEventListener('popstate', render);
document.getElementById('logout').addEventListener('click', async () => {
  try {
    await logout();
  } catch {
    /* the session is gone either way */
  }
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
