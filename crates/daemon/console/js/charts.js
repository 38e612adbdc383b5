// Small SVG charts built with DOM calls (the Content-Security-Policy allows no inline markup).
import { h } from './dom.js';
import { duration, time } from './format.js';

const NS = 'http://www.w3.org/2000/svg';

function s(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) if (c) el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return el;
}

/**
 * The recoverable window of a server on a time axis ending now: the span in which a restore
 * or PITR can land, and the stretch from its end to now that nothing covers (the exposure).
 */
export function timeline(win, opts = {}) {
  const now = Date.now();
  const day = 86400e3;
  const start = win && win.start ? Date.parse(win.start) : null;
  const end = win && win.end ? Date.parse(win.end) : null;
  const span = opts.span || Math.min(30 * day, Math.max(day, start ? (now - start) * 1.1 : day));
  const from = now - span;
  const x = (t) => Math.max(0, Math.min(1000, ((t - from) / span) * 1000));
  const svg = s('svg', {
    viewBox: '0 0 1000 20', preserveAspectRatio: 'none', class: 'timeline', focusable: 'false',
    'aria-hidden': 'true',
  });
  svg.appendChild(s('rect', { x: 0, y: 6, width: 1000, height: 8, class: 'tl-axis' }));
  if (start !== null && end !== null) {
    svg.appendChild(s('rect', { x: x(start), y: 2, width: Math.max(2, x(end) - x(start)), height: 16, class: 'tl-window' },
      s('title', {}, `recoverable ${time(win.start)} to ${time(win.end)}`)));
    if (x(end) < 1000) {
      svg.appendChild(s('rect', { x: x(end), y: 6, width: 1000 - x(end), height: 8, class: 'tl-gap' }));
    }
  }
  svg.appendChild(s('rect', { x: 997, y: 0, width: 3, height: 20, class: 'tl-now' }));
  const label = start !== null && end !== null
    ? `Recoverable from ${time(win.start)} to ${time(win.end)} (${duration((end - start) / 1000)}); ${duration((now - end) / 1000)} not covered up to now`
    : 'No recoverable window';
  return h('div', { class: 'timeline-box', role: 'img', 'aria-label': label, title: label }, svg,
    h('div', { class: 'tl-scale', 'aria-hidden': 'true' },
      h('span', {}, `${duration(span / 1000)} ago`), h('span', {}, 'now')));
}

/** RTO of each passed drill, oldest first, as bars; the largest is labelled. */
export function trend(values, label) {
  if (!values || values.length === 0) return h('p', { class: 'muted' }, 'No passed drills in this period.');
  // The tallest bar is the largest RTO (a fixed floor would flatten sub-second drills and
  // misstate the largest).
  const max = Math.max(...values) || 1;
  const n = values.length;
  const w = 1000 / n;
  const svg = s('svg', { viewBox: '0 0 1000 200', preserveAspectRatio: 'none', class: 'trend', 'aria-hidden': 'true' });
  values.forEach((v, i) => {
    const bh = Math.max(2, (v / max) * 190);
    svg.appendChild(s('rect', { x: i * w + w * 0.15, y: 200 - bh, width: Math.max(1, w * 0.7), height: bh, class: 'bar' },
      s('title', {}, `drill ${i + 1}: ${duration(v)}`)));
  });
  const summary = `${label}: ${n} drills, oldest ${duration(values[0])}, newest ${duration(values[n - 1])}, largest ${duration(max)}`;
  return h('figure', { class: 'chart' },
    h('div', { class: 'chart-y', 'aria-hidden': 'true' }, h('span', {}, duration(max)), h('span', {}, '0')),
    h('div', { class: 'chart-plot', role: 'img', 'aria-label': summary }, svg),
    h('figcaption', { class: 'muted small' }, `${label}, oldest first (${n} drills)`));
}
