//! The `holdfast` command line of a job. Secrets never go into argv: a password file or option
//! file is passed by path; a password or passphrase held in one of the daemon's environment
//! variables is handed to the child in the variable the CLI reads (`HOLDFAST_PASSWORD`,
//! `HOLDFAST_PASSPHRASE`, …). The child's environment is otherwise the daemon's minus every
//! credential variable, so one server's password never reaches another server's job.

use std::path::{Path, PathBuf};

use crate::config::{Config, RepositoryConfig, ServerConfig};
use crate::jobs::{Job, JobKind};

/// Environment variables that carry credentials: never inherited by a job.
pub const CREDENTIAL_VARS: &[&str] = &[
    "MYSQL_PWD",
    "HOLDFAST_PASSWORD",
    "HOLDFAST_PASSPHRASE",
    "HOLDFAST_FROM_PASSPHRASE",
    "HOLDFAST_TO_PASSPHRASE",
    "HOLDFAST_REPO",
    "HOLDFAST_SOURCE",
    "HOLDFAST_STATE_PASSWORD",
];

/// A command to run: program, arguments and the environment to add.
#[derive(Clone, PartialEq, Eq)]
pub struct JobCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
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

/// Why a job cannot be turned into a command (the config changed under it).
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("server `{0}` is no longer in the config")]
    UnknownServer(String),
    #[error("repository `{0}` is no longer in the config")]
    UnknownRepository(String),
    #[error("the copy job of server `{0}` names no target repository (`to`)")]
    NoCopyTarget(String),
    #[error("environment variable {0}, named in the config, is not set")]
    MissingEnv(String),
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
    let mut cmd = JobCommand {
        program: program.to_path_buf(),
        args: vec![
            "--json".into(),
            "--log-format".into(),
            "json".into(),
            "-v".into(),
        ],
        env: vec![
            ("HOLDFAST_TRACE_ID".into(), job.trace_id.clone()),
            ("HOLDFAST_JOB_ID".into(), job.id.to_string()),
        ],
        heavy: spec.kind.is_heavy(),
    };
    let sub: &[&str] = match spec.kind {
        JobKind::Backup => &["backup"],
        JobKind::BackupPhysical => &["backup", "--engine", "physical"],
        JobKind::Incremental => &["backup", "--engine", "physical", "--incremental"],
        JobKind::Verify => &["verify", "--all"],
        JobKind::Drill => &["drill", "--sample", "1"],
        JobKind::Expire => &["expire"],
        JobKind::Copy => &["copy", "--all"],
    };
    cmd.args.extend(sub.iter().map(|s| s.to_string()));
    if spec.kind == JobKind::Copy {
        let to_name = schedule_copy_target(server, job)
            .ok_or_else(|| CommandError::NoCopyTarget(server.name.clone()))?;
        let to = config
            .repository(&to_name)
            .ok_or(CommandError::UnknownRepository(to_name))?;
        cmd.args.extend([
            "--from".into(),
            repo.url.clone(),
            "--to".into(),
            to.url.clone(),
        ]);
        repo_key(&mut cmd, repo, "--from-", "HOLDFAST_FROM_PASSPHRASE")?;
        repo_key(&mut cmd, to, "--to-", "HOLDFAST_TO_PASSPHRASE")?;
    } else {
        cmd.args.extend(["--repo".into(), repo.url.clone()]);
        repo_key(&mut cmd, repo, "--", "HOLDFAST_PASSPHRASE")?;
    }
    if let Some(rate) = &repo.max_rate {
        cmd.args.extend(["--max-rate".into(), rate.clone()]);
    }
    if spec.kind.loads_server() {
        cmd.args.extend(["--source".into(), server.source.clone()]);
        server_credentials(&mut cmd, server)?;
    }
    Ok(cmd)
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
    let mut cmd = JobCommand {
        program: program.to_path_buf(),
        args: [
            "--log-format",
            "json",
            "-v",
            "binlog",
            "stream",
            "--repo",
            &repo.url,
            "--source",
            &server.source,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: vec![],
        heavy: false,
    };
    repo_key(&mut cmd, repo, "--", "HOLDFAST_PASSPHRASE")?;
    server_credentials(&mut cmd, server)?;
    Ok(cmd)
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

fn repo_key(
    cmd: &mut JobCommand,
    repo: &RepositoryConfig,
    flag_prefix: &str,
    env_var: &str,
) -> Result<(), CommandError> {
    if let Some(file) = &repo.passphrase_file {
        cmd.args.push(format!("{flag_prefix}passphrase-file"));
        cmd.args.push(file.display().to_string());
    } else if let Some(var) = &repo.passphrase_env {
        let value = std::env::var(var).map_err(|_| CommandError::MissingEnv(var.clone()))?;
        cmd.env.push((env_var.into(), value));
    }
    for id in &repo.identity_file {
        cmd.args.push(format!("{flag_prefix}identity-file"));
        cmd.args.push(id.display().to_string());
    }
    Ok(())
}

fn server_credentials(cmd: &mut JobCommand, server: &ServerConfig) -> Result<(), CommandError> {
    if let Some(f) = &server.defaults_file {
        cmd.args
            .extend(["--defaults-file".into(), f.display().to_string()]);
    }
    if let Some(f) = &server.password_file {
        cmd.args
            .extend(["--password-file".into(), f.display().to_string()]);
    }
    if let Some(var) = &server.password_env {
        let value = std::env::var(var).map_err(|_| CommandError::MissingEnv(var.clone()))?;
        cmd.env.push(("HOLDFAST_PASSWORD".into(), value));
    }
    Ok(())
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

    #[test]
    fn commands() {
        let config: Config = toml::from_str(CONFIG).unwrap();
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
                "copy --all --from file:///backups/main --to s3://b/p --from-passphrase-file \
                 /etc/holdfast/main.pass --to-identity-file /etc/holdfast/offsite.age --max-rate 50MiB/s",
            ),
        ];
        for (kind, schedule, expected) in cases {
            let cmd = job_command(
                Path::new("/usr/bin/holdfast"),
                &config,
                &job(kind, schedule),
            )
            .unwrap();
            let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(cmd.args.join(" "), format!("{common} {expected}"), "{kind}");
            assert!(cmd
                .env
                .contains(&("HOLDFAST_TRACE_ID".into(), "t-1".into())));
        }
    }

    #[test]
    fn no_secret_in_argv_and_env_names_only_in_debug() {
        let mut config: Config = toml::from_str(CONFIG).unwrap();
        std::env::set_var("HF_TEST_DB1_PW", "s3cret");
        config.server[0].password_env = Some("HF_TEST_DB1_PW".into());
        let cmd = job_command(Path::new("holdfast"), &config, &job(JobKind::Backup, None)).unwrap();
        assert!(!cmd.args.iter().any(|a| a.contains("s3cret")));
        assert!(cmd
            .env
            .contains(&("HOLDFAST_PASSWORD".into(), "s3cret".into())));
        assert!(!format!("{cmd:?}").contains("s3cret"));
        config.server[0].password_env = Some("HF_TEST_UNSET_VAR".into());
        assert!(matches!(
            job_command(Path::new("holdfast"), &config, &job(JobKind::Backup, None)),
            Err(CommandError::MissingEnv(_))
        ));
    }
}
