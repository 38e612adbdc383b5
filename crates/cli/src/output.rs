//! Output: logging setup, progress bars, JSON reports, error messages and exit codes.
//!
//! Every `--json` report goes through [`print_json`] (or [`print_json_list`]), which makes it
//! an object tagged with [`SCHEMA`]; errors under `--json` are such an object too (see
//! docs/json.md for the whole schema).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use holdfast::progress::{NoProgress, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::args::GlobalArgs;

pub fn init_logging(global: &GlobalArgs, info_by_default: bool) {
    let default = match global.verbose {
        0 if info_by_default => "info",
        0 => "warn",
        1 => "info,holdfast=info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_env("HOLDFAST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // Colour only for a person at a terminal: never in a file, a pipe or journald.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if global.log_format == "json" {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}

/// The span every log line of this process belongs to: when the daemon runs this command as a
/// job, it carries the job's id and trace id (from `HOLDFAST_JOB_ID` / `HOLDFAST_TRACE_ID`), so
/// the command's JSON log lines can be joined with the daemon's.
pub fn job_span() -> tracing::Span {
    match std::env::var("HOLDFAST_TRACE_ID") {
        Ok(trace_id) if !trace_id.is_empty() => {
            let job_id = std::env::var("HOLDFAST_JOB_ID").unwrap_or_default();
            tracing::info_span!("job", %job_id, %trace_id)
        }
        _ => tracing::Span::none(),
    }
}

/// Prints an error (on stderr; under `--json` also as a JSON object on stdout) and returns the
/// documented exit code of its kind.
pub fn report_error(global: &GlobalArgs, e: &anyhow::Error) -> ExitCode {
    let kind = e
        .chain()
        .find_map(|c| c.downcast_ref::<holdfast::Error>())
        .map(|h| h.kind());
    let message = error_message(e);
    let code = kind.map_or(1, |k| k.exit_code());
    eprintln!("error: {message}");
    if global.json {
        let value = serde_json::json!({
            "error": {
                "code": code,
                "kind": kind.map_or("internal", kind_name),
                "message": message,
            }
        });
        let _ = print_json(&value);
    }
    ExitCode::from(code)
}

/// The stable name of an error kind, as in docs/exit-codes.md.
pub fn kind_name(kind: holdfast::ErrorKind) -> &'static str {
    use holdfast::ErrorKind as K;
    match kind {
        K::Internal => "internal",
        K::Usage => "usage",
        K::RepoMissing => "repo-missing",
        K::RepoInvalid => "repo-invalid",
        K::Locked => "locked",
        K::Key => "key",
        K::Storage => "storage",
        K::NotFound => "not-found",
        K::Connect => "connect",
        K::Auth => "auth",
        K::Server => "server",
        K::LockTimeout => "lock-timeout",
        K::TargetNotEmpty => "target-not-empty",
        K::NotRecoverable => "not-recoverable",
        K::Integrity => "integrity",
        K::NotCovered => "not-covered",
        K::Interrupted => "interrupted",
    }
}

/// An error and its causes in one line, each cause once: holdfast's errors already show their
/// source in their own message, so a cause whose text is already there is skipped.
pub fn error_message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
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

/// The version of the JSON outputs; a field is only ever added within one version.
pub const SCHEMA: &str = "holdfast/v1";

/// Prints a report as pretty JSON on stdout: an object, tagged `"schema": "holdfast/v1"`.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(&tagged(value)?)?);
    Ok(())
}

/// Prints a list as `{"schema": …, "<key>": [ … ]}`: no output is a bare array.
pub fn print_json_list<T: Serialize>(key: &str, items: &[T]) -> anyhow::Result<()> {
    let mut map = serde_json::Map::new();
    map.insert(key.to_string(), serde_json::to_value(items)?);
    print_json(&serde_json::Value::Object(map))
}

/// `value` as a JSON object with the schema tag (a non-object is put under `"value"`).
pub fn tagged<T: Serialize>(value: &T) -> anyhow::Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("schema".into(), SCHEMA.into());
    match serde_json::to_value(value)? {
        serde_json::Value::Object(fields) => {
            for (k, v) in fields {
                if k != "schema" {
                    map.insert(k, v);
                }
            }
        }
        other => {
            map.insert("value".into(), other);
        }
    }
    Ok(serde_json::Value::Object(map))
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

/// A time for people: RFC 3339 in UTC to the second (`2026-11-21T04:05:06Z`), what
/// `--to-time` takes back. JSON keeps full precision ([`rfc3339`]).
pub fn human_time(t: time::OffsetDateTime) -> String {
    rfc3339(
        t.to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .unwrap_or(t),
    )
}

/// The first whole second at or after `t`: for the start of a recoverable window, so the time
/// shown is one a recovery can reach (`2026-11-21T04:05:06.2Z` shows as `…04:05:07Z`).
pub fn human_time_up(t: time::OffsetDateTime) -> String {
    human_time(ceil_second(t))
}

/// The first whole second at or after `t`.
pub fn ceil_second(t: time::OffsetDateTime) -> time::OffsetDateTime {
    if t.nanosecond() > 0 {
        t.replace_nanosecond(0).unwrap_or(t) + time::Duration::SECOND
    } else {
        t
    }
}

/// A time for a table column: UTC to the second, `2026-11-21 04:05:06`, always 19 characters.
pub fn table_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `1 table`, `2 tables`: a count and its noun, singular or plural (`plural` given for
/// irregular nouns; `None` adds an `s`).
pub fn count(n: impl Into<u64>, singular: &str, plural: Option<&str>) -> String {
    let n = n.into();
    match (n, plural) {
        (1, _) => format!("1 {singular}"),
        (_, Some(p)) => format!("{n} {p}"),
        (_, None) => format!("{n} {singular}s"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied");
        let core = holdfast::Error::with_source(
            holdfast::ErrorKind::Storage,
            "cannot write backups/x",
            io,
        )
        .context("backup failed");
        let e = anyhow::Error::from(core).context("while running backup");
        assert_eq!(
            error_message(&e),
            "while running backup: backup failed: cannot write backups/x (permission denied)"
        );
    }

    #[test]
    fn counts_and_times() {
        assert_eq!(count(1u64, "table", None), "1 table");
        assert_eq!(count(0u64, "table", None), "0 tables");
        assert_eq!(count(3u64, "copy", Some("copies")), "3 copies");
        let t = time::macros::datetime!(2026-11-21 04:05:06.123456789 UTC);
        assert_eq!(table_time(t), "2026-11-21 04:05:06");
        assert_eq!(human_time(t), "2026-11-21T04:05:06Z");
        assert_eq!(human_time_up(t), "2026-11-21T04:05:07Z");
        let whole = time::macros::datetime!(2026-11-21 06:05:06 +02:00);
        assert_eq!(human_time(whole), "2026-11-21T04:05:06Z");
        assert_eq!(human_time_up(whole), "2026-11-21T04:05:06Z");
    }

    #[test]
    fn every_report_is_a_tagged_object() {
        let v = tagged(&serde_json::json!({"id": "x"})).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["id"], "x");
        let v = tagged(&vec![1, 2]).unwrap();
        assert_eq!(v["value"], serde_json::json!([1, 2]));
    }
}
