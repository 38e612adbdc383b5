use super::*;
use crate::manifest::STREAM_STATUS_FORMAT;
use crate::recovery::Hole;

const NOW: i64 = 1_763_700_000;
const HOUR: i64 = 3600;

fn at(offset: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW + offset).unwrap()
}

fn server(id: u32) -> ServerIdentity {
    ServerIdentity {
        flavor: "mariadb".into(),
        server_id: id,
        server_uuid: String::new(),
        hostname: format!("db{id}"),
    }
}

fn backup(id: &str, server_id: u32, ago: i64, partial: bool) -> BackupFacts {
    BackupFacts {
        id: id.into(),
        server: Some(server(server_id)),
        engine: Some("logical".into()),
        time: at(-ago),
        partial: Some(partial),
        verified: None,
        drilled: None,
    }
}

/// A record written `written_ago` seconds ago by a streamer with a 5 s interval.
fn record(state: StreamState, written_ago: i64) -> StreamStatus {
    StreamStatus {
        format: STREAM_STATUS_FORMAT,
        written: at(-written_ago),
        interval_seconds: 5,
        host: "backup1".into(),
        pid: 4242,
        holdfast_version: "0.1.0".into(),
        started: at(-HOUR),
        state,
        source: "db1:3306".into(),
        source_server_id: Some(1),
        last_seq: Some(9),
        last_event_time: Some(at(-written_ago - 2)),
        gtid_state: "0-1-100".into(),
        caught_up_as_of: Some(at(-written_ago)),
        lag_seconds: Some(0),
        segments_written: 9,
        reconnects: 0,
        last_error: None,
        repository_id: Some("repo-a".into()),
    }
}

fn hole(new_run: bool, ago: i64) -> Hole {
    Hole {
        after_seq: 4,
        before_seq: 5,
        from_gtid: "0-1-50".parse().unwrap(),
        from_time: Some(at(-ago - 60)),
        to_gtid: None,
        to_time: Some(at(-ago)),
        new_run,
        reason: "segment 5 does not continue segment 4".into(),
    }
}

fn window(holes: Vec<Hole>) -> Window {
    Window {
        from_backup: Some("b1".into()),
        from_time: Some(at(-2 * HOUR)),
        from_gtid: None,
        to_time: Some(at(-2)),
        to_gtid: None,
        gaps: Vec::new(),
        spans: Vec::new(),
        holes,
        complete_as_of: None,
    }
}

/// A healthy repository: a backup an hour old from server 1, a live streamer on server 1.
fn healthy() -> Inputs {
    Inputs {
        repository_id: "repo-a".into(),
        readable: true,
        backups: vec![backup("b1", 1, HOUR, false)],
        archive: ArchiveFacts {
            segments: 9,
            last_segment: Some(SegmentFacts {
                seq: 9,
                server_id: 1,
                last_event_time: Some(at(-2)),
                gtid_state: "0-1-100".into(),
            }),
            record_exists: true,
            stream: Some(record(StreamState::Streaming, 1)),
        },
        window: Some(window(Vec::new())),
    }
}

fn checks(c: &Coverage) -> Vec<Check> {
    c.problems.iter().map(|p| p.check).collect()
}

#[test]
fn the_verdict_for_each_situation() {
    use Check::*;
    type Case = (&'static str, fn(&mut Inputs), Vec<Check>, Vec<Check>);
    let cases: Vec<Case> = vec![
        ("healthy", |_| {}, vec![], vec![]),
        (
            "stale backup",
            |i| i.backups = vec![backup("b1", 1, 30 * HOUR, false)],
            vec![BackupAge],
            vec![],
        ),
        (
            "no backup at all",
            |i| i.backups.clear(),
            vec![NoBackup],
            vec![],
        ),
        (
            "only a partial backup",
            |i| i.backups = vec![backup("p", 1, HOUR, true)],
            vec![NoBackup],
            vec![],
        ),
        (
            "a fresh partial after a fresh complete one",
            |i| i.backups.push(backup("p", 1, 60, true)),
            vec![],
            vec![PartialBackup],
        ),
        (
            "a fresh partial after a stale complete one",
            |i| i.backups = vec![backup("b0", 1, 30 * HOUR, false), backup("p", 1, 60, true)],
            vec![BackupAge],
            vec![],
        ),
        (
            "dead streamer: record older than 3 intervals + slack",
            |i| i.archive.stream = Some(record(StreamState::Streaming, 26)),
            vec![StreamerNotSeen],
            vec![],
        ),
        (
            "record just within 3 intervals + slack",
            |i| i.archive.stream = Some(record(StreamState::Streaming, 25)),
            vec![],
            vec![],
        ),
        (
            "stopped streamer",
            |i| i.archive.stream = Some(record(StreamState::Stopped, 1)),
            vec![StreamerStopped],
            vec![],
        ),
        (
            "idle source: old last event, fresh caught_up_as_of",
            |i| {
                let mut r = record(StreamState::Streaming, 1);
                r.last_event_time = Some(at(-5 * HOUR));
                i.archive.stream = Some(r);
                i.archive.last_segment.as_mut().unwrap().last_event_time = Some(at(-5 * HOUR));
            },
            vec![],
            vec![],
        ),
        (
            "alive but behind: reconnecting for 10 minutes",
            |i| {
                let mut r = record(StreamState::Reconnecting, 1);
                r.caught_up_as_of = Some(at(-600));
                r.last_event_time = Some(at(-700));
                r.last_error = Some("connection refused".into());
                i.archive.stream = Some(r);
                i.archive.last_segment.as_mut().unwrap().last_event_time = Some(at(-700));
            },
            vec![ArchiveLag],
            vec![],
        ),
        (
            "no archive",
            |i| i.archive = ArchiveFacts::default(),
            vec![NoArchive],
            vec![],
        ),
        (
            "segments but no record (an older holdfast)",
            |i| {
                i.archive.stream = None;
                i.archive.record_exists = false;
            },
            vec![NoArchive],
            vec![],
        ),
        (
            "a copy: the record is another repository's, however old",
            |i| {
                let mut r = record(StreamState::Streaming, 30 * HOUR);
                r.repository_id = Some("repo-b".into());
                i.archive.stream = Some(r);
            },
            vec![],
            vec![],
        ),
        (
            "damage in the archive, however old",
            |i| i.window = Some(window(vec![hole(false, 100 * HOUR)])),
            vec![ArchiveHole],
            vec![],
        ),
        (
            "a recent new run after purged binlogs",
            |i| i.window = Some(window(vec![hole(true, HOUR)])),
            vec![ArchiveHole],
            vec![],
        ),
        (
            "an old new run is history",
            |i| i.window = Some(window(vec![hole(true, 30 * HOUR)])),
            vec![],
            vec![ArchiveHole],
        ),
        (
            "dead streamer and stale backup: the archive first",
            |i| {
                i.backups = vec![backup("b1", 1, 30 * HOUR, false)];
                i.archive.stream = Some(record(StreamState::Streaming, 600));
            },
            vec![StreamerNotSeen, BackupAge],
            vec![],
        ),
        (
            "a second server without a fresh backup",
            |i| i.backups.push(backup("r1", 2, 40 * HOUR, false)),
            vec![BackupAge],
            vec![],
        ),
    ];
    for (name, change, problems, warnings) in cases {
        let mut inputs = healthy();
        change(&mut inputs);
        let c = assess(&inputs, &Thresholds::default(), at(0));
        assert_eq!(checks(&c), problems, "{name}: {:#?}", c.problems);
        assert_eq!(
            c.warnings.iter().map(|p| p.check).collect::<Vec<_>>(),
            warnings,
            "{name}: {:#?}",
            c.warnings
        );
        assert_eq!(c.covered, problems.is_empty(), "{name}");
    }
}

#[test]
fn the_archive_is_told_apart_and_attributed() {
    let mut inputs = healthy();
    let mut r = record(StreamState::Streaming, 1);
    r.last_event_time = Some(at(-5 * HOUR));
    inputs.archive.stream = Some(r);
    inputs
        .archive
        .last_segment
        .as_mut()
        .unwrap()
        .last_event_time = Some(at(-5 * HOUR));
    inputs.backups.push(backup("r1", 2, HOUR, false));
    let c = assess(&inputs, &Thresholds::default(), at(0));
    assert_eq!(c.archive.streamer, Streamer::Alive);
    assert_eq!(c.archive.complete_as_of, Some(at(-1)));
    assert_eq!(c.archive.lag_seconds, Some(1));
    assert_eq!(c.archive.last_event_time, Some(at(-5 * HOUR)));
    let archived: Vec<(&str, bool)> = c
        .servers
        .iter()
        .map(|s| (s.name.as_str(), s.archived))
        .collect();
    assert_eq!(
        archived,
        vec![("db1 (server_id 1)", true), ("db2 (server_id 2)", false)]
    );
}

#[test]
fn messages_say_what_and_what_to_do() {
    let mut inputs = healthy();
    inputs.backups = vec![backup("b1", 1, 30 * HOUR, false)];
    inputs.archive.stream = Some(record(StreamState::Streaming, 300));
    let c = assess(&inputs, &Thresholds::default(), at(0));
    assert!(
        c.problems[0]
            .message
            .starts_with("streamer not seen for 5m (its record is rewritten every 5s"),
        "{}",
        c.problems[0].message
    );
    assert!(c.problems[0].message.contains("pid 4242 on backup1"));
    assert!(
        c.problems[1]
            .message
            .starts_with("no complete backup newer than 26h: the newest, b1, is 30h old"),
        "{}",
        c.problems[1].message
    );
    assert_eq!(c.problems[1].server.as_deref(), Some("db1 (server_id 1)"));
}

#[test]
fn without_the_key_ages_are_checked_and_the_rest_is_named() {
    let inputs = Inputs {
        repository_id: "repo-a".into(),
        readable: false,
        backups: vec![BackupFacts {
            id: "x".into(),
            server: None,
            engine: None,
            time: at(-HOUR),
            partial: None,
            verified: None,
            drilled: None,
        }],
        archive: ArchiveFacts {
            segments: 3,
            last_segment: None,
            record_exists: true,
            stream: None,
        },
        window: None,
    };
    let c = assess(&inputs, &Thresholds::default(), at(0));
    assert!(c.covered, "{:#?}", c.problems);
    assert_eq!(c.archive.streamer, Streamer::Unknown);
    assert_eq!(c.unchecked.len(), 3, "{:#?}", c.unchecked);
    let mut old = inputs.clone();
    old.backups[0].time = at(-30 * HOUR);
    let c = assess(&old, &Thresholds::default(), at(0));
    assert_eq!(checks(&c), vec![Check::BackupAge]);
}

#[test]
fn durations_for_people() {
    for (secs, text) in [
        (0, "0s"),
        (119, "119s"),
        (300, "5m"),
        (3600, "1h"),
        (93_600, "26h"),
        (12_000, "3h 20m"),
        (172_800, "2d"),
        (190_800, "2d 5h"),
    ] {
        assert_eq!(human_duration(Duration::from_secs(secs)), text);
    }
}
