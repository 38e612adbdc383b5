// The console's shell: who is signed in (GET /api/v1/me), what their role may do (the server's
// role table, /assets/roles.json), hash routing to the pages, and sign-out.
import { api, get, setCsrf, toLogin } from './api.js';
import { h, fill, errorBox } from './dom.js';
import * as fleet from './pages/fleet.js';
import * as drills from './pages/drills.js';
import * as backups from './pages/backups.js';
import * as jobs from './pages/jobs.js';
import * as restore from './pages/restore.js';
import * as audit from './pages/audit.js';
import * as users from './pages/users.js';

// [pattern, page, nav key]; `:name` segments become params.
const ROUTES = [
  ['', fleet.render, 'fleet'],
  ['drills', drills.render, 'drills'],
  ['backups', backups.renderList, 'backups'],
  ['backups/:repository/:id', backups.renderDetail, 'backups'],
  ['jobs', jobs.renderList, 'jobs'],
  ['jobs/:id', jobs.renderDetail, 'jobs'],
  ['restore', restore.render, 'restore'],
  ['audit', audit.render, 'audit'],
  ['users', users.render, 'users'],
];

const main = document.getElementById('main');
let leaving = [];

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const [pattern, render, nav] of ROUTES) {
    const pp = pattern.split('/').filter(Boolean);
    if (pp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pp.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]);
      else if (p !== parts[i]) ok = false;
    });
    if (ok) return { render, nav, params };
  }
  return null;
}

async function route(ctx, focus) {
  for (const f of leaving) f();
  leaving = [];
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, qs] = raw.split('?');
  const m = match(path || '');
  for (const a of document.querySelectorAll('#nav a')) {
    if (m && a.dataset.route === m.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!m) {
    fill(main, h('h1', {}, 'Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Back to the fleet.')));
    return;
  }
  const page = {
    ...ctx,
    params: m.params,
    query: new URLSearchParams(qs || ''),
    onLeave: (f) => leaving.push(f),
  };
  try {
    await m.render(main, page);
  } catch (e) {
    fill(main, errorBox(e));
  }
  if (focus) {
    const h1 = main.querySelector('h1');
    if (h1) { h1.tabIndex = -1; h1.focus(); } else main.focus();
  }
  document.title = `${main.querySelector('h1')?.textContent || 'holdfast'} · holdfast`;
}

async function start() {
  let me;
  let roles;
  try {
    [me, roles] = await Promise.all([get('/me'), fetch('/assets/roles.json').then((r) => r.json())]);
  } catch (e) {
    if (e.status !== 401) fill(main, errorBox(e));
    return;
  }
  setCsrf(me.csrf_token);
  const allowed = new Set(roles[me.role] || []);
  const ctx = { me, can: (action) => allowed.has(action) };
  document.body.dataset.role = me.role;
  fill(document.getElementById('who'), h('span', { class: 'user' }, me.user), ' ', h('span', { class: 'badge' }, me.role));
  for (const li of document.querySelectorAll('[data-needs]')) li.hidden = !ctx.can(li.dataset.needs);
  document.getElementById('logout').addEventListener('click', async () => {
    try { await api('DELETE', '/session'); } catch (_) { /* signed out either way */ }
    toLogin();
  });
  window.addEventListener('hashchange', () => route(ctx, true));
  await route(ctx, false);
}

start();
