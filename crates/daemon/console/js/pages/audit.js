// The audit log (auditor and admin): who did what, from where, with what result; hash-chained
// (`holdfast audit verify` checks the chain). Newest first, paged.
import { get, query } from '../api.js';
import { h, fill, heading, field, badge, errorBox } from '../dom.js';
import { timeEl } from '../format.js';

export async function render(main, ctx) {
  const since = ctx.query.get('since') || '';
  const body = h('tbody', {});
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Load more');
  let cursor = null;
  const load = async () => {
    const page = await get(`/audit${query({ since, limit: 100, cursor })}`);
    for (const e of page.items || []) body.appendChild(row(e));
    cursor = page.next_cursor || null;
    more.hidden = !cursor;
    if (!body.children.length) body.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No entries.')));
  };
  more.addEventListener('click', () => load().catch((e) => more.after(errorBox(e))));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the audit log' },
    field('Since', h('input', { name: 'since', value: since, placeholder: '2026-12-01T00:00:00Z', autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/audit${query({ since: new FormData(form).get('since') })}`;
  });
  fill(main, heading('Audit log'), form,
    h('div', { class: 'table-wrap' }, h('table', { id: 'audit' },
      h('caption', { class: 'sr-only' }, 'Audit entries, newest first'),
      h('thead', {}, h('tr', {}, ['#', 'When', 'Actor', 'Source', 'Action', 'Target', 'Result', 'Detail']
        .map((t) => h('th', { scope: 'col' }, t)))),
      body)),
    more);
  await load();
}

function row(e) {
  const ok = /^(ok|success|succeeded|allowed|2\d\d)/i.test(String(e.result));
  return h('tr', { dataset: { seq: e.seq, action: e.action } },
    h('td', { class: 'num' }, e.seq), h('td', {}, timeEl(e.at)), h('td', {}, e.actor), h('td', { class: 'mono small' }, e.source),
    h('td', {}, e.action), h('td', { class: 'wrap' }, e.target || ''), h('td', {}, badge(e.result, ok ? 'ok' : 'bad')),
    h('td', { class: 'wrap small' }, typeof e.detail === 'string' ? e.detail : e.detail ? JSON.stringify(e.detail) : ''));
}
