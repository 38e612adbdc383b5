//! The `holdfast` command line of a job. Secrets never go into argv: the server's and the
//! repository's flags and variables come from [`crate::config::ChildCredentials`] (password and
//! passphrase files by path; a password held in one of the daemon's environment variables handed
//! over in the variable the CLI reads), and the daemon's own credential variables
//! ([`CHILD_ENV_REMOVE`]) are never inherited, so one server's password never reaches another
//! server's job.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::{ChildCredentials, Config, RepoRole, ServerConfig, CHILD_ENV_REMOVE};
use crate::jobs::{Job, JobKind};

/// Environment variables that carry credentials: never inherited by a job.
pub const CREDENTIAL_VARS: &[&str] = CHILD_ENV_REMOVE;

/// A command to run: program, arguments and the environment to add.
#[derive(Clone, PartialEq, Eq)]
pub struct JobCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to the child's environment (after removing [`CREDENTIAL_VARS`]).
    pub env: Vec<(String, String)>,
    /// Run at lower CPU and I/O priority.
    pub heavy: bool,
}

impl std::fmt::Debug for JobCommand {
    // The environment may hold a password: show only the names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCommand")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("heavy", &self.heavy)
            .finish()
    }
}

impl JobCommand {
    fn new(program: &Path, args: &[&str], heavy: bool) -> JobCommand {
        JobCommand {
            program: program.to_path_buf(),
            args: args.iter().map(OsString::from).collect(),
            env: Vec::new(),
            heavy,
        }
    }

    fn add(&mut self, creds: ChildCredentials) {
        self.args.extend(creds.args);
        self.env.extend(creds.env);
    }
}

/// Why a job cannot be turned into a command (the config changed under it).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("server `{0}` is no longer in the config")]
    UnknownServer(String),
    #[error("repository `{0}` is no longer in the config")]
    UnknownRepository(String),
    #[error("the copy job of server `{0}` names no target repository (`to`)")]
    NoCopyTarget(String),
    #[error("server `{server}`: {message}")]
    Server { server: String, message: String },
    #[error("the restore job names no target")]
    NoRestoreTarget,
    #[error("restore target `{0}` is no longer in the config")]
    UnknownRestoreTarget(String),
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The command of one job: its server and repository looked up in `config` by name.
pub fn job_command(program: &Path, config: &Config, job: &Job) -> Result<JobCommand, CommandError> {
    let spec = &job.spec;
    let server = config
        .server(&spec.server)
        .ok_or_else(|| CommandError::UnknownServer(spec.server.clone()))?;
    let repo = config
        .repository(&spec.repository)
        .ok_or_else(|| CommandError::UnknownRepository(spec.repository.clone()))?;
    let sub: &[&str] = match spec.kind {
        JobKind::Backup => &["backup"],
        JobKind::BackupPhysical => &["backup", "--engine", "physical"],
        JobKind::Incremental => &["backup", "--engine", "physical", "--incremental"],
        JobKind::Verify => &["verify", "--all"],
        JobKind::Drill => &["drill", "--sample", "1"],
        JobKind::Expire => &["expire"],
        JobKind::Copy => &["copy", "--all"],
        JobKind::Restore => &["restore"],
    };
    let mut cmd = JobCommand::new(
        program,
        &[&["--json", "--log-format", "json", "-v"], sub].concat(),
        spec.kind.is_heavy(),
    );
    cmd.env
        .push(("HOLDFAST_TRACE_ID".into(), job.trace_id.clone()));
    cmd.env.push(("HOLDFAST_JOB_ID".into(), job.id.to_string()));
    if spec.kind == JobKind::Copy {
        let to_name = schedule_copy_target(server, job)
            .ok_or_else(|| CommandError::NoCopyTarget(server.name.clone()))?;
        let to = config
            .repository(&to_name)
            .ok_or(CommandError::UnknownRepository(to_name))?;
        cmd.add(repo.child_credentials(RepoRole::From, &env));
        cmd.add(to.child_credentials(RepoRole::To, &env));
    } else {
        cmd.add(repo.child_credentials(RepoRole::Main, &env));
    }
    if spec.kind == JobKind::Restore {
        restore_args(config, job, &mut cmd)?;
    }
    if spec.kind.loads_server() {
        cmd.add(server_credentials(config, server)?);
    }
    Ok(cmd)
}

/// A restore job's backup, recovery target and registered target (its URL and credentials
/// from the config, as `--target` with the server's credential flags).
fn restore_args(config: &Config, job: &Job, cmd: &mut JobCommand) -> Result<(), CommandError> {
    let params = job
        .spec
        .restore
        .as_ref()
        .ok_or(CommandError::NoRestoreTarget)?;
    let target = config
        .restore_target(&params.target)
        .ok_or_else(|| CommandError::UnknownRestoreTarget(params.target.clone()))?;
    let pitr = match (&params.to_time, &params.to_gtid) {
        (Some(t), _) => Some(("--to-time", t)),
        (None, Some(g)) => Some(("--to-gtid", g)),
        (None, None) => None,
    };
    match (pitr, &params.backup) {
        (Some((flag, value)), backup) => {
            cmd.args.push(flag.into());
            cmd.args.push(value.into());
            if let Some(id) = backup {
                cmd.args.push("--base".into());
                cmd.args.push(id.into());
            }
        }
        (None, backup) => cmd.args.push(backup.as_deref().unwrap_or("latest").into()),
    }
    let resolved = config
        .resolve_server_with_env(&target.as_server(), &env)
        .map_err(|e| CommandError::Server {
            server: target.name.clone(),
            message: e.to_string(),
        })?;
    let mut creds = resolved.child;
    for a in creds.args.iter_mut() {
        if a == "--source" {
            *a = "--target".into();
        }
    }
    cmd.add(creds);
    Ok(())
}

/// The supervised `binlog stream` of a server.
pub fn stream_command(
    program: &Path,
    config: &Config,
    server: &ServerConfig,
) -> Result<JobCommand, CommandError> {
    let repo = config
        .repository(&server.repository)
        .ok_or_else(|| CommandError::UnknownRepository(server.repository.clone()))?;
    let mut cmd = JobCommand::new(
        program,
        &["--log-format", "json", "-v", "binlog", "stream"],
        false,
    );
    cmd.add(repo.child_credentials(RepoRole::Main, &env));
    cmd.add(server_credentials(config, server)?);
    Ok(cmd)
}

fn server_credentials(
    config: &Config,
    server: &ServerConfig,
) -> Result<ChildCredentials, CommandError> {
    config
        .resolve_server_with_env(server, &env)
        .map(|r| r.child)
        .map_err(|e| CommandError::Server {
            server: server.name.clone(),
            message: e.to_string(),
        })
}

/// The copy target of the schedule that queued `job` (manual copies use the first schedule's).
fn schedule_copy_target(server: &ServerConfig, job: &Job) -> Option<String> {
    let from_key = job
        .spec
        .schedule
        .as_deref()
        .and_then(|k| k.split_once('/'))
        .and_then(|(_, rest)| rest.split(':').next())
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| server.schedule.get(i))
        .filter(|s| s.job == JobKind::Copy);
    from_key
        .or_else(|| server.schedule.iter().find(|s| s.job == JobKind::Copy))
        .and_then(|s| s.to.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobSpec, JobState, Trigger};

    const CONFIG: &str = r#"
[[repository]]
name = "main"
url = "file:///backups/main"
passphrase_file = "/etc/holdfast/main.pass"
max_rate = "50MiB/s"

[[repository]]
name = "offsite"
url = "s3://b/p"
identity_file = ["/etc/holdfast/offsite.age"]

[[server]]
name = "db1"
source = "mysql://backup@db1:3306/"
defaults_file = "/etc/holdfast/db1.cnf"
repository = "main"

[[server.schedule]]
job = "backup"
cron = "0 0 2 * * *"

[[server.schedule]]
job = "copy"
cron = "0 0 4 * * *"
to = "offsite"
"#;

    fn job(kind: JobKind, schedule: Option<&str>) -> Job {
        Job {
            id: 7,
            spec: JobSpec {
                server: "db1".into(),
                host: "db1".into(),
                repository: "main".into(),
                kind,
                priority: 1,
                timeout_ms: 1,
                max_attempts: 1,
                backoff_base_ms: 1,
                backoff_cap_ms: 1,
                schedule: schedule.map(Into::into),
                planned_at: None,
                trigger: Trigger::Manual,
                requested_by: None,
                restore: None,
            },
            state: JobState::Running,
            attempt: 1,
            run_at: 0,
            created_at: 0,
            updated_at: 0,
            worker: None,
            lease_until: None,
            trace_id: "t-1".into(),
            last_error: None,
            exit_code: None,
            result: None,
        }
    }

    /// The fixture config, with its option file in a temp dir (the server's connection is
    /// resolved, so the file must exist).
    fn fixture() -> (Config, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let cnf = dir.path().join("db1.cnf");
        std::fs::write(&cnf, "[client]\nuser = backup\n").unwrap();
        let text = CONFIG.replace("/etc/holdfast/db1.cnf", &cnf.display().to_string());
        (toml::from_str(&text).unwrap(), dir)
    }

    #[test]
    fn commands() {
        let (config, dir) = fixture();
        let cnf = dir.path().join("db1.cnf").display().to_string();
        let common = "--json --log-format json -v";
        let cases = [
            (
                JobKind::Backup,
                None,
                "backup --repo file:///backups/main --passphrase-file /etc/holdfast/main.pass \
                 --max-rate 50MiB/s --source mysql://backup@db1:3306/ --defaults-file /etc/holdfast/db1.cnf",
            ),
            (
                JobKind::Incremental,
                None,
                "backup --engine physical --incremental --repo file:///backups/main \
                 --passphrase-file /etc/holdfast/main.pass --max-rate 50MiB/s \
                 --source mysql://backup@db1:3306/ --defaults-file /etc/holdfast/db1.cnf",
            ),
            (
                JobKind::Verify,
                None,
                "verify --all --repo file:///backups/main --passphrase-file /etc/holdfast/main.pass --max-rate 50MiB/s",
            ),
            (
                JobKind::Copy,
                Some("db1/1:copy"),
                "copy --all --from file:///backups/main --from-passphrase-file /etc/holdfast/main.pass \
                 --to s3://b/p --to-identity-file /etc/holdfast/offsite.age",
            ),
        ];
        for (kind, schedule, expected) in cases {
            let cmd = job_command(
                Path::new("/usr/bin/holdfast"),
                &config,
                &job(kind, schedule),
            )
            .unwrap();
            let expected = expected
                .replace("/etc/holdfast/db1.cnf", &cnf)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let got: Vec<String> = cmd
                .args
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            assert_eq!(got.join(" "), format!("{common} {expected}"), "{kind}");
            assert!(cmd
                .env
                .contains(&("HOLDFAST_TRACE_ID".into(), "t-1".into())));
        }
    }

    #[test]
    fn restore_commands_use_the_registered_target_only() {
        let (mut config, dir) = fixture();
        let cnf = dir.path().join("db1.cnf").display().to_string();
        config
            .restore_target
            .push(crate::config::RestoreTargetConfig {
                name: "staging".into(),
                url: "mysql://restore@staging:3306/".into(),
                defaults_file: Some(cnf.clone().into()),
                password_file: None,
                password_env: None,
                production: false,
            });
        let restore = |backup: Option<&str>, to_time: Option<&str>, target: &str| {
            let mut j = job(JobKind::Restore, None);
            j.spec.restore = Some(crate::jobs::RestoreParams {
                target: target.into(),
                backup: backup.map(Into::into),
                to_time: to_time.map(Into::into),
                to_gtid: None,
            });
            job_command(Path::new("holdfast"), &config, &j).map(|c| {
                c.args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        let repo = "--repo file:///backups/main --passphrase-file /etc/holdfast/main.pass \
                    --max-rate 50MiB/s";
        let repo = repo.split_whitespace().collect::<Vec<_>>().join(" ");
        let target = format!("--target mysql://restore@staging:3306/ --defaults-file {cnf}");
        let common = "--json --log-format json -v restore";
        assert_eq!(
            restore(Some("20261207T020000Z-1a2b"), None, "staging").unwrap(),
            format!("{common} {repo} 20261207T020000Z-1a2b {target}")
        );
        assert_eq!(
            restore(None, None, "staging").unwrap(),
            format!("{common} {repo} latest {target}")
        );
        assert_eq!(
            restore(Some("B"), Some("2026-12-07T08:00:00Z"), "staging").unwrap(),
            format!("{common} {repo} --to-time 2026-12-07T08:00:00Z --base B {target}")
        );
        assert!(matches!(
            restore(None, None, "gone"),
            Err(CommandError::UnknownRestoreTarget(_))
        ));
    }

    #[test]
    fn no_secret_in_argv_and_env_names_only_in_debug() {
        let (mut config, _dir) = fixture();
        std::env::set_var("HF_TEST_DB1_PW", "s3cret");
        config.server[0].password_env = Some("HF_TEST_DB1_PW".into());
        let cmd = job_command(Path::new("holdfast"), &config, &job(JobKind::Backup, None)).unwrap();
        assert!(!cmd
            .args
            .iter()
            .any(|a| a.to_string_lossy().contains("s3cret")));
        assert!(cmd
            .env
            .contains(&("HOLDFAST_PASSWORD".into(), "s3cret".into())));
        assert!(!format!("{cmd:?}").contains("s3cret"));
    }
}
