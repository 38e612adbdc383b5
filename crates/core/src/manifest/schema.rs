//! The schema objects of a logical backup (`schema.json.zst`).

use serde::{Deserialize, Serialize};

pub const SCHEMA_FORMAT: u32 = 1;

/// Session settings an object was created under; restored before re-creating it so that its
/// body parses and behaves the same (`sql_mode`, character sets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CreationContext {
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
    /// The database's collation at creation time (routines, triggers, events).
    #[serde(default)]
    pub collation_database: String,
    /// Events only: the time zone they were created in.
    #[serde(default)]
    pub time_zone: String,
}

/// What kind of table a [`TableSchema`] is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    Base,
    /// MariaDB system-versioned table: rows are dumped with their history.
    SystemVersioned,
    /// MariaDB sequence: no rows, a state restored with `SETVAL`.
    Sequence,
}

/// A sequence's state at the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SequenceState {
    /// `next_not_cached_value`: the value `SETVAL(seq, value, 0)` restores.
    pub next_value: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableSchema {
    pub name: String,
    pub kind: TableKind,
    /// `SHOW CREATE TABLE` (or `SHOW CREATE SEQUENCE`) output, verbatim.
    pub create: String,
    #[serde(default)]
    pub sequence: Option<SequenceState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ViewSchema {
    pub name: String,
    /// `SHOW CREATE VIEW` output, verbatim (with its DEFINER and SQL SECURITY).
    pub create: String,
    pub context: CreationContext,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoutineSchema {
    pub name: String,
    /// `PROCEDURE`, `FUNCTION`, `PACKAGE` or `PACKAGE BODY`.
    pub kind: String,
    pub create: String,
    pub context: CreationContext,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TriggerSchema {
    pub name: String,
    pub table: String,
    pub create: String,
    pub context: CreationContext,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventSchema {
    pub name: String,
    pub create: String,
    pub context: CreationContext,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DatabaseSchema {
    pub name: String,
    /// `SHOW CREATE DATABASE` output (character set and collation).
    pub create: String,
    pub tables: Vec<TableSchema>,
    pub views: Vec<ViewSchema>,
    pub routines: Vec<RoutineSchema>,
    pub triggers: Vec<TriggerSchema>,
    pub events: Vec<EventSchema>,
}

/// A user account with its grants (`--users`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserSchema {
    pub user: String,
    pub host: String,
    /// `SHOW CREATE USER` output (includes the password hash, never a clear-text password).
    pub create: String,
    /// `SHOW GRANTS FOR` output, one statement each.
    pub grants: Vec<String>,
    /// Whether this is a role rather than a login.
    #[serde(default)]
    pub is_role: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SchemaDump {
    pub format: u32,
    pub databases: Vec<DatabaseSchema>,
    #[serde(default)]
    pub users: Vec<UserSchema>,
}
