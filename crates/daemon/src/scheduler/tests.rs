use super::*;

fn utc(text: &str) -> Millis {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

fn show(t: Option<Millis>) -> String {
    match t {
        Some(t) => chrono::DateTime::from_timestamp_millis(t)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => "never".into(),
    }
}

fn sched(cron: &str, tz: &str) -> Schedule {
    Schedule::parse("db1/0:backup", cron, tz, None).unwrap()
}

#[test]
fn cron_and_timezone_parsing() {
    for (text, ok) in [
        ("0 0 2 * * *", true),
        ("*/5 * * * * *", true),
        ("0 30 1 * * MON-FRI", true),
        ("0 0 0 L * *", true),
        ("@daily", true),
        ("0 2 * * *", false), // five fields: minutes-level cron is not accepted
        ("0 0 2 * * * 2026", false), // years are not
        ("61 * * * * *", false),
        ("0 0 25 * * *", false),
        ("every day", false),
        ("", false),
    ] {
        assert_eq!(
            parse_cron(text).is_ok(),
            ok,
            "{text}: {:?}",
            parse_cron(text).err()
        );
    }
    let e = parse_cron("0 2 * * *").unwrap_err();
    assert!(e.contains("6") && e.contains("seconds"), "{e}");
    for (tz, ok) in [
        ("UTC", true),
        ("Europe/Berlin", true),
        ("America/New_York", true),
        ("Mars/Olympus", false),
        ("CEST+2", false),
    ] {
        assert_eq!(parse_timezone(tz).is_ok(), ok, "{tz}");
    }
}

#[test]
fn next_after_table() {
    for (name, cron, tz, after, want) in [
        (
            "daily 02:00 in UTC",
            "0 0 2 * * *",
            "UTC",
            "2026-06-01T02:00:00Z",
            Some("2026-06-02T02:00:00.000Z"),
        ),
        (
            "strictly after: a tick at t is not next",
            "*/10 * * * * *",
            "UTC",
            "2026-06-01T12:00:10Z",
            Some("2026-06-01T12:00:20.000Z"),
        ),
        (
            "seconds: from inside a second",
            "*/10 * * * * *",
            "UTC",
            "2026-06-01T12:00:03.500Z",
            Some("2026-06-01T12:00:10.000Z"),
        ),
        (
            "seconds: one second past a minute",
            "5 * * * * *",
            "UTC",
            "2026-06-01T12:00:05Z",
            Some("2026-06-01T12:01:05.000Z"),
        ),
        (
            "time zone: 02:00 Berlin summer is 00:00 UTC",
            "0 0 2 * * *",
            "Europe/Berlin",
            "2026-06-01T12:00:00Z",
            Some("2026-06-02T00:00:00.000Z"),
        ),
        (
            "Berlin spring forward: 02:30 does not exist on 29 March, runs at 03:00 CEST",
            "0 30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T23:00:00Z",
            Some("2026-03-29T01:00:00.000Z"),
        ),
        (
            "Berlin spring forward: the day after is 02:30 CEST again",
            "0 30 2 * * *",
            "Europe/Berlin",
            "2026-03-29T01:00:00Z",
            Some("2026-03-30T00:30:00.000Z"),
        ),
        (
            "Berlin fall back: 02:30 happens twice on 25 October, the first (CEST) runs",
            "0 30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T22:00:00Z",
            Some("2026-10-25T00:30:00.000Z"),
        ),
        (
            "Berlin fall back: and not the second (CET); next is the day after",
            "0 30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T00:30:00Z",
            Some("2026-10-26T01:30:00.000Z"),
        ),
        (
            "Berlin spring forward: every 30 minutes skips the missing hour",
            "0 */30 * * * *",
            "Europe/Berlin",
            "2026-03-29T00:30:00Z",
            Some("2026-03-29T01:00:00.000Z"),
        ),
        (
            "New York spring forward: 02:00 on 8 March runs at 03:00 EDT",
            "0 0 2 * * *",
            "America/New_York",
            "2026-03-08T05:00:00Z",
            Some("2026-03-08T07:00:00.000Z"),
        ),
        (
            "New York fall back: 01:30 on 1 November runs once, at 01:30 EDT",
            "0 30 1 * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            Some("2026-11-01T05:30:00.000Z"),
        ),
        (
            "New York fall back: then 01:30 EST the next day",
            "0 30 1 * * *",
            "America/New_York",
            "2026-11-01T05:30:00Z",
            Some("2026-11-02T06:30:00.000Z"),
        ),
        (
            "weekdays in the schedule's zone: Friday 23:30 New York is Saturday UTC",
            "0 30 23 * * FRI",
            "America/New_York",
            "2026-06-01T00:00:00Z",
            Some("2026-06-06T03:30:00.000Z"),
        ),
    ] {
        let got = next_after(&sched(cron, tz), utc(after));
        assert_eq!(show(got), want.unwrap_or("never"), "{name}");
    }
}

#[test]
fn fall_back_interval_schedule_runs_the_repeated_hour_once() {
    // Every 30 minutes across the repeated hour in Berlin (25 October 2026, 03:00 CEST ->
    // 02:00 CET): the wall clock's first pass only, never a wall-clock time twice.
    let s = sched("0 */30 * * * *", "Europe/Berlin");
    let got: Vec<String> = s
        .upcoming(utc("2026-10-24T23:45:00Z"), 5)
        .into_iter()
        .map(|t| show(Some(t)))
        .collect();
    assert_eq!(
        got,
        [
            "2026-10-25T00:00:00.000Z", // 02:00 CEST
            "2026-10-25T00:30:00.000Z", // 02:30 CEST
            "2026-10-25T02:00:00.000Z", // 03:00 CET (02:00 and 02:30 CET are not repeated)
            "2026-10-25T02:30:00.000Z", // 03:30 CET
            "2026-10-25T03:00:00.000Z", // 04:00 CET
        ]
    );
}

#[test]
fn due_table() {
    let hourly = sched("0 0 * * * *", "UTC");
    let secondly = sched("* * * * * *", "UTC");
    let berlin_0230 = sched("0 30 2 * * *", "Europe/Berlin");
    let mut windowed = sched("0 0 12 * * *", "Europe/Berlin");
    windowed.window = Some("01:00-05:00".parse().unwrap());
    let t = utc;
    struct Case<'a> {
        name: &'a str,
        s: &'a Schedule,
        last: Option<&'a str>,
        now: &'a str,
        run: Option<&'a str>,
        missed: u32,
        catch_up: bool,
    }
    let cases = [
        Case {
            name: "never run: nothing to catch up",
            s: &hourly,
            last: None,
            now: "2026-06-01T10:30:00Z",
            run: None,
            missed: 0,
            catch_up: false,
        },
        Case {
            name: "between ticks: nothing",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T10:59:59.999Z",
            run: None,
            missed: 0,
            catch_up: false,
        },
        Case {
            name: "on time",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T11:00:00.200Z",
            run: Some("2026-06-01T11:00:00.000Z"),
            missed: 0,
            catch_up: false,
        },
        Case {
            name: "30 s late is still on time",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T11:00:30Z",
            run: Some("2026-06-01T11:00:00.000Z"),
            missed: 0,
            catch_up: false,
        },
        Case {
            name: "five minutes late: a catch-up, the tick itself missed",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T11:05:00Z",
            run: Some("2026-06-01T11:00:00.000Z"),
            missed: 1,
            catch_up: true,
        },
        Case {
            name: "down four hours: ONE run at the newest, four missed",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T14:10:00Z",
            run: Some("2026-06-01T14:00:00.000Z"),
            missed: 4,
            catch_up: true,
        },
        Case {
            name: "down until just after a tick: the newest on time, three missed",
            s: &hourly,
            last: Some("2026-06-01T10:00:00Z"),
            now: "2026-06-01T14:00:10Z",
            run: Some("2026-06-01T14:00:00.000Z"),
            missed: 3,
            catch_up: false,
        },
        Case {
            name: "seconds-level: 5.5 s behind",
            s: &secondly,
            last: Some("2026-06-01T12:00:00Z"),
            now: "2026-06-01T12:00:05.500Z",
            run: Some("2026-06-01T12:00:05.000Z"),
            missed: 4,
            catch_up: false,
        },
        Case {
            name: "seconds-level, a day down: counted up to the cap, the newest second runs",
            s: &secondly,
            last: Some("2026-06-01T12:00:00Z"),
            now: "2026-06-02T12:00:00.300Z",
            run: Some("2026-06-02T12:00:00.000Z"),
            missed: MAX_COUNTED,
            catch_up: false,
        },
        Case {
            name: "DST: daily 02:30 Berlin over the spring-forward night runs at 03:00 CEST",
            s: &berlin_0230,
            last: Some("2026-03-28T01:30:00Z"),
            now: "2026-03-29T01:00:10Z",
            run: Some("2026-03-29T01:00:00.000Z"),
            missed: 0,
            catch_up: false,
        },
        Case {
            name: "DST: over the fall-back night, once (the second 02:30 is not a tick)",
            s: &berlin_0230,
            last: Some("2026-10-25T00:30:00Z"),
            now: "2026-10-25T01:30:10Z",
            run: None,
            missed: 0,
            catch_up: false,
        },
    ];
    for c in cases {
        let d = due(c.s, c.last.map(t), t(c.now));
        assert_eq!(show(d.run), c.run.unwrap_or("never"), "{}: run", c.name);
        assert_eq!(d.missed, c.missed, "{}: missed", c.name);
        assert_eq!(d.catch_up, c.catch_up, "{}: catch_up", c.name);
        let trigger = if c.catch_up {
            crate::jobs::Trigger::CatchUp
        } else {
            crate::jobs::Trigger::Schedule
        };
        assert_eq!(d.trigger(), trigger, "{}: trigger", c.name);
        assert_eq!(
            d.start_at, d.run,
            "{}: no window, starts when planned",
            c.name
        );
        assert!(d.next.is_some_and(|n| n > t(c.now)), "{}: next", c.name);
    }

    // A window defers the start, not the planned time.
    let d = due(
        &windowed,
        Some(t("2026-06-01T09:00:00Z")),
        t("2026-06-01T10:00:01Z"), // 12:00:01 CEST
    );
    assert_eq!(show(d.run), "2026-06-01T10:00:00.000Z");
    assert_eq!(show(d.start_at), "2026-06-01T23:00:00.000Z"); // 01:00 CEST the next day
    assert!(!d.catch_up);
}

#[test]
fn upcoming_is_strictly_increasing() {
    let s = sched("*/7 * * * * *", "America/New_York");
    let runs = s.upcoming(utc("2026-11-01T05:59:50Z"), 20);
    assert_eq!(runs.len(), 20);
    assert!(runs.windows(2).all(|w| w[0] < w[1]), "{runs:?}");
}
