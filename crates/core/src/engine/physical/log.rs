//! Reading the backup tool's log as it runs (lock stages, success) and its side files after it
//! finished (`xtrabackup_checkpoints`, `xtrabackup_info`). Pure text handling, unit-tested
//! against real log lines.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::manifest::{LockTimes, PrimaryPosition};

/// Follows the tool's log line by line and times its server locks.
///
/// MariaDB's `mariabackup` walks `BACKUP STAGE START`, `FLUSH`, `BLOCK_DDL`, `BLOCK_COMMIT`
/// and `END`, logging `Start…` when it asks for a stage and `Acquired locks for BACKUP STAGE X`
/// once it holds it; `All tables unlocked` ends every lock. `xtrabackup` logs
/// `Executing LOCK INSTANCE FOR BACKUP` / `FLUSH TABLES WITH READ LOCK` and the same release
/// line. Times are taken when each line arrives, not from the log's one-second timestamps.
#[derive(Debug, Default)]
pub struct LockWatcher {
    waiting: Option<(String, Instant)>,
    ddl_since: Option<Instant>,
    commits_since: Option<Instant>,
    /// Wall-clock time commits became blocked: the backup's consistent point.
    pub commits_blocked_at: Option<OffsetDateTime>,
    pub times: LockTimes,
    pub completed_ok: bool,
}

impl LockWatcher {
    pub fn feed(&mut self, line: &str, now: Instant) {
        let line = line.trim_end();
        if line.ends_with("completed OK!") {
            self.completed_ok = true;
            return;
        }
        if let Some(stage) = after(line, "Acquired locks for BACKUP STAGE ") {
            self.acquired(stage.trim(), now);
        } else if let Some(stage) = requested_stage(line) {
            self.waiting = Some((stage, now));
        } else if line.contains("Executing LOCK INSTANCE FOR BACKUP")
            || line.contains("Executing LOCK TABLES FOR BACKUP")
        {
            self.waiting = Some(("BLOCK_DDL".into(), now));
        } else if line.contains("Executing FLUSH TABLES WITH READ LOCK")
            || line.contains("Executing LOCK BINLOG FOR BACKUP")
        {
            self.waiting = Some(("BLOCK_COMMIT".into(), now));
        } else if line.contains("All tables unlocked") {
            self.settle(now);
            if let Some(t) = self.ddl_since.take() {
                self.times.ddl_blocked_ms = ms(now - t);
            }
            if let Some(t) = self.commits_since.take() {
                self.times.commits_blocked_ms = ms(now - t);
            }
        } else if self.waiting.is_some()
            && (line.contains("Starting to backup non-InnoDB")
                || line.contains("Executing FLUSH NO_WRITE_TO_BINLOG")
                || line.contains("Starting to backup")
                || line.contains("Getting InnoDB LSN"))
        {
            // xtrabackup logs no "acquired" line: the next step means it got the lock.
            self.settle(now);
        }
    }

    /// Treats a pending xtrabackup-style request as acquired.
    fn settle(&mut self, now: Instant) {
        if let Some((stage, _)) = &self.waiting {
            if !stage.starts_with("BLOCK_") {
                return;
            }
            let stage = stage.clone();
            self.acquired(&stage, now);
        }
    }

    fn acquired(&mut self, stage: &str, now: Instant) {
        if let Some((_, since)) = self.waiting.take() {
            self.times.longest_wait_ms = self.times.longest_wait_ms.max(ms(now - since));
        }
        match stage {
            "BLOCK_DDL" => self.ddl_since = self.ddl_since.or(Some(now)),
            "BLOCK_COMMIT" => {
                self.ddl_since = self.ddl_since.or(Some(now));
                self.commits_since = Some(now);
                self.commits_blocked_at = Some(OffsetDateTime::now_utc());
            }
            _ => {}
        }
    }

    /// Why the backup must be aborted, if waiting for a lock or blocking commits has lasted
    /// longer than `limit`.
    pub fn stalled(&self, now: Instant, limit: Duration) -> Option<String> {
        if let Some((stage, since)) = &self.waiting {
            let waited = now - *since;
            if waited > limit {
                return Some(format!(
                    "waited {:.1}s for BACKUP STAGE {stage} (a long transaction, query or DDL \
                     is ahead of it; see SHOW PROCESSLIST)",
                    waited.as_secs_f64()
                ));
            }
        }
        if let Some(since) = self.commits_since {
            let held = now - since;
            if held > limit {
                return Some(format!(
                    "commits have been blocked for {:.1}s",
                    held.as_secs_f64()
                ));
            }
        }
        None
    }
}

/// Hides credentials in a line of the tool's log. `mariabackup` prints the account's
/// `SHOW GRANTS` when a privilege is missing (`… IDENTIFIED BY PASSWORD '*6BB4…'`, `IDENTIFIED
/// VIA ed25519 USING '…'`): every quoted string after `IDENTIFIED` becomes `'<redacted>'`, so
/// no hash reaches the terminal, the logs, an error message or the log kept with the backup.
pub fn redact_secrets(line: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = line.to_ascii_uppercase().find("IDENTIFIED") else {
        return line.into();
    };
    let mut out = String::with_capacity(line.len());
    out.push_str(&line[..start]);
    let mut in_quote = false;
    for c in line[start..].chars() {
        match (in_quote, c) {
            (false, '\'') => {
                in_quote = true;
                out.push_str("'<redacted>");
            }
            (true, '\'') => {
                in_quote = false;
                out.push('\'');
            }
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    if in_quote {
        out.push('\'');
    }
    out.into()
}

fn requested_stage(line: &str) -> Option<String> {
    for marker in ["Starting BACKUP STAGE ", "Started BACKUP STAGE "] {
        if let Some(stage) = after(line, marker) {
            let stage = stage.trim();
            if stage != "END" {
                return Some(stage.to_string());
            }
        }
    }
    None
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// `key = value` lines (`xtrabackup_checkpoints`, `xtrabackup_info`).
pub fn parse_key_values(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        match line.split_once(" = ") {
            Some((k, v)) if !k.contains(' ') && !k.is_empty() => {
                out.insert(k.trim().to_string(), v.trim().to_string());
                last = Some(k.trim().to_string());
            }
            _ => {
                // A value continued on the next line (long GTID sets).
                if let Some(k) = &last {
                    if let Some(v) = out.get_mut(k) {
                        v.push_str(line.trim());
                    }
                }
            }
        }
    }
    out
}

/// The binary log coordinates in `filename 'mysql-bin.000001', position '795', GTID of the last
/// change '0-1-3'` (the `binlog_pos` of `xtrabackup_info`, or the log's `MySQL binlog position`).
pub fn parse_binlog_position(text: &str) -> Option<(String, u64, String)> {
    let file = quoted_after(text, "filename '")?;
    let pos_text = after(text, "position ")?;
    let digits: String = pos_text
        .trim_start_matches('\'')
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let pos = digits.parse().ok()?;
    let gtid = quoted_after(text, "GTID of the last change '").unwrap_or_default();
    Some((file, pos, clean_gtid(&gtid)))
}

/// The primary's coordinates in the log's `MySQL slave binlog position: master host 'h', …`.
pub fn parse_primary_position(log: &str) -> Option<PrimaryPosition> {
    let line_start = log.find("MySQL slave binlog position:")?;
    let rest = &log[line_start..];
    let end = rest.find('\n').unwrap_or(rest.len());
    let raw = rest[..end].trim().to_string();
    let mut p = PrimaryPosition {
        primary_host: quoted_after(&raw, "master host '").unwrap_or_default(),
        raw: raw.clone(),
        ..Default::default()
    };
    if let Some((file, pos, _)) = parse_binlog_position(&raw) {
        p.binlog_file = file;
        p.binlog_pos = pos;
    }
    if let Some(g) = quoted_after(&raw, "gtid_slave_pos '") {
        // MariaDB 10.x: `gtid_slave_pos '0-1-4'; master '<connection>' master_use_gtid = …`.
        p.gtid_set = clean_gtid(&g);
    } else if let Some(g) = after(&raw, "gtid_slave_pos ") {
        p.gtid_set = clean_gtid(g.trim().trim_matches('\''));
    } else if let Some(g) = quoted_after(&raw, "purge list '") {
        p.gtid_set = clean_gtid(&g);
    }
    Some(p)
}

fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let start = after(text, marker)?;
    let end = start.find('\'')?;
    Some(start[..end].to_string())
}

fn clean_gtid(g: &str) -> String {
    g.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_10_11_slave_position_line_parses() {
        let line = "[00] 2026-11-21 05:31:10 MySQL slave binlog position: gtid_slave_pos '0-1-4'; \
                    master '' master_use_gtid = slave_pos\n";
        let p = parse_primary_position(line).unwrap();
        assert_eq!(p.gtid_set, "0-1-4");
    }

    const MARIABACKUP: &str = "\
[00] 2026-11-21 03:18:54 Starting BACKUP STAGE START
[00] 2026-11-21 03:18:54 Acquiring BACKUP LOCKS...
[00] 2026-11-21 03:18:54 Acquired locks for BACKUP STAGE START
[00] 2026-11-21 03:18:54 Starting BACKUP STAGE FLUSH
[00] 2026-11-21 03:18:54 Acquired locks for BACKUP STAGE FLUSH
[00] 2026-11-21 03:18:54 Started BACKUP STAGE BLOCK_DDL
[00] 2026-11-21 03:18:54 Acquired locks for BACKUP STAGE BLOCK_DDL
[00] 2026-11-21 03:18:55 Finished BACKUP STAGE BLOCK_DDL
[00] 2026-11-21 03:18:55 Starting BACKUP STAGE BLOCK_COMMIT
[00] 2026-11-21 03:18:55 Acquired locks for BACKUP STAGE BLOCK_COMMIT
[00] 2026-11-21 03:18:55 Finishing BACKUP STAGE BLOCK_COMMIT
[00] 2026-11-21 03:18:55 Starting BACKUP STAGE END
[00] 2026-11-21 03:18:55 Executing BACKUP STAGE END
[00] 2026-11-21 03:18:55 All tables unlocked
[00] 2026-11-21 03:18:55 MySQL binlog position: filename 'mysql-bin.000001', position '795', GTID of the last change '0-1-3'
[00] 2026-11-21 03:18:55 completed OK!
";

    #[test]
    fn mariabackup_stages_are_timed() {
        let t0 = Instant::now();
        let mut w = LockWatcher::default();
        for (i, line) in MARIABACKUP.lines().enumerate() {
            // 10 ms per line.
            w.feed(line, t0 + Duration::from_millis(10 * i as u64));
        }
        assert!(w.completed_ok);
        // BLOCK_DDL acquired at line 6, BLOCK_COMMIT at line 9, unlocked at line 13.
        assert_eq!(w.times.ddl_blocked_ms, 70);
        assert_eq!(w.times.commits_blocked_ms, 40);
        assert_eq!(w.times.longest_wait_ms, 20); // BACKUP STAGE START: lines 0 to 2
        assert!(w.commits_blocked_at.is_some());
    }

    #[test]
    fn stalls_are_detected() {
        let t0 = Instant::now();
        let mut w = LockWatcher::default();
        w.feed("[00] x Starting BACKUP STAGE BLOCK_COMMIT", t0);
        let limit = Duration::from_secs(2);
        assert_eq!(w.stalled(t0 + Duration::from_secs(1), limit), None);
        let why = w.stalled(t0 + Duration::from_secs(3), limit).unwrap();
        assert!(why.contains("BLOCK_COMMIT"), "{why}");
        w.feed("[00] x Acquired locks for BACKUP STAGE BLOCK_COMMIT", t0);
        assert!(w
            .stalled(t0 + Duration::from_secs(3), limit)
            .unwrap()
            .contains("blocked"));
        w.feed("[00] x All tables unlocked", t0 + Duration::from_secs(1));
        assert_eq!(w.stalled(t0 + Duration::from_secs(9), limit), None);
    }

    #[test]
    fn checkpoints_and_info() {
        let kv = parse_key_values(
            "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 44894\nlast_lsn = 123701\n",
        );
        assert_eq!(kv["to_lsn"], "44894");
        assert_eq!(kv["backup_type"], "full-backuped");
        let info = parse_key_values(
            "tool_name = mariabackup\nbinlog_pos = filename 'mysql-bin.000001', position '795', GTID of the last change '0-1-3'\nname = \n",
        );
        let (f, p, g) = parse_binlog_position(&info["binlog_pos"]).unwrap();
        assert_eq!(
            (f.as_str(), p, g.as_str()),
            ("mysql-bin.000001", 795, "0-1-3")
        );
    }

    #[test]
    fn binlog_positions() {
        let mysql = "MySQL binlog position: filename 'binlog.000010', position '1353', GTID of the last change '58224b02-09b7-11ee-90bd-fab81f64ee00:1-5827,\n  7caa9a48-b325-11ed-8541-fab81f64ee00:1-27'";
        let (f, p, g) = parse_binlog_position(mysql).unwrap();
        assert_eq!(f, "binlog.000010");
        assert_eq!(p, 1353);
        assert_eq!(
            g,
            "58224b02-09b7-11ee-90bd-fab81f64ee00:1-5827,7caa9a48-b325-11ed-8541-fab81f64ee00:1-27"
        );
        let no_gtid = "filename 'mysql-bin.000002', position 385";
        assert_eq!(
            parse_binlog_position(no_gtid).unwrap(),
            ("mysql-bin.000002".into(), 385, String::new())
        );
        assert_eq!(parse_binlog_position("nothing here"), None);
    }

    #[test]
    fn primary_positions() {
        let log = "x\n[00] 2026 MySQL slave binlog position: master host '127.0.0.1', gtid_slave_pos 0-1-42\nmore";
        let p = parse_primary_position(log).unwrap();
        assert_eq!(p.primary_host, "127.0.0.1");
        assert_eq!(p.gtid_set, "0-1-42");
        let log = "MySQL slave binlog position: master host 'db1', filename 'mysql-bin.000003', position '154'";
        let p = parse_primary_position(log).unwrap();
        assert_eq!(
            (p.binlog_file.as_str(), p.binlog_pos),
            ("mysql-bin.000003", 154)
        );
        assert_eq!(parse_primary_position("no replica"), None);
    }

    #[test]
    fn credentials_never_survive_redaction() {
        let cases = [
            (
                "Current privileges: GRANT RELOAD ON *.* TO `bk`@`%` IDENTIFIED BY PASSWORD '*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9'",
                "Current privileges: GRANT RELOAD ON *.* TO `bk`@`%` IDENTIFIED BY PASSWORD '<redacted>'",
            ),
            (
                "GRANT USAGE ON *.* TO `u`@`h` IDENTIFIED VIA ed25519 USING 'abc' OR unix_socket WITH GRANT OPTION",
                "GRANT USAGE ON *.* TO `u`@`h` IDENTIFIED VIA ed25519 USING '<redacted>' OR unix_socket WITH GRANT OPTION",
            ),
            ("identified by password 'half", "identified by password '<redacted>'"),
            (
                "[00] 2026-11-21 03:18:54 Starting BACKUP STAGE START",
                "[00] 2026-11-21 03:18:54 Starting BACKUP STAGE START",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(redact_secrets(line), want);
        }
    }
}
