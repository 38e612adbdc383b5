// Drill dashboard: do restores work, and how long do they take? Success rate, mean and p95 RTO
// with their trend, coverage of backups and of the binlog archive, the newest failures.
import { get, query, seg } from '../api.js';
import { h, fill, heading, table, field, select, stateBadge } from '../dom.js';
import { duration, percent, timeEl, time } from '../format.js';
import { trend } from '../charts.js';

const PERIODS = [['7d', 'last 7 days'], ['30d', 'last 30 days'], ['90d', 'last 90 days'], ['3650d', 'all']];

export async function render(main, ctx) {
  const since = ctx.query.get('since') || '30d';
  // The API reports on one repository at a time (and refuses to guess among several): one
  // report per configured repository.
  const repos = ((await get('/repositories?limit=500')).items || []).map((r) => r.name);
  const reports = await Promise.all(repos.map(async (repository) =>
    ({ repository, ...(await get(`/drills/report${query({ since, repository })}`)) })));
  const period = select({ id: 'drill-since' }, PERIODS, since);
  period.addEventListener('change', () => { location.hash = `#/drills?since=${seg(period.value)}`; });
  fill(main,
    heading('Drills', field('Period', period)),
    reports.map((r) => section(r, reports.length > 1)));
}

function section(r, named) {
  const tiles = h('section', { class: 'tiles', 'aria-label': 'Drill summary' },
    tile('Success rate', percent(r.success_rate), r.success_rate === 1 ? 'ok' : r.failed ? 'bad' : '',
      `${r.passed} of ${r.drills} drills passed`),
    tile('Mean RTO', duration(r.rto_mean_seconds)),
    tile('p95 RTO', duration(r.rto_p95_seconds)),
    tile('Backup coverage', percent(r.coverage), r.coverage === 1 ? 'ok' : r.coverage !== null && r.coverage !== undefined ? 'warn' : '',
      `${r.backups_verified} of ${r.backups} backups verified`),
    tile('Archive coverage', percent(r.archive_coverage), '',
      r.archive ? `${duration(r.archive.covered_seconds)} of ${duration(r.archive.seconds)} replayed` : 'no archive'));
  const failures = table({ text: 'Newest failed drills', visible: true, empty: 'No failed drills in this period.' },
    ['When', 'Kind', 'Backup', 'Reason'],
    (r.failures || []).map((f) => h('tr', {},
      h('td', {}, timeEl(f.at)), h('td', {}, f.kind),
      h('td', {}, r.repository ? h('a', { href: `#/backups/${seg(r.repository)}/${seg(f.backup_id)}` }, f.backup_id) : f.backup_id),
      h('td', { class: 'wrap' }, f.reason))));
  return h('section', { class: 'report' },
    named ? h('h2', {}, `Repository ${r.repository}`) : null,
    h('p', { class: 'muted small' }, r.since ? `Drills finished since ${time(r.since)}.` : 'All drills.'),
    tiles,
    h('h2', { class: 'sub' }, 'RTO trend'),
    trend(r.rto_trend_seconds, 'Recovery time of each passed drill'),
    r.drills ? null : h('p', { class: 'muted' }, 'No drills in this period: schedule `drill` jobs to prove the backups restore.'),
    failures,
    stateLegend());
}

function tile(label, value, kind, sub) {
  return h('div', { class: `tile ${kind || ''}` },
    h('span', { class: 'tile-label' }, label),
    h('span', { class: 'tile-value' }, value),
    sub ? h('span', { class: 'tile-sub' }, sub) : null);
}

function stateLegend() {
  return h('p', { class: 'muted small' }, 'A backup is ', stateBadge('verified'), ' when its newest drill passed, ',
    stateBadge('failed'), ' when it failed, ', stateBadge('unverified'), ' when never drilled (see Backups).');
}
