// Building the DOM from nodes, never from markup strings: every text goes in as a text node, so nothing the API
// returns can inject markup (and the Content-Security-Policy forbids inline script anyway).

/** h('a', {href: '#/', class: 'x'}, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An accessible table: caption, header cells with scope, wrapped for narrow screens. */
export function table(caption, headers, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('caption', { class: caption.visible ? '' : 'sr-only' }, caption.text ?? caption),
      h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, rows.length ? rows
        : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, caption.empty || 'Nothing yet.')))));
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

export function select(attrs, options, value) {
  return h('select', attrs, options.map(([v, t]) =>
    h('option', { value: v, selected: v === value }, t)));
}

export function badge(text, kind) {
  return h('span', { class: `badge ${kind || ''}` }, text);
}

/** The state badge of a job or drill. */
export function stateBadge(state) {
  const kind = {
    succeeded: 'ok', verified: 'ok', running: 'info', queued: 'muted', retrying: 'warn',
    failed: 'bad', 'timed-out': 'bad', timed_out: 'bad', cancelled: 'muted', unverified: 'warn',
  }[state] || '';
  return badge(state, kind);
}

/** A page heading plus optional actions on its right. */
export function heading(text, ...actions) {
  return h('div', { class: 'page-head' }, h('h1', {}, text), h('div', { class: 'actions' }, actions));
}

export function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', {}, err.code ? `${err.code}: ` : 'Error: '), err.message || String(err));
}

/** Shows a short message in the status area. */
export function toast(text, kind = 'ok') {
  const t = document.getElementById('toast');
  if (!t) return;
  t.className = kind;
  fill(t, text);
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}
