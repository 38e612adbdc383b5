// Jobs: the list with live state (polled every 2 s while the page is shown), a form to start a
// job now, cancel buttons; one job's detail with its transitions and log, polled until it ends.
import { get, post, query, seg } from '../api.js';
import { h, fill, heading, table, field, select, stateBadge, errorBox, toast } from '../dom.js';
import { duration, timeEl } from '../format.js';

const KINDS = ['backup', 'backup-physical', 'incremental', 'verify', 'drill', 'expire'];
const STATES = ['', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'timed-out'];
const ACTIVE = new Set(['queued', 'running', 'retrying']);
const POLL_MS = 2000;

/** Polls `f` every POLL_MS while the page is shown and the tab visible. */
function poll(ctx, f) {
  const timer = setInterval(() => { if (!document.hidden) f().catch(() => {}); }, POLL_MS);
  ctx.onLeave(() => clearInterval(timer));
}

export async function renderList(main, ctx) {
  const server = ctx.query.get('server') || '';
  const state = ctx.query.get('state') || '';
  const body = h('tbody', {});
  const load = async () => {
    const page = await get(`/jobs${query({ server, state, limit: 100 })}`);
    const jobs = page.items || [];
    fill(body, jobs.length ? jobs.map((j) => row(ctx, j))
      : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No jobs.')));
  };
  const filters = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter jobs' },
    field('Server', h('input', { name: 'server', value: server, autocomplete: 'off' })),
    field('State', select({ name: 'state' }, STATES.map((s) => [s, s || 'any']), state)),
    h('button', { type: 'submit' }, 'Filter'));
  filters.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = new FormData(filters);
    location.hash = `#/jobs${query({ server: f.get('server'), state: f.get('state') })}`;
  });
  fill(main,
    heading('Jobs'),
    ctx.can('trigger-job') ? await triggerForm(server) : null,
    filters,
    h('div', { class: 'table-wrap' }, h('table', { id: 'jobs' },
      h('caption', { class: 'sr-only' }, 'Jobs, newest first; states refresh every 2 seconds'),
      h('thead', {}, h('tr', {}, ['Job', 'Server', 'Kind', 'State', 'Attempt', 'Trigger', 'Updated', '']
        .map((t) => h('th', { scope: 'col' }, t)))),
      body)));
  await load();
  poll(ctx, load);
}

async function triggerForm(server) {
  const servers = (await get('/servers?limit=500')).items || [];
  const srv = select({ name: 'server', id: 'trigger-server' }, servers.map((s) => [s.name, s.name]), server || servers[0]?.name);
  const kind = select({ name: 'kind', id: 'trigger-kind' }, KINDS.map((k) => [k, k]), 'backup');
  const form = h('form', { class: 'trigger', 'aria-label': 'Start a job now' },
    h('h2', { class: 'small-head' }, 'Start a job now'),
    h('div', { class: 'row' }, field('Server', srv), field('Job', kind),
      h('button', { type: 'submit', class: 'primary', dataset: { action: 'trigger' } }, 'Start')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = form.querySelector('button');
    button.disabled = true;
    try {
      const job = await post('/jobs', { server: srv.value, kind: kind.value });
      toast(`Job ${job.id} (${job.kind} of ${job.server}) queued.`);
      location.hash = `#/jobs/${seg(String(job.id))}`;
    } catch (e) {
      form.appendChild(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function cancelButton(ctx, j, after) {
  if (!ctx.can('cancel-job') || !ACTIVE.has(j.state)) return null;
  return h('button', {
    type: 'button', class: 'quiet danger', dataset: { action: 'cancel', job: j.id },
    'aria-label': `Cancel job ${j.id}`,
    onclick: async (ev) => {
      ev.currentTarget.disabled = true;
      try {
        await post(`/jobs/${seg(String(j.id))}/cancel`, {});
        toast(`Job ${j.id} cancelled.`);
        await after();
      } catch (e) {
        ev.target.after(errorBox(e));
      }
    },
  }, 'Cancel');
}

function row(ctx, j) {
  return h('tr', { dataset: { job: j.id, state: j.state } },
    h('td', {}, h('a', { href: `#/jobs/${seg(String(j.id))}` }, `#${j.id}`)),
    h('td', {}, j.server), h('td', {}, j.kind),
    h('td', {}, stateBadge(j.state), j.last_error ? h('div', { class: 'small bad-text wrap' }, j.last_error) : null),
    h('td', { class: 'num' }, `${j.attempt}/${j.max_attempts}`),
    h('td', {}, j.trigger, j.requested_by ? h('div', { class: 'small muted' }, j.requested_by) : null),
    h('td', {}, timeEl(j.updated_at)),
    h('td', {}, cancelButton(ctx, j, async () => { window.dispatchEvent(new HashChangeEvent('hashchange')); })));
}

export async function renderDetail(main, ctx) {
  const id = ctx.params.id;
  const stateEl = h('span', { id: 'job-state', 'aria-live': 'polite' });
  const facts = h('dl', { class: 'facts wide' });
  const transitions = h('div', {});
  const logEl = h('pre', { class: 'log', id: 'job-log', tabindex: '0', 'aria-label': 'Job log' });
  const actions = h('div', { class: 'actions' });
  let done = false;
  const load = async () => {
    const [j, log] = await Promise.all([get(`/jobs/${seg(id)}`), get(`/jobs/${seg(id)}/log?limit=500`)]);
    fill(stateEl, stateBadge(j.state));
    stateEl.dataset.state = j.state;
    fill(facts,
      fact('Server', j.server), fact('Kind', j.kind), fact('State', stateEl),
      fact('Attempt', `${j.attempt} of ${j.max_attempts}`), fact('Priority', j.priority),
      fact('Trigger', [j.trigger, j.requested_by ? ` by ${j.requested_by}` : '']),
      fact('Created', timeEl(j.created_at)), fact('Updated', timeEl(j.updated_at)),
      fact('Took', j.created_at && !ACTIVE.has(j.state) ? duration((Date.parse(j.updated_at) - Date.parse(j.created_at)) / 1000) : '—'),
      j.exit_code !== null && j.exit_code !== undefined ? fact('Exit code', j.exit_code) : null,
      j.last_error ? fact('Last error', h('span', { class: 'bad-text' }, j.last_error)) : null);
    fill(transitions, table({ text: 'Transitions', visible: true, empty: 'No transitions yet.' }, ['When', 'From', 'To', 'Message'],
      (j.transitions || []).map((t) => h('tr', {}, h('td', {}, timeEl(t.at)), h('td', {}, t.from || '—'),
        h('td', {}, stateBadge(t.to)), h('td', { class: 'wrap' }, t.message || '')))));
    const lines = (log.items || []).map((l) => `${l.at ? `${l.at} ` : ''}[${l.attempt}] ${l.line}`);
    logEl.textContent = lines.length ? lines.join('\n') : '(no log lines yet)';
    fill(actions, cancelButton(ctx, j, load));
    done = !ACTIVE.has(j.state);
  };
  fill(main, heading(`Job #${id}`, actions), facts, transitions, h('h2', {}, 'Log'), logEl,
    h('p', {}, h('a', { href: '#/jobs' }, 'All jobs')));
  await load();
  poll(ctx, async () => { if (!done) await load(); });
}

function fact(k, v) {
  return h('div', {}, h('dt', {}, k), h('dd', {}, v));
}
