// The console's only way to the server: the HTTP API under /api/v1. The server decides every
// request by the caller's role; the console only hides what the role cannot use.

let csrf = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) { csrf = token || null; }

/** Sends to the login page, coming back to where we were. */
export function toLogin() {
  const next = encodeURIComponent(location.hash || '#/');
  location.assign(`/login?next=${next}`);
}

/**
 * One API request. `body` is sent as JSON. Mutating requests carry the session's CSRF token.
 * A 401 sends the browser to the login page (the session expired or was revoked).
 */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  const r = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  if (r.status === 401 && path !== '/session') {
    toLogin();
    throw new ApiError(401, 'unauthenticated', 'Signed out: sign in again.');
  }
  if (r.status === 204) return null;
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!r.ok) {
    const e = data && data.error;
    throw new ApiError(r.status, e ? e.code : `http-${r.status}`,
      e ? e.message : `${r.status} ${r.statusText}`);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const patch = (path, body) => api('PATCH', path, body);
export const del = (path) => api('DELETE', path);

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The path segment, escaped. */
export const seg = (s) => encodeURIComponent(s);
