//! One attempt: start the job's `holdfast` child, stream its log, stop it on cancel or timeout.
//!
//! Stopping is clean: SIGTERM first, which every `holdfast` command handles like Ctrl-C (a backup
//! commits nothing and releases its lock; exit 130), then SIGKILL to the whole process group
//! (mariabackup and friends included) if it has not ended within [`STOP_GRACE`].

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::command::{JobCommand, CREDENTIAL_VARS};
use crate::jobs::retry::Outcome;

/// How long a child may take to stop after SIGTERM before its process group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(60);

/// How heavy jobs are kept from starving the database server and the host.
#[derive(Clone, Debug, Default)]
pub struct Isolation {
    /// CPU niceness for heavy jobs (0 = unchanged).
    pub nice: i32,
    /// I/O scheduling class for heavy jobs: `idle`, `best-effort` (lowest level) or `none`.
    pub ionice: IoClass,
    /// A cgroup v2 directory heavy jobs are moved into (created with `cpu.max`/`io.max` by the
    /// daemon at start when it may), or `None`.
    pub cgroup: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoClass {
    #[default]
    None,
    BestEffortLowest,
    Idle,
}

impl IoClass {
    pub fn parse(s: &str) -> Option<IoClass> {
        match s {
            "none" => Some(IoClass::None),
            "best-effort" => Some(IoClass::BestEffortLowest),
            "idle" => Some(IoClass::Idle),
            _ => None,
        }
    }

    /// The `ioprio_set` value: class << 13 | level.
    fn ioprio(self) -> Option<libc::c_int> {
        match self {
            IoClass::None => None,
            IoClass::BestEffortLowest => Some((2 << 13) | 7),
            IoClass::Idle => Some(3 << 13),
        }
    }
}

/// Prepares the cgroup v2 heavy jobs run in, when `cpu_max` or `io_max` is configured and the
/// daemon may manage its own cgroup (systemd `Delegate=yes`, or root): the daemon moves itself
/// into `<its cgroup>/daemon` (cgroup v2 allows controllers for children only of a cgroup
/// without processes), enables `cpu` and `io` for children and writes the limits into
/// `<its cgroup>/jobs`. Nothing is changed unless the cgroup v2 hierarchy is mounted and offers
/// the controllers needed. Any step failing leaves jobs without a cgroup, with one warning
/// saying why (the documented fallback: nice and ionice only).
pub fn prepare_cgroup(cpu_max: Option<&str>, io_max: Option<&str>) -> Option<std::path::PathBuf> {
    if cpu_max.is_none() && io_max.is_none() {
        return None;
    }
    let result = (|| -> std::io::Result<std::path::PathBuf> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        let base = own_cgroup_dir(&mountinfo, &own).map_err(std::io::Error::other)?;
        let (base, daemon) = if base.ends_with("daemon") {
            (base.parent().unwrap_or(&base).to_path_buf(), base.clone())
        } else {
            (base.clone(), base.join("daemon"))
        };
        let mut controllers = Vec::new();
        if cpu_max.is_some() {
            controllers.push("cpu");
        }
        if io_max.is_some() {
            controllers.push("io");
        }
        let available = std::fs::read_to_string(base.join("cgroup.controllers"))?;
        let missing = missing_controllers(&available, &controllers);
        if !missing.is_empty() {
            return Err(std::io::Error::other(format!(
                "{} offers no {} controller (it has: {})",
                base.display(),
                missing.join(", "),
                if available.trim().is_empty() {
                    "none"
                } else {
                    available.trim()
                }
            )));
        }
        std::fs::create_dir_all(&daemon)?;
        std::fs::write(daemon.join("cgroup.procs"), std::process::id().to_string())?;
        let enable: Vec<String> = controllers.iter().map(|c| format!("+{c}")).collect();
        std::fs::write(base.join("cgroup.subtree_control"), enable.join(" "))?;
        let jobs = base.join("jobs");
        std::fs::create_dir_all(&jobs)?;
        if let Some(v) = cpu_max {
            std::fs::write(jobs.join("cpu.max"), v)?;
        }
        if let Some(v) = io_max {
            std::fs::write(jobs.join("io.max"), v)?;
        }
        Ok(jobs)
    })();
    match result {
        Ok(dir) => {
            tracing::info!(cgroup = %dir.display(), "heavy jobs run in their own cgroup");
            Some(dir)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "cpu_max/io_max configured but the daemon cannot manage its cgroup (run it under \
                 systemd with Delegate=yes): heavy jobs run with nice/ionice only"
            );
            None
        }
    }
}

/// This process's cgroup v2 directory: the `cgroup2` mount point from `/proc/self/mountinfo`
/// joined with the `0::` path of `/proc/self/cgroup`. Never assumes `/sys/fs/cgroup`: on a
/// hybrid host that is a tmpfs of v1 hierarchies, where "creating a cgroup" would make a plain
/// directory.
pub fn own_cgroup_dir(mountinfo: &str, proc_cgroup: &str) -> Result<std::path::PathBuf, String> {
    let rel = proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is not on a cgroup v2 hierarchy (no 0:: line in /proc/self/cgroup)")?;
    let mount = mountinfo
        .lines()
        .find_map(|l| {
            // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER`
            let (left, right) = l.split_once(" - ")?;
            (right.split_whitespace().next()? == "cgroup2")
                .then(|| left.split_whitespace().nth(4))
                .flatten()
        })
        .ok_or("no cgroup2 file system is mounted")?;
    Ok(std::path::Path::new(mount).join(rel.trim().trim_start_matches('/')))
}

/// The `wanted` controllers that `cgroup.controllers` (space-separated) does not list.
fn missing_controllers<'a>(available: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    let have: Vec<&str> = available.split_whitespace().collect();
    wanted
        .iter()
        .filter(|w| !have.contains(w))
        .copied()
        .collect()
}

/// What an attempt came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    /// The command's `--json` report (its last JSON document on stdout), if any.
    pub report: Option<serde_json::Value>,
    /// What went wrong, from the JSON error report or the last `error:` line on stderr.
    pub error: Option<String>,
    pub duration: Duration,
}

/// Runs `cmd` until it ends, `cancel` fires (→ [`Outcome::Cancelled`]) or `timeout` passes (→
/// [`Outcome::TimedOut`]); each stderr line goes to `on_line` as it comes.
pub async fn run_attempt(
    cmd: &JobCommand,
    isolation: &Isolation,
    timeout: Duration,
    cancel: CancellationToken,
    mut on_line: impl FnMut(String) + Send,
) -> Attempt {
    let started = std::time::Instant::now();
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for var in CREDENTIAL_VARS {
        command.env_remove(var);
    }
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let (nice, ioprio) = if cmd.heavy {
        (isolation.nice, isolation.ionice.ioprio())
    } else {
        (0, None)
    };
    // SAFETY: only async-signal-safe syscalls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // A daemon killed with SIGKILL must not leave its jobs running unsupervised: the
            // child gets SIGTERM (a clean stop) when the daemon dies.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            if nice != 0 {
                libc::setpriority(libc::PRIO_PROCESS, 0, nice);
            }
            if let Some(prio) = ioprio {
                // IOPRIO_WHO_PROCESS = 1, this process.
                libc::syscall(libc::SYS_ioprio_set, 1, 0, prio);
            }
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Attempt {
                outcome: Outcome::Crashed,
                exit_code: None,
                report: None,
                error: Some(format!("cannot start {}: {e}", cmd.program.display())),
                duration: started.elapsed(),
            }
        }
    };
    let pid = child.id();
    if let (true, Some(dir), Some(pid)) = (cmd.heavy, &isolation.cgroup, pid) {
        if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
            tracing::warn!(cgroup = %dir.display(), error = %e, "cannot move the job into its cgroup");
        }
    }

    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let stdout_task = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text).await;
        text
    });
    let mut lines = BufReader::new(stderr).lines();
    let mut last_error_line: Option<String> = None;
    let mut stop_reason: Option<Outcome> = None;
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut stderr_open = true;
    let status = loop {
        tokio::select! {
            line = lines.next_line(), if stderr_open => match line {
                Ok(Some(line)) => {
                    if let Some(msg) = error_line(&line) {
                        last_error_line = Some(msg);
                    }
                    on_line(line);
                }
                _ => stderr_open = false,
            },
            status = child.wait() => break status,
            _ = cancel.cancelled(), if stop_reason.is_none() => {
                stop_reason = Some(Outcome::Cancelled);
                terminate(pid);
            }
            _ = &mut deadline, if stop_reason.is_none() => {
                stop_reason = Some(Outcome::TimedOut);
                terminate(pid);
            }
            _ = tokio::time::sleep(STOP_GRACE), if stop_reason.is_some() => {
                kill_group(pid);
            }
        }
    };
    // The rest of the log, if the child exited before we read it all.
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await
    {
        if let Some(msg) = error_line(&line) {
            last_error_line = Some(msg);
        }
        on_line(line);
    }
    // Children of the job (mariabackup, a drill's server) must not outlive it.
    kill_group(pid);
    let stdout = tokio::time::timeout(Duration::from_secs(5), stdout_task)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let report = last_json_document(&stdout);
    let json_error = report
        .as_ref()
        .and_then(|r| r.get("error"))
        .and_then(|e| e.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    let exit_code = status.as_ref().ok().and_then(|s| s.code());
    let outcome = match (stop_reason, &status) {
        (Some(reason), _) => reason,
        (None, Ok(s)) if s.success() => Outcome::Succeeded,
        (None, Ok(s)) => s.code().map_or(Outcome::Crashed, Outcome::Exited),
        (None, Err(_)) => Outcome::Crashed,
    };
    let error = match outcome {
        Outcome::Succeeded => None,
        Outcome::TimedOut => Some(format!("timed out after {}", crate::time::human(timeout))),
        Outcome::Cancelled => Some("cancelled".to_string()),
        Outcome::Crashed if exit_code.is_none() => Some(match &status {
            Ok(s) => format!("the job's process was killed ({s})"),
            Err(e) => format!("cannot wait for the job's process: {e}"),
        }),
        _ => json_error.or(last_error_line),
    };
    Attempt {
        outcome,
        exit_code,
        report: if outcome == Outcome::Succeeded {
            report
        } else {
            None
        },
        error,
        duration: started.elapsed(),
    }
}

fn terminate(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: the child leads its own process group (process_group(0)).
        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
    }
}

/// The message of an error line: `error: …` in text logs, or a JSON log line at level ERROR.
fn error_line(line: &str) -> Option<String> {
    if let Some(msg) = line.strip_prefix("error: ") {
        return Some(msg.to_string());
    }
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    (v.get("level")?.as_str()? == "ERROR")
        .then(|| v.get("fields")?.get("message")?.as_str().map(str::to_owned))
        .flatten()
}

/// The last complete JSON document in `text` (reports may be pretty-printed over many lines).
fn last_json_document(text: &str) -> Option<serde_json::Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_and_the_controllers() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        let unified = "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw\n";
        let v1_only = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let cases = [
            (hybrid, "1:cpu:/\n0::/\n", Ok("/sys/fs/cgroup/unified/")),
            (
                unified,
                "0::/system.slice/holdfast.service\n",
                Ok("/sys/fs/cgroup/system.slice/holdfast.service"),
            ),
            (unified, "1:cpu:/x\n", Err("not on a cgroup v2")),
            (v1_only, "0::/\n", Err("no cgroup2")),
        ];
        for (mountinfo, own, expected) in cases {
            let got = own_cgroup_dir(mountinfo, own);
            match (expected, got) {
                (Ok(e), Ok(g)) => assert_eq!(g, std::path::Path::new(e)),
                (Err(e), Err(g)) => assert!(g.contains(e), "{g}"),
                (e, g) => panic!("{own}: expected {e:?}, got {g:?}"),
            }
        }
        assert_eq!(
            missing_controllers("cpuset cpu io memory\n", &["cpu", "io"]),
            Vec::<&str>::new()
        );
        assert_eq!(missing_controllers("", &["cpu"]), ["cpu"]);
        assert_eq!(missing_controllers("cpu memory", &["cpu", "io"]), ["io"]);
    }

    fn sh(script: &str) -> JobCommand {
        JobCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("HOLDFAST_TRACE_ID".into(), "abc".into())],
            heavy: true,
        }
    }

    async fn run(
        script: &str,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> (Attempt, Vec<String>) {
        let mut lines = Vec::new();
        let iso = Isolation {
            nice: 5,
            ionice: IoClass::Idle,
            cgroup: None,
        };
        let a = run_attempt(&sh(script), &iso, timeout, cancel, |l| lines.push(l)).await;
        (a, lines)
    }

    #[tokio::test]
    async fn success_with_report_and_log() {
        let (a, lines) = run(
            r#"echo "trace $HOLDFAST_TRACE_ID nice $(cut -d' ' -f19 /proc/self/stat)" >&2; printf '{"schema":"holdfast/v1",\n "id":"b1"}\n'"#,
            Duration::from_secs(10),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(a.outcome, Outcome::Succeeded);
        assert_eq!(a.report.unwrap()["id"], "b1");
        assert_eq!(lines, vec!["trace abc nice 5".to_string()]);
    }

    #[tokio::test]
    async fn failure_keeps_exit_code_and_error() {
        let (a, _) = run(
            r#"echo 'error: cannot connect to db1:3306' >&2; echo '{"error":{"code":10,"message":"cannot connect (json)"}}'; exit 10"#,
            Duration::from_secs(10),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(a.outcome, Outcome::Exited(10));
        assert_eq!(a.error.as_deref(), Some("cannot connect (json)"));
        let (a, _) = run(
            "echo 'error: plain' >&2; exit 11",
            Duration::from_secs(10),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(a.outcome, Outcome::Exited(11));
        assert_eq!(a.error.as_deref(), Some("plain"));
    }

    #[tokio::test]
    async fn timeout_sends_sigterm_first() {
        // The child traps SIGTERM and exits 130 like holdfast does.
        let (a, lines) = run(
            "trap 'echo stopping >&2; exit 130' TERM; echo started >&2; while :; do sleep 0.1; done",
            Duration::from_millis(500),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(a.outcome, Outcome::TimedOut);
        assert_eq!(a.exit_code, Some(130));
        assert_eq!(lines, vec!["started".to_string(), "stopping".to_string()]);
    }

    #[tokio::test]
    async fn cancel_stops_it() {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let started = std::time::Instant::now();
        let (a, _) = run("sleep 30", Duration::from_secs(60), cancel).await;
        assert_eq!(a.outcome, Outcome::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn credentials_of_the_daemon_are_not_inherited() {
        std::env::set_var("MYSQL_PWD", "daemon-secret");
        let (a, lines) = run(
            "echo \"pw=[$MYSQL_PWD]\" >&2",
            Duration::from_secs(10),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(a.outcome, Outcome::Succeeded);
        assert_eq!(lines, vec!["pw=[]".to_string()]);
    }

    #[tokio::test]
    async fn a_missing_program_is_a_crash_with_a_message() {
        let cmd = JobCommand {
            program: "/nonexistent/holdfast".into(),
            args: vec![],
            env: vec![],
            heavy: false,
        };
        let a = run_attempt(
            &cmd,
            &Isolation::default(),
            Duration::from_secs(5),
            CancellationToken::new(),
            |_| {},
        )
        .await;
        assert_eq!(a.outcome, Outcome::Crashed);
        assert!(a.error.unwrap().contains("/nonexistent/holdfast"));
    }
}
