// Fleet dashboard: are we covered? Each server's last backup age, archive lag (RPO), recoverable
// window, next runs and problems, problems first. Refreshes every 15 s.
import { get, post, seg } from '../api.js';
import { h, fill, heading, badge, errorBox, toast } from '../dom.js';
import { age, duration, timeEl } from '../format.js';
import { timeline } from '../charts.js';

export async function render(main, ctx) {
  const load = async () => {
    const data = await get('/servers?limit=500');
    draw(main, ctx, data.items || []);
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), 15000);
  ctx.onLeave(() => clearInterval(timer));
}

function byProblemsFirst(a, b) {
  return (b.problems?.length ? 1 : 0) - (a.problems?.length ? 1 : 0) || a.name.localeCompare(b.name);
}

function draw(main, ctx, servers) {
  servers.sort(byProblemsFirst);
  const troubled = servers.filter((s) => s.problems?.length).length;
  const ages = servers.map((s) => s.last_backup?.age_seconds).filter((x) => x !== undefined && x !== null);
  const lags = servers.map((s) => s.archive?.lag_seconds).filter((x) => x !== undefined && x !== null);
  const focused = document.activeElement?.id;
  fill(main,
    heading('Fleet'),
    h('section', { class: 'tiles', 'aria-label': 'Summary' },
      tile('Servers', servers.length),
      tile('With problems', troubled, troubled ? 'bad' : 'ok'),
      tile('Oldest last backup', ages.length ? duration(Math.max(...ages)) : '—'),
      tile('Worst archive lag (RPO)', lags.length ? duration(Math.max(...lags)) : '—')),
    servers.length === 0 ? h('p', { class: 'muted' }, 'No servers in the daemon\'s configuration.') : null,
    h('ul', { class: 'cards', id: 'servers' }, servers.map((s) => card(ctx, s))));
  if (focused) document.getElementById(focused)?.focus();
}

function tile(label, value, kind) {
  return h('div', { class: `tile ${kind || ''}` }, h('span', { class: 'tile-label' }, label), h('span', { class: 'tile-value' }, value));
}

function card(ctx, s) {
  const lb = s.last_backup;
  const lag = s.archive?.lag_seconds;
  return h('li', { class: `card server ${s.problems?.length ? 'has-problems' : ''}`, dataset: { server: s.name } },
    h('div', { class: 'card-head' },
      h('h2', {}, s.name),
      h('span', { class: 'muted small' }, `repository ${s.repository}`),
      s.problems?.length ? badge(`${s.problems.length} problem${s.problems.length > 1 ? 's' : ''}`, 'bad') : badge('ok', 'ok')),
    s.problems?.length ? h('ul', { class: 'problems', 'aria-label': `Problems of ${s.name}` }, s.problems.map((p) => h('li', {}, p))) : null,
    h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Last backup'),
        h('dd', { class: 'last-backup' }, lb
          ? [h('a', { href: `#/backups/${seg(s.repository)}/${seg(lb.id)}` }, age(lb.age_seconds)), ' ', h('span', { class: 'muted small' }, lb.kind)]
          : h('span', { class: 'bad-text' }, 'none'))),
      h('div', {}, h('dt', {}, 'Archive lag (RPO)'),
        h('dd', {}, !s.binlog ? h('span', { class: 'muted' }, 'not archived')
          : [lag === null || lag === undefined ? '—' : duration(lag), ' ',
            s.archive?.streaming === false ? badge('not streaming', 'bad') : s.archive?.streaming ? badge('streaming', 'ok') : null])),
      h('div', {}, h('dt', {}, 'Next run'),
        h('dd', {}, s.next_runs?.length
          ? h('ul', { class: 'plain' }, s.next_runs.slice(0, 3).map((r) => h('li', {}, timeEl(r.at), ' ', h('span', { class: 'muted small' }, r.job))))
          : h('span', { class: 'muted' }, 'no schedule')))),
    h('div', { class: 'window' }, h('h3', { class: 'small-head' }, 'Recoverable window'), timeline(s.window)),
    h('div', { class: 'card-actions' },
      h('a', { href: `#/backups?server=${seg(s.name)}` }, 'Backups'),
      h('a', { href: `#/jobs?server=${seg(s.name)}` }, 'Jobs'),
      ctx.can('trigger-job') ? h('button', {
        type: 'button', class: 'primary', id: `trigger-${s.name}`, dataset: { action: 'trigger', server: s.name },
        onclick: (ev) => trigger(ev.currentTarget, s.name),
      }, 'Back up now') : null));
}

async function trigger(button, server) {
  button.disabled = true;
  try {
    const job = await post('/jobs', { server, kind: 'backup' });
    toast(`Backup of ${server} queued as job ${job.id}.`);
    location.hash = `#/jobs/${seg(String(job.id))}`;
  } catch (e) {
    button.disabled = false;
    button.after(errorBox(e));
  }
}
