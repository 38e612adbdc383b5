//! The session context a QUERY event carries in its status variables, and the `SET` statements
//! that recreate it on a replay connection.
//!
//! - [`QueryStatus::parse`] decodes the status-variable block (MySQL's codes 0–13 and MariaDB's
//!   own from 128: `Q_HRNOW`, `Q_XID`, `Q_GTID_FLAGS3`, `Q_CHARACTER_SET_COLLATIONS`). Like the
//!   server, it stops at the first code it does not know (codes are written in increasing order),
//!   and a value cut short is an [`ErrorKind::Integrity`](crate::ErrorKind) error.
//! - [`SessionContext`] remembers what the replay connection was last told and turns the next
//!   event's context into only the `SET` statements that change something, the way
//!   `mariadb-binlog` prints them.

use crate::{Error, Result};

/// Status-variable codes (sql/log_event.h).
mod code {
    pub const FLAGS2: u8 = 0;
    pub const SQL_MODE: u8 = 1;
    pub const CATALOG: u8 = 2;
    pub const AUTO_INCREMENT: u8 = 3;
    pub const CHARSET: u8 = 4;
    pub const TIME_ZONE: u8 = 5;
    pub const CATALOG_NZ: u8 = 6;
    pub const LC_TIME_NAMES: u8 = 7;
    pub const CHARSET_DATABASE: u8 = 8;
    pub const TABLE_MAP_FOR_UPDATE: u8 = 9;
    pub const MASTER_DATA_WRITTEN: u8 = 10;
    pub const INVOKER: u8 = 11;
    pub const UPDATED_DB_NAMES: u8 = 12;
    pub const MICROSECONDS: u8 = 13;
    pub const HRNOW: u8 = 128;
    pub const XID: u8 = 129;
    pub const GTID_FLAGS3: u8 = 130;
    pub const CHARACTER_SET_COLLATIONS: u8 = 131;
}

/// `flags2` bits replicated with every statement (sql/sql_priv.h).
pub mod flags2 {
    pub const AUTO_IS_NULL: u32 = 1 << 14;
    pub const NO_CHECK_CONSTRAINT_CHECKS: u32 = 1 << 15;
    pub const NOT_AUTOCOMMIT: u32 = 1 << 19;
    pub const NO_FOREIGN_KEY_CHECKS: u32 = 1 << 26;
    pub const RELAXED_UNIQUE_CHECKS: u32 = 1 << 27;
}

/// `Q_GTID_FLAGS3` bits that carry a start-alter sequence number after them.
const FL_COMMIT_ALTER_E1: u8 = 4;
const FL_ROLLBACK_ALTER_E1: u8 = 8;
/// `Q_UPDATED_DB_NAMES` count meaning "too many to list" (no names follow).
const OVER_MAX_DBS_IN_EVENT_MTS: u8 = 254;

/// The decoded status variables of one QUERY event. Fields the event does not carry are
/// `None` (or the server's default where the server itself assumes one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryStatus {
    pub flags2: Option<u32>,
    pub sql_mode: Option<u64>,
    /// `(auto_increment_increment, auto_increment_offset)`; `(1, 1)` when absent.
    pub auto_increment: (u16, u16),
    /// `(character_set_client, collation_connection, collation_server)` as collation ids.
    pub charset: Option<[u16; 3]>,
    pub time_zone: Option<Vec<u8>>,
    /// Locale number; 0 (`en_US`) when absent.
    pub lc_time_names: u16,
    /// `collation_database` id; 0 (the server default) when absent.
    pub charset_database: u16,
    /// Microseconds of the statement's start (MariaDB `Q_HRNOW`, MySQL `Q_MICROSECONDS`).
    pub microseconds: Option<u32>,
    /// The XID of a DDL logged with one (MariaDB `Q_XID`).
    pub xid: Option<u64>,
    /// MariaDB `Q_GTID_FLAGS3` (ALTER TABLE split in two phases, for parallel replicas).
    pub gtid_flags3: Option<u8>,
    /// MariaDB 11.2+ `@@character_set_collations`, as `(charset id, collation id)` pairs.
    pub character_set_collations: Option<Vec<(u16, u16)>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(Error::integrity(format!(
                "corrupt query event: status variable {what} needs {n} bytes at offset {}, \
                 the block has {}",
                self.at,
                self.buf.len()
            )));
        };
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, what: &str) -> Result<u32> {
        let b = self.take(3, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A string prefixed by its one-byte length.
    fn short_str(&mut self, what: &str) -> Result<&'a [u8]> {
        let len = self.u8(what)? as usize;
        self.take(len, what)
    }
}

impl QueryStatus {
    /// Decodes a status-variable block (the `status_vars` slice of a parsed QUERY event).
    pub fn parse(block: &[u8]) -> Result<QueryStatus> {
        let mut status = QueryStatus {
            auto_increment: (1, 1),
            ..QueryStatus::default()
        };
        let mut c = Cursor { buf: block, at: 0 };
        while c.at < block.len() {
            match c.u8("code")? {
                code::FLAGS2 => status.flags2 = Some(c.u32("flags2")?),
                code::SQL_MODE => status.sql_mode = Some(c.u64("sql_mode")?),
                code::CATALOG => {
                    // 5.0.0–5.0.3: length, string, NUL.
                    let len = c.u8("catalog")? as usize;
                    c.take(len + 1, "catalog")?;
                }
                code::AUTO_INCREMENT => {
                    status.auto_increment = (c.u16("auto_increment")?, c.u16("auto_increment")?)
                }
                code::CHARSET => {
                    status.charset = Some([c.u16("charset")?, c.u16("charset")?, c.u16("charset")?])
                }
                code::TIME_ZONE => {
                    let tz = c.short_str("time_zone")?;
                    if !tz.is_empty() {
                        status.time_zone = Some(tz.to_vec());
                    }
                }
                code::CATALOG_NZ => {
                    c.short_str("catalog")?;
                }
                code::LC_TIME_NAMES => status.lc_time_names = c.u16("lc_time_names")?,
                code::CHARSET_DATABASE => status.charset_database = c.u16("charset_database")?,
                code::TABLE_MAP_FOR_UPDATE => {
                    c.u64("table_map_for_update")?;
                }
                code::MASTER_DATA_WRITTEN => {
                    c.u32("master_data_written")?;
                }
                code::INVOKER => {
                    c.short_str("invoker user")?;
                    c.short_str("invoker host")?;
                }
                code::UPDATED_DB_NAMES => {
                    let count = c.u8("updated_db_names")?;
                    if count != OVER_MAX_DBS_IN_EVENT_MTS {
                        for _ in 0..count {
                            let rest = &block[c.at..];
                            let len = rest.iter().position(|&b| b == 0).ok_or_else(|| {
                                Error::integrity(
                                    "corrupt query event: unterminated updated-database name",
                                )
                            })?;
                            c.take(len + 1, "updated_db_names")?;
                        }
                    }
                }
                code::MICROSECONDS | code::HRNOW => {
                    status.microseconds = Some(c.u24("microseconds")?)
                }
                code::XID => status.xid = Some(c.u64("xid")?),
                code::GTID_FLAGS3 => {
                    let flags = c.u8("gtid_flags3")?;
                    if flags & (FL_COMMIT_ALTER_E1 | FL_ROLLBACK_ALTER_E1) != 0 {
                        c.u64("start alter sequence number")?;
                    }
                    status.gtid_flags3 = Some(flags);
                }
                code::CHARACTER_SET_COLLATIONS => {
                    let count = c.u8("character_set_collations")? as usize;
                    let mut pairs = Vec::with_capacity(count);
                    for _ in 0..count {
                        pairs.push((
                            c.u16("character_set_collations")?,
                            c.u16("character_set_collations")?,
                        ));
                    }
                    status.character_set_collations = Some(pairs);
                }
                // Codes are written in increasing order; the server skips the rest of the
                // block at the first one it does not know, and so do we.
                _ => break,
            }
        }
        Ok(status)
    }
}

/// Looks up collations by id on the replay target (`information_schema.COLLATIONS`).
pub trait CollationNames {
    /// `(character set name, collation name)` of a collation id.
    fn collation(&self, id: u16) -> Option<(&str, &str)>;
}

/// What the replay session was last told, so each event only sends what changes.
#[derive(Debug, Clone, Default)]
pub struct SessionContext {
    flags2: Option<u32>,
    sql_mode: Option<u64>,
    auto_increment: Option<(u16, u16)>,
    charset: Option<[u16; 3]>,
    time_zone: Option<Vec<u8>>,
    lc_time_names: Option<u16>,
    charset_database: Option<u16>,
    character_set_collations: Option<Vec<(u16, u16)>>,
    db: Option<Vec<u8>>,
    thread_id: Option<u32>,
    /// The replay target is MySQL (which has no `check_constraint_checks`).
    mysql: bool,
}

impl SessionContext {
    /// A context for a replay target of `flavor`.
    pub fn for_flavor(flavor: crate::source::server::Flavor) -> SessionContext {
        SessionContext {
            mysql: flavor == crate::source::server::Flavor::MySql,
            ..SessionContext::default()
        }
    }

    /// Forgets everything: the next event sends its whole context (after a reconnect).
    pub fn reset(&mut self) {
        *self = SessionContext {
            mysql: self.mysql,
            ..SessionContext::default()
        };
    }

    /// Appends to `out` the statements that bring the session to `status`, as
    /// `mariadb-binlog` would print them before the statement.
    pub fn statements_for(
        &mut self,
        status: &QueryStatus,
        collations: &dyn CollationNames,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        if let Some(new) = status.flags2 {
            let changed = match self.flags2 {
                Some(old) => old ^ new,
                None => u32::MAX,
            };
            let mut sets = Vec::new();
            let mut option = |bit: u32, on_when_set: bool, name: &str| {
                if changed & bit != 0 {
                    let set = new & bit != 0;
                    let value = u8::from(set == on_when_set);
                    sets.push(format!("@@session.{name}={value}"));
                }
            };
            option(flags2::NO_FOREIGN_KEY_CHECKS, false, "foreign_key_checks");
            option(flags2::AUTO_IS_NULL, true, "sql_auto_is_null");
            option(flags2::RELAXED_UNIQUE_CHECKS, false, "unique_checks");
            option(flags2::NOT_AUTOCOMMIT, false, "autocommit");
            if !self.mysql {
                option(
                    flags2::NO_CHECK_CONSTRAINT_CHECKS,
                    false,
                    "check_constraint_checks",
                );
            }
            if !sets.is_empty() {
                out.push(format!("SET {}", sets.join(", ")).into_bytes());
            }
            self.flags2 = Some(new);
        }
        if let Some(mode) = status.sql_mode {
            if self.sql_mode != Some(mode) {
                out.push(format!("SET @@session.sql_mode={mode}").into_bytes());
                self.sql_mode = Some(mode);
            }
        }
        if self.auto_increment != Some(status.auto_increment) {
            let (inc, off) = status.auto_increment;
            out.push(
                format!(
                    "SET @@session.auto_increment_increment={inc}, \
                     @@session.auto_increment_offset={off}"
                )
                .into_bytes(),
            );
            self.auto_increment = Some(status.auto_increment);
        }
        if let Some(cs) = status.charset {
            if self.charset != Some(cs) {
                out.push(
                    format!(
                        "SET @@session.character_set_client={}, \
                         @@session.collation_connection={}, @@session.collation_server={}",
                        cs[0], cs[1], cs[2]
                    )
                    .into_bytes(),
                );
                self.charset = Some(cs);
            }
        }
        if let Some(tz) = &status.time_zone {
            if self.time_zone.as_ref() != Some(tz) {
                let mut stmt = b"SET @@session.time_zone=".to_vec();
                push_string_literal(&mut stmt, tz);
                out.push(stmt);
                self.time_zone = Some(tz.clone());
            }
        }
        if self.lc_time_names != Some(status.lc_time_names) {
            out.push(format!("SET @@session.lc_time_names={}", status.lc_time_names).into_bytes());
            self.lc_time_names = Some(status.lc_time_names);
        }
        if self.charset_database != Some(status.charset_database) {
            let value = match status.charset_database {
                0 => "DEFAULT".to_string(),
                id => id.to_string(),
            };
            out.push(format!("SET @@session.collation_database={value}").into_bytes());
            self.charset_database = Some(status.charset_database);
        }
        if let Some(pairs) = &status.character_set_collations {
            if self.character_set_collations.as_ref() != Some(pairs) {
                let mut names = Vec::with_capacity(pairs.len());
                for &(_, collation) in pairs {
                    let (cs, coll) = collations.collation(collation).ok_or_else(|| {
                        Error::server(format!(
                            "the binlog maps a character set to collation id {collation}, \
                             which the replay target does not know; replay into a server of \
                             the same or a newer version"
                        ))
                    })?;
                    names.push(format!("{cs}={coll}"));
                }
                let mut stmt = b"SET @@session.character_set_collations=".to_vec();
                push_string_literal(&mut stmt, names.join(",").as_bytes());
                out.push(stmt);
                self.character_set_collations = Some(pairs.clone());
            }
        }
        Ok(())
    }

    /// `USE db` when the default database changes (an empty name leaves it as it is, as
    /// `mariadb-binlog` does).
    pub fn use_database(&mut self, db: &[u8], out: &mut Vec<Vec<u8>>) {
        if db.is_empty() || self.db.as_deref() == Some(db) {
            return;
        }
        let mut stmt = b"USE ".to_vec();
        push_identifier(&mut stmt, db);
        out.push(stmt);
        self.db = Some(db.to_vec());
    }

    /// Forgets the default database (an event flagged "suppress use" does not depend on it,
    /// and a `DROP DATABASE` may have removed it).
    pub fn forget_database(&mut self) {
        self.db = None;
    }

    /// `SET @@session.pseudo_thread_id` when it changes (temporary tables and
    /// `CONNECTION_ID()` of statement-based events depend on it).
    pub fn thread_id(&mut self, id: u32, out: &mut Vec<Vec<u8>>) {
        if self.thread_id != Some(id) {
            out.push(format!("SET @@session.pseudo_thread_id={id}").into_bytes());
            self.thread_id = Some(id);
        }
    }
}

/// Appends `bytes` as a string literal: `'…'` with quotes doubled, or `X'…'` when it holds a
/// backslash (whose meaning depends on `NO_BACKSLASH_ESCAPES`, which replayed events may set).
pub fn push_string_literal(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.contains(&b'\\') {
        out.extend_from_slice(b"X'");
        out.extend_from_slice(hex::encode(bytes).as_bytes());
        out.push(b'\'');
        return;
    }
    out.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            out.push(b'\'');
        }
        out.push(b);
    }
    out.push(b'\'');
}

/// Appends `` `name` `` with backticks doubled.
pub fn push_identifier(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'`');
    for &b in name {
        if b == b'`' {
            out.push(b'`');
        }
        out.push(b);
    }
    out.push(b'`');
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoCollations;
    impl CollationNames for NoCollations {
        fn collation(&self, id: u16) -> Option<(&str, &str)> {
            (id == 2049).then_some(("utf8mb4", "utf8mb4_uca1400_ai_ci"))
        }
    }

    fn block() -> Vec<u8> {
        let mut b = vec![code::FLAGS2];
        b.extend_from_slice(&(flags2::NO_FOREIGN_KEY_CHECKS).to_le_bytes());
        b.push(code::SQL_MODE);
        b.extend_from_slice(&1_411_383_296u64.to_le_bytes());
        b.push(code::CATALOG_NZ);
        b.extend_from_slice(b"\x03std");
        b.push(code::AUTO_INCREMENT);
        b.extend_from_slice(&[2, 0, 1, 0]);
        b.push(code::CHARSET);
        b.extend_from_slice(&[8, 0, 8, 0, 45, 0]);
        b.push(code::TIME_ZONE);
        b.extend_from_slice(b"\x06+02:00");
        b.push(code::LC_TIME_NAMES);
        b.extend_from_slice(&[3, 0]);
        b.push(code::CHARSET_DATABASE);
        b.extend_from_slice(&[8, 0]);
        b.push(code::HRNOW);
        b.extend_from_slice(&[0x40, 0x42, 0x0f]);
        b.push(code::XID);
        b.extend_from_slice(&77u64.to_le_bytes());
        b.push(code::GTID_FLAGS3);
        b.push(FL_COMMIT_ALTER_E1);
        b.extend_from_slice(&5u64.to_le_bytes());
        b.push(code::CHARACTER_SET_COLLATIONS);
        b.extend_from_slice(&[1, 45, 0, 1, 8]);
        b
    }

    #[test]
    fn decodes_every_known_code() {
        let s = QueryStatus::parse(&block()).unwrap();
        assert_eq!(s.flags2, Some(flags2::NO_FOREIGN_KEY_CHECKS));
        assert_eq!(s.sql_mode, Some(1_411_383_296));
        assert_eq!(s.auto_increment, (2, 1));
        assert_eq!(s.charset, Some([8, 8, 45]));
        assert_eq!(s.time_zone.as_deref(), Some(&b"+02:00"[..]));
        assert_eq!(s.lc_time_names, 3);
        assert_eq!(s.charset_database, 8);
        assert_eq!(s.microseconds, Some(0x0f4240));
        assert_eq!(s.xid, Some(77));
        assert_eq!(s.gtid_flags3, Some(FL_COMMIT_ALTER_E1));
        assert_eq!(s.character_set_collations, Some(vec![(45, 2049)]));
    }

    #[test]
    fn truncated_values_are_errors_and_unknown_codes_end_the_block() {
        let full = block();
        // Every cut inside a value is an error; a cut just before a code is a shorter block.
        for len in 0..full.len() {
            let _ = QueryStatus::parse(&full[..len]);
        }
        assert!(QueryStatus::parse(&[code::SQL_MODE, 1, 2]).is_err());
        assert!(QueryStatus::parse(&[code::TIME_ZONE, 9, b'a']).is_err());
        let s = QueryStatus::parse(&[code::LC_TIME_NAMES, 1, 0, 200, 1, 2, 3]).unwrap();
        assert_eq!(s.lc_time_names, 1);
    }

    fn text(stmts: &[Vec<u8>]) -> Vec<String> {
        stmts
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    #[test]
    fn session_sends_only_what_changes() {
        let s = QueryStatus::parse(&block()).unwrap();
        let mut ctx = SessionContext::default();
        let mut out = Vec::new();
        ctx.statements_for(&s, &NoCollations, &mut out).unwrap();
        let first = text(&out);
        assert_eq!(
            first,
            [
                "SET @@session.foreign_key_checks=0, @@session.sql_auto_is_null=0, \
                 @@session.unique_checks=1, @@session.autocommit=1, \
                 @@session.check_constraint_checks=1",
                "SET @@session.sql_mode=1411383296",
                "SET @@session.auto_increment_increment=2, @@session.auto_increment_offset=1",
                "SET @@session.character_set_client=8, @@session.collation_connection=8, \
                 @@session.collation_server=45",
                "SET @@session.time_zone='+02:00'",
                "SET @@session.lc_time_names=3",
                "SET @@session.collation_database=8",
                "SET @@session.character_set_collations='utf8mb4=utf8mb4_uca1400_ai_ci'",
            ]
        );
        out.clear();
        ctx.statements_for(&s, &NoCollations, &mut out).unwrap();
        assert!(out.is_empty(), "{:?}", text(&out));

        let mut next = s.clone();
        next.flags2 = Some(0);
        next.charset_database = 0;
        ctx.statements_for(&next, &NoCollations, &mut out).unwrap();
        assert_eq!(
            text(&out),
            [
                "SET @@session.foreign_key_checks=1",
                "SET @@session.collation_database=DEFAULT"
            ]
        );
    }

    #[test]
    fn literals_and_identifiers_are_quoted() {
        let mut out = Vec::new();
        push_string_literal(&mut out, b"a'b");
        assert_eq!(out, b"'a''b'");
        let mut out = Vec::new();
        push_string_literal(&mut out, b"a\\");
        assert_eq!(out, b"X'615c'");
        let mut out = Vec::new();
        push_identifier(&mut out, b"we`ird");
        assert_eq!(out, b"`we``ird`");
        let mut ctx = SessionContext::default();
        let mut out = Vec::new();
        ctx.use_database(b"db1", &mut out);
        ctx.use_database(b"db1", &mut out);
        ctx.use_database(b"", &mut out);
        assert_eq!(text(&out), ["USE `db1`"]);
    }
}
