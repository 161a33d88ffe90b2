// Console shell: sign-in, navigation (history API under /console/; a menu button on a phone),
// the global search, the language (English / Korean) and theme (dark / light) choices, keyboard
// shortcuts, the live status, the banner of lost live data, the alarm flood banner, and ages
// that keep counting. The wall screen (`/console/wall`) is a view without the header.

import { get, post, login, logout, ApiError } from './api.js';
import { h, clear, toast, fmtTime, fmtAgo, tickAges } from './ui.js';
import { state, start, stop, on, emit, loadAuthority } from './state.js';
import { VIEWS } from './views.js';
import { mountSearch } from './search.js';
import { t, LANGS, getLang, setLang, onLang } from './i18n.js';

const NAV = [
  ['overview', 'o'],
  ['power', 'p'],
  ['cooling', 'c'],
  ['network', 'n'],
  ['racks', 'b'],
  ['alarms', 'a'],
  ['events', 'v'],
  ['incidents', 'i'],
  ['maintenance', 'm'],
  ['trends', 't'],
  ['energy', 'e'],
  ['whatif', 'w'],
  ['fire', 'f'],
];

// ------------------------------------------------------------------ theme

const THEME_KEY = 'dcim.theme';
/// The theme: the user's choice (kept), else the system's preference, else dark.
function theme() {
  try {
    const v = localStorage.getItem(THEME_KEY);
    if (v === 'light' || v === 'dark') return v;
  } catch {
    /* no storage */
  }
  return window.matchMedia?.('(prefers-color-scheme: light)').matches ? 'light' : 'dark';
}
function applyTheme(th) {
  document.documentElement.dataset.theme = th;
  const b = document.getElementById('theme-toggle');
  if (b) {
    b.textContent = th === 'light' ? t('shell.themeDark') : t('shell.themeLight');
    b.setAttribute('aria-pressed', String(th === 'light'));
  }
}
applyTheme(theme());
document.documentElement.lang = getLang();

/// The texts of the static shell (index.html) in the current language.
function applyStatic() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  document.getElementById('nav').setAttribute('aria-label', t('shell.views'));
  const sel = document.getElementById('lang-select');
  clear(sel);
  for (const [k, label] of LANGS) sel.appendChild(h('option', { value: k, selected: k === getLang(), lang: k }, label));
  const keys = clear(document.getElementById('help-keys'));
  for (const [name, key] of NAV) keys.append(h('dt', null, `g ${key}`), h('dd', null, t(`view.${name}`)));
  for (const [k, what] of [['/', 'help.search'], ['j / k', 'help.nextAlarm'], ['a', 'help.ack'], ['s', 'help.shelve'], ['Esc', 'help.closePanel'], ['?', 'help.this']]) keys.append(h('dt', null, k), h('dd', null, t(what)));
  applyTheme(document.documentElement.dataset.theme);
  renderLive();
}

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
  setUserMenu(false);
  measureHeader();
}

function setUserMenu(open) {
  document.getElementById('user-menu').setAttribute('aria-expanded', String(open));
  document.getElementById('user-panel').hidden = !open;
}

/// The header's height as a CSS variable, so sticky panels sit just under it.
function measureHeader() {
  const top = document.getElementById('top');
  const hgt = top.hidden ? 0 : top.getBoundingClientRect().height;
  document.documentElement.style.setProperty('--head-h', `${Math.round(hgt)}px`);
}
window.addEventListener('resize', measureHeader);

let navView = null;
function renderNav(current) {
  // Menus close when the page changes, not when the same page is drawn again (a live update).
  if (current !== navView) setMenu(false);
  navView = current;
  const nav = clear(document.getElementById('nav'));
  const items = state.me?.role === 'fire_authority' ? NAV.filter(([n]) => ['fire', 'racks', 'power', 'alarms', 'events', 'incidents'].includes(n)) : NAV;
  for (const [name] of items) {
    const a = h('a', { href: `/console/${name}`, 'data-view': name }, t(`nav.${name}`));
    if (name === 'alarms') a.appendChild(h('span.badge#alarm-count', { 'aria-label': t('shell.toAck') }, ''));
    if (name === current) a.setAttribute('aria-current', 'page');
    a.addEventListener('click', (e) => {
      if (e.ctrlKey || e.metaKey || e.shiftKey) return;
      e.preventDefault();
      setMenu(false);
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
    f.textContent = t('shell.flood', { n: state.alarms.length });
  } else f.hidden = true;
}

// ------------------------------------------------------------------ authority control

function causeText(c) {
  if (!c) return '';
  if (c.by === 'key_switch') return t('authority.byKey', { device: c.device, agent: c.agent });
  return `${c.user} (${t(`role.${c.role}`)}): “${c.reason}”`;
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
    banner.appendChild(h('span', null, t('authority.banner', { since: fmtTime(a.since_ms, { tz: true }), ago: fmtAgo(a.since_ms) })));
    banner.appendChild(h('span.sub', null, t('authority.enteredBy', { cause: causeText(a.cause) }),
      keys.length ? ` ${t('authority.keysOn', { list: keys.join(', ') })}` : '',
      ` ${t('authority.refusedList', { list: (a.refused_actions ?? []).map((r) => t(`action.kind.${r.kind}`)).join(', ') })}`));
  } else {
    banner.hidden = true;
    clear(banner);
  }
  const role = state.me?.role;
  const canLeave = role === 'operator' || role === 'admin';
  const canEnter = canLeave || role === 'fire_authority';
  if (active && canLeave) {
    btn.hidden = false;
    btn.textContent = t('authority.leave');
    btn.disabled = keysOn().length > 0;
    btn.title = btn.disabled ? t('authority.keyStillOn', { list: keysOn().join(', ') }) : t('authority.leaveTitle');
  } else if (!active && canEnter) {
    btn.hidden = false;
    btn.textContent = t('authority.enter');
    btn.disabled = false;
    btn.title = t('authority.enterTitle');
  } else btn.hidden = true;
}

const keysOn = () => (state.authority?.keys_on ?? []).map((k) => k.device);

function openAuthorityDialog() {
  const entering = !state.authority?.active;
  const dlg = document.getElementById('authority-dialog');
  document.getElementById('authority-dialog-title').textContent = entering ? t('authority.enter') : t('authority.leave');
  document.getElementById('authority-dialog-text').textContent = entering ? t('authority.enterText') : t('authority.leaveText');
  document.getElementById('authority-submit').textContent = entering ? t('authority.enter') : t('authority.leave');
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
    err.textContent = t('authority.reasonRequired');
    return;
  }
  try {
    const r = await post(`/api/authority/${dlg.dataset.op}`, { reason });
    dlg.close();
    toast(dlg.dataset.op === 'enter' ? t('authority.entered') : t('authority.left'), 'ok');
    setAuthority(r.authority);
  } catch (x) {
    err.textContent = t('toast.refused', { why: x.message });
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
    main.appendChild(h('h1', null, t('shell.notFound')));
    main.appendChild(h('p', null, t('shell.noView', { name: r.name })));
    return;
  }
  document.title = `${t(view.title)} — DCIM`;
  document.body.dataset.view = r.name;
  cleanup = view.render(main, r.args, { go, canOperate: canOperate() }) || null;
  measureHeader();
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
      toast(t('stale.back'), 'ok');
    }
    return;
  }
  const last = state.lastDataMs;
  const text = last ? t('stale.banner', { time: fmtTime(last, { tz: true }), ago: fmtAgo(last) }) : t('stale.bannerNever');
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
    if (e instanceof ApiError && e.status === 401) showLogin(t('login.sessionEnded'));
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
          await applyStatic();
boot();
        } catch (x) {
          err.textContent = x instanceof ApiError && x.status === 401 ? t('login.wrong') : t('login.failed', { why: x.message });
        }
      },
    },
    h('h1', null, t('login.title')),
    h('label', { for: 'username' }, t('login.user')),
    user,
    h('label', { for: 'password' }, t('login.password')),
    pass,
    h('button#login-submit', { type: 'submit' }, t('login.submit')),
    err,
    h('div.loginprefs', null, h('label', { for: 'login-lang' }, t('shell.language')),
      h('select#login-lang', { onchange: (e) => setLang(e.target.value) }, LANGS.map(([k, label]) => h('option', { value: k, selected: k === getLang(), lang: k }, label)))),
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
    return showLogin(t('login.unreachable', { why: e.message }));
  }
  document.getElementById('top').hidden = false;
  document.getElementById('who').textContent = `${state.me.user} (${t(`role.${state.me.role}`)})`;
  mountSearch(document.getElementById('search-host'), go);
  document.body.dataset.role = state.me.role;
  try {
    await loadAuthority();
  } catch (e) {
    toast(t('shell.authorityLoadFailed', { why: e.message }), 'error');
  }
  wasActive = !!state.authority?.active;
  renderAuthority();
  try {
    await start();
  } catch (e) {
    toast(t('shell.loadFailed', { why: e.message }), 'error');
  }
  document.getElementById('site-name').textContent = state.site?.name ?? '';
  measureHeader();
  const rest = location.pathname.replace(/^\/console\/?/, '');
  if (!rest) history.replaceState(null, '', `/console/${route().name}`);
  wasActive = !!state.authority?.active;
  renderAuthority();
  ready = true;
  render();
}

on('alarms', updateBadges);
function renderLive() {
  const l = document.getElementById('live');
  const ok = state.live.state === 'open' && !state.stale;
  l.classList.toggle('ok', ok);
  const text = ok ? t('live.ok') : t('live.lost');
  l.title = text;
  l.setAttribute('aria-label', text);
}
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
document.getElementById('user-menu').addEventListener('click', () => setUserMenu(document.getElementById('user-menu').getAttribute('aria-expanded') !== 'true'));
document.addEventListener('click', (e) => {
  if (!e.target.closest?.('.usermenu')) setUserMenu(false);
});

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
  showLogin(t('login.signedOut'));
});
document.getElementById('theme-toggle').addEventListener('click', () => {
  const next = document.documentElement.dataset.theme === 'light' ? 'dark' : 'light';
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch {
    /* this page only */
  }
  applyTheme(next);
});
document.getElementById('lang-select').addEventListener('change', (e) => setLang(e.target.value));
document.getElementById('wall-link').addEventListener('click', (e) => {
  if (e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  go('wall');
});
// A new language: the shell, the navigation and the page are drawn again in it.
onLang(() => {
  applyStatic();
  if (!state.me) return showLogin();
  document.getElementById('who').textContent = `${state.me.user} (${t(`role.${state.me.role}`)})`;
  mountSearch(document.getElementById('search-host'), go);
  renderAuthority();
  renderStale();
  render();
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
  if (e.key === '/') {
    document.getElementById('search')?.focus();
    e.preventDefault();
    return;
  }
  if (e.key === 'g') {
    pendingG = Date.now();
    return;
  }
  if (Date.now() - pendingG < 1500) {
    pendingG = 0;
    const hit = NAV.find((n) => n[1] === e.key);
    if (hit) {
      e.preventDefault();
      go(hit[0]);
    }
    return;
  }
  const view = VIEWS[route().name];
  if (view && view.key) view.key(e);
});

applyStatic();
boot();
