//! `holdfast daemon --config FILE`: the scheduler, job runner and HTTP endpoints in one process.
//! `--check-config` validates the file and prints the plan (each schedule's next runs in its
//! time zone and UTC, the servers with binlog archiving, the notifiers, the store), exiting 0, or
//! prints every problem found and exits 2 (like `nginx -t`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use holdfast_daemon::config::{self, Config, ConfigError, StateLocation};
use holdfast_daemon::scheduler::{format_local, format_utc};
use holdfast_daemon::time::now_millis;
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output::{outln, print_json};

#[derive(clap::Args)]
pub struct Args {
    /// The daemon's config file (TOML; see contrib/holdfast.toml and docs/daemon.md).
    #[arg(long, env = "HOLDFAST_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
    /// Validate the config and print the plan, then exit: 0 when valid, 2 with every problem.
    #[arg(long)]
    pub check_config: bool,
    /// With --check-config: how many upcoming runs to show per schedule.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub next: usize,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    if args.check_config {
        return Ok(check_config(global, &args.config, args.next));
    }
    let program = std::env::current_exe().map_err(|e| {
        anyhow::anyhow!("cannot find the holdfast executable to run jobs with: {e}")
    })?;
    let options = holdfast_daemon::daemon::Options {
        config_path: args.config.clone(),
        program,
    };
    match holdfast_daemon::daemon::run(options).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(holdfast_daemon::daemon::DaemonError::Config(message)) => {
            eprintln!("error: {message}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(holdfast::Error::new(holdfast::ErrorKind::Storage, e.to_string()).into()),
    }
}

/// Validates and prints the plan or the problems; the exit code is the answer.
fn check_config(global: &GlobalArgs, file: &Path, next: usize) -> ExitCode {
    match config::load(file) {
        Ok(config) => {
            let plan = plan(&config, file, next, now_millis());
            if global.json {
                if let Err(e) = print_json(&plan) {
                    eprintln!("error: {e}");
                    return ExitCode::from(1);
                }
            } else {
                print_plan(&plan);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            report_problems(global, file, &e);
            ExitCode::from(2)
        }
    }
}

fn report_problems(global: &GlobalArgs, file: &Path, e: &ConfigError) {
    let problems = e.problems();
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    eprintln!(
        "{}: {} found; nothing was started",
        file.display(),
        match problems.len() {
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    );
    if global.json {
        let value = serde_json::json!({
            "config": file.display().to_string(),
            "valid": false,
            "errors": problems,
            "error": {
                "code": 2,
                "kind": "usage",
                "message": e.to_string().lines().next().unwrap_or_default(),
            },
        });
        let _ = print_json(&value);
    }
}

#[derive(Serialize)]
struct Plan {
    config: String,
    valid: bool,
    listen: String,
    allow_plain_http: bool,
    /// HTTPS (`tls_cert`, `tls_key` given).
    tls: bool,
    store: Store,
    repositories: Vec<RepositoryPlan>,
    servers: Vec<ServerPlan>,
    binlog_archiving: Vec<String>,
    schedules: Vec<SchedulePlan>,
    notifiers: BTreeMap<String, usize>,
}

#[derive(Serialize)]
struct Store {
    kind: &'static str,
    location: String,
}

#[derive(Serialize)]
struct RepositoryPlan {
    name: String,
    url: String,
    encrypted: bool,
}

#[derive(Serialize)]
struct ServerPlan {
    name: String,
    source: String,
    host: String,
    repository: String,
    binlog: bool,
    schedules: usize,
}

#[derive(Serialize)]
struct SchedulePlan {
    key: String,
    server: String,
    job: String,
    cron: String,
    timezone: String,
    window: Option<String>,
    priority: i32,
    next: Vec<Run>,
}

#[derive(Serialize)]
struct Run {
    /// Planned, in UTC (RFC 3339).
    planned: String,
    /// Planned, on the schedule's wall clock.
    planned_local: String,
    /// When it may start (its window's opening), in UTC.
    start: String,
}

fn plan(config: &Config, file: &Path, next: usize, now: i64) -> Plan {
    let store = match config.daemon.state() {
        StateLocation::Sqlite(path) => Store {
            kind: "sqlite",
            location: path.display().to_string(),
        },
        StateLocation::Postgres(url) => Store {
            kind: "postgres",
            location: url,
        },
    };
    let schedules = config
        .schedules()
        .into_iter()
        .map(|(i, j, schedule)| {
            let server = &config.server[i];
            let sc = &server.schedule[j];
            SchedulePlan {
                key: schedule.key.clone(),
                server: server.name.clone(),
                job: sc.job.to_string(),
                cron: sc.cron.trim().to_string(),
                timezone: schedule.tz.name().to_string(),
                window: schedule.window.map(|w| w.to_string()),
                priority: sc.priority.unwrap_or(sc.job.default_priority()),
                next: schedule
                    .upcoming(now, next)
                    .into_iter()
                    .map(|t| Run {
                        planned: format_utc(t),
                        planned_local: format_local(schedule.tz, t),
                        start: format_utc(schedule.start_at(t)),
                    })
                    .collect(),
            }
        })
        .collect();
    let mut notifiers = BTreeMap::new();
    for n in &config.notifier {
        *notifiers.entry(n.kind().to_string()).or_insert(0) += 1;
    }
    Plan {
        config: file.display().to_string(),
        valid: true,
        listen: config.daemon.listen_addr().to_string(),
        allow_plain_http: config.daemon.allow_plain_http,
        tls: config.daemon.tls_cert.is_some(),
        store,
        repositories: config
            .repository
            .iter()
            .map(|r| RepositoryPlan {
                name: r.name.clone(),
                url: r.url.trim().to_string(),
                encrypted: r.passphrase_file.is_some()
                    || r.passphrase_env.is_some()
                    || !r.identity_file.is_empty(),
            })
            .collect(),
        servers: config
            .server
            .iter()
            .map(|s| ServerPlan {
                name: s.name.clone(),
                source: s.source.trim().to_string(),
                host: s.host(),
                repository: s.repository.clone(),
                binlog: s.binlog,
                schedules: s.schedule.len(),
            })
            .collect(),
        binlog_archiving: config
            .server
            .iter()
            .filter(|s| s.binlog)
            .map(|s| s.name.clone())
            .collect(),
        schedules,
        notifiers,
    }
}

fn print_plan(p: &Plan) {
    outln!("{}: the config is valid", p.config);
    outln!("store:   {} {}", p.store.kind, p.store.location);
    outln!(
        "listen:  {} {} (/metrics, /healthz, /readyz, /api/v1){}",
        p.listen,
        if p.tls { "https" } else { "http" },
        if p.allow_plain_http && !p.tls {
            ", plain HTTP allowed off loopback"
        } else {
            ""
        }
    );
    outln!("repositories:");
    for r in &p.repositories {
        let enc = if r.encrypted { ", encrypted" } else { "" };
        outln!("  {:<16} {}{enc}", r.name, r.url);
    }
    outln!("servers:");
    for s in &p.servers {
        outln!(
            "  {:<16} {} -> {}{}, {} schedule(s)",
            s.name,
            s.source,
            s.repository,
            if s.binlog { ", binlog archived" } else { "" },
            s.schedules
        );
    }
    if p.binlog_archiving.is_empty() {
        outln!("binlog archiving: none");
    } else {
        outln!("binlog archiving: {}", p.binlog_archiving.join(", "));
    }
    outln!("schedules:");
    if p.schedules.is_empty() {
        outln!("  (none)");
    }
    for s in &p.schedules {
        let window = s
            .window
            .as_deref()
            .map(|w| format!(", window {w}"))
            .unwrap_or_default();
        outln!(
            "  {:<24} `{}` {}{window}, priority {}",
            s.key,
            s.cron,
            s.timezone,
            s.priority
        );
        for run in &s.next {
            let start = if run.start != run.planned {
                format!(", starts {}", run.start)
            } else {
                String::new()
            };
            outln!("    {}  ({}{start})", run.planned_local, run.planned);
        }
    }
    if p.notifiers.is_empty() {
        outln!("notifiers: none");
    } else {
        let list: Vec<String> = p
            .notifiers
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        outln!("notifiers: {}", list.join(", "));
    }
}
