// The sign-in page: POST /api/v1/session, then back to the console.
import { api, ApiError } from './api.js';

const form = document.getElementById('login-form');
const err = document.getElementById('login-error');
const user = document.getElementById('user');
const password = document.getElementById('password');
const submit = document.getElementById('login-submit');

function showError(text) {
  err.textContent = text;
  err.hidden = false;
}

function nextHash() {
  const n = new URLSearchParams(location.search).get('next') || '#/';
  // Only a hash inside the console: never an open redirect.
  return n.startsWith('#/') ? n : '#/';
}

user.focus();
form.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  err.hidden = true;
  if (!user.value || !password.value) {
    showError('Enter your user name and password.');
    (user.value ? password : user).focus();
    return;
  }
  submit.disabled = true;
  try {
    await api('POST', '/session', { user: user.value, password: password.value });
    location.assign(`/${nextHash()}`);
  } catch (e) {
    password.value = '';
    password.focus();
    if (e instanceof ApiError && e.status === 429) showError('Too many failed sign-ins: wait a minute, then try again.');
    else if (e instanceof ApiError && e.status === 401) showError('User name or password is wrong (or the user is disabled).');
    else showError(e.message || String(e));
  } finally {
    submit.disabled = false;
  }
});
