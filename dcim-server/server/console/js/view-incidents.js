// Incidents: the list, and the detail pane of the selected incident (phases, grade, roles,
// cause/impact/recovery, follow-up items, journal). Opening an incident selects it, so what is
// typed next goes to it; every change says whether it was done; closing asks for the cause.

import { post } from './api.js';
import { h, clear, fmtTime, formDialog, toast } from './ui.js';
import { state, on, loadIncidents } from './state.js';
import { act } from './common.js';

const PHASES = ['detected', 'declared', 'handling', 'closed', 'follow_up'];
/// Phases as people write them (`follow_up` on the wire is "Follow-up").
export const PHASE_LABEL = { detected: 'Detected', declared: 'Declared', handling: 'Handling', closed: 'Closed', follow_up: 'Follow-up' };
const ROLES = ['control_tower', 'operator', 'communicator', 'responsible_manager'];
const ROLE_LABEL = { control_tower: 'Control tower', operator: 'Operators', communicator: 'Communicator', responsible_manager: 'Responsible manager' };
const FIELD_LABEL = { cause: 'Cause', impact: 'Impact', recovery: 'Recovery', retrospective: 'Retrospective' };

export const incidents = {
  title: 'Incidents',
  render(main, args, ctx) {
    let selected = args[0] ? Number(args[0]) : null;
    main.appendChild(h('h1', null, 'Incidents'));
    const wrap = h('div.split');
    const listEl = h('div.inclist', { role: 'list', 'aria-label': 'Incidents' });
    const side = h('div.side.wide');
    wrap.appendChild(listEl);
    wrap.appendChild(side);
    const select = (id) => {
      selected = id;
      history.replaceState(null, '', `/console/incidents/${id}`);
      draw();
    };
    if (ctx.canOperate) {
      const title = h('input#new-incident-title', { type: 'text', placeholder: 'Title of a new incident', 'aria-label': 'New incident title', required: true });
      const grade = h('select#new-incident-grade', { 'aria-label': 'Grade of the new incident' }, [1, 2, 3].map((g) => h('option', { value: g, selected: g === 3 }, `Grade ${g}`)));
      main.appendChild(h('form.inline#new-incident', {
        onsubmit: async (e) => {
          e.preventDefault();
          if (!title.value.trim()) return;
          const r = await act(() => post('/api/incidents', { title: title.value.trim(), grade: +grade.value }));
          if (!r?.incident) return;
          title.value = '';
          await loadIncidents();
          // The new incident is the one on screen: notes and phase changes go to it.
          select(r.incident.id);
          toast(`Incident #${r.incident.id} opened: it is the one shown now`, 'ok');
          document.getElementById('incident-detail')?.focus();
        },
      }, title, grade, h('button', { type: 'submit' }, 'Open incident')));
    }
    main.appendChild(wrap);
    const op = async (id, name, body, okMsg) => {
      const r = await act(() => post(`/api/incidents/${id}/${name}`, body), okMsg ? `#${id}: ${okMsg}` : null);
      await loadIncidents();
      return r;
    };
    const closeIncident = async (i) => {
      const v = await formDialog({
        id: 'close-dialog',
        title: `Close incident #${i.id}`,
        text: 'An incident is closed with its cause on record.',
        fields: [{ name: 'cause', label: 'Cause (required)', type: 'textarea', required: true, value: i.cause }],
        submit: 'Close incident',
      });
      if (!v) return;
      if (v.cause !== i.cause && !(await op(i.id, 'field', { field: 'cause', text: v.cause }))) return;
      await op(i.id, 'advance', { phase: 'closed' }, 'closed');
    };
    const draw = () => {
      const focusId = side.contains(document.activeElement) ? document.activeElement.id : null;
      clear(listEl);
      const list = [...state.incidents].sort((a, b) => b.id - a.id);
      if (!list.length) listEl.appendChild(h('p.muted', null, 'No incidents.'));
      for (const i of list) {
        listEl.appendChild(h(`button.incident${i.id === selected ? '.sel' : ''}`, { type: 'button', role: 'listitem', 'data-id': i.id, 'aria-current': i.id === selected ? 'true' : undefined, onclick: () => select(i.id) },
          h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`, h('div.muted', null, `${PHASE_LABEL[i.phase] ?? i.phase} · opened ${fmtTime(i.opened_ms, { tz: true })}`)));
      }
      clear(side);
      const i = state.incidents.find((x) => x.id === selected);
      if (!i) {
        side.appendChild(h('p.muted', null, 'Select an incident.'));
        return;
      }
      const p = h('section.card#incident-detail', { 'data-id': i.id, tabindex: -1, 'aria-label': `Incident ${i.id}` });
      p.appendChild(h('h2', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`));
      p.appendChild(h('ol.phases', { 'aria-label': 'Phase' }, PHASES.map((ph) => h(`li${ph === i.phase ? '.cur' : ''}`, { 'aria-current': ph === i.phase ? 'step' : undefined }, PHASE_LABEL[ph]))));
      p.appendChild(h('p', null, h('a', { href: `/api/incidents/${i.id}/export?format=markdown`, download: `incident-${i.id}.md` }, 'Export Markdown'), ' · ', h('a', { href: `/api/incidents/${i.id}/export?format=json`, download: `incident-${i.id}.json` }, 'Export JSON')));
      if (ctx.canOperate) {
        const next = PHASES[PHASES.indexOf(i.phase) + 1];
        const row = h('div.controls');
        if (next === 'closed') row.appendChild(h('button#incident-close', { type: 'button', onclick: () => closeIncident(i) }, 'Close incident…'));
        else if (next) row.appendChild(h('button#incident-advance', { type: 'button', onclick: () => op(i.id, 'advance', { phase: next }, `now ${PHASE_LABEL[next]}`) }, `Advance to ${PHASE_LABEL[next]}`));
        const setBtn = h('button#incident-set-grade', { type: 'button', disabled: true, onclick: () => op(i.id, 'grade', { grade: +g.value }, `grade ${g.value}`) }, 'Set grade');
        const g = h('select#incident-grade', { 'aria-label': 'Grade', onchange: () => { setBtn.disabled = +g.value === i.grade; } }, [1, 2, 3].map((x) => h('option', { value: x, selected: x === i.grade }, `Grade ${x}`)));
        row.appendChild(h('span', null, g, ' ', setBtn));
        p.appendChild(row);
      }
      p.appendChild(h('h3', null, 'Roles'));
      const roles = i.roles ?? {};
      p.appendChild(h('dl.kv', null, ROLES.flatMap((r) => [h('dt', null, ROLE_LABEL[r]), h('dd', null, r === 'operator' ? (roles.operators ?? []).join(', ') || '—' : roles[r] ?? '—')])));
      if (ctx.canOperate) {
        const rsel = h('select#assign-role', { 'aria-label': 'Role' }, ROLES.map((r) => h('option', { value: r }, ROLE_LABEL[r])));
        const person = h('input#assign-person', { type: 'text', placeholder: 'Person', 'aria-label': 'Person' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (person.value) op(i.id, 'assign', { role: rsel.value, person: person.value }, `${person.value} assigned`); } }, rsel, person, h('button', { type: 'submit' }, 'Assign')));
      }
      p.appendChild(h('h3', null, 'Cause, impact, recovery'));
      p.appendChild(h('dl.kv#incident-fields', null, Object.keys(FIELD_LABEL).flatMap((f) => [h('dt', null, FIELD_LABEL[f]), h('dd', { 'data-field': f }, i[f] || '—')])));
      if (ctx.canOperate) {
        const fsel = h('select#field-name', { 'aria-label': 'Field' }, Object.entries(FIELD_LABEL).map(([f, l]) => h('option', { value: f }, l)));
        const ftext = h('input#field-text', { type: 'text', placeholder: 'Text', 'aria-label': 'Field text' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ftext.value) op(i.id, 'field', { field: fsel.value, text: ftext.value }, `${FIELD_LABEL[fsel.value]} saved`); } }, fsel, ftext, h('button', { type: 'submit' }, 'Save')));
      }
      p.appendChild(h('h3', null, 'Follow-up items'));
      p.appendChild((i.follow_ups ?? []).length ? h('ul.plain', null, i.follow_ups.map((f, idx) => h('li', null, f.done ? '☑ ' : '☐ ', f.text, f.owner ? h('span.muted', null, ` (${f.owner})`) : null,
        ctx.canOperate && !f.done ? h('button', { type: 'button', onclick: () => op(i.id, 'complete_follow_up', { index: idx }, 'follow-up item done') }, 'Done') : null))) : h('p.muted', null, 'none'));
      if (ctx.canOperate) {
        const ft = h('input#follow-up-text', { type: 'text', placeholder: 'Follow-up item', 'aria-label': 'Follow-up item' });
        const fo = h('input#follow-up-owner', { type: 'text', placeholder: 'Owner', 'aria-label': 'Owner' });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ft.value) op(i.id, 'follow_up', { text: ft.value, owner: fo.value || undefined }, 'follow-up item added'); } }, ft, fo, h('button', { type: 'submit' }, 'Add')));
      }
      p.appendChild(h('h3', null, 'Journal'));
      if (ctx.canOperate) {
        const nt = h('input#incident-note', { type: 'text', placeholder: `Note for the journal of #${i.id}`, 'aria-label': `Note for incident ${i.id}` });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (nt.value) op(i.id, 'note', { text: nt.value }, 'note added'); } }, nt, h('button', { type: 'submit' }, 'Add note')));
      }
      p.appendChild(h('ol.timeline', null, (i.journal ?? []).slice().reverse().map((j) => h(`li.k-${j.kind}`, null, h('span.ts', null, fmtTime(j.ts_ms, { tz: true })), h('span.kind', null, j.kind), ` ${j.text} `, h('span.muted', null, j.user ?? '')))));
      side.appendChild(p);
      if (focusId) document.getElementById(focusId)?.focus({ preventScroll: true });
    };
    if (selected == null && state.incidents.length) selected = Math.max(...state.incidents.map((i) => i.id));
    draw();
    const offs = [on('incidents', draw)];
    return () => offs.forEach((f) => f());
  },
};
