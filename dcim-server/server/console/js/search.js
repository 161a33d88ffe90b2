// The global search in the header: any rack, component, device or point by id, name, room,
// row, role or description (`GET /api/search`). A combobox: type, move with the arrow keys,
// Enter (or a click) opens what was found: a rack on the floor plans, a component on its
// subsystem's diagram, a point on the trends page. `/` focuses it from anywhere.

import { get } from './api.js';
import { h, clear } from './ui.js';
import { state } from './state.js';
import { placeText } from './fire.js';
import { t } from './i18n.js';

/// Where a result leads (a console path without `/console/`).
export function targetOf(r) {
  if (r.kind === 'rack') return `racks/${r.id}`;
  if (r.kind === 'component') return r.subsystem ? `${r.subsystem}/${r.id}` : `racks/${r.id}`;
  if (r.kind === 'point') return `trends?a=${encodeURIComponent(r.id)}`;
  if (r.kind === 'device') {
    if (r.component) {
      const c = state.byId.get(r.component);
      if (c?.kind === 'rack') return `racks/${c.id}`;
      if (r.subsystem) return `${r.subsystem}/${r.component}`;
    }
    const p = [...state.points.values()].find((x) => x.device === r.id && x.point && typeof x.value === 'number');
    return p ? `trends?a=${encodeURIComponent(`${p.device}/${p.point}`)}` : 'events';
  }
  return null;
}

export function mountSearch(host, go) {
  clear(host);
  const input = h('input#search', {
    type: 'search', role: 'combobox', 'aria-expanded': 'false', 'aria-controls': 'search-results', 'aria-autocomplete': 'list',
    'aria-label': t('search.label'), placeholder: t('search.placeholder'), autocomplete: 'off', spellcheck: 'false',
  });
  const list = h('ul#search-results', { role: 'listbox', 'aria-label': t('search.results'), hidden: true });
  host.appendChild(h('div.searchbox', null, input, list));
  let results = [];
  let active = -1;
  let seq = 0;
  let timer = null;
  const close = () => {
    list.hidden = true;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
    active = -1;
  };
  const open = (i) => {
    const r = results[i];
    const to = r && targetOf(r);
    if (!to) return;
    close();
    input.value = '';
    input.blur();
    go(to);
  };
  const mark = () => {
    list.querySelectorAll('li[role=option]').forEach((li, i) => li.setAttribute('aria-selected', String(i === active)));
    if (active >= 0) input.setAttribute('aria-activedescendant', `search-opt-${active}`);
    else input.removeAttribute('aria-activedescendant');
  };
  const draw = () => {
    clear(list);
    if (!input.value.trim()) return close();
    if (!results.length) list.appendChild(h('li.none', { role: 'option', 'aria-disabled': 'true', id: 'search-opt-none' }, t('search.none')));
    results.forEach((r, i) => {
      const where = r.place ? placeText(r.kind === 'rack' || r.kind === 'component' ? r.id : r.component ?? r.id) : '';
      list.appendChild(h('li', { role: 'option', id: `search-opt-${i}`, 'aria-selected': 'false', 'data-kind': r.kind, 'data-id': r.id, onmousedown: (e) => { e.preventDefault(); open(i); } },
        h(`span.kind.k-${r.kind}`, null, t(`search.kind.${r.kind}`)), ' ', h('strong', null, r.id),
        r.name ? h('span', null, ` ${r.name}`) : null,
        where && where !== t('place.none') ? h('span.muted', null, ` — ${where}`) : null));
    });
    list.hidden = false;
    input.setAttribute('aria-expanded', 'true');
    mark();
  };
  input.addEventListener('input', () => {
    clearTimeout(timer);
    const q = input.value.trim();
    if (!q) {
      results = [];
      return close();
    }
    timer = setTimeout(async () => {
      const my = ++seq;
      try {
        const r = await get(`/api/search?q=${encodeURIComponent(q)}&limit=12`);
        if (my !== seq) return;
        results = r.results ?? [];
        active = results.length ? 0 : -1;
        draw();
      } catch (e) {
        console.warn('search failed:', e.message);
      }
    }, 150);
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown' && results.length) {
      active = (active + 1) % results.length;
      mark();
      e.preventDefault();
    } else if (e.key === 'ArrowUp' && results.length) {
      active = (active - 1 + results.length) % results.length;
      mark();
      e.preventDefault();
    } else if (e.key === 'Enter') {
      if (active >= 0) open(active);
      e.preventDefault();
    } else if (e.key === 'Escape') {
      close();
    }
  });
  input.addEventListener('blur', () => setTimeout(close, 150));
  return input;
}
