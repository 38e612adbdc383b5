//! `binlog/stream-status.json`: the streamer's heartbeat record, overwritten every few seconds,
//! on each change of state and at exit.
//!
//! It lets a reader (`holdfast status`, the daemon, monitoring) tell the three cases apart that
//! the archive alone cannot: a live streamer on a busy source (recent `written`, recent
//! `last_event_time`), a live streamer on an idle source (recent `written` and
//! `caught_up_as_of`, old `last_event_time`), and a dead streamer (old `written`, or state
//! `stopped`). It holds no secret: the source is named by host and port only, never by a URL
//! with credentials.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The newest stream status format this build reads and writes.
pub const STREAM_STATUS_FORMAT: u32 = 1;

/// What the streamer is doing.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StreamState {
    /// Connected and receiving events (or heartbeats).
    Streaming,
    /// Disconnected; retrying with backoff (`last_error` says why).
    Reconnecting,
    /// Ended: by a signal, `--until-caught-up`, or a fatal error (`last_error`).
    Stopped,
}

/// The streamer's heartbeat record (see the module documentation).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamStatus {
    pub format: u32,
    /// When this record was written; a reader compares it with `interval_seconds` to tell a
    /// live streamer from a dead one.
    #[serde(with = "time::serde::rfc3339")]
    pub written: OffsetDateTime,
    /// The streamer writes the record at least this often while it runs.
    pub interval_seconds: u64,
    pub host: String,
    pub pid: u32,
    pub holdfast_version: String,
    /// When this streamer process started.
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub state: StreamState,
    /// The source as `host:port` (or the socket path): never a URL, user or password.
    pub source: String,
    /// `server_id` of the server whose binlog was last received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_server_id: Option<u32>,
    /// Sequence number of the newest committed segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// Timestamp of the newest archived event (its commit time on the source).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_event_time: Option<OffsetDateTime>,
    /// The archive's GTID position (complete transactions in the repository).
    pub gtid_state: String,
    /// The last instant the archive held every event the server had written: the server sent
    /// a heartbeat (it had nothing more) with nothing left to write. A point-in-time recovery
    /// to any time up to this one is complete, even on a server that was idle.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub caught_up_as_of: Option<OffsetDateTime>,
    /// Seconds between the newest event received and now (0 when caught up); `None` before
    /// the first event or heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<u64>,
    /// Segments written and reconnections since `started`.
    pub segments_written: u64,
    pub reconnects: u64,
    /// The error behind the current reconnecting (or the fatal one behind `stopped`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The id of the repository the streamer writes to (`holdfast.repo`): a record carried
    /// into another repository by `holdfast copy` is recognised by it. Absent in records of
    /// older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_round_trips_and_omits_what_is_unknown() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let status = StreamStatus {
            format: STREAM_STATUS_FORMAT,
            written: now,
            interval_seconds: 5,
            host: "db1".into(),
            pid: 42,
            holdfast_version: "0.1.0".into(),
            started: now,
            state: StreamState::Reconnecting,
            source: "127.0.0.1:3306".into(),
            source_server_id: None,
            last_seq: Some(7),
            last_event_time: None,
            gtid_state: "0-1-9".into(),
            caught_up_as_of: Some(now),
            lag_seconds: None,
            segments_written: 3,
            reconnects: 1,
            last_error: Some("connection lost".into()),
            repository_id: Some("a-repo".into()),
        };
        let text = serde_json::to_string(&status).unwrap();
        assert!(text.contains(r#""state":"reconnecting""#), "{text}");
        assert!(!text.contains("last_event_time"), "{text}");
        let back: StreamStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
    }
}
