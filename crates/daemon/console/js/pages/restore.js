// The restore wizard: into a target registered in the daemon's config (never an arbitrary
// server), from a backup or to a point in time, confirmed by typing the target's name.
// Production targets need the admin role; the server checks this again.
import { get, post, query, seg } from '../api.js';
import { h, fill, heading, field, select, badge, errorBox } from '../dom.js';

export async function render(main, ctx) {
  const [targets, servers] = await Promise.all([get('/restore-targets'), get('/servers?limit=500')]);
  const tlist = targets.items || [];
  const slist = servers.items || [];
  if (!tlist.length) {
    fill(main, heading('Restore'), h('p', {}, 'No restore targets are registered. Add a ',
      h('code', {}, '[[restore_target]]'), ' to the daemon\'s configuration: the console restores only into registered targets.'));
    return;
  }
  const allowed = (t) => ctx.can(t.production ? 'restore-production' : 'restore-non-production');
  const pre = { server: ctx.query.get('server') || slist[0]?.name, backup: ctx.query.get('backup') || '' };

  const targetSet = h('fieldset', {}, h('legend', {}, '1. Target'),
    tlist.map((t, i) => {
      const id = `target-${i}`;
      return h('div', { class: 'radio' },
        h('input', { type: 'radio', name: 'target', id, value: t.name, disabled: !allowed(t), checked: false }),
        h('label', { for: id }, h('strong', {}, t.name), ' ', h('span', { class: 'muted small' }, t.url), ' ',
          t.production ? badge('production', 'bad') : badge('non-production', 'ok'),
          allowed(t) ? null : h('span', { class: 'small muted' }, ' (your role may not restore here)')));
    }));

  const server = select({ name: 'server', id: 'restore-server' }, slist.map((s) => [s.name, s.name]), pre.server);
  const mode = select({ name: 'mode', id: 'restore-mode' }, [
    ['latest', 'the newest backup'], ['backup', 'a given backup'], ['time', 'a point in time (PITR)'], ['gtid', 'a GTID (PITR)'],
  ], pre.backup ? 'backup' : 'latest');
  const backup = select({ name: 'backup', id: 'restore-backup' }, [['', '—']], pre.backup);
  const toTime = h('input', { name: 'to_time', id: 'restore-time', type: 'datetime-local', step: '1' });
  const toGtid = h('input', { name: 'to_gtid', id: 'restore-gtid', autocomplete: 'off', spellcheck: 'false', placeholder: '0-1-1234' });
  const fBackup = field('Backup', backup);
  const fTime = field('Restore to (your local time)', toTime, 'Everything committed up to this second, nothing after it.');
  const fGtid = field('Up to and including GTID', toGtid);
  const loadBackups = async () => {
    const page = await get(`/backups${query({ server: server.value, limit: 200 })}`);
    fill(backup, (page.items || []).map((b) => h('option', { value: b.id, selected: b.id === pre.backup }, `${b.id} (${b.kind}, ${b.drill?.status || 'unverified'})`)));
  };
  const showMode = () => {
    fBackup.hidden = mode.value !== 'backup';
    fTime.hidden = mode.value !== 'time';
    fGtid.hidden = mode.value !== 'gtid';
  };
  server.addEventListener('change', () => loadBackups().catch(() => {}));
  mode.addEventListener('change', showMode);
  const pointSet = h('fieldset', {}, h('legend', {}, '2. What to restore'), field('Server', server), field('Restore', mode), fBackup, fTime, fGtid);

  const confirm = h('input', { name: 'confirm', id: 'restore-confirm', autocomplete: 'off', spellcheck: 'false' });
  const confirmSet = h('fieldset', {}, h('legend', {}, '3. Confirm'),
    field('Type the target\'s name to confirm', confirm, 'The target\'s current data is replaced.'));
  const out = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary danger', dataset: { action: 'restore' } }, 'Start restore');
  const form = h('form', { class: 'wizard', novalidate: true }, targetSet, pointSet, confirmSet, submit, out);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(out);
    const target = form.querySelector('input[name=target]:checked')?.value;
    if (!target) { fill(out, errorBox({ code: 'bad-request', message: 'Choose a target.' })); return; }
    if (confirm.value !== target) {
      fill(out, errorBox({ code: 'confirmation-required', message: `Type "${target}" to confirm.` }));
      confirm.focus();
      return;
    }
    const body = { target, server: server.value, confirm: confirm.value };
    if (mode.value === 'backup') body.backup = backup.value;
    if (mode.value === 'time') {
      if (!toTime.value) { fill(out, errorBox({ code: 'bad-request', message: 'Choose the time.' })); return; }
      body.to_time = new Date(toTime.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    if (mode.value === 'gtid') body.to_gtid = toGtid.value.trim();
    submit.disabled = true;
    try {
      const job = await post('/restores', body);
      location.hash = `#/jobs/${seg(String(job.id))}`;
    } catch (e) {
      fill(out, errorBox(e));
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, heading('Restore'), h('p', { class: 'muted' }, 'Restores run as jobs; follow them on the job page.'), form);
  showMode();
  await loadBackups().catch(() => {});
}
