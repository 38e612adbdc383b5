//! Spawning servers so that they die with the test process.
//!
//! `Drop` kills a server on every normal path, including a panicking test. But a test process
//! that is itself killed (a nextest timeout, Ctrl-C) runs no destructors, and an orphaned
//! `mariadbd` would hold its port and memory forever. Linux's `PR_SET_PDEATHSIG` makes the
//! kernel SIGKILL the child when the *thread* that forked it exits, so we fork every server
//! from one dedicated thread that lives as long as the process. (Forking from the test's own
//! thread, or a tokio blocking thread, would kill the server when that thread ends.)

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Request = (Command, Sender<io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<Sender<Request>>> = OnceLock::new();

/// Spawns `cmd` from the process-lifetime spawner thread, with SIGKILL as its parent-death signal.
pub(crate) fn spawn_tied_to_process(mut cmd: Command) -> io::Result<Child> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, raise).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::raise(libc::SIGKILL);
            }
            Ok(())
        });
    }
    let sender = SPAWNER
        .get_or_init(|| {
            let (tx, rx) = channel::<Request>();
            std::thread::Builder::new()
                .name("testkit-spawner".into())
                .spawn(move || {
                    for (mut cmd, reply) in rx {
                        let _ = reply.send(cmd.spawn());
                    }
                })
                .expect("holdfast-testkit: cannot start the spawner thread");
            Mutex::new(tx)
        })
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (reply_tx, reply_rx) = channel();
    sender
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("testkit spawner thread is gone"))?
}
