//! `holdfast daemon` end to end: the real binary with second-level cron schedules against
//! throwaway MariaDB servers, its SQLite job store read back by the test, a real HTTP receiver
//! standing in for the alert webhook.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use holdfast_daemon::jobs::{Job, JobKind, JobState, Transition, Trigger};
use holdfast_daemon::store::{JobFilter, JobStore};
use holdfast_testkit::{HttpReceiver, TestServer};

/// A daemon process with its own config, store and log.
struct Daemon {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    env: Vec<(String, String)>,
}

impl Daemon {
    /// Writes `config` (with `{state}`, `{listen}` filled in) and starts the daemon.
    fn start(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = holdfast_testkit::free_port();
        let mut d = Daemon {
            dir,
            child: None,
            port,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let text = config
            .replace("{state}", &d.state_path().display().to_string())
            .replace("{listen}", &format!("127.0.0.1:{port}"));
        std::fs::write(d.config_path(), text).unwrap();
        d.spawn();
        d
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("holdfast.toml")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["--log-format", "json", "daemon", "--config"])
            .arg(self.config_path())
            .env_remove("MYSQL_PWD")
            .env_remove("HOLDFAST_PASSWORD")
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start holdfast daemon"));
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited early ({status}):\n{}", self.log());
            }
            if http_get(self.port, "/readyz").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("daemon not ready within 60 s:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, sig) };
    }

    /// SIGTERM, and the exit status.
    fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not stop within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn metrics(&self) -> String {
        http_get(self.port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal(libc::SIGTERM);
            std::thread::sleep(Duration::from_millis(500));
            self.kill9();
        }
    }
}

/// A GET on loopback with a raw HTTP/1.0 request: status and body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

async fn store(path: &Path) -> Box<dyn JobStore> {
    holdfast_daemon::store::open(&path.display().to_string(), None)
        .await
        .expect("open the daemon's store")
}

async fn jobs(path: &Path) -> Vec<Job> {
    let mut jobs = store(path).await.jobs(&JobFilter::default()).await.unwrap();
    jobs.sort_by_key(|j| j.id);
    jobs
}

async fn transitions(path: &Path, id: i64) -> Vec<Transition> {
    store(path).await.transitions(id).await.unwrap()
}

/// Polls until `done` holds for the store's jobs, or panics with the daemon's log.
async fn wait_jobs(
    d: &Daemon,
    within: Duration,
    what: &str,
    done: impl Fn(&[Job]) -> bool,
) -> Vec<Job> {
    let deadline = Instant::now() + within;
    loop {
        let jobs = jobs(&d.state_path()).await;
        if done(&jobs) {
            return jobs;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {within:?}; jobs: {jobs:#?}\nlog:\n{}",
                d.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn count(jobs: &[Job], state: JobState) -> usize {
    jobs.iter().filter(|j| j.state == state).count()
}

fn backup_ids(repo: &Repo) -> Vec<String> {
    let out = holdfast(&["--json", "list", "--repo", &repo.url()]);
    assert_ok(&out, "list");
    json(&out)["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn config(repo: &Repo, server: &TestServer, schedules: &str, extra_server: &str) -> String {
    format!(
        r#"
[daemon]
listen = "{{listen}}"
state = "{{state}}"
lease = "5s"
shutdown_grace = "2s"

[[repository]]
name = "main"
url = "{repo}"

[[server]]
name = "db1"
source = "{source}"
repository = "main"
{extra_server}
{schedules}
"#,
        repo = repo.url(),
        source = server.url(),
    )
}

fn webhook(receiver: &HttpReceiver) -> String {
    format!(
        r#"
[[notifier]]
kind = "webhook"
name = "hook"
url = "{}"
"#,
        receiver.url("/hook")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_run_on_time_and_show_in_metrics() {
    let server = TestServer::start();
    let repo = Repo::init();
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "backup"
cron = "*/4 * * * * *"
"#,
        "",
    );
    let d = Daemon::start(&cfg, &[]);
    let jobs = wait_jobs(&d, Duration::from_secs(90), "two scheduled backups", |j| {
        count(j, JobState::Succeeded) >= 2
    })
    .await;
    let done: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.state == JobState::Succeeded)
        .collect();
    for job in &done {
        assert_eq!(job.spec.trigger, Trigger::Schedule);
        let planned = job.spec.planned_at.expect("planned");
        assert_eq!(planned % 4000, 0, "planned on the cron's 4-second ticks");
        let ts = transitions(&d.state_path(), job.id).await;
        let started = ts
            .iter()
            .find(|t| t.to == JobState::Running)
            .expect("ran")
            .at;
        assert!(
            (0..3000).contains(&(started - planned)),
            "job {} started {} ms after its planned time",
            job.id,
            started - planned
        );
        assert_eq!(
            ts.iter().map(|t| t.to).collect::<Vec<_>>(),
            [JobState::Queued, JobState::Running, JobState::Succeeded]
        );
    }
    let listed = backup_ids(&repo);
    assert!(listed.len() >= 2, "backups listed: {listed:?}");
    for job in &done {
        let id = job
            .result
            .as_ref()
            .and_then(|r| r["id"].as_str())
            .expect("report has the backup id");
        assert!(listed.contains(&id.to_string()), "{id} listed");
    }
    let m = d.metrics();
    assert!(m.contains("holdfast_jobs{state=\"succeeded\"}"), "{m}");
    assert!(m.contains("holdfast_schedule_jitter_seconds"), "{m}");

    // `holdfast daemon --jobs` reads the same store: newest first, with the backup made.
    let config = d.config_path().display().to_string();
    let out = holdfast(&[
        "--json", "daemon", "--config", &config, "--jobs", "--limit", "50",
    ]);
    assert_ok(&out, "daemon --jobs --json");
    let listed = json(&out)["jobs"].as_array().unwrap().clone();
    let ids: Vec<i64> = listed.iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    for job in &done {
        assert!(ids.contains(&job.id), "job {} listed: {ids:?}", job.id);
    }
    let out = holdfast(&["daemon", "--config", &config, "--jobs"]);
    assert_ok(&out, "daemon --jobs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("    ID  STATE"), "{text}");
    let backup = done[0].result.as_ref().unwrap()["id"].as_str().unwrap();
    assert!(text.contains(&format!("backup {backup}")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_once_without_retry_and_alerts_once() {
    let server = TestServer::start();
    let repo = Repo::init();
    let receiver = HttpReceiver::start().await;
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "backup"
cron = "*/2 * * * * *"
attempts = 3
backoff = "1s"
"#,
        "password_env = \"DB1_PASSWORD\"",
    ) + &webhook(&receiver);
    let d = Daemon::start(&cfg, &[("DB1_PASSWORD", "certainly-wrong")]);
    let jobs = wait_jobs(&d, Duration::from_secs(60), "three failed backups", |j| {
        count(j, JobState::Failed) >= 3
    })
    .await;
    for job in jobs.iter().filter(|j| j.state == JobState::Failed) {
        assert_eq!(job.exit_code, Some(11), "auth exit code");
        assert_eq!(job.attempt, 1, "not retried: {job:?}");
        let ts = transitions(&d.state_path(), job.id).await;
        assert!(!ts.iter().any(|t| t.to == JobState::Retrying), "{ts:?}");
        assert!(
            job.last_error
                .as_deref()
                .unwrap_or("")
                .to_lowercase()
                .contains("access denied")
                || job
                    .last_error
                    .as_deref()
                    .unwrap_or("")
                    .contains("credentials"),
            "error names the cause: {:?}",
            job.last_error
        );
    }
    // Several failures of the same incident: exactly one message.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = receiver.requests();
    assert_eq!(
        got.len(),
        1,
        "one alert for the incident: {:#?}",
        got.iter().map(|r| r.body_text()).collect::<Vec<_>>()
    );
    let body = got[0].json();
    assert_eq!(body["event"], "job-failed", "{body}");
    assert!(body.to_string().contains("db1"), "{body}");
    assert!(
        !body.to_string().contains("certainly-wrong"),
        "no secret in the alert"
    );
    assert!(!d.log().contains("certainly-wrong"), "no secret in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_then_back_is_retried_with_backoff_and_recovers() {
    let mut server = TestServer::start();
    let repo = Repo::init();
    let receiver = HttpReceiver::start().await;
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "backup"
cron = "*/6 * * * * *"
attempts = 2
backoff = "1s"
backoff_cap = "2s"
"#,
        "",
    ) + &webhook(&receiver);
    server.stop();
    let d = Daemon::start(&cfg, &[]);
    let jobs = wait_jobs(&d, Duration::from_secs(60), "a failed backup", |j| {
        count(j, JobState::Failed) >= 1
    })
    .await;
    let failed = jobs.iter().find(|j| j.state == JobState::Failed).unwrap();
    assert_eq!(failed.exit_code, Some(10), "connect exit code");
    assert_eq!(failed.attempt, 2, "retried once");
    let ts = transitions(&d.state_path(), failed.id).await;
    let states: Vec<_> = ts.iter().map(|t| t.to).collect();
    assert_eq!(
        states,
        [
            JobState::Queued,
            JobState::Running,
            JobState::Retrying,
            JobState::Running,
            JobState::Failed
        ]
    );
    receiver.wait_for(1, Duration::from_secs(20)).await;
    server.restart();
    wait_jobs(
        &d,
        Duration::from_secs(60),
        "a backup after the server is back",
        |j| count(j, JobState::Succeeded) >= 1,
    )
    .await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    let bodies: Vec<serde_json::Value> = got.iter().map(|r| r.json()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(bodies[0]["status"], "firing", "{bodies:#?}");
    assert_eq!(
        bodies[1]["status"], "resolved",
        "recovery message: {bodies:#?}"
    );
    assert_eq!(bodies[0]["key"], bodies[1]["key"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backup_cancels_it_cleanly() {
    let server = TestServer::start();
    server.sql("CREATE DATABASE big");
    server.sql("CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(200))");
    server.sql("INSERT INTO big.t SELECT seq, CONCAT(MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())) FROM big.seq_1_to_60000");
    let repo = Repo::init();
    // 128 KiB/s makes the backup of ~4 MB (compressed) take long enough to be stopped in the middle.
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "backup"
cron = "*/2 * * * * *"
"#,
        "",
    )
    .replace(
        "url = \"file://",
        "max_rate = \"128KiB/s\"\nurl = \"file://",
    );
    let mut d = Daemon::start(&cfg, &[]);
    wait_jobs(&d, Duration::from_secs(30), "a running backup", |j| {
        count(j, JobState::Running) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "daemon exit: {status}\n{}", d.log());
    let jobs = jobs(&d.state_path()).await;
    assert_eq!(count(&jobs, JobState::Running), 0, "{jobs:#?}");
    assert!(count(&jobs, JobState::Cancelled) >= 1, "{jobs:#?}");
    assert_eq!(
        backup_ids(&repo),
        Vec::<String>::new(),
        "no partial backup listed"
    );
    let out = holdfast(&["verify", "--all", "--repo", &repo.url()]);
    assert_ok(&out, "verify after the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_downtime_catches_up_once() {
    let server = TestServer::start();
    let repo = Repo::init();
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "verify"
cron = "*/2 * * * * *"
"#,
        "",
    );
    let mut d = Daemon::start(&cfg, &[]);
    wait_jobs(&d, Duration::from_secs(30), "a verify", |j| {
        count(j, JobState::Succeeded) >= 1
    })
    .await;
    assert!(d.terminate(Duration::from_secs(30)).success());
    let last_before = jobs(&d.state_path())
        .await
        .iter()
        .filter_map(|j| j.spec.planned_at)
        .max()
        .unwrap();
    // Down for 4 or more planned runs.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let restarted = holdfast_daemon::time::now_millis();
    d.spawn();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = jobs(&d.state_path()).await;
    let for_downtime: Vec<&Job> = after
        .iter()
        .filter(|j| {
            j.spec
                .planned_at
                .is_some_and(|p| p > last_before && p <= restarted)
        })
        .collect();
    assert_eq!(
        for_downtime.len(),
        1,
        "the planned runs missed while down run once, not once per missed tick: {after:#?}"
    );
    let m = d.metrics();
    let missed: f64 = m
        .lines()
        .find(|l| l.starts_with("holdfast_schedule_missed_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(missed >= 3.0, "the misses are counted: {m}");
}

/// Two daemons share a PostgreSQL job store; one is killed with SIGKILL in the middle of a
/// backup. The other rescues the job after its lease, no schedule fires twice, and no two
/// backups of one server ever run at once (checked from the recorded transitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_on_postgres_rescue_a_killed_daemons_job() {
    let pg = holdfast_testkit::PgServer::start();
    let store_url = pg.create_database("jobs");
    let pw_dir = tempfile::tempdir().unwrap();
    let pw_file = pw_dir.path().join("pg.pass");
    std::fs::write(&pw_file, pg.password()).unwrap();
    let server = TestServer::start();
    server.sql("CREATE DATABASE big");
    server.sql("CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(200))");
    server.sql(
        "INSERT INTO big.t SELECT seq, CONCAT(MD5(RAND()), MD5(RAND())) FROM big.seq_1_to_40000",
    );
    let repo = Repo::init();
    let daemon_cfg = |worker: &str| {
        config(
            &repo,
            &server,
            r#"
[[server.schedule]]
job = "backup"
cron = "*/5 * * * * *"
"#,
            "",
        )
        .replace(
            "state = \"{state}\"",
            &format!(
                "state = \"{store_url}\"\nstate_password_file = \"{}\"\nworker_id = \"{worker}\"",
                pw_file.display()
            ),
        )
        .replace("lease = \"5s\"", "lease = \"3s\"")
        .replace(
            "url = \"file://",
            "max_rate = \"256KiB/s\"\nurl = \"file://",
        )
    };
    let mut a = Daemon::start(&daemon_cfg("a"), &[]);
    let mut b = Daemon::start(&daemon_cfg("b"), &[]);
    let store = holdfast_daemon::store::open(&store_url, Some(pg.password().to_string()))
        .await
        .unwrap();
    let list = || async { store.jobs(&JobFilter::default()).await.unwrap() };
    // Wait for a backup running on daemon a, then kill a with SIGKILL.
    let deadline = Instant::now() + Duration::from_secs(90);
    let victim = loop {
        if let Some(j) = list()
            .await
            .into_iter()
            .find(|j| j.state == JobState::Running && j.worker.as_deref() == Some("a"))
        {
            break j;
        }
        assert!(
            Instant::now() < deadline,
            "no job ran on daemon a:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill9();
    // Daemon b rescues it after the lease and runs it to an end.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = store.job(victim.id).await.unwrap().unwrap();
        if j.state.is_terminal() {
            assert_eq!(j.state, JobState::Succeeded, "{j:#?}\n{}", b.log());
            assert_eq!(j.attempt, 2, "the rescued attempt: {j:#?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "job {} not rescued: {j:#?}\n{}",
            victim.id,
            b.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let ts = store.transitions(victim.id).await.unwrap();
    assert!(
        ts.iter().any(|t| t.message.contains("lease")),
        "the rescue is recorded: {ts:#?}"
    );
    let runs: Vec<Option<&str>> = ts
        .iter()
        .filter(|t| t.to == JobState::Running)
        .map(|t| t.worker.as_deref())
        .collect();
    assert_eq!(runs, [Some("a"), Some("b")], "run by a, then by b: {ts:#?}");
    assert!(b.terminate(Duration::from_secs(60)).success());

    // No schedule fired twice.
    let jobs = list().await;
    let mut planned: Vec<_> = jobs
        .iter()
        .filter_map(|j| Some((j.spec.schedule.clone()?, j.spec.planned_at?)))
        .collect();
    let n = planned.len();
    planned.sort();
    planned.dedup();
    assert_eq!(planned.len(), n, "a schedule fired twice: {jobs:#?}");
    // Never two backups of the server running at once.
    let mut running: Vec<i64> = Vec::new();
    for t in store.transitions_since(0).await.unwrap() {
        if t.to == JobState::Running {
            running.push(t.job_id);
            assert!(
                running.len() <= 1,
                "two backups of db1 ran at once: {running:?}"
            );
        } else if t.from == Some(JobState::Running) {
            running.retain(|&id| id != t.job_id);
        }
    }
    assert!(!backup_ids(&repo).is_empty());
    let out = holdfast(&["verify", "--all", "--repo", &repo.url()]);
    assert_ok(&out, "verify after the kill");
}

/// A supervised archiver whose source falls silent (the proxy stalls every connection without
/// closing it: a hung server or a route that drops packets). The stream notices within its
/// dead-link limit and keeps reconnecting by itself, so its process lives on and the supervisor
/// has nothing to restart; the repository's record shows the archive falling behind, and the
/// `archive-lag` alert fires at the next refresh. Once the source answers again the archive
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_source_raises_the_archive_lag_alert_and_the_archiver_recovers() {
    use holdfast_testkit::{Direction, Fault, FaultProxy};
    let server = TestServer::start();
    server.sql("CREATE DATABASE d; CREATE TABLE d.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
    let proxy = FaultProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], server.port())));
    let repo = Repo::init();
    let receiver = HttpReceiver::start().await;
    // Above what a healthy stream shows: its record is rewritten every 5 s and is complete as
    // of its last heartbeat (2 s), so a threshold under about 7 s may not close.
    let lag_threshold = Duration::from_secs(15);
    let cfg = config(&repo, &server, "", "binlog = true").replace(
        &server.url(),
        &format!("mysql://root@127.0.0.1:{}/", proxy.port()),
    ) + &webhook(&receiver)
        + &format!(
            "\n[alerts]\narchive_lag = \"{}s\"\n",
            lag_threshold.as_secs()
        );
    let d = Daemon::start(&cfg, &[]);
    server.sql("INSERT INTO d.t (v) VALUES (1), (2)");
    wait_archived(&repo, &gtid_state(&server));
    proxy.set_fault(Fault::Stall {
        direction: Direction::Downstream,
        after: 0,
    });
    let stalled = Instant::now();
    server.sql("INSERT INTO d.t (v) VALUES (3)");
    // The stream's own dead-link limit: 3 heartbeats (the archiver's default 2 s) plus 5 s.
    let limit = Duration::from_secs(2 * 3 + 5);
    let deadline = stalled + limit + Duration::from_secs(10);
    while !d.log().contains("sent nothing for") {
        assert!(
            Instant::now() < deadline,
            "the archiver did not notice the silent source within {:?}:\n{}",
            deadline - stalled,
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The lag alert: at the first refresh after the lag passed the threshold.
    let refresh = holdfast_daemon::metrics::REFRESH;
    let deadline = stalled + lag_threshold + refresh + Duration::from_secs(15);
    let alert = loop {
        if let Some(r) = receiver
            .requests()
            .into_iter()
            .find(|r| r.json()["event"] == "archive-lag" && r.json()["status"] == "firing")
        {
            break r.json();
        }
        assert!(
            Instant::now() < deadline,
            "no archive-lag alert within {:?} of the stall: {:#?}\n{}",
            deadline - stalled,
            receiver
                .requests()
                .iter()
                .map(|r| r.body_text())
                .collect::<Vec<_>>(),
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "archive-lag alert {:.1}s after the stall: {alert}",
        stalled.elapsed().as_secs_f64()
    );
    let m = d.metrics();
    assert!(
        m.contains("holdfast_binlog_archiver_up{server=\"db1\"} 1"),
        "the archiver runs on (it reconnects by itself): {m}"
    );
    assert!(
        !m.contains("holdfast_binlog_archiver_restarts_total"),
        "the archiver never exited: {m}"
    );
    proxy.set_fault(Fault::Pass);
    server.sql("INSERT INTO d.t (v) VALUES (4)");
    wait_archived(&repo, &gtid_state(&server));
    // The incident closes at the next refresh: 30 s more, so only in the long run.
    if std::env::var_os("HOLDFAST_LONG_TESTS").is_some_and(|v| v != "0" && !v.is_empty()) {
        let caught_up = Instant::now();
        let deadline = caught_up + refresh + Duration::from_secs(15);
        while !receiver
            .requests()
            .iter()
            .any(|r| r.json()["event"] == "archive-lag" && r.json()["status"] == "resolved")
        {
            assert!(
                Instant::now() < deadline,
                "the archive-lag alert did not close after the archive caught up: {:#?}",
                receiver
                    .requests()
                    .iter()
                    .map(|r| r.body_text())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "archive-lag closed {:.1}s after the archive caught up",
            caught_up.elapsed().as_secs_f64()
        );
    }
}

/// SIGHUP re-reads the config: a schedule removed stops firing, one added starts; a broken file
/// (a TOML syntax error, then a five-field cron) is refused with the reason in the log and the
/// running config keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_refuses_a_broken_one() {
    let server = TestServer::start();
    let repo = Repo::init();
    let verify_every_2s = r#"
[[server.schedule]]
job = "verify"
cron = "*/2 * * * * *"
"#;
    let backup_every_3s = r#"
[[server.schedule]]
job = "backup"
cron = "*/3 * * * * *"
"#;
    let d = Daemon::start(&config(&repo, &server, verify_every_2s, ""), &[]);
    wait_jobs(&d, Duration::from_secs(30), "a scheduled verify", |j| {
        j.iter()
            .any(|j| j.spec.kind == JobKind::Verify && j.state == JobState::Succeeded)
    })
    .await;

    // Reload: the verify schedule goes, a backup schedule comes.
    std::fs::write(
        d.config_path(),
        config(&repo, &server, backup_every_3s, "")
            .replace("{state}", &d.state_path().display().to_string())
            .replace("{listen}", &format!("127.0.0.1:{}", d.port)),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let reloaded = wait_log(&d, "config reloaded", Duration::from_secs(10)).await;
    let jobs = wait_jobs(
        &d,
        Duration::from_secs(60),
        "a backup after the reload",
        |j| {
            j.iter()
                .any(|j| j.spec.kind == JobKind::Backup && j.state == JobState::Succeeded)
        },
    )
    .await;
    let late_verifies: Vec<&Job> = jobs
        .iter()
        .filter(|j| j.spec.kind == JobKind::Verify && j.created_at > reloaded + 1000)
        .collect();
    assert!(
        late_verifies.is_empty(),
        "the removed schedule still fires: {late_verifies:#?}"
    );
    assert!(
        jobs.iter()
            .filter(|j| j.spec.kind == JobKind::Backup)
            .all(|j| j.spec.schedule.as_deref() == Some("db1/0:backup")),
        "{jobs:#?}"
    );

    // Broken files: refused, said why, and the backups go on.
    let good = std::fs::read_to_string(d.config_path()).unwrap();
    for (broken, why) in [
        (good.replace("[[server]]", "[[server]"), "holdfast.toml"),
        (
            good.replace("cron = \"*/3 * * * * *\"", "cron = \"*/3 * * * *\""),
            "server[0].schedule[0].cron",
        ),
    ] {
        let before = count_backups(&d).await;
        std::fs::write(d.config_path(), &broken).unwrap();
        let refusals = d.log().matches("config reload refused").count();
        d.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while d.log().matches("config reload refused").count() == refusals {
            assert!(Instant::now() < deadline, "no refusal logged:\n{}", d.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let line = d
            .log()
            .lines()
            .rfind(|l| l.contains("config reload refused"))
            .unwrap()
            .to_string();
        assert!(line.contains(why), "the refusal says why ({why}): {line}");
        assert!(line.contains("\"ERROR\""), "logged as an error: {line}");
        wait_jobs(
            &d,
            Duration::from_secs(30),
            "backups go on under the old config",
            |j| {
                j.iter()
                    .filter(|j| j.spec.kind == JobKind::Backup && j.state == JobState::Succeeded)
                    .count()
                    >= before + 2
            },
        )
        .await;
        assert_eq!(
            http_get(d.port, "/readyz").map(|(c, _)| c),
            Some(200),
            "still ready"
        );
    }
}

/// Succeeded backups in the daemon's store.
async fn count_backups(d: &Daemon) -> usize {
    jobs(&d.state_path())
        .await
        .iter()
        .filter(|j| j.spec.kind == JobKind::Backup && j.state == JobState::Succeeded)
        .count()
}

/// Waits for a log line containing `needle`; returns when it was seen (ms).
async fn wait_log(d: &Daemon, needle: &str, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    while !d.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within {within:?}:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    holdfast_daemon::time::now_millis()
}

/// A heavy job's child runs at the configured nice and I/O class, and in a cgroup with the
/// configured cpu.max where the daemon may manage cgroup v2; where it may not (no cgroup2
/// mount, no cpu controller offered, no permission), the documented fallback: one warning
/// saying why, and the job still runs (niced and ioniced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_jobs_run_niced_ioniced_and_in_their_cgroup_or_say_why_not() {
    use holdfast_daemon::runner::process::own_cgroup_dir;
    let server = TestServer::start();
    server.sql("CREATE DATABASE big");
    server.sql("CREATE TABLE big.t (id INT PRIMARY KEY, v VARCHAR(200))");
    server.sql(
        "INSERT INTO big.t SELECT seq, CONCAT(MD5(RAND()), MD5(RAND())) FROM big.seq_1_to_30000",
    );
    let repo = Repo::init();
    let cfg = config(
        &repo,
        &server,
        r#"
[[server.schedule]]
job = "backup"
cron = "*/2 * * * * *"
"#,
        "",
    )
    .replace(
        "shutdown_grace = \"2s\"",
        "shutdown_grace = \"2s\"\nnice = 7\nionice = \"idle\"\ncpu_max = \"50000 100000\"",
    )
    .replace(
        "url = \"file://",
        "max_rate = \"256KiB/s\"\nurl = \"file://",
    );
    let mut d = Daemon::start(&cfg, &[]);
    let daemon_pid = d.child.as_ref().unwrap().id();

    // The backup's `holdfast` child, while it runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let child = loop {
        if let Some(pid) = children(daemon_pid)
            .into_iter()
            .find(|&p| cmdline(p).contains(&"backup".to_string()))
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "no backup child:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    };
    let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is field 3, nice field 19.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let nice: i32 = after.split(' ').nth(16).unwrap().parse().unwrap();
    assert_eq!(nice, 7, "the job's nice ({stat})");
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) reads another process's I/O priority.
    let ioprio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, child as libc::c_int) };
    assert_eq!(ioprio >> 13, 3, "I/O class idle (ioprio {ioprio:#x})");

    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let child_cgroup = std::fs::read_to_string(format!("/proc/{child}/cgroup")).unwrap();
    let log = d.log();
    if log.contains("heavy jobs run in their own cgroup") {
        let dir = own_cgroup_dir(&mountinfo, &child_cgroup).unwrap();
        assert!(
            dir.ends_with("jobs"),
            "the job is in the jobs cgroup: {dir:?}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
    } else {
        let warning = log
            .lines()
            .find(|l| l.contains("cannot manage its cgroup"))
            .unwrap_or_else(|| panic!("neither a cgroup nor the fallback warning:\n{log}"));
        assert!(warning.contains("\"WARN\""), "a warning: {warning}");
        assert!(warning.contains("\"error\""), "it says why: {warning}");
        assert_eq!(
            log.matches("cannot manage its cgroup").count(),
            1,
            "said once"
        );
        // Where this host offers no cpu controller to the daemon, that is the reason given.
        let daemon_cgroup = std::fs::read_to_string(format!("/proc/{daemon_pid}/cgroup")).unwrap();
        match own_cgroup_dir(&mountinfo, &daemon_cgroup) {
            Ok(dir) => {
                let controllers =
                    std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                if !controllers.split_whitespace().any(|c| c == "cpu") {
                    assert!(warning.contains("offers no cpu controller"), "{warning}");
                }
            }
            Err(e) => assert!(warning.contains(&e), "{warning}"),
        }
        assert_eq!(
            child_cgroup, daemon_cgroup,
            "the job stays in the daemon's cgroup"
        );
    }
    // Either way the job runs to its end.
    wait_jobs(&d, Duration::from_secs(90), "the niced backup", |j| {
        count(j, JobState::Succeeded) >= 1
    })
    .await;
    assert!(d.terminate(Duration::from_secs(60)).success());
}

/// The child processes of `pid` (from /proc/*/stat).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 2..]
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Two servers backing up into one repository, the second also archiving its binlog: each
/// server's backups are its own series, the archive lag and the recoverable window are the
/// archiving server's, and no series is labelled with the servers joined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_label_each_server_of_a_shared_repository() {
    let db1 = TestServer::start();
    let db2 = TestServer::start();
    let repo = Repo::init();
    let schedule = r#"
[[server.schedule]]
job = "backup"
cron = "*/3 * * * * *"
"#;
    let cfg = config(&repo, &db1, schedule, "")
        + &format!(
            r#"
[[server]]
name = "db2"
source = "{}"
repository = "main"
binlog = true
{schedule}
"#,
            db2.url()
        );
    let d = Daemon::start(&cfg, &[]);
    wait_jobs(
        &d,
        Duration::from_secs(90),
        "backups of both servers",
        |j| {
            ["db1", "db2"].iter().all(|s| {
                j.iter()
                    .any(|j| j.spec.server == *s && j.state == JobState::Succeeded)
            })
        },
    )
    .await;
    let wanted = [
        "holdfast_backup_last_success_timestamp_seconds{server=\"db1\",repository=\"main\",kind=\"logical\"}",
        "holdfast_backup_last_success_timestamp_seconds{server=\"db2\",repository=\"main\",kind=\"logical\"}",
        "holdfast_backup_size_bytes{server=\"db1\",repository=\"main\"}",
        "holdfast_backup_size_bytes{server=\"db2\",repository=\"main\"}",
        "holdfast_binlog_archive_lag_seconds{server=\"db2\",repository=\"main\"}",
        "holdfast_recoverable_window_end_timestamp_seconds{server=\"db2\",repository=\"main\"}",
        "holdfast_repository_size_bytes{repository=\"main\"}",
    ];
    let deadline = Instant::now() + Duration::from_secs(90);
    let m = loop {
        let m = d.metrics();
        if wanted.iter().all(|w| m.contains(w)) {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "missing {:?} in:\n{m}\nlog:\n{}",
            wanted
                .iter()
                .filter(|w| !m.contains(*w))
                .collect::<Vec<_>>(),
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(!m.contains("db1,db2") && !m.contains("db2,db1"), "{m}");
    for line in m.lines().filter(|l| {
        l.starts_with("holdfast_binlog_archive_lag_seconds")
            || l.starts_with("holdfast_recoverable_window")
    }) {
        assert!(
            line.contains("server=\"db2\""),
            "the archiving server's: {line}"
        );
    }
    for line in m.lines().filter(|l| {
        l.starts_with("holdfast_repository_size_bytes") || l.starts_with("holdfast_drill")
    }) {
        assert!(!line.contains("server="), "a repository fact: {line}");
    }
}
