//! Prometheus metrics. Job and scheduler metrics are recorded as things happen; the state of
//! backups, the binlog archive, the recoverable window and drills is derived from each
//! repository (and the job counts from the store) every [`REFRESH`], so a restarted daemon
//! reports the truth at once. docs/daemon.md lists every metric.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use crate::config::{Config, RepositoryConfig};
use crate::fleet::{ArchiveFacts, BackupFacts, RepositoryView};
use crate::jobs::{Job, JobState};

/// How often repository-derived metrics are refreshed.
pub const REFRESH: Duration = Duration::from_secs(30);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's metrics recorder (once) and returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
                ])
                .expect("static buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed (never in the daemon binary).
            let _ = metrics::set_global_recorder(recorder);
            gauge!("holdfast_up").set(1.0);
            gauge!("holdfast_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

fn ts(t: OffsetDateTime) -> f64 {
    t.unix_timestamp_nanos() as f64 / 1e9
}

/// A job's attempt ended.
pub fn job_attempt_finished(job: &Job, outcome: &str, seconds: f64, retrying: bool) {
    let labels = [
        ("server", job.spec.server.clone()),
        ("kind", job.spec.kind.as_str().to_string()),
        ("outcome", outcome.to_string()),
    ];
    histogram!("holdfast_job_duration_seconds", &labels).record(seconds);
    if retrying {
        counter!(
            "holdfast_job_retries_total",
            "server" => job.spec.server.clone(),
            "kind" => job.spec.kind.as_str()
        )
        .increment(1);
    }
}

/// A schedule's planned run was missed (the daemon was down or busy past it).
pub fn schedule_missed(server: &str, schedule: &str, missed: u32) {
    counter!("holdfast_schedule_missed_total", "server" => server.to_string(), "schedule" => schedule.to_string())
        .increment(u64::from(missed));
}

/// How late a job started after its planned time.
pub fn schedule_jitter(seconds: f64) {
    histogram!("holdfast_schedule_jitter_seconds").record(seconds.max(0.0));
}

/// The supervised binlog archiver of a server is running or not; counts restarts.
pub fn archiver_up(server: &str, up: bool) {
    gauge!("holdfast_binlog_archiver_up", "server" => server.to_string()).set(if up {
        1.0
    } else {
        0.0
    });
}

pub fn archiver_restarted(server: &str) {
    counter!("holdfast_binlog_archiver_restarts_total", "server" => server.to_string())
        .increment(1);
}

/// Jobs per state, from the store.
pub fn jobs_by_state(counts: &[(JobState, i64)]) {
    for state in JobState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        gauge!("holdfast_jobs", "state" => state.as_str()).set(n as f64);
    }
}

/// What one repository shows, as metric values (kept to compare refreshes, e.g. the window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepositoryFacts {
    pub window_start: Option<f64>,
    pub window_end: Option<f64>,
    pub archive_lag_seconds: Option<f64>,
    pub streamer_alive: Option<bool>,
    pub size_bytes: u64,
    /// Failed drills: id and finish time.
    pub drill_failures: Vec<(String, f64)>,
    pub newest_backup: Option<f64>,
}

/// Reads one repository and sets its metrics. `servers` are the configured servers writing to it
/// (their names label the backup and archive metrics). Returns the facts the alerts compare and
/// the typed view the API serves.
pub async fn refresh_repository(
    cfg: &RepositoryConfig,
    servers: &[String],
) -> holdfast::Result<(RepositoryFacts, RepositoryView)> {
    let repo = crate::repos::open(cfg).await?;
    let manifests = repo.list_backups().await?;
    let drills = holdfast::drill::list_records(&repo).await?;
    let inputs = holdfast::status::gather(&repo).await?;
    let pins = holdfast::retention::pins(&repo).await?;
    let segments = holdfast::binlog::archive::Archive::new(repo.storage().clone())
        .segments()
        .await?;
    let now = OffsetDateTime::now_utc();
    let coverage = holdfast::status::assess(&inputs, &holdfast::status::Thresholds::default(), now);
    let repository = cfg.name.clone();
    let server = servers.join(",");
    let mut facts = RepositoryFacts::default();

    // Newest complete backup per engine; its duration and size.
    let mut newest: BTreeMap<&str, &holdfast::manifest::BackupManifest> = BTreeMap::new();
    for m in manifests.iter().filter(|m| !m.is_partial()) {
        let e = newest.entry(m.engine.as_str()).or_insert(m);
        if m.finished > e.finished {
            *e = m;
        }
    }
    for (engine, m) in &newest {
        let labels = [
            ("server", server.clone()),
            ("repository", repository.clone()),
            ("kind", engine.to_string()),
        ];
        gauge!("holdfast_backup_last_success_timestamp_seconds", &labels).set(ts(m.finished));
        gauge!("holdfast_backup_duration_seconds", &labels)
            .set((m.finished - m.started).as_seconds_f64());
        let t = ts(m.finished);
        facts.newest_backup = Some(facts.newest_backup.map_or(t, |n| n.max(t)));
    }
    let size: u64 = manifests
        .iter()
        .flat_map(|m| m.files.iter())
        .map(|f| f.size)
        .sum();
    facts.size_bytes = size;
    if let Some(m) = manifests.iter().max_by_key(|m| m.finished) {
        let last: u64 = m.files.iter().map(|f| f.size).sum();
        gauge!("holdfast_backup_size_bytes", "server" => server.clone(), "repository" => repository.clone())
            .set(last as f64);
    }
    gauge!("holdfast_repository_size_bytes", "repository" => repository.clone()).set(size as f64);
    gauge!("holdfast_backups", "repository" => repository.clone()).set(manifests.len() as f64);

    // The binlog archive and the recoverable window.
    let archive = &coverage.archive;
    if let Some(lag) = archive.lag_seconds {
        gauge!("holdfast_binlog_archive_lag_seconds", "server" => server.clone(), "repository" => repository.clone())
            .set(lag as f64);
        facts.archive_lag_seconds = Some(lag as f64);
    }
    facts.streamer_alive = Some(archive.streamer == holdfast::status::Streamer::Alive);
    if let Some(w) = &coverage.window {
        facts.window_start = w.from_time.map(ts);
        facts.window_end = w.complete_as_of.or(w.to_time).map(ts);
        if let Some(start) = facts.window_start {
            gauge!("holdfast_recoverable_window_start_timestamp_seconds", "server" => server.clone(), "repository" => repository.clone())
                .set(start);
        }
        if let Some(end) = facts.window_end {
            gauge!("holdfast_recoverable_window_end_timestamp_seconds", "server" => server.clone(), "repository" => repository.clone())
                .set(end);
        }
    }

    // Drills.
    let passed: Vec<_> = drills.iter().filter(|d| d.passed()).collect();
    if let Some(last) = passed.iter().map(|d| d.finished).max() {
        gauge!("holdfast_drill_last_success_timestamp_seconds", "repository" => repository.clone())
            .set(ts(last));
    }
    if !drills.is_empty() {
        gauge!("holdfast_drill_success_ratio", "repository" => repository.clone())
            .set(passed.len() as f64 / drills.len() as f64);
    }
    facts.drill_failures = drills
        .iter()
        .filter(|d| !d.passed())
        .map(|d| (d.id.clone(), ts(d.finished)))
        .collect();

    let mut backups: Vec<BackupFacts> = manifests.iter().map(BackupFacts::of).collect();
    backups.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
    let event_time = |s: u32| OffsetDateTime::from_unix_timestamp(i64::from(s)).ok();
    let view = RepositoryView {
        name: cfg.name.clone(),
        read: true,
        backups,
        pins: pins.into_iter().map(|p| (p.backup.clone(), p)).collect(),
        drills,
        archive: ArchiveFacts {
            segments: segments.len() as u64,
            bytes: segments.iter().map(|s| s.object.size).sum(),
            lag_seconds: facts.archive_lag_seconds,
            streaming: archive
                .state
                .map(|_| archive.streamer == holdfast::status::Streamer::Alive),
            range: match (segments.first(), segments.last()) {
                (Some(a), Some(b)) => {
                    event_time(a.first_event_time).zip(event_time(b.last_event_time))
                }
                _ => None,
            },
        },
        window: coverage
            .window
            .as_ref()
            .and_then(|w| w.from_time.zip(w.complete_as_of.or(w.to_time))),
        gaps: coverage
            .window
            .as_ref()
            .map(|w| w.gaps.clone())
            .unwrap_or_default(),
        size_bytes: size,
        problems: coverage
            .problems
            .iter()
            .map(|p| p.message.clone())
            .collect(),
        ..RepositoryView::empty(now)
    };
    Ok((facts, view))
}

/// The configured servers writing to each repository.
pub fn servers_by_repository(config: &Config) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in &config.server {
        map.entry(s.repository.clone())
            .or_default()
            .push(s.name.clone());
    }
    map
}
