//! The `holdfast` command line: one module per subcommand under `commands/`, shared argument
//! groups and output helpers in `args` and `output`.

mod args;
mod commands;
mod keys;
mod output;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::args::GlobalArgs;

#[derive(Parser)]
#[command(
    name = "holdfast",
    version,
    about = "Backup and point-in-time recovery for MySQL and MariaDB"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new, empty repository.
    Init(commands::init::Args),
    /// Take a backup of a running server into the repository.
    Backup(commands::backup::Args),
    /// List the backups in the repository.
    List(commands::list::Args),
    /// Show the repository or one backup in detail.
    Info(commands::info::Args),
    /// Restore a backup into a server.
    Restore(commands::restore::Args),
    /// Are we covered? Backups, the binlog archive and its streamer, the recoverable window;
    /// exit 0 when covered, 21 when not.
    Status(commands::status::Args),
    /// Check a backup's files against its manifest.
    Verify(commands::verify::Args),
    /// Restore a backup into a throwaway server, prove it, and record the evidence;
    /// `drill report` summarises the drills.
    Drill(commands::drill::Args),
    /// Binlog archiving: `stream` continuously, `list` what is archived.
    #[command(subcommand)]
    Binlog(commands::binlog::Command),
    /// Remove debris of interrupted runs: files of backups that never committed, incomplete
    /// uploads (S3 multipart parts, staged files).
    Cleanup(commands::cleanup::Args),
    /// Copy backups and the binlog archive to another repository.
    Copy(commands::copy::Args),
    /// Manage the key slots of an encrypted repository.
    Key(commands::key::Args),
    /// Remove the backups and binlog segments a retention policy does not keep.
    Expire(commands::expire::Args),
    /// The retention policy stored in the repository: `set`, `show`, `clear`.
    #[command(subcommand)]
    Policy(commands::policy::Command),
    /// Keep a backup whatever the retention policy says.
    Pin(commands::pin::PinArgs),
    /// Remove a backup's pin.
    Unpin(commands::pin::UnpinArgs),
    /// Run schedules, jobs, binlog archivers, metrics and alerts from a config file;
    /// `--check-config` validates it and prints the plan.
    Daemon(commands::daemon::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(commands::completions::Args),
    /// Write the man pages into a directory (used by packaging).
    #[command(hide = true)]
    Manpages(commands::manpages::Args),
    /// Alert channels of the daemon's config: `test` sends a test message to each.
    #[command(subcommand)]
    Notify(commands::notify::Command),
    /// The daemon's users (API and console): `add`, `passwd`, `disable`, `enable`, `list`.
    #[command(subcommand)]
    User(commands::user::Command),
    /// The daemon's API tokens: `create` (shown once), `list`, `revoke`.
    #[command(subcommand)]
    Token(commands::token::Command),
    /// The daemon's audit log: `verify` its hash chain, `export` it as JSON lines.
    #[command(subcommand)]
    Audit(commands::audit::Command),
}

/// Keeps the multi-megabyte buffers of the data paths (compressed frames, upload parts) in the
/// heap once freed, instead of glibc handing each back to the kernel and faulting fresh zeroed
/// pages in for the next. Measured on a dump of 8 x 1M sysbench rows: page faults 110k -> 28k,
/// client system time about 0.25 s less (some 7% of the client's CPU). The price is some peak
/// RSS, as freed buffers are reused rather than returned (that dump: 97 MB). Allocations of
/// 32 MiB and more are still mapped on their own.
fn keep_freed_buffers() {
    // SAFETY: mallopt only adjusts allocator thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    keep_freed_buffers();
    let cli = Cli::parse();
    // The daemon logs what it does by default; other commands only warnings unless -v.
    output::init_logging(&cli.global, matches!(cli.command, Command::Daemon(_)));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let global = cli.global.clone();
    let result = runtime.block_on(tracing::Instrument::instrument(
        async {
            // `binlog stream` ends on a signal by itself, keeping what it archived.
            if let Command::Binlog(c) = cli.command {
                return commands::binlog::run(&cli.global, c).await;
            }
            // The daemon handles its signals itself (SIGTERM: drain; SIGHUP: reload).
            if let Command::Daemon(a) = cli.command {
                return commands::daemon::run(&cli.global, a).await;
            }
            let interrupted = interrupted_message(&cli.command);
            let run = async {
                match cli.command {
                    Command::Init(a) => commands::init::run(&cli.global, a).await,
                    Command::Backup(a) => commands::backup::run(&cli.global, a).await,
                    Command::List(a) => commands::list::run(&cli.global, a).await,
                    Command::Info(a) => commands::info::run(&cli.global, a).await,
                    Command::Restore(a) => commands::restore::run(&cli.global, a).await,
                    Command::Status(a) => commands::status::run(&cli.global, a).await,
                    Command::Verify(a) => commands::verify::run(&cli.global, a).await,
                    Command::Drill(a) => commands::drill::run(&cli.global, a).await,
                    Command::Binlog(c) => commands::binlog::run(&cli.global, c).await,
                    Command::Cleanup(a) => commands::cleanup::run(&cli.global, a).await,
                    Command::Copy(a) => commands::copy::run(&cli.global, a).await,
                    Command::Key(a) => commands::key::run(&cli.global, a).await,
                    Command::Expire(a) => commands::expire::run(&cli.global, a).await,
                    Command::Policy(c) => commands::policy::run(&cli.global, c).await,
                    Command::Pin(a) => commands::pin::pin(&cli.global, a).await,
                    Command::Unpin(a) => commands::pin::unpin(&cli.global, a).await,
                    Command::Daemon(a) => commands::daemon::run(&cli.global, a).await,
                    Command::Completions(a) => commands::completions::run(a),
                    Command::Manpages(a) => commands::manpages::run(a),
                    Command::Notify(c) => commands::notify::run(&cli.global, c).await,
                    Command::User(c) => commands::user::run(&cli.global, c).await,
                    Command::Token(c) => commands::token::run(&cli.global, c).await,
                    Command::Audit(c) => commands::audit::run(&cli.global, c).await,
                }
            };
            let result = tokio::select! {
                r = run => r,
                _ = stop_signal() => {
                    Err(holdfast::Error::new(holdfast::ErrorKind::Interrupted, interrupted).into())
                }
            };
            // The command's future is gone: locks it held are being released; wait for that.
            holdfast::repo::lock::finish_releases(std::time::Duration::from_secs(10)).await;
            result
        },
        output::job_span(),
    ));
    match result {
        Ok(code) => code,
        Err(e) => output::report_error(&global, &e),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM (systemd, the daemon cancelling a job): both stop a
/// command the same clean way.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// What Ctrl-C (or SIGTERM) leaves behind, per command.
fn interrupted_message(command: &Command) -> &'static str {
    match command {
        Command::Backup(_) => {
            "interrupted, nothing committed: the backup was abandoned and the repository lock \
             released (`holdfast cleanup` removes its partial files)"
        }
        Command::Copy(_) => {
            "interrupted: backups copied before were committed, the one in progress was not; \
             run the same copy again to resume"
        }
        Command::Restore(_) => {
            "interrupted: the target may hold part of the restore; restore again with \
             --drop-existing"
        }
        Command::Expire(_) => {
            "interrupted: backups whose manifest was deleted are gone, the rest are kept; run \
             the same expire again (and `holdfast cleanup` for leftover files)"
        }
        Command::Drill(_) => {
            "interrupted: the drill's throwaway server was stopped and removed; no drill record \
             was written"
        }
        _ => "interrupted",
    }
}
