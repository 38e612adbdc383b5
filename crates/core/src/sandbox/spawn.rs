//! Spawning servers so that they die with the process that started them.
//!
//! `Drop` kills a sandbox server on every normal path, including a panic or a Ctrl-C that
//! drops the work in progress. But a process that is itself killed (SIGKILL, a test timeout)
//! runs no destructors, and an orphaned `mariadbd` would hold its memory forever. Linux's
//! `PR_SET_PDEATHSIG` makes the kernel SIGKILL the child when the *thread* that forked it
//! exits, so every server is forked from one dedicated thread that lives as long as the
//! process. (Forking from a tokio blocking thread would kill the server when that thread ends.)

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();

/// How a spawned server is scheduled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Priority {
    /// Run at nice 10 and in the lowest best-effort I/O class (like `nice -n 10 ionice -c2
    /// -n7`), so a drill on a production host yields to the production server.
    pub background: bool,
}

/// Spawns `cmd` from the process-lifetime spawner thread, with SIGKILL as its parent-death
/// signal (see the module documentation).
pub fn spawn_tied_to_process(mut cmd: Command, priority: Priority) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    let background = priority.background;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, raise,
    // setpriority, syscall).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            if background {
                // Best effort: a lower priority is a courtesy, not a requirement.
                libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                const IOPRIO_WHO_PROCESS: libc::c_long = 1;
                const IOPRIO_CLASS_BE: libc::c_long = 2;
                libc::syscall(
                    libc::SYS_ioprio_set,
                    IOPRIO_WHO_PROCESS,
                    0 as libc::c_long,
                    (IOPRIO_CLASS_BE << 13) | 7,
                );
            }
            Ok(())
        });
    }
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("holdfast-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("cannot start the server spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply_tx, reply_rx) = channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("the server spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("the server spawner thread is gone"))?
}
