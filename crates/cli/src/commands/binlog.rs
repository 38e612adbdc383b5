//! `holdfast binlog stream | list | compact`: continuous binlog archiving, the archive's
//! contents, and its compaction (in `binlog_compact.rs`).

use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use holdfast::binlog::archive::Archive;
use holdfast::binlog::client::DumpStart;
use holdfast::binlog::compact::CompactPolicy;
use holdfast::binlog::gtid::Gtid;
use holdfast::binlog::stream::{run_stream, StreamObserver, StreamOptions};
use holdfast::manifest::{PieceStart, SegmentIndex, StreamState, StreamStatus};
use holdfast::Error;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::args::{parse_duration, parse_size, GlobalArgs, RepoArgs, ServerArgs};
use crate::output::outln;
use crate::output::{human_bytes, human_time, print_json, print_json_list, unix_time};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Archive the server's binlog continuously (until SIGINT/SIGTERM), resuming where the
    /// archive ends; every disconnect is retried.
    Stream(Box<StreamArgs>),
    /// List archived segments with their positions, times and GTID ranges.
    List(ListArgs),
    /// Merge runs of small closed segments into larger ones (up to 64 MiB or an hour each),
    /// crash-safe; also done by `binlog stream` itself.
    Compact(super::binlog_compact::CompactArgs),
}

#[derive(clap::Args)]
pub struct StreamArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// The server to archive: mysql://user@host:port/ or mysql://user@localhost/?socket=/path.
    #[arg(long, env = "HOLDFAST_SOURCE")]
    source: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
    /// Our server_id as a replica (must be unique in the replication topology).
    #[arg(long, default_value_t = StreamOptions::default().replica_server_id)]
    server_id: u32,
    /// Longest time an event waits before it is in the repository.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    flush_interval: Duration,
    /// Largest segment (a bigger transaction is split across segments).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    max_segment: u64,
    /// Heartbeat period asked of the server; silence for three beats plus 5 s means a dead link.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// Longest wait between reconnection attempts.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    max_retry_wait: Duration,
    /// Archive what the server has now, then exit (for cron-style use and tests).
    #[arg(long)]
    until_caught_up: bool,
    /// How often the heartbeat record `binlog/stream-status.json` is rewritten.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    status_interval: Duration,
    /// How often a status line (last GTID, lag, segments) goes to stderr without -v; 0 for
    /// only at start and on reconnects.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    report_interval: Duration,
    /// Compact the archive while streaming: merge segments archived at least this long ago
    /// (as `holdfast binlog compact --older-than` does).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    compact_older_than: Duration,
    /// Do not compact the archive while streaming.
    #[arg(long)]
    no_compact: bool,
}

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    repo: RepoArgs,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Stream(args) => stream(global, *args).await,
        Command::List(args) => list(global, args).await,
        Command::Compact(args) => super::binlog_compact::run(global, args).await,
    }
}

/// What the stream tells its operator. Without -v (and with text logs): short plain lines on
/// stderr, no colour: at start, on each disconnect and reconnect, on a new run, and a status
/// line every `--report-interval`. With -v (or JSON logs): the same through the log.
struct StreamReporter {
    plain: bool,
    endpoint: String,
    report_every: Duration,
    last_report: Mutex<Option<(Instant, StreamState)>>,
}

impl StreamReporter {
    fn say(&self, line: std::fmt::Arguments<'_>) {
        eprintln!("holdfast binlog stream: {line}");
    }
}

impl StreamObserver for StreamReporter {
    fn connected(&self, start: &DumpStart, reconnects: u64) {
        let at = match start {
            DumpStart::Position { file, pos } => format!("at {file}:{pos}"),
            DumpStart::Gtid(g) if g.is_empty() => "from the oldest binlog".to_string(),
            DumpStart::Gtid(g) => format!("after GTID {g}"),
        };
        if !self.plain {
            tracing::info!(endpoint = %self.endpoint, %at, reconnects, "streaming");
        } else if reconnects == 0 {
            self.say(format_args!("streaming {} {at}", self.endpoint));
        } else {
            self.say(format_args!(
                "reconnected to {} (reconnect {reconnects}); streaming {at}",
                self.endpoint
            ));
        }
    }
    fn segment(&self, s: &SegmentIndex) {
        tracing::info!(
            seq = s.seq,
            file = %s.source.file,
            end_pos = s.end_pos,
            events = s.events,
            transactions = s.transactions,
            gtid = %s.gtid_state,
            "segment archived"
        );
    }
    fn retrying(&self, error: &Error, wait: Duration, heal: bool) {
        let note = if heal {
            " (not a network failure: retrying until it heals; fix it and the stream resumes by itself)"
        } else {
            ""
        };
        if self.plain {
            self.say(format_args!(
                "lost {}: {error}; reconnecting in {:.1}s{note}",
                self.endpoint,
                wait.as_secs_f64()
            ));
        } else {
            tracing::warn!(error = %error, wait_ms = wait.as_millis() as u64, heal, "binlog stream interrupted; reconnecting");
        }
    }
    fn new_run(&self, piece: &PieceStart) {
        let PieceStart::NewRun { reason, .. } = piece else {
            return;
        };
        let advice = "points in the hole cannot be recovered; a point after it needs a backup \
                      taken at or after the new run's start (`holdfast info` shows the hole)";
        if self.plain {
            self.say(format_args!(
                "WARNING: starting a new run of the archive after a hole: {reason}; {advice}"
            ));
        } else {
            tracing::warn!(%reason, "starting a new run of the archive after a hole; {advice}");
        }
    }
    fn status(&self, st: &StreamStatus) {
        let mut last = self.last_report.lock().expect("reporter lock");
        let previous = *last;
        let streaming = st.state == StreamState::Streaming;
        // A line on entering the streaming state (start, each reconnect), then periodically.
        let entering = streaming && previous.is_none_or(|(_, s)| s != StreamState::Streaming);
        let periodic = streaming
            && !self.report_every.is_zero()
            && previous.is_some_and(|(at, _)| at.elapsed() >= self.report_every);
        if !entering && !periodic {
            *last = Some((previous.map_or_else(Instant::now, |(at, _)| at), st.state));
            return;
        }
        *last = Some((Instant::now(), st.state));
        let gtid = if st.gtid_state.is_empty() {
            "(none yet)"
        } else {
            &st.gtid_state
        };
        let lag = st
            .lag_seconds
            .map_or("unknown".to_string(), |l| format!("{l}s"));
        let event = st
            .last_event_time
            .map(human_time)
            .unwrap_or_else(|| "-".into());
        if self.plain {
            self.say(format_args!(
                "archive at GTID {gtid} (last event {event}), lag {lag}, {} segment(s) written, {} reconnect(s)",
                st.segments_written, st.reconnects
            ));
        } else {
            tracing::info!(gtid, last_event = %event, lag = %lag, segments = st.segments_written, reconnects = st.reconnects, "binlog stream status");
        }
    }
}

async fn stream(global: &GlobalArgs, args: StreamArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let source = args.server.resolve(args.source.as_deref())?;
    let options = StreamOptions {
        replica_server_id: args.server_id,
        flush_interval: args.flush_interval,
        max_segment_bytes: args.max_segment.max(64 * 1024) as usize,
        heartbeat: args.heartbeat,
        retry_max: args.max_retry_wait,
        until_caught_up: args.until_caught_up,
        status_interval: args.status_interval.max(Duration::from_secs(1)),
        compact: (!args.no_compact).then(|| CompactPolicy {
            older_than: args.compact_older_than,
            ..CompactPolicy::default()
        }),
        ..StreamOptions::default()
    };
    let reporter = StreamReporter {
        plain: global.verbose == 0 && global.log_format == "text",
        endpoint: source.endpoint(),
        report_every: args.report_interval,
        last_report: Mutex::new(None),
    };
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    let report = run_stream(&repo, &source, &options, &reporter, cancel).await?;
    if global.json {
        print_json(&report)?;
    } else {
        outln!(
            "archived {} segments, {} transactions, {} of binlog; archive ends at GTID {}",
            report.segments_written,
            report.transactions,
            human_bytes(report.bytes),
            if report.gtid_state.is_empty() {
                "(none)"
            } else {
                &report.gtid_state
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn cancel_on_signal(cancel: CancellationToken) {
    crate::stop_signal().await;
    tracing::info!("stopping: writing what is pending");
    cancel.cancel();
}

async fn list(global: &GlobalArgs, args: ListArgs) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let segments = Archive::new(repo.storage().clone()).segments().await?;
    // Each hole is shown on the segment after it: never bridged, never silent.
    let holes = holdfast::recovery::archive_holes(&segments);
    let hole_before = |seq: u64| holes.iter().find(|h| h.before_seq == seq);
    if global.json {
        let rows: Vec<_> = segments
            .iter()
            .map(|s| {
                json!({
                    "hole_before": hole_before(s.seq),
                    "seq": s.seq,
                    "last_seq": s.last_seq(),
                    "merged": s.merged_to.is_some(),
                    "server_id": s.source.server_id,
                    "file": s.source.file,
                    "file_created": unix_time(s.source.file_created),
                    "start_pos": s.start_pos,
                    "end_pos": s.end_pos,
                    "piece_start": s.piece_start,
                    "first_event_time": unix_time(s.first_event_time),
                    "last_event_time": unix_time(s.last_event_time),
                    "first_gtid": s.first_gtid,
                    "last_gtid": s.last_gtid,
                    "gtid_state": s.gtid_state,
                    "events": s.events,
                    "transactions": s.transactions,
                    "open_transaction": s.open_transaction,
                    "raw_bytes": s.raw_size,
                    "stored_bytes": s.object.size,
                    "object": s.object.path,
                })
            })
            .collect();
        print_json_list("segments", &rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if segments.is_empty() {
        outln!("no archived binlog in {}", repo.storage().location());
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:>6} {:<22} {:>10} {:>10} {:<20} {:<20} {:>6} {:>9}  GTIDS",
        "SEQ",
        "FILE",
        "START",
        "END",
        "FIRST EVENT",
        "LAST EVENT",
        "TRX",
        "SIZE"
    );
    for (i, s) in segments.iter().enumerate() {
        // Sequence numbers have no holes: a missing one is a lost index entry, shown as such.
        if let Some(prev) = i.checked_sub(1).map(|p| &segments[p]) {
            let after = prev.last_seq();
            if s.seq > after + 1 {
                outln!(
                    "{:>6} MISSING: the index entr{} of segment{} {} ({}) {} lost; `holdfast \
                     verify --all` names the damage",
                    after + 1,
                    if s.seq == after + 2 { "y" } else { "ies" },
                    if s.seq == after + 2 { "" } else { "s" },
                    if s.seq == after + 2 {
                        (after + 1).to_string()
                    } else {
                        format!("{} to {}", after + 1, s.seq - 1)
                    },
                    holdfast::binlog::archive::index_path(after + 1),
                    if s.seq == after + 2 { "is" } else { "are" },
                );
            }
        }
        if let Some(h) = hole_before(s.seq) {
            outln!(
                "{:>6} HOLE after GTID {} — {}",
                "",
                h.from_gtid,
                if h.new_run {
                    "new run of the archive: points in the hole cannot be recovered"
                } else {
                    "transactions may be missing: no recovery crosses it"
                }
            );
        }
        let gtids = match (&s.first_gtid, &s.last_gtid) {
            // MySQL: one source's interval, as in gtid_executed.
            (Some(Gtid::MySql(a)), Some(Gtid::MySql(b))) if a.sid == b.sid && a.gno < b.gno => {
                format!("{}:{}-{}", a.sid, a.gno, b.gno)
            }
            (Some(a), Some(b)) if a != b => format!("{a} .. {b}"),
            (Some(a), _) | (None, Some(a)) => a.to_string(),
            (None, None) => "-".to_string(),
        };
        outln!(
            "{:>6} {:<22} {:>10} {:>10} {:<20} {:<20} {:>6} {:>9}  {}{}",
            s.seq_label(),
            s.source.file,
            s.start_pos,
            s.end_pos,
            unix_time(s.first_event_time),
            unix_time(s.last_event_time),
            s.transactions,
            human_bytes(s.object.size),
            gtids,
            if s.open_transaction { " (open)" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}
