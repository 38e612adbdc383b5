//! Running one attempt of a job: every job is a `holdfast` command run as a child process.
//!
//! [`command`] decides the command line and environment for a job (pure: tested with tables);
//! [`process`] starts it at lower CPU and I/O priority, streams its log lines, stops it cleanly
//! on cancel or timeout, and turns its exit into an [`Outcome`](crate::jobs::retry::Outcome).
//!
//! Why a child process and not a call into the library: the CLI is the engine's tested surface
//! (its locks, signal handling and exit codes are what the hold-out tests prove), a child can be
//! niced, ioniced and put in a cgroup on its own, and a crash or a leak in one job never takes
//! the daemon or another job with it.

pub mod command;
pub mod process;

pub use command::{job_command, stream_command, JobCommand};
pub use process::{run_attempt, Attempt, Isolation};
