//! Output: logging setup, progress bars, JSON reports, error messages and exit codes.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use holdfast::progress::{NoProgress, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::args::GlobalArgs;

pub fn init_logging(global: &GlobalArgs) {
    let default = match global.verbose {
        0 => "warn",
        1 => "info,holdfast=info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("HOLDFAST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if global.log_format == "json" {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}

/// Prints an error with its chain and returns the documented exit code of its kind.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<holdfast::Error>())
        .map(|h| h.kind());
    eprintln!("error: {e:#}");
    let code = kind.map_or(1, |k| k.exit_code());
    ExitCode::from(code)
}

/// Like `println!`, but a closed stdout (`holdfast list | head`) is not an error: the rest of
/// the report is dropped and the command carries on, where `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line of a report to stdout (see [`outln!`]).
pub fn write_line(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|()| out.write_all(b"\n")) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "cannot write the report to stdout");
        }
    }
}

/// Prints a report as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A progress sink for a command: bars on a terminal, nothing otherwise (logs carry the rest).
pub fn progress(global: &GlobalArgs) -> Arc<dyn Progress> {
    if global.json || global.no_progress || !std::io::stderr().is_terminal() {
        return Arc::new(NoProgress);
    }
    Arc::new(BarProgress {
        bar: Mutex::new(None),
    })
}

struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for BarProgress {
    fn phase(&self, name: &str, total: u64, unit: &str) {
        let mut slot = self.bar.lock().expect("progress lock");
        if let Some(old) = slot.take() {
            old.finish_and_clear();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = if unit == "bytes" {
            "{prefix:>8} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bar.set_prefix(name.to_string());
        *slot = Some(bar);
    }

    fn advance(&self, amount: u64) {
        if let Some(bar) = self.bar.lock().expect("progress lock").as_ref() {
            bar.inc(amount);
        }
    }

    fn note(&self, message: &str) {
        match self.bar.lock().expect("progress lock").as_ref() {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.lock().expect("progress lock").take() {
            bar.finish_and_clear();
        }
    }
}

/// `1.5 GiB`-style sizes for humans.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A binlog event timestamp (seconds since the epoch, UTC) as RFC 3339; `-` for 0 (unknown).
pub fn unix_time(seconds: u32) -> String {
    if seconds == 0 {
        return "-".to_string();
    }
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .map(rfc3339)
        .unwrap_or_default()
}

/// An incomplete upload in one line:
/// `backups/X/data/d/t/00000.tsv.zst (3 parts, 24.0 MiB, started 42s ago)`.
pub fn describe_upload(u: &holdfast::repo::uploads::JudgedUpload) -> String {
    format!(
        "{} ({} part{}, {}, started {} ago)",
        u.upload.path,
        u.upload.parts,
        if u.upload.parts == 1 { "" } else { "s" },
        human_bytes(u.upload.bytes),
        holdfast::repo::uploads::human_age(u.age_seconds)
    )
}
