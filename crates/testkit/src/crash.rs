//! The crash runner: runs a command (a holdfast subcommand) and `SIGKILL`s it at a chosen
//! point, by time or when a progress marker appears in its output.
//!
//! [`run_killed`] spawns the command with stdout and stderr piped, reads both line by line
//! (the lines are kept for failure messages), and kills the process when its [`KillAt`] point
//! comes: after a delay, or `delay` after the first line containing a marker (a log line on
//! stderr, a `--json` field on stdout). A process that ends by itself first is reported as
//! finished, not killed, so a sweep can tell a kill that landed from one that came too late.
//! [`KillPoints`] draws kill times from a seed, so a failing point replays exactly.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// When to kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAt {
    /// This long after the start.
    After(Duration),
    /// `delay` after the first output line (stdout or stderr) containing `marker`; if the
    /// marker never appears, the process runs to its end.
    Marker { marker: String, delay: Duration },
    /// Never: run to the end (to measure a command's duration).
    Never,
}

/// The outcome of one run.
#[derive(Debug)]
pub struct CrashRun {
    /// True when the SIGKILL was sent while the process was still running.
    pub killed: bool,
    pub status: ExitStatus,
    /// From start to exit.
    pub elapsed: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl CrashRun {
    /// True when the command ended by itself with exit 0.
    pub fn succeeded(&self) -> bool {
        !self.killed && self.status.success()
    }

    /// Everything it printed, for a failure message.
    pub fn text(&self) -> String {
        format!(
            "killed {} status {:?} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.killed,
            self.status.code(),
            self.elapsed,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `cmd` (its stdout and stderr are replaced with pipes) and kills it with SIGKILL at
/// `at`. Waits for the process to end either way.
pub fn run_killed(mut cmd: Command, at: KillAt) -> CrashRun {
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("crash runner: cannot start {cmd:?}: {e}"));
    let pid = child.id() as i32;
    let stdout = Arc::new(Mutex::new(String::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let (seen_tx, seen_rx) = mpsc::channel::<()>();
    let marker = match &at {
        KillAt::Marker { marker, .. } => Some(marker.clone()),
        _ => None,
    };
    let mut readers = Vec::new();
    for (pipe, sink) in [
        (
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            stdout.clone(),
        ),
        (Box::new(child.stderr.take().unwrap()), stderr.clone()),
    ] {
        let tx = seen_tx.clone();
        let marker = marker.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if marker.as_deref().is_some_and(|m| line.contains(m)) {
                    let _ = tx.send(());
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        }));
    }
    drop(seen_tx);
    // When to kill, once known.
    let mut kill_at: Option<Instant> = match &at {
        KillAt::After(d) => Some(start + *d),
        _ => None,
    };
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if kill_at.is_none() {
            if let KillAt::Marker { delay, .. } = &at {
                if seen_rx.try_recv().is_ok() {
                    kill_at = Some(Instant::now() + *delay);
                }
            }
        }
        if kill_at.is_some_and(|t| Instant::now() >= t) && !killed {
            // SAFETY: kill(2) on our own child, which has not been reaped (try_wait said so).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // A killed process's own children (mariabackup, a shell's commands) may hold the pipes
    // open: give the readers a moment for the last lines, then go on without them.
    let deadline = Instant::now() + Duration::from_secs(2);
    for r in readers {
        while !r.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
    // A process that exited in the instant before the signal counts as finished.
    let killed = killed && status_is_sigkill(&status);
    let stdout = std::mem::take(&mut *stdout.lock().unwrap());
    let stderr = std::mem::take(&mut *stderr.lock().unwrap());
    CrashRun {
        killed,
        status,
        elapsed: start.elapsed(),
        stdout,
        stderr,
    }
}

fn status_is_sigkill(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}

/// Kill times drawn from a seed.
#[derive(Debug)]
pub struct KillPoints {
    rng: StdRng,
}

impl KillPoints {
    pub fn new(seed: u64) -> KillPoints {
        KillPoints {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `n` times spread over `0..span`: one drawn uniformly inside each of `n` equal slices,
    /// so early, middle and late points are all tried whatever the seed.
    pub fn spread(&mut self, n: usize, span: Duration) -> Vec<Duration> {
        let slice = span.as_secs_f64() / n.max(1) as f64;
        (0..n)
            .map(|i| {
                let at = slice * (i as f64 + self.rng.gen_range(0.0..1.0));
                Duration::from_secs_f64(at)
            })
            .collect()
    }

    /// A number in `range`, from the same seeded sequence.
    pub fn pick(&mut self, range: std::ops::Range<u64>) -> u64 {
        self.rng.gen_range(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn kills_after_a_delay() {
        let run = run_killed(sh("sleep 5"), KillAt::After(Duration::from_millis(100)));
        assert!(run.killed);
        assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    }

    #[test]
    fn kills_at_a_marker_and_keeps_the_output() {
        let run = run_killed(
            sh("echo one; echo 'phase: two' >&2; sleep 5; echo never"),
            KillAt::Marker {
                marker: "phase: two".into(),
                delay: Duration::ZERO,
            },
        );
        assert!(run.killed, "{}", run.text());
        assert_eq!(run.stdout, "one\n");
        assert!(run.stderr.contains("phase: two"));
    }

    #[test]
    fn a_process_that_ends_first_is_not_killed() {
        let run = run_killed(sh("exit 3"), KillAt::After(Duration::from_secs(5)));
        assert!(!run.killed);
        assert_eq!(run.status.code(), Some(3));
        let run = run_killed(
            sh("echo done"),
            KillAt::Marker {
                marker: "absent".into(),
                delay: Duration::ZERO,
            },
        );
        assert!(run.succeeded());
    }

    #[test]
    fn kill_points_replay_from_the_seed_and_cover_the_span() {
        let a = KillPoints::new(7).spread(25, Duration::from_secs(10));
        let b = KillPoints::new(7).spread(25, Duration::from_secs(10));
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(a[0] < Duration::from_millis(400));
        assert!(a[24] > Duration::from_millis(9600));
    }
}
