// Backups: the list (filter by server and repository, paged) and one backup's detail: files,
// sizes, consistent point, databases, drill status, pin and unpin.
import { get, post, del, query, seg } from '../api.js';
import { h, fill, heading, table, field, badge, stateBadge, errorBox, toast } from '../dom.js';
import { bytes, timeEl } from '../format.js';

export async function renderList(main, ctx) {
  const server = ctx.query.get('server') || '';
  const repository = ctx.query.get('repository') || '';
  const rows = h('tbody', {});
  const more = h('button', { type: 'button', class: 'quiet', hidden: true }, 'Load more');
  let cursor = null;
  const load = async () => {
    const page = await get(`/backups${query({ server, repository, limit: 100, cursor })}`);
    for (const b of page.items || []) rows.appendChild(row(b));
    cursor = page.next_cursor || null;
    more.hidden = !cursor;
    if (!rows.children.length) rows.appendChild(h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No backups.')));
  };
  more.addEventListener('click', () => load().catch((e) => more.after(errorBox(e))));
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter backups' },
    field('Server', h('input', { name: 'server', value: server, autocomplete: 'off' })),
    field('Repository', h('input', { name: 'repository', value: repository, autocomplete: 'off' })),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    location.hash = `#/backups${query({ server: f.get('server'), repository: f.get('repository') })}`;
  });
  fill(main, heading('Backups'), form,
    h('div', { class: 'table-wrap' }, h('table', { id: 'backups' },
      h('caption', { class: 'sr-only' }, 'Backups, newest first'),
      h('thead', {}, h('tr', {}, ['Backup', 'Server', 'Repository', 'Kind', 'Finished', 'Size', 'Consistent point', 'Drill']
        .map((t) => h('th', { scope: 'col' }, t)))),
      rows)),
    more);
  await load();
}

function row(b) {
  return h('tr', { dataset: { backup: b.id } },
    h('td', {}, h('a', { href: `#/backups/${seg(b.repository)}/${seg(b.id)}` }, b.id), b.pinned ? [' ', badge('pinned', 'info')] : null),
    h('td', {}, b.server), h('td', {}, b.repository), h('td', {}, b.kind),
    h('td', {}, timeEl(b.finished_at)), h('td', { class: 'num' }, bytes(b.size_bytes)),
    h('td', { class: 'mono small' }, point(b.consistent_point)),
    h('td', {}, drill(b.drill)));
}

function point(p) {
  if (!p) return '—';
  return [p.time ? timeEl(p.time) : null, p.gtid ? h('div', { class: 'wrap' }, p.gtid) : null];
}

function drill(d) {
  if (!d) return stateBadge('unverified');
  const b = stateBadge(d.status);
  if (d.reason) b.title = d.reason;
  return b;
}

export async function renderDetail(main, ctx) {
  const { repository, id } = ctx.params;
  const b = await get(`/backups/${seg(repository)}/${seg(id)}`);
  const actions = [];
  if (ctx.can('restore-non-production') || ctx.can('restore-production')) {
    actions.push(h('a', { class: 'button', href: `#/restore${query({ server: b.server, backup: b.id })}` }, 'Restore…'));
  }
  if (!b.pinned && ctx.can('pin')) actions.push(pinButton(b, true));
  if (b.pinned && ctx.can('unpin')) actions.push(pinButton(b, false));
  const files = b.files || [];
  const total = b.files_total ?? files.length;
  fill(main,
    heading(`Backup ${b.id}`, actions),
    h('dl', { class: 'facts wide' },
      fact('Server', b.server), fact('Repository', b.repository), fact('Kind', b.kind),
      fact('Started', timeEl(b.started_at)), fact('Finished', timeEl(b.finished_at)),
      fact('Size', bytes(b.size_bytes)),
      fact('Consistent point', point(b.consistent_point)),
      fact('Drill', [drill(b.drill), b.drill?.at ? [' ', timeEl(b.drill.at)] : null, b.drill?.reason ? h('div', { class: 'small' }, b.drill.reason) : null]),
      fact('Pinned', b.pinned ? ['yes (retention keeps it)', b.pin?.reason ? `: ${b.pin.reason}` : '', b.pin?.pinned_by ? ` (by ${b.pin.pinned_by})` : ''] : 'no'),
      b.databases ? fact('Databases', b.databases.length ? b.databases.join(', ') : '—') : null),
    table({ text: `Files (${total}${total > files.length ? `, the first ${files.length}` : ''})`, visible: true, empty: 'No files listed.' },
      ['Path', 'Size'],
      files.map((f) => h('tr', {}, h('td', { class: 'mono wrap' }, f.path), h('td', { class: 'num' }, bytes(f.size))))));
}

function fact(k, v) {
  return h('div', {}, h('dt', {}, k), h('dd', {}, v));
}

function pinButton(b, pin) {
  return h('button', {
    type: 'button', dataset: { action: pin ? 'pin' : 'unpin' },
    onclick: async (ev) => {
      ev.currentTarget.disabled = true;
      const path = `/backups/${seg(b.repository)}/${seg(b.id)}/pin`;
      try {
        if (pin) await post(path, {}); else await del(path);
        toast(pin ? 'Pinned: retention keeps this backup.' : 'Unpinned.');
        window.dispatchEvent(new HashChangeEvent('hashchange'));
      } catch (e) {
        ev.target.after(errorBox(e));
      }
    },
  }, pin ? 'Pin' : 'Unpin');
}
