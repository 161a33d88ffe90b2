// Incidents: the list, and the detail pane of the selected incident (phases, grade, roles,
// cause/impact/recovery, follow-up items, journal). Opening an incident selects it, so what is
// typed next goes to it; every change says whether it was done; closing asks for the cause.

import { post } from './api.js';
import { h, clear, fmtTime, formDialog, toast } from './ui.js';
import { state, on, loadIncidents } from './state.js';
import { act, gradeLabel } from './common.js';
import { t } from './i18n.js';

const PHASES = ['detected', 'declared', 'handling', 'closed', 'follow_up'];
/// Phases as people write them (`follow_up` on the wire is "Follow-up").
export const phaseLabel = (p) => t(`phase.${p}`);
const ROLES = ['control_tower', 'operator', 'communicator', 'responsible_manager'];
const roleLabel = (r) => t(`incRole.${r}`);
const FIELDS = ['cause', 'impact', 'recovery', 'retrospective'];
const fieldLabel = (f) => t(`incField.${f}`);
const kindLabel = (k) => t(`journalKind.${k}`);

export const incidents = {
  title: 'view.incidents',
  render(main, args, ctx) {
    let selected = args[0] ? Number(args[0]) : null;
    main.appendChild(h('h1', null, t('view.incidents')));
    const wrap = h('div.split');
    const listEl = h('div.inclist', { role: 'list', 'aria-label': t('view.incidents') });
    const side = h('div.side.wide');
    wrap.appendChild(listEl);
    wrap.appendChild(side);
    const select = (id) => {
      selected = id;
      history.replaceState(null, '', `/console/incidents/${id}`);
      draw();
    };
    if (ctx.canOperate) {
      const title = h('input#new-incident-title', { type: 'text', placeholder: t('inc.newTitle'), 'aria-label': t('inc.newTitleLabel'), required: true });
      const grade = h('select#new-incident-grade', { 'aria-label': t('inc.newGrade') }, [1, 2, 3].map((g) => h('option', { value: g, selected: g === 3 }, gradeLabel(g))));
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
          toast(t('inc.opened', { id: r.incident.id }), 'ok');
          document.getElementById('incident-detail')?.focus();
        },
      }, title, grade, h('button', { type: 'submit' }, t('inc.open'))));
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
        title: t('inc.closeTitle', { id: i.id }),
        text: t('inc.closeText'),
        fields: [{ name: 'cause', label: t('inc.causeRequired'), type: 'textarea', required: true, value: i.cause }],
        submit: t('inc.close'),
      });
      if (!v) return;
      if (v.cause !== i.cause && !(await op(i.id, 'field', { field: 'cause', text: v.cause }))) return;
      await op(i.id, 'advance', { phase: 'closed' }, t('inc.closedOk'));
    };
    const draw = () => {
      const focusId = side.contains(document.activeElement) ? document.activeElement.id : null;
      clear(listEl);
      const list = [...state.incidents].sort((a, b) => b.id - a.id);
      if (!list.length) listEl.appendChild(h('p.muted', null, t('inc.none')));
      for (const i of list) {
        listEl.appendChild(h(`button.incident${i.id === selected ? '.sel' : ''}`, { type: 'button', role: 'listitem', 'data-id': i.id, 'aria-current': i.id === selected ? 'true' : undefined, onclick: () => select(i.id) },
          h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`, h('div.muted', null, `${phaseLabel(i.phase)} · ${t('inc.openedAt', { time: fmtTime(i.opened_ms, { tz: true }) })}`)));
      }
      clear(side);
      const i = state.incidents.find((x) => x.id === selected);
      if (!i) {
        side.appendChild(h('p.muted', null, t('inc.select')));
        return;
      }
      const p = h('section.card#incident-detail', { 'data-id': i.id, tabindex: -1, 'aria-label': t('inc.label', { id: i.id }) });
      p.appendChild(h('h2', null, h(`span.gradechip.g${i.grade}`, null, `G${i.grade}`), ` #${i.id} ${i.title}`));
      p.appendChild(h('ol.phases', { 'aria-label': t('inc.phase') }, PHASES.map((ph) => h(`li${ph === i.phase ? '.cur' : ''}`, { 'aria-current': ph === i.phase ? 'step' : undefined }, phaseLabel(ph)))));
      p.appendChild(h('p', null, h('a', { href: `/api/incidents/${i.id}/export?format=markdown`, download: `incident-${i.id}.md` }, t('inc.exportMd')), ' · ', h('a', { href: `/api/incidents/${i.id}/export?format=json`, download: `incident-${i.id}.json` }, t('inc.exportJson'))));
      if (ctx.canOperate) {
        const next = PHASES[PHASES.indexOf(i.phase) + 1];
        const row = h('div.controls');
        if (next === 'closed') row.appendChild(h('button#incident-close', { type: 'button', onclick: () => closeIncident(i) }, t('inc.closeButton')));
        else if (next) row.appendChild(h('button#incident-advance', { type: 'button', onclick: () => op(i.id, 'advance', { phase: next }, t('inc.nowPhase', { phase: phaseLabel(next) })) }, t('inc.advance', { phase: phaseLabel(next) })));
        const setBtn = h('button#incident-set-grade', { type: 'button', disabled: true, onclick: () => op(i.id, 'grade', { grade: +g.value }, gradeLabel(g.value)) }, t('inc.setGrade'));
        const g = h('select#incident-grade', { 'aria-label': t('col.grade'), onchange: () => { setBtn.disabled = +g.value === i.grade; } }, [1, 2, 3].map((x) => h('option', { value: x, selected: x === i.grade }, gradeLabel(x))));
        row.appendChild(h('span', null, g, ' ', setBtn));
        p.appendChild(row);
      }
      p.appendChild(h('h3', null, t('inc.roles')));
      const roles = i.roles ?? {};
      p.appendChild(h('dl.kv', null, ROLES.flatMap((r) => [h('dt', null, roleLabel(r)), h('dd', null, r === 'operator' ? (roles.operators ?? []).join(', ') || '—' : roles[r] ?? '—')])));
      if (ctx.canOperate) {
        const rsel = h('select#assign-role', { 'aria-label': t('inc.role') }, ROLES.map((r) => h('option', { value: r }, roleLabel(r))));
        const person = h('input#assign-person', { type: 'text', placeholder: t('inc.person'), 'aria-label': t('inc.person') });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (person.value) op(i.id, 'assign', { role: rsel.value, person: person.value }, t('inc.assigned', { person: person.value })); } }, rsel, person, h('button', { type: 'submit' }, t('inc.assign'))));
      }
      p.appendChild(h('h3', null, t('inc.fields')));
      p.appendChild(h('dl.kv#incident-fields', null, FIELDS.flatMap((f) => [h('dt', null, fieldLabel(f)), h('dd', { 'data-field': f }, i[f] || '—')])));
      if (ctx.canOperate) {
        const fsel = h('select#field-name', { 'aria-label': t('inc.field') }, FIELDS.map((f) => h('option', { value: f }, fieldLabel(f))));
        const ftext = h('input#field-text', { type: 'text', placeholder: t('inc.text'), 'aria-label': t('inc.fieldText') });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ftext.value) op(i.id, 'field', { field: fsel.value, text: ftext.value }, t('inc.saved', { field: fieldLabel(fsel.value) })); } }, fsel, ftext, h('button', { type: 'submit' }, t('inc.save'))));
      }
      p.appendChild(h('h3', null, t('inc.followUps')));
      p.appendChild((i.follow_ups ?? []).length ? h('ul.plain', null, i.follow_ups.map((f, idx) => h('li', null, f.done ? '☑ ' : '☐ ', f.text, f.owner ? h('span.muted', null, ` (${f.owner})`) : null,
        ctx.canOperate && !f.done ? h('button', { type: 'button', onclick: () => op(i.id, 'complete_follow_up', { index: idx }, t('inc.followUpDone')) }, t('inc.done')) : null))) : h('p.muted', null, t('overview.none')));
      if (ctx.canOperate) {
        const ft = h('input#follow-up-text', { type: 'text', placeholder: t('inc.followUpItem'), 'aria-label': t('inc.followUpItem') });
        const fo = h('input#follow-up-owner', { type: 'text', placeholder: t('inc.owner'), 'aria-label': t('inc.owner') });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (ft.value) op(i.id, 'follow_up', { text: ft.value, owner: fo.value || undefined }, t('inc.followUpAdded')); } }, ft, fo, h('button', { type: 'submit' }, t('inc.add'))));
      }
      p.appendChild(h('h3', null, t('inc.journal')));
      if (ctx.canOperate) {
        const nt = h('input#incident-note', { type: 'text', placeholder: t('inc.notePlaceholder', { id: i.id }), 'aria-label': t('inc.noteLabel', { id: i.id }) });
        p.appendChild(h('form.inline', { onsubmit: (e) => { e.preventDefault(); if (nt.value) op(i.id, 'note', { text: nt.value }, t('inc.noteAdded')); } }, nt, h('button', { type: 'submit' }, t('inc.addNote'))));
      }
      p.appendChild(h('ol.timeline', null, (i.journal ?? []).slice().reverse().map((j) => h(`li.k-${j.kind}`, null, h('span.ts', null, fmtTime(j.ts_ms, { tz: true })), h('span.kind', null, kindLabel(j.kind)), ` ${j.text} `, h('span.muted', null, j.user ?? '')))));
      side.appendChild(p);
      if (focusId) document.getElementById(focusId)?.focus({ preventScroll: true });
    };
    if (selected == null && state.incidents.length) selected = Math.max(...state.incidents.map((i) => i.id));
    draw();
    const offs = [on('incidents', draw)];
    return () => offs.forEach((f) => f());
  },
};
