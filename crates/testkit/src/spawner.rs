//! Spawning servers so that they die with the test process: core's sandbox spawner (one
//! process-lifetime thread forks every server with `PR_SET_PDEATHSIG`), at normal priority.

use std::io;
use std::process::{Child, Command};

use holdfast::sandbox::{spawn_tied_to_process as spawn, Priority};

/// Spawns `cmd` from the process-lifetime spawner thread, with SIGKILL as its parent-death signal.
pub(crate) fn spawn_tied_to_process(cmd: Command) -> io::Result<Child> {
    spawn(cmd, Priority::default())
}
