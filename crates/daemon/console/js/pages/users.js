// Users and API tokens (admin): add users, change roles, disable, reset passwords; create
// tokens (the secret is shown once, here) and revoke them.
import { get, post, patch, del, seg } from '../api.js';
import { h, fill, heading, table, field, select, badge, errorBox, toast } from '../dom.js';
import { timeEl } from '../format.js';

const ROLES = [['operator', 'operator'], ['auditor', 'auditor'], ['admin', 'admin']];

export async function render(main, ctx) {
  const usersBox = h('section', { 'aria-labelledby': 'users-h' });
  const tokensBox = h('section', { 'aria-labelledby': 'tokens-h' });
  const reload = async () => {
    const [users, tokens] = await Promise.all([get('/users'), ctx.can('manage-tokens') ? get('/tokens') : { items: [] }]);
    drawUsers(usersBox, ctx, users.items || [], reload);
    if (ctx.can('manage-tokens')) drawTokens(tokensBox, users.items || [], tokens.items || [], reload);
  };
  fill(main, heading('Users & tokens'), usersBox, tokensBox);
  await reload();
}

function drawUsers(box, ctx, users, reload) {
  const name = h('input', { name: 'name', autocomplete: 'off', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const role = select({ name: 'role' }, ROLES, 'operator');
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'new-password', required: true });
  const form = h('form', { class: 'row', 'aria-label': 'Add a user' },
    field('Name', name), field('Role', role), field('Password', password, 'At least 12 characters.'),
    h('button', { type: 'submit', class: 'primary' }, 'Add user'));
  const out = h('div', {});
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(out);
    try {
      await post('/users', { name: name.value, role: role.value, password: password.value });
      toast(`User ${name.value} added.`);
      await reload();
    } catch (e) { fill(out, errorBox(e)); }
  });
  fill(box, h('h2', { id: 'users-h' }, 'Users'),
    table({ text: 'Users' }, ['Name', 'Role', 'State', 'Created', ''], users.map((u) => userRow(ctx, u, reload))),
    h('h3', { class: 'small-head' }, 'Add a user'), form, out);
}

function userRow(ctx, u, reload) {
  const role = select({ 'aria-label': `Role of ${u.name}` }, ROLES, u.role);
  const self = u.name === ctx.me.user;
  role.disabled = self;
  role.addEventListener('change', () => change(u, { role: role.value }, reload));
  return h('tr', { dataset: { user: u.name } },
    h('td', {}, u.name, self ? h('span', { class: 'muted small' }, ' (you)') : null),
    h('td', {}, role),
    h('td', {}, u.disabled ? badge('disabled', 'bad') : badge('active', 'ok')),
    h('td', {}, u.created_at ? timeEl(u.created_at) : '—'),
    h('td', {}, self ? null : h('button', { type: 'button', class: 'quiet', onclick: () => change(u, { disabled: !u.disabled }, reload) },
      u.disabled ? 'Enable' : 'Disable')));
}

async function change(u, body, reload) {
  try {
    await patch(`/users/${seg(u.name)}`, body);
    toast(`User ${u.name} changed.`);
  } catch (e) { toast(`${e.code || 'error'}: ${e.message}`, 'bad'); }
  await reload();
}

function drawTokens(box, users, tokens, reload) {
  const user = select({ name: 'user' }, users.map((u) => [u.name, u.name]), users[0]?.name);
  const role = select({ name: 'role' }, [['', 'the user\'s role'], ...ROLES], '');
  const expires = h('input', { name: 'expires_in', value: '30d', autocomplete: 'off' });
  const form = h('form', { class: 'row', 'aria-label': 'Create a token' },
    field('User', user), field('Role', role), field('Expires in', expires, '30d, 12h, …'),
    h('button', { type: 'submit', class: 'primary' }, 'Create token'));
  const out = h('div', { 'aria-live': 'polite' });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(out);
    try {
      const body = { user: user.value, expires_in: expires.value || undefined };
      if (role.value) body.role = role.value;
      const t = await post('/tokens', body);
      await reload();
      fill(out, h('div', { class: 'secret', role: 'alert' },
        h('p', {}, h('strong', {}, 'Copy this token now: it is not shown again.')),
        h('code', { class: 'mono wrap', id: 'new-token' }, t.token),
        h('p', { class: 'small muted' }, `id ${t.id}, expires ${t.expires_at || 'never'}`)));
    } catch (e) { fill(out, errorBox(e)); }
  });
  fill(box, h('h2', { id: 'tokens-h' }, 'API tokens'),
    table({ text: 'API tokens' }, ['Id', 'User', 'Role', 'State', 'Created', 'Expires', 'Last used', ''],
      tokens.map((t) => h('tr', { dataset: { token: t.id } },
        h('td', { class: 'mono' }, t.id), h('td', {}, t.user), h('td', {}, t.role),
        h('td', {}, t.state ? badge(t.state, t.state === 'active' ? 'ok' : 'muted') : '—'),
        h('td', {}, timeEl(t.created_at)), h('td', {}, t.expires_at ? timeEl(t.expires_at) : 'never'),
        h('td', {}, t.last_used_at ? timeEl(t.last_used_at) : '—'),
        h('td', {}, t.revoked_at ? null : h('button', {
          type: 'button', class: 'quiet danger', 'aria-label': `Revoke token ${t.id}`,
          onclick: async () => {
            try { await del(`/tokens/${seg(t.id)}`); toast(`Token ${t.id} revoked.`); } catch (e) { toast(e.message, 'bad'); }
            await reload();
          },
        }, 'Revoke'))))),
    h('h3', { class: 'small-head' }, 'Create a token'), form, out);
}
