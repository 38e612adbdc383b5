//! Prometheus metrics. Job and scheduler metrics are recorded as things happen; the state of
//! backups, the binlog archive, the recoverable window and drills is derived from each
//! repository (and the job counts from the store) every [`REFRESH`], so a restarted daemon
//! reports the truth at once. docs/daemon.md lists every metric.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use holdfast::manifest::BackupSummary;
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

/// Which configured server a repository's facts belong to. A repository may hold the backups of
/// several configured servers (and one binlog archive); each fact that is about one server gets
/// that server's own series, never the servers' names joined.
///
/// - A backup is attributed by its id when the daemon's own job made it (the job's report names
///   the backup), else by its source (`server_id` and host name in its manifest) when a backup
///   attributed by id came from the same source, else to the repository's only configured
///   server. Otherwise it is no configured server's (it counts in the repository's facts only).
/// - The binlog archive (and with it the lag and the recoverable window) is the one configured
///   server's with `binlog = true` on this repository; with several, the one whose backups'
///   `server_id` matches the archive's; failing that, the repository's only configured server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attribution {
    /// The repository's configured servers.
    pub servers: Vec<String>,
    /// Those of them with `binlog = true`.
    pub archiving: Vec<String>,
    /// Backup id → configured server, from the daemon's succeeded backup jobs.
    pub by_backup: BTreeMap<String, String>,
}

/// A backup's source as its manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    pub server_id: u32,
    pub hostname: String,
}

impl Attribution {
    /// The configured server of each backup (`(id, source)`), `None` where none can be named.
    pub fn backups(&self, backups: &[(String, Source)]) -> Vec<Option<String>> {
        let known = |name: &String| self.servers.contains(name);
        // Sources learned from the backups attributed by id; a source seen for two servers
        // names neither.
        let mut by_source: BTreeMap<&Source, Option<&String>> = BTreeMap::new();
        for (id, source) in backups {
            if let Some(name) = self.by_backup.get(id).filter(|n| known(n)) {
                by_source
                    .entry(source)
                    .and_modify(|e| {
                        if *e != Some(name) {
                            *e = None
                        }
                    })
                    .or_insert(Some(name));
            }
        }
        let only = (self.servers.len() == 1).then(|| self.servers[0].clone());
        backups
            .iter()
            .map(|(id, source)| {
                self.by_backup
                    .get(id)
                    .filter(|n| known(n))
                    .cloned()
                    .or_else(|| by_source.get(source).copied().flatten().cloned())
                    .or_else(|| only.clone())
            })
            .collect()
    }

    /// The configured server whose binlog the archive holds: `archive_server_id` is the
    /// `server_id` of its newest segment; `backups` as attributed by [`Self::backups`].
    pub fn archive(
        &self,
        archive_server_id: Option<u32>,
        backups: &[(Source, Option<String>)],
    ) -> Option<String> {
        if self.archiving.len() == 1 {
            return Some(self.archiving[0].clone());
        }
        if let Some(id) = archive_server_id {
            let mut names: Vec<&String> = backups
                .iter()
                .filter(|(s, n)| s.server_id == id && n.is_some())
                .filter_map(|(_, n)| n.as_ref())
                .collect();
            names.sort();
            names.dedup();
            if let [name] = names[..] {
                if self.archiving.is_empty() || self.archiving.contains(name) {
                    return Some(name.clone());
                }
            }
        }
        (self.servers.len() == 1).then(|| self.servers[0].clone())
    }
}

/// One drill, as the alerts need it.
#[derive(Clone, Debug, PartialEq)]
pub struct DrillFact {
    pub id: String,
    pub finished: f64,
    pub passed: bool,
    pub backup: String,
    /// The first failed check.
    pub reason: Option<String>,
    /// The configured server of the backup drilled.
    pub server: Option<String>,
}

/// What one repository shows, as metric values (kept to compare refreshes, e.g. the window).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepositoryFacts {
    /// The configured server whose binlog archive (and recoverable window) this is.
    pub archive_server: Option<String>,
    pub window_start: Option<f64>,
    pub window_end: Option<f64>,
    pub archive_lag_seconds: Option<f64>,
    pub streamer_alive: Option<bool>,
    pub size_bytes: u64,
    /// Every drill recorded in the repository.
    pub drills: Vec<DrillFact>,
    pub newest_backup: Option<f64>,
}

/// Reads one repository and sets its metrics; `who` says which configured server each fact
/// belongs to (see [`Attribution`]). Returns the facts the alerts compare and the typed view the
/// API serves.
pub async fn refresh_repository(
    cfg: &RepositoryConfig,
    who: &Attribution,
) -> holdfast::Result<(RepositoryFacts, RepositoryView)> {
    let repo = crate::repos::open(cfg).await?;
    // Summaries: a refresh every 30 s must not decode every table of every backup.
    let summaries = repo.list_summaries().await?;
    let drills = holdfast::drill::list_records(&repo).await?;
    let inputs = holdfast::status::gather(&repo).await?;
    let pins = holdfast::retention::pins(&repo).await?;
    let segments = holdfast::binlog::archive::Archive::new(repo.storage().clone())
        .segments()
        .await?;
    let now = OffsetDateTime::now_utc();
    let coverage = holdfast::status::assess(&inputs, &holdfast::status::Thresholds::default(), now);
    let repository = cfg.name.clone();
    let mut facts = RepositoryFacts::default();

    let sources: Vec<(String, Source)> = summaries
        .iter()
        .map(|m| {
            (
                m.id.clone(),
                Source {
                    server_id: m.server.server_id,
                    hostname: m.server.hostname.clone(),
                },
            )
        })
        .collect();
    let owners = who.backups(&sources);
    let by_id: BTreeMap<&str, Option<&String>> = summaries
        .iter()
        .zip(&owners)
        .map(|(m, o)| (m.id.as_str(), o.as_ref()))
        .collect();

    // Per server: the newest complete backup per engine (its time and duration), the newest
    // backup's size.
    let mut newest: BTreeMap<(&String, &str), &BackupSummary> = BTreeMap::new();
    let mut newest_any: BTreeMap<&String, &BackupSummary> = BTreeMap::new();
    for (m, owner) in summaries.iter().zip(&owners) {
        let t = ts(m.finished);
        facts.newest_backup = Some(facts.newest_backup.map_or(t, |n| n.max(t)));
        let Some(server) = owner else { continue };
        let e = newest_any.entry(server).or_insert(m);
        if m.finished > e.finished {
            *e = m;
        }
        if m.is_partial() {
            continue;
        }
        let e = newest.entry((server, m.engine.as_str())).or_insert(m);
        if m.finished > e.finished {
            *e = m;
        }
    }
    for ((server, engine), m) in &newest {
        let labels = [
            ("server", server.to_string()),
            ("repository", repository.clone()),
            ("kind", engine.to_string()),
        ];
        gauge!("holdfast_backup_last_success_timestamp_seconds", &labels).set(ts(m.finished));
        gauge!("holdfast_backup_duration_seconds", &labels)
            .set((m.finished - m.started).as_seconds_f64());
    }
    for (server, m) in &newest_any {
        let last: u64 = m.stored_bytes;
        gauge!("holdfast_backup_size_bytes", "server" => server.to_string(), "repository" => repository.clone())
            .set(last as f64);
    }
    let size: u64 = summaries.iter().map(|m| m.stored_bytes).sum();
    facts.size_bytes = size;
    gauge!("holdfast_repository_size_bytes", "repository" => repository.clone()).set(size as f64);
    gauge!("holdfast_backups", "repository" => repository.clone()).set(summaries.len() as f64);

    // The binlog archive and the recoverable window: the archiving server's.
    let attributed: Vec<(Source, Option<String>)> = sources
        .iter()
        .zip(&owners)
        .map(|((_, s), o)| (s.clone(), o.clone()))
        .collect();
    let archive = &coverage.archive;
    facts.archive_server = who.archive(archive.server_id, &attributed);
    facts.archive_lag_seconds = archive.lag_seconds.map(|l| l as f64);
    facts.streamer_alive = Some(archive.streamer == holdfast::status::Streamer::Alive);
    if let Some(w) = &coverage.window {
        facts.window_start = w.from_time.map(ts);
        facts.window_end = w.complete_as_of.or(w.to_time).map(ts);
    }
    if let Some(server) = &facts.archive_server {
        let labels = [
            ("server", server.clone()),
            ("repository", repository.clone()),
        ];
        if let Some(lag) = facts.archive_lag_seconds {
            gauge!("holdfast_binlog_archive_lag_seconds", &labels).set(lag);
        }
        if let Some(start) = facts.window_start {
            gauge!(
                "holdfast_recoverable_window_start_timestamp_seconds",
                &labels
            )
            .set(start);
        }
        if let Some(end) = facts.window_end {
            gauge!("holdfast_recoverable_window_end_timestamp_seconds", &labels).set(end);
        }
    } else if archive.lag_seconds.is_some() || coverage.window.is_some() {
        tracing::debug!(
            repository,
            "the binlog archive is no configured server's: no archive lag or window series"
        );
    }

    // Drills: repository facts (the ratio of all drills recorded there).
    let passed: Vec<_> = drills.iter().filter(|d| d.passed()).collect();
    if let Some(last) = passed.iter().map(|d| d.finished).max() {
        gauge!("holdfast_drill_last_success_timestamp_seconds", "repository" => repository.clone())
            .set(ts(last));
    }
    if !drills.is_empty() {
        gauge!("holdfast_drill_success_ratio", "repository" => repository.clone())
            .set(passed.len() as f64 / drills.len() as f64);
    }
    facts.drills = drills
        .iter()
        .map(|d| DrillFact {
            id: d.id.clone(),
            finished: ts(d.finished),
            passed: d.passed(),
            backup: d.backup_id.clone(),
            reason: d.reason.clone(),
            server: by_id.get(d.backup_id.as_str()).copied().flatten().cloned(),
        })
        .collect();

    let mut backups: Vec<BackupFacts> = summaries
        .iter()
        .zip(&owners)
        .map(|(m, owner)| BackupFacts::of(m, owner.clone()))
        .collect();
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

/// Each repository's [`Attribution`]: its configured servers, the archiving ones, and the
/// backups the daemon's own succeeded jobs made (`(server, repository, backup id)`).
pub fn attributions(
    config: &Config,
    made: &[(String, String, String)],
) -> BTreeMap<String, Attribution> {
    let mut map: BTreeMap<String, Attribution> = BTreeMap::new();
    for s in &config.server {
        let a = map.entry(s.repository.clone()).or_default();
        a.servers.push(s.name.clone());
        if s.binlog {
            a.archiving.push(s.name.clone());
        }
    }
    for (server, repository, id) in made {
        if let Some(a) = map.get_mut(repository) {
            a.by_backup.insert(id.clone(), server.clone());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(id: u32, host: &str) -> Source {
        Source {
            server_id: id,
            hostname: host.into(),
        }
    }

    fn who(servers: &[&str], archiving: &[&str], made: &[(&str, &str)]) -> Attribution {
        Attribution {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            archiving: archiving.iter().map(|s| s.to_string()).collect(),
            by_backup: made
                .iter()
                .map(|(id, s)| (id.to_string(), s.to_string()))
                .collect(),
        }
    }

    #[test]
    fn backups_are_attributed_to_one_server_each() {
        let backups = vec![
            ("b1".to_string(), src(1, "h1")),
            ("b2".to_string(), src(2, "h2")),
            ("b3".to_string(), src(1, "h1")), // manual, same source as b1
            ("b4".to_string(), src(3, "h3")), // manual, unknown source
        ];
        let some = |s: &str| Some(s.to_string());
        let cases: Vec<(Attribution, Vec<Option<String>>)> = vec![
            // One configured server: everything is its.
            (who(&["db1"], &[], &[]), vec![some("db1"); 4]),
            // Two: by id, then by source; the unknown one is no one's.
            (
                who(&["db1", "db2"], &[], &[("b1", "db1"), ("b2", "db2")]),
                vec![some("db1"), some("db2"), some("db1"), None],
            ),
            // A job of a server no longer configured names nobody.
            (
                who(&["db1", "db2"], &[], &[("b1", "gone")]),
                vec![None, None, None, None],
            ),
            // One source made by two servers (a failover): the source names neither.
            (
                who(&["db1", "db2"], &[], &[("b1", "db1"), ("b3", "db2")]),
                vec![some("db1"), None, some("db2"), None],
            ),
        ];
        for (a, expected) in cases {
            assert_eq!(a.backups(&backups), expected, "{a:?}");
        }
    }

    #[test]
    fn the_archive_is_one_servers() {
        let backups = vec![
            (src(1, "h1"), Some("db1".to_string())),
            (src(2, "h2"), Some("db2".to_string())),
        ];
        let some = |s: &str| Some(s.to_string());
        let cases = [
            (who(&["db1", "db2"], &["db2"], &[]), Some(1), some("db2")),
            (
                who(&["db1", "db2"], &["db1", "db2"], &[]),
                Some(2),
                some("db2"),
            ),
            (who(&["db1", "db2"], &["db1", "db2"], &[]), Some(9), None),
            (who(&["db1", "db2"], &[], &[]), None, None),
            (who(&["db1", "db2"], &[], &[]), Some(1), some("db1")),
            (who(&["db1"], &[], &[]), None, some("db1")),
        ];
        for (a, id, expected) in cases {
            assert_eq!(a.archive(id, &backups), expected, "{a:?} {id:?}");
        }
    }

    #[test]
    fn attributions_per_repository() {
        let cfg: Config = toml::from_str(
            r#"
[[repository]]
name = "main"
url = "file:///tmp/x"
[[server]]
name = "db1"
source = "mysql://u@h1/"
repository = "main"
binlog = true
[[server]]
name = "db2"
source = "mysql://u@h2/"
repository = "main"
"#,
        )
        .unwrap();
        let made = [("db2".to_string(), "main".to_string(), "b7".to_string())];
        let map = attributions(&cfg, &made);
        let a = &map["main"];
        assert_eq!(a.servers, ["db1", "db2"]);
        assert_eq!(a.archiving, ["db1"]);
        assert_eq!(a.by_backup["b7"], "db2");
    }
}
