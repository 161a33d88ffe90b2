// What-if: fail components and see what loses supply or redundancy, on the diagrams.

import { get } from './api.js';
import { h, clear } from './ui.js';
import { state } from './state.js';
import { diagram, LAYERS } from './diagram.js';
import { act, redLabel, subsystemLabel } from './common.js';
import { t } from './i18n.js';

export const whatif = {
  title: 'view.whatif',
  render(main) {
    main.appendChild(h('h1', null, t('whatif.title')));
    const chosen = new Set();
    let result = null;
    const picker = h('div.picker');
    const out = h('div.whatif-out');
    const diagrams = h('div.whatif-diagrams');
    main.appendChild(h('div.split', null, picker, out));
    main.appendChild(diagrams);
    const overlay = () => {
      const m = new Map();
      if (!result) return m;
      for (const x of result.loses_redundancy ?? []) m.set(x.id, 'weakened');
      for (const k of ['loses_power', 'loses_cooling', 'loses_network']) for (const x of result[k] ?? []) m.set(typeof x === 'string' ? x : x.id, 'loses');
      for (const id of result.failed ?? []) m.set(id, 'failed');
      return m;
    };
    const toggle = (id) => {
      if (chosen.has(id)) chosen.delete(id);
      else chosen.add(id);
      drawPicker();
      evaluate();
    };
    const drawPicker = () => {
      clear(picker);
      for (const [sub, kinds] of Object.entries(LAYERS)) {
        const fs = h('fieldset', null, h('legend', null, subsystemLabel(sub)));
        for (const c of state.site.components.filter((x) => kinds.flat().includes(x.kind) && x.kind !== 'pdu' && x.kind !== 'row')) {
          fs.appendChild(h('label.check', null, h('input', { type: 'checkbox', value: c.id, checked: chosen.has(c.id), onchange: () => toggle(c.id) }), ` ${c.id}`));
        }
        picker.appendChild(fs);
      }
      picker.appendChild(h('button#whatif-clear', { type: 'button', onclick: () => { chosen.clear(); drawPicker(); evaluate(); } }, t('whatif.clear')));
    };
    const list = (title, items, fmt) => h('section.card', null, h('h3', null, `${title} (${items.length})`), items.length ? h('p.ids', null, items.slice(0, 80).map(fmt).join(', ') + (items.length > 80 ? `, ${t('list.more', { n: items.length - 80 })}` : '')) : h('p.muted', null, t('overview.none')));
    const evaluate = async () => {
      clear(out);
      if (!chosen.size) {
        result = null;
        out.appendChild(h('p.muted', null, t('whatif.hint')));
      } else {
        result = await act(() => get(`/api/site/whatif?fail=${[...chosen].map(encodeURIComponent).join(',')}`));
        if (result) {
          const id = (x) => (typeof x === 'string' ? x : x.id);
          out.appendChild(h('div#whatif-result', null,
            list(t('whatif.losesPower'), result.loses_power ?? [], id), list(t('whatif.losesCooling'), result.loses_cooling ?? [], id), list(t('whatif.losesNetwork'), result.loses_network ?? [], id),
            list(t('whatif.losesRedundancy'), result.loses_redundancy ?? [], (x) => `${x.id} ${redLabel(x.before)}→${redLabel(x.after)}`)));
        }
      }
      clear(diagrams);
      const ov = overlay();
      for (const sub of Object.keys(LAYERS)) {
        diagrams.appendChild(h('h2', null, subsystemLabel(sub)));
        diagrams.appendChild(h('div.diagram-wrap', null, diagram(sub, { overlay: ov, onSelect: (id) => state.byId.get(id)?.kind !== 'pdu' && toggle(id) })));
      }
    };
    drawPicker();
    evaluate();
  },
};
