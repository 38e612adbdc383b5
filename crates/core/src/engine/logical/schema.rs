//! Reading schema objects from a server ([`dump_schema`]) and re-creating them on another
//! ([`create_database`], [`create_table`], [`add_deferred`], [`create_routines`],
//! [`create_views`], [`create_triggers`], [`create_events`], [`restore_users`]).
//!
//! Definitions are kept as the server prints them (`SHOW CREATE ...`), with the session context
//! they were created under ([`CreationContext`]: `sql_mode`, client character set, connection
//! collation, database collation, time zone); re-creating an object first puts the session back
//! in that context, so that its body parses and behaves as it did on the source.
//!
//! Every function here leaves the session as it found it (character sets, `sql_mode`,
//! `foreign_key_checks`, `time_zone`), also when it fails; the current database is changed (there
//! is no way to unselect one) and put back only by [`dump_schema`].
//!
//! The recommended order of the restore side is: databases, tables, (rows), deferred indexes of
//! every table, then foreign keys of every table, sequence states, routines, views (a view may
//! call a stored function, which must exist when the view is created; routine bodies are not
//! checked at creation), triggers, events, and users last (a grant on a table or routine needs
//! the object).
//!
//! Restoring under another database name: everything is created in the target database, and
//! same-database references are unqualified in views (dumped with their database selected) and
//! in trigger headers (rewritten). Explicit references to the original name inside bodies —
//! a view selecting from another database, a routine or trigger body naming `src.t`, a foreign
//! key to another database, grants on `src`.* — keep the original name.

use std::collections::BTreeMap;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use super::ddl::{
    alter_database_sql, create_database_sql, create_if_not_exists, grant_without_credentials,
    is_plain_name, quote_ident, quote_string, split_create_table, split_foreign_keys,
    strip_auto_increment_option, trigger_for_restore, SplitCreate,
};
use super::load::map_parallel;
use super::Filter;
use crate::manifest::{
    CreationContext, DatabaseSchema, EventSchema, RoutineSchema, SchemaDump, SequenceState,
    TableKind, TableSchema, TriggerSchema, UserSchema, ViewSchema, SCHEMA_FORMAT,
};
use crate::{Error, ErrorKind, Result};

/// Accounts that belong to the server itself and are never dumped.
pub const SYSTEM_ACCOUNTS: &[&str] = &[
    "mariadb.sys",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
];

/// `sql_mode` for creating tables and adding their indexes: keep zeros in AUTO_INCREMENT columns
/// through a table copy, and fail rather than silently swap a storage engine the target lacks.
const TABLE_SQL_MODE: &str = "NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

/// Server errors after which a view may succeed once other views exist: no such table
/// (1146), view references an invalid object (1356), no such function (1305).
const VIEW_RETRY_CODES: &[u16] = &[1146, 1356, 1305];

/// Server errors of a grant on an object the target does not have: no such table (1146), no such
/// routine (1305), no such column (1054).
const GRANT_MISSING_OBJECT_CODES: &[u16] = &[1146, 1305, 1054];

// ---------------------------------------------------------------------------------------------
// Dump

/// Reads every schema object of the databases `filter` selects (and the accounts, when
/// `with_users`), in a deterministic order: databases, tables, views, routines and events by name
/// (packages before package bodies before functions before procedures), triggers by table and
/// then in their action order (the order they fire in, which is the order to re-create them in).
///
/// Runs on a connection that may be inside the backup's consistent snapshot: it only reads.
/// It switches the session to `utf8mb4`, `sql_mode=''` and quoted identifiers for the duration
/// and puts them back afterwards, along with the current database. Tables are those of
/// `information_schema.TABLES` that pass [`Filter::table`] (views too); triggers only of those
/// tables; routines and events of every selected database.
pub async fn dump_schema(conn: &mut Conn, filter: &Filter, with_users: bool) -> Result<SchemaDump> {
    dump_schema_with(conn, &mut [], filter, with_users).await
}

/// [`dump_schema`], with the databases' definitions read over `helpers` instead, in parallel:
/// a server with thousands of tables answers their `SHOW CREATE` statements on several
/// connections at once. Definitions are not part of a transaction's snapshot, so any
/// connection reads them the same, and a helper outside a transaction does not keep the
/// metadata lock of every table it read, as `conn` (a snapshot's) would until it ends. Sequence
/// values, which are read from the sequence itself, and accounts are read on `conn` only. The
/// helpers' session settings are changed for good.
pub async fn dump_schema_with(
    conn: &mut Conn,
    helpers: &mut [Conn],
    filter: &Filter,
    with_users: bool,
) -> Result<SchemaDump> {
    for h in helpers.iter_mut() {
        h.query_drop("SET NAMES utf8mb4, SESSION sql_mode = '', SESSION sql_quote_show_create = 1")
            .await?;
    }
    let saved = SavedSession::save(conn).await?;
    let current_db = conn
        .query_first::<Row, _>("SELECT DATABASE()")
        .await?
        .and_then(|r| text(&r, 0));
    let result = async {
        conn.query_drop(
            "SET NAMES utf8mb4, SESSION sql_mode = '', SESSION sql_quote_show_create = 1",
        )
        .await?;
        let mut names: Vec<String> = conn
            .query::<Row, _>("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
            .await?
            .iter()
            .filter_map(|r| text(r, 0))
            .filter(|d| filter.database(d))
            .collect();
        names.sort();
        let databases = if helpers.is_empty() {
            let mut databases = Vec::with_capacity(names.len());
            for db in &names {
                databases.push(dump_database(conn, filter, db, true).await?);
            }
            databases
        } else {
            let mut databases = map_parallel(
                helpers,
                names.iter().collect(),
                async |c: &mut Conn, name: &String| dump_database(c, filter, name, false).await,
            )
            .await?;
            for db in &mut databases {
                for t in &mut db.tables {
                    if t.kind == TableKind::Sequence {
                        t.sequence =
                            Some(sequence_state(conn, &qualified(&db.name, &t.name)).await?);
                    }
                }
            }
            databases
        };
        let users = if with_users {
            dump_users(conn).await?
        } else {
            Vec::new()
        };
        Ok::<_, Error>(SchemaDump {
            format: SCHEMA_FORMAT,
            databases,
            users,
        })
    }
    .await;
    let restored = saved.restore(conn).await;
    if let Some(db) = current_db {
        let _ = conn.query_drop(format!("USE {}", quote_ident(&db))).await;
    }
    let dump = result?;
    restored?;
    Ok(dump)
}

/// Tables of one database whose `SHOW CREATE TABLE` statements go to the server in one
/// multi-statement round trip: thousands of small tables cost a round trip per 50 instead of
/// one each.
const SHOW_CREATE_BATCH: usize = 50;

/// The `CREATE TABLE` of each of `names` (tables of `db`), in order: one multi-statement query,
/// or, if that fails or answers for another table, one statement each, which names the table
/// whose definition cannot be read.
async fn show_create_tables(conn: &mut Conn, db: &str, names: &[&str]) -> Result<Vec<String>> {
    let sql = names
        .iter()
        .map(|n| format!("SHOW CREATE TABLE {}", qualified(db, n)))
        .collect::<Vec<_>>()
        .join("; ");
    let batch = async {
        let mut result = conn.query_iter(sql).await?;
        let mut creates = Vec::with_capacity(names.len());
        for name in names {
            let rows: Vec<Row> = result.collect().await?;
            match rows.first() {
                Some(row) if text(row, 0).as_deref() == Some(*name) => {
                    creates.push(required(row, 1, "Create Table")?)
                }
                _ => return Ok::<_, Error>(None),
            }
        }
        result.drop_result().await?;
        Ok(Some(creates))
    }
    .await;
    if let Ok(Some(creates)) = batch {
        return Ok(creates);
    }
    let mut creates = Vec::with_capacity(names.len());
    for name in names {
        let qualified = qualified(db, name);
        let row = first_row(conn, format!("SHOW CREATE TABLE {qualified}"), || {
            format!("reading the definition of table {qualified}")
        })
        .await?;
        creates.push(required(&row, 1, "Create Table")?);
    }
    Ok(creates)
}

/// One database's objects; with `sequences`, the state of its sequences too (else `None`).
async fn dump_database(
    conn: &mut Conn,
    filter: &Filter,
    db: &str,
    sequences: bool,
) -> Result<DatabaseSchema> {
    // Views print references to their own database unqualified only when it is the current one.
    run(conn, format!("USE {}", quote_ident(db)), || {
        format!("selecting database {}", quote_ident(db))
    })
    .await?;
    let row = first_row(
        conn,
        format!("SHOW CREATE DATABASE {}", quote_ident(db)),
        || format!("reading the definition of database {}", quote_ident(db)),
    )
    .await?;
    let create = required(&row, 1, "Create Database")?;

    let mut objects: Vec<(String, String)> = conn
        .exec::<Row, _, _>(
            "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await?
        .iter()
        .filter_map(|r| Some((text(r, 0)?, text(r, 1)?)))
        .collect();
    objects.sort();

    let mut pending = Vec::new();
    let mut views = Vec::new();
    for (name, kind) in objects {
        if !filter.table(db, &name) {
            continue;
        }
        let qualified = qualified(db, &name);
        let kind = match kind.as_str() {
            "BASE TABLE" => TableKind::Base,
            "SYSTEM VERSIONED" => TableKind::SystemVersioned,
            "SEQUENCE" => TableKind::Sequence,
            "VIEW" => {
                let row = first_row(conn, format!("SHOW CREATE VIEW {qualified}"), || {
                    format!("reading the definition of view {qualified}")
                })
                .await?;
                views.push(ViewSchema {
                    name,
                    create: required(&row, 1, "Create View")?,
                    context: CreationContext {
                        character_set_client: text(&row, 2).unwrap_or_default(),
                        collation_connection: text(&row, 3).unwrap_or_default(),
                        ..Default::default()
                    },
                });
                continue;
            }
            // TEMPORARY, SYSTEM VIEW: not ours to dump.
            _ => continue,
        };
        pending.push((name, kind));
    }

    // Tables' definitions in batches, one round trip each; sequences one by one.
    let mut creates: Vec<Option<String>> = vec![None; pending.len()];
    let batched: Vec<usize> = (0..pending.len())
        .filter(|&i| pending[i].1 != TableKind::Sequence)
        .collect();
    for batch in batched.chunks(SHOW_CREATE_BATCH) {
        let names: Vec<&str> = batch.iter().map(|&i| pending[i].0.as_str()).collect();
        for (&i, create) in batch
            .iter()
            .zip(show_create_tables(conn, db, &names).await?)
        {
            creates[i] = Some(create);
        }
    }
    let mut tables = Vec::with_capacity(pending.len());
    for ((name, kind), create) in pending.into_iter().zip(creates) {
        let qualified = qualified(db, &name);
        let create = match create {
            Some(create) => create,
            None => {
                let row = first_row(conn, format!("SHOW CREATE SEQUENCE {qualified}"), || {
                    format!("reading the definition of table {qualified}")
                })
                .await?;
                required(&row, 1, "Create Table")?
            }
        };
        let sequence = if kind == TableKind::Sequence && sequences {
            Some(sequence_state(conn, &qualified).await?)
        } else {
            None
        };
        tables.push(TableSchema {
            name,
            kind,
            create,
            sequence,
        });
    }

    let routines = dump_routines(conn, db).await?;
    let triggers = dump_triggers(conn, db, &tables).await?;
    let events = dump_events(conn, db).await?;
    Ok(DatabaseSchema {
        name: db.to_string(),
        create,
        tables,
        views,
        routines,
        triggers,
        events,
    })
}

async fn sequence_state(conn: &mut Conn, qualified: &str) -> Result<SequenceState> {
    let row = first_row(
        conn,
        format!("SELECT next_not_cached_value FROM {qualified}"),
        || format!("reading the state of sequence {qualified}"),
    )
    .await?;
    Ok(SequenceState {
        next_value: required(&row, 0, "next_not_cached_value")?,
    })
}

fn routine_rank(kind: &str) -> u8 {
    match kind {
        "PACKAGE" => 0,
        "PACKAGE BODY" => 1,
        "FUNCTION" => 2,
        _ => 3,
    }
}

async fn dump_routines(conn: &mut Conn, db: &str) -> Result<Vec<RoutineSchema>> {
    let mut list: Vec<(String, String)> = conn
        .exec::<Row, _, _>(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ?",
            (db,),
        )
        .await?
        .iter()
        .filter_map(|r| Some((text(r, 0)?, text(r, 1)?)))
        .collect();
    list.sort_by(|a, b| (routine_rank(&a.1), &a.0).cmp(&(routine_rank(&b.1), &b.0)));
    let mut routines = Vec::with_capacity(list.len());
    for (name, kind) in list {
        if !matches!(
            kind.as_str(),
            "PROCEDURE" | "FUNCTION" | "PACKAGE" | "PACKAGE BODY"
        ) {
            continue;
        }
        let qualified = qualified(db, &name);
        let what = format!("{} {qualified}", kind.to_lowercase());
        let row = first_row(conn, format!("SHOW CREATE {kind} {qualified}"), || {
            format!("reading the definition of {what}")
        })
        .await?;
        let Some(create) = text(&row, 2) else {
            return Err(Error::new(
                ErrorKind::Auth,
                format!(
                    "the server hides the body of {what} from the backup user; grant it SELECT on \
                     mysql.proc (MariaDB before 11.3), SHOW CREATE ROUTINE (MariaDB 11.3+) or \
                     SELECT on mysql.* (MySQL), or run the backup as the routine's definer"
                ),
            ));
        };
        routines.push(RoutineSchema {
            name,
            kind,
            create,
            context: creation_context(&row, 3, None),
        });
    }
    Ok(routines)
}

async fn dump_triggers(
    conn: &mut Conn,
    db: &str,
    tables: &[TableSchema],
) -> Result<Vec<TriggerSchema>> {
    // By the table's schema (always the trigger's own): information_schema.TRIGGERS looks up
    // only EVENT_OBJECT_SCHEMA, so `TRIGGER_SCHEMA = ?` read the triggers of every table of every
    // database (4 s a query at 30,000 tables, against 0.2 s; the schema phase grew with the
    // square of the table count).
    let rows = conn
        .exec::<Row, _, _>(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, \
             CAST(ACTION_ORDER AS SIGNED) FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ?",
            (db,),
        )
        .await?;
    let mut list: Vec<(String, String, String, i64, String)> = rows
        .iter()
        .filter_map(|r| {
            let name = text(r, 0)?;
            let table = text(r, 1)?;
            let order = text(r, 4).and_then(|o| o.parse().ok()).unwrap_or(0);
            Some((
                table,
                text(r, 2).unwrap_or_default(),
                text(r, 3).unwrap_or_default(),
                order,
                name,
            ))
        })
        .filter(|(table, ..)| tables.iter().any(|t| &t.name == table))
        .collect();
    list.sort();
    let mut triggers = Vec::with_capacity(list.len());
    for (table, _, _, _, name) in list {
        let qualified = qualified(db, &name);
        let row = first_row(conn, format!("SHOW CREATE TRIGGER {qualified}"), || {
            format!("reading the definition of trigger {qualified}")
        })
        .await?;
        triggers.push(TriggerSchema {
            name,
            table,
            create: required(&row, 2, "SQL Original Statement")?,
            context: creation_context(&row, 3, None),
        });
    }
    Ok(triggers)
}

/// The creation context of a `SHOW CREATE PROCEDURE | FUNCTION | TRIGGER | EVENT` row:
/// `sql_mode` in column 1, `character_set_client`, `collation_connection` and the database
/// collation in three columns from `charsets`, and for events the time zone.
fn creation_context(row: &Row, charsets: usize, time_zone: Option<usize>) -> CreationContext {
    CreationContext {
        sql_mode: text(row, 1).unwrap_or_default(),
        character_set_client: text(row, charsets).unwrap_or_default(),
        collation_connection: text(row, charsets + 1).unwrap_or_default(),
        collation_database: text(row, charsets + 2).unwrap_or_default(),
        time_zone: time_zone.and_then(|i| text(row, i)).unwrap_or_default(),
    }
}

async fn dump_events(conn: &mut Conn, db: &str) -> Result<Vec<EventSchema>> {
    let mut names: Vec<String> = conn
        .exec::<Row, _, _>(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
            (db,),
        )
        .await?
        .iter()
        .filter_map(|r| text(r, 0))
        .collect();
    names.sort();
    let mut events = Vec::with_capacity(names.len());
    for name in names {
        let qualified = qualified(db, &name);
        let row = first_row(conn, format!("SHOW CREATE EVENT {qualified}"), || {
            format!("reading the definition of event {qualified}")
        })
        .await?;
        events.push(EventSchema {
            name,
            create: required(&row, 3, "Create Event")?,
            context: creation_context(&row, 4, Some(2)),
        });
    }
    Ok(events)
}

/// Every account but the server's own ([`SYSTEM_ACCOUNTS`], MariaDB's `PUBLIC` role), with its
/// `SHOW CREATE USER` (a synthesized `CREATE ROLE` for MariaDB roles) and `SHOW GRANTS`.
async fn dump_users(conn: &mut Conn) -> Result<Vec<UserSchema>> {
    // MySQL 8: print authentication strings as hex, so that they are text.
    let _ = conn
        .query_drop("SET SESSION print_identified_with_as_hex = ON")
        .await;
    let rows = match conn
        .query::<Row, _>("SELECT User, Host, is_role FROM mysql.user")
        .await
    {
        Ok(rows) => rows,
        // MySQL has no is_role column: its roles are accounts like any other.
        Err(e) if server_code(&e) == Some(1054) => {
            conn.query::<Row, _>("SELECT User, Host, 'N' FROM mysql.user")
                .await?
        }
        Err(e) => {
            return Err(Error::from(e).context(
                "listing accounts (the backup user needs SELECT on mysql.user for --users)",
            ))
        }
    };
    let mut accounts: Vec<(String, String, bool)> = rows
        .iter()
        .filter_map(|r| {
            let is_role = text(r, 2).is_some_and(|v| v.eq_ignore_ascii_case("Y"));
            Some((text(r, 0).unwrap_or_default(), text(r, 1)?, is_role))
        })
        .filter(|(user, host, is_role)| !is_system_account(user, host, *is_role))
        .collect();
    accounts.sort();
    let mut users = Vec::with_capacity(accounts.len());
    for (user, host, is_role) in accounts {
        let account = if is_role {
            quote_ident(&user)
        } else {
            format!("{}@{}", quote_ident(&user), quote_ident(&host))
        };
        // An account the server ignores (a host name under --skip-name-resolve) is in
        // mysql.user but unknown to SHOW CREATE USER / SHOW GRANTS (1133, 1141).
        let ignored = |e: &mysql_async::Error| matches!(server_code(e), Some(1133 | 1141));
        let create = if is_role {
            format!("CREATE ROLE {}", quote_ident(&user))
        } else {
            match conn
                .query_first::<Row, _>(format!("SHOW CREATE USER {account}"))
                .await
            {
                Ok(Some(row)) => required(&row, 0, "CREATE USER")?,
                Ok(None) => continue,
                Err(e) if ignored(&e) => {
                    tracing::warn!(%account, error = %e, "account not dumped: not in use");
                    continue;
                }
                Err(e) => return Err(Error::from(e).context(format!("reading account {account}"))),
            }
        };
        let grants = match conn
            .query::<Row, _>(format!("SHOW GRANTS FOR {account}"))
            .await
        {
            Ok(rows) => rows.iter().filter_map(|r| text(r, 0)).collect(),
            Err(e) if ignored(&e) => {
                tracing::warn!(%account, error = %e, "account not dumped: not in use");
                continue;
            }
            Err(e) => {
                return Err(Error::from(e).context(format!("reading the grants of {account}")))
            }
        };
        users.push(UserSchema {
            user,
            host,
            create,
            grants,
            is_role,
        });
    }
    Ok(users)
}

// ---------------------------------------------------------------------------------------------
// Restore

/// Creates database `target_name` with the character set, collation and comment of `db` (the
/// statement is generated, not string-replaced, so any target name works). Idempotent: an
/// existing database is altered to those options.
pub async fn create_database(
    conn: &mut Conn,
    db: &DatabaseSchema,
    target_name: &str,
) -> Result<()> {
    with_session(conn, "SET NAMES utf8mb4", async |conn: &mut Conn| {
        let what = || format!("creating database {}", quote_ident(target_name));
        run(conn, create_database_sql(&db.create, target_name), what).await?;
        if let Some(alter) = alter_database_sql(&db.create, target_name) {
            run(conn, alter, what).await?;
        }
        Ok(())
    })
    .await
}

/// Creates table `t` in `target_db` with `foreign_key_checks=0`. With `defer_indexes`, the
/// non-unique secondary indexes and the foreign keys are left out and returned, for
/// [`add_deferred`] after the rows are loaded; without, the whole definition is executed and
/// nothing is returned to add. A sequence is created and its state restored
/// ([`restore_sequence_state`]).
///
/// Not idempotent: fails if the table exists.
pub async fn create_table(
    conn: &mut Conn,
    target_db: &str,
    t: &TableSchema,
    defer_indexes: bool,
) -> Result<SplitCreate> {
    let setup = format!(
        "SET NAMES utf8mb4, SESSION sql_mode = '{TABLE_SQL_MODE}', SESSION foreign_key_checks = 0"
    );
    with_session(conn, &setup, async |conn: &mut Conn| {
        let what = || format!("creating table {}", qualified(target_db, &t.name));
        run(conn, format!("USE {}", quote_ident(target_db)), what).await?;
        let split = if t.kind == TableKind::Sequence || !defer_indexes {
            SplitCreate {
                create: t.create.clone(),
                ..Default::default()
            }
        } else {
            split_create_table(&t.create)
        };
        run(conn, split.create.as_str(), what).await?;
        if t.kind == TableKind::Sequence {
            set_sequence(conn, target_db, t).await?;
        }
        Ok(split)
    })
    .await
}

/// Creates the tables `ts` of `target_db` in one session switch: one round trip per table
/// instead of five (thousands of small tables). Like [`create_table`], the foreign keys are held
/// back and returned, and the non-unique secondary indexes too where the table's flag says so
/// (the others are created with the table). Returns their [`SplitCreate`]s in order.
pub async fn create_tables(
    conn: &mut Conn,
    target_db: &str,
    ts: &[(&TableSchema, bool)],
) -> Result<Vec<SplitCreate>> {
    let setup = format!(
        "SET NAMES utf8mb4, SESSION sql_mode = '{TABLE_SQL_MODE}', SESSION foreign_key_checks = 0"
    );
    with_session(conn, &setup, async |conn: &mut Conn| {
        run(conn, format!("USE {}", quote_ident(target_db)), || {
            format!("selecting database {}", quote_ident(target_db))
        })
        .await?;
        let mut out = Vec::with_capacity(ts.len());
        for &(t, defer_indexes) in ts {
            let what = || format!("creating table {}", qualified(target_db, &t.name));
            let split = if t.kind == TableKind::Sequence {
                SplitCreate {
                    create: t.create.clone(),
                    ..Default::default()
                }
            } else if defer_indexes {
                split_create_table(&t.create)
            } else {
                split_foreign_keys(&t.create)
            };
            run(conn, split.create.as_str(), what).await?;
            if t.kind == TableKind::Sequence {
                set_sequence(conn, target_db, t).await?;
            }
            out.push(split);
        }
        Ok(out)
    })
    .await
}

/// Puts a sequence back to its dumped state: the next `NEXTVAL` returns the value that was next
/// not cached at the backup (values handed out from the cache before are never handed out
/// again, exactly as after a restart). Idempotent; nothing to do for other tables.
///
/// `SETVAL(seq, n, 0)` is used, and `ALTER SEQUENCE ... RESTART WITH n` when `SETVAL` refuses
/// (a sequence that has cycled: the value is below the fresh sequence's start). The cycle count
/// itself is not restored.
pub async fn restore_sequence_state(
    conn: &mut Conn,
    target_db: &str,
    t: &TableSchema,
) -> Result<()> {
    if t.sequence.is_none() {
        return Ok(());
    }
    with_session(conn, "SET NAMES utf8mb4", async |conn: &mut Conn| {
        set_sequence(conn, target_db, t).await
    })
    .await
}

async fn set_sequence(conn: &mut Conn, target_db: &str, t: &TableSchema) -> Result<()> {
    let Some(state) = &t.sequence else {
        return Ok(());
    };
    let n = state.next_value.trim();
    let digits = n.strip_prefix('-').unwrap_or(n);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::integrity(format!(
            "sequence {} has a malformed saved state `{}`",
            qualified(target_db, &t.name),
            state.next_value
        )));
    }
    let seq = qualified(target_db, &t.name);
    let what = || format!("restoring the state of sequence {seq}");
    run(conn, format!("SELECT SETVAL({seq}, {n}, 0)"), what).await?;
    let row = first_row(
        conn,
        format!("SELECT next_not_cached_value FROM {seq}"),
        what,
    )
    .await?;
    if text(&row, 0).as_deref() != Some(n) {
        run(conn, format!("ALTER SEQUENCE {seq} RESTART WITH {n}"), what).await?;
    }
    Ok(())
}

/// Adds what [`create_table`] deferred: all the indexes in one `ALTER TABLE`, then all the
/// foreign keys in another, with `foreign_key_checks=0` (no validation of loaded rows, and an
/// in-place operation). A foreign key needs an index on the referenced columns, which may be
/// one of the referenced table's deferred indexes: add the indexes of every table before the
/// foreign keys of any (pass a [`SplitCreate`] with only one of the two lists filled).
pub async fn add_deferred(
    conn: &mut Conn,
    target_db: &str,
    table: &str,
    split: &SplitCreate,
) -> Result<()> {
    if split.deferred_indexes.is_empty() && split.foreign_keys.is_empty() {
        return Ok(());
    }
    let setup = format!(
        "SET NAMES utf8mb4, SESSION sql_mode = '{TABLE_SQL_MODE}', SESSION foreign_key_checks = 0"
    );
    with_session(conn, &setup, async |conn: &mut Conn| {
        let t = qualified(target_db, table);
        if !split.deferred_indexes.is_empty() {
            let sql = format!("ALTER TABLE {t} {}", split.deferred_indexes.join(", "));
            run(conn, sql, || format!("adding the secondary indexes of {t}")).await?;
        }
        if !split.foreign_keys.is_empty() {
            let sql = format!("ALTER TABLE {t} {}", split.foreign_keys.join(", "));
            run(conn, sql, || format!("adding the foreign keys of {t}")).await?;
        }
        Ok(())
    })
    .await
}

/// Creates views in `target_db` in an order that works, without parsing them: each pass tries
/// every pending view and keeps those that failed because something they select from does not
/// exist yet (another view), as long as a pass makes progress. A view that still fails is
/// reported by name with the server's error. Definitions are executed verbatim (DEFINER and SQL
/// SECURITY included) under the view's client character set and connection collation.
pub async fn create_views(conn: &mut Conn, target_db: &str, views: &[ViewSchema]) -> Result<()> {
    if views.is_empty() {
        return Ok(());
    }
    with_session(conn, "SET NAMES utf8mb4", async |conn: &mut Conn| {
        run(conn, format!("USE {}", quote_ident(target_db)), || {
            format!("selecting database {}", quote_ident(target_db))
        })
        .await?;
        let mut pending: Vec<&ViewSchema> = views.iter().collect();
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for v in pending {
                match exec_in_context(conn, &v.context, &v.create, false, Some(target_db)).await? {
                    Ok(()) => {}
                    Err(e) if is_code(&e, VIEW_RETRY_CODES) => failed.push((v, e)),
                    Err(e) => {
                        return Err(Error::from(e)
                            .context(format!("creating view {}", qualified(target_db, &v.name))))
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            if failed.len() == before {
                let (v, e) = failed.swap_remove(0);
                return Err(Error::from(e).context(format!(
                    "creating view {} (it refers to a table, view or function that is not in the \
                     restore)",
                    qualified(target_db, &v.name)
                )));
            }
            pending = failed.into_iter().map(|(v, _)| v).collect();
        }
    })
    .await
}

/// Creates procedures, functions and packages in `target_db`, in the order given (packages
/// before their bodies), each under its `sql_mode`, client character set, connection collation
/// and database collation. Definitions are executed verbatim, DEFINER included (MariaDB accepts
/// a definer that does not exist, with a warning).
pub async fn create_routines(
    conn: &mut Conn,
    target_db: &str,
    routines: &[RoutineSchema],
) -> Result<()> {
    let objects: Vec<(String, &str, &CreationContext)> = routines
        .iter()
        .map(|r| {
            (
                format!(
                    "{} {}",
                    r.kind.to_lowercase(),
                    qualified(target_db, &r.name)
                ),
                r.create.as_str(),
                &r.context,
            )
        })
        .collect();
    create_in_context(conn, target_db, &objects, false).await
}

/// Creates triggers in `target_db` in the order given (their action order), each under its
/// context. The header is rewritten by [`trigger_for_restore`] (no database qualifier, no
/// FOLLOWS/PRECEDES); the DEFINER and body are kept. The tables must exist.
pub async fn create_triggers(
    conn: &mut Conn,
    target_db: &str,
    triggers: &[TriggerSchema],
) -> Result<()> {
    let rewritten: Vec<String> = triggers
        .iter()
        .map(|t| trigger_for_restore(&t.create))
        .collect();
    let objects: Vec<(String, &str, &CreationContext)> = triggers
        .iter()
        .zip(&rewritten)
        .map(|(t, sql)| {
            (
                format!("trigger {}", qualified(target_db, &t.name)),
                sql.as_str(),
                &t.context,
            )
        })
        .collect();
    create_in_context(conn, target_db, &objects, false).await
}

/// Creates events in `target_db`, each under its context and time zone (its schedule is
/// expressed in it). Definitions are executed verbatim, so ENABLE / DISABLE / DISABLE ON SLAVE
/// stay as dumped. A named time zone needs the target's time zone tables
/// (`mariadb-tzinfo-to-sql`).
pub async fn create_events(conn: &mut Conn, target_db: &str, events: &[EventSchema]) -> Result<()> {
    let objects: Vec<(String, &str, &CreationContext)> = events
        .iter()
        .map(|e| {
            (
                format!("event {}", qualified(target_db, &e.name)),
                e.create.as_str(),
                &e.context,
            )
        })
        .collect();
    create_in_context(conn, target_db, &objects, true).await
}

/// Creates accounts and roles that do not exist yet (`CREATE USER IF NOT EXISTS`, `CREATE ROLE
/// IF NOT EXISTS`: an existing account keeps its credentials, so credentials are also removed
/// from the grants, see [`grant_without_credentials`]), then applies every grant, then default
/// roles. Idempotent.
///
/// Grants on tables, columns or routines the target does not have (a filtered or renamed restore)
/// are skipped rather than failing the restore; the skipped statements are returned, each with
/// the server's reason. Grants on `db`.* of a renamed database keep the original name.
pub async fn restore_users(conn: &mut Conn, users: &[UserSchema]) -> Result<Vec<String>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    with_session(conn, "SET NAMES utf8mb4, SESSION sql_mode = ''", async |conn: &mut Conn| {
        // Roles first: a MySQL account may name one as its DEFAULT ROLE. Retry while progress is
        // made, for dependencies we cannot see.
        let mut pending: Vec<&UserSchema> = users.iter().filter(|u| u.is_role).collect();
        pending.extend(users.iter().filter(|u| !u.is_role));
        loop {
            let before = pending.len();
            let mut failed = Vec::new();
            for u in pending {
                if let Err(e) = conn.query_drop(create_if_not_exists(&u.create)).await {
                    failed.push((u, e));
                }
            }
            if failed.is_empty() {
                break;
            }
            if failed.len() == before {
                let (u, e) = failed.swap_remove(0);
                return Err(Error::from(e).context(format!("creating account {}", account_name(u))));
            }
            pending = failed.into_iter().map(|(u, _)| u).collect();
        }

        // Default roles last: the role must have been granted first.
        let is_default_role = |g: &str| g.to_ascii_uppercase().starts_with("SET DEFAULT ROLE");
        let all = || users.iter().flat_map(|u| u.grants.iter().map(move |g| (u, g)));
        let grants = all().filter(|(_, g)| !is_default_role(g));
        let default_roles = all().filter(|(_, g)| is_default_role(g));
        let mut skipped = Vec::new();
        for (u, g) in grants.chain(default_roles) {
            let missing_object = match conn.query_drop(grant_without_credentials(g)).await {
                Ok(()) => continue,
                Err(e) if is_code(&e, GRANT_MISSING_OBJECT_CODES) => e,
                Err(e) => {
                    let what = format!("granting to {}: {g}", account_name(u));
                    return Err(Error::from(e).context(what));
                }
            };
            tracing::warn!(grant = %g, error = %missing_object, "grant skipped: no such object");
            skipped.push(format!("{g} ({missing_object})"));
        }
        Ok(skipped)
    })
    .await
}

fn is_system_account(user: &str, host: &str, is_role: bool) -> bool {
    SYSTEM_ACCOUNTS.contains(&user) || (is_role && user == "PUBLIC" && host.is_empty())
}

fn account_name(u: &UserSchema) -> String {
    if u.is_role {
        quote_ident(&u.user)
    } else {
        format!("{}@{}", quote_ident(&u.user), quote_ident(&u.host))
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// The definitions of every object of database `db`, keyed `kind.name` (`table.t`,
/// `sequence.s`, `view.v`, `procedure.p`, `function.f`, `package.p`, `package body.p`,
/// `trigger.t`, `event.e`) and normalized so that a faithful restore, under any database name,
/// compares equal to its source: the database's quoted name is replaced by `` `<db>` ``, the
/// `AUTO_INCREMENT=N` table option is removed, trigger headers are unqualified. Each definition
/// carries its creation context (and a sequence its state, a trigger its position), so a restore
/// under the wrong `sql_mode` or character set does not compare equal. Sorted by key.
pub async fn object_definitions(conn: &mut Conn, db: &str) -> Result<Vec<(String, String)>> {
    let saved = SavedSession::save(conn).await?;
    let result = async {
        conn.query_drop(
            "SET NAMES utf8mb4, SESSION sql_mode = '', SESSION sql_quote_show_create = 1",
        )
        .await?;
        dump_database(conn, &Filter::default(), db, true).await
    }
    .await;
    saved.restore(conn).await?;
    let schema = result?;

    let placeholder = "`<db>`";
    let quoted = quote_ident(db);
    let ctx = |c: &CreationContext| {
        format!(
            "\n-- sql_mode={} character_set_client={} collation_connection={} \
             collation_database={} time_zone={}",
            c.sql_mode,
            c.character_set_client,
            c.collation_connection,
            c.collation_database,
            c.time_zone
        )
    };
    let mut out = BTreeMap::new();
    for t in &schema.tables {
        let (key, def) = match (&t.kind, &t.sequence) {
            (TableKind::Sequence, Some(s)) => (
                format!("sequence.{}", t.name),
                format!("{}\n-- next_not_cached_value={}", t.create, s.next_value),
            ),
            _ => (
                format!("table.{}", t.name),
                strip_auto_increment_option(&t.create),
            ),
        };
        out.insert(key, def);
    }
    for v in &schema.views {
        out.insert(
            format!("view.{}", v.name),
            format!("{}{}", v.create, ctx(&v.context)),
        );
    }
    for r in &schema.routines {
        out.insert(
            format!("{}.{}", r.kind.to_lowercase(), r.name),
            format!("{}{}", r.create, ctx(&r.context)),
        );
    }
    for (i, t) in schema.triggers.iter().enumerate() {
        out.insert(
            format!("trigger.{}", t.name),
            format!(
                "{}\n-- table={} position={i}{}",
                trigger_for_restore(&t.create),
                t.table,
                ctx(&t.context)
            ),
        );
    }
    for e in &schema.events {
        out.insert(
            format!("event.{}", e.name),
            format!("{}{}", e.create, ctx(&e.context)),
        );
    }
    Ok(out
        .into_iter()
        .map(|(k, v)| (k, v.replace(&quoted, placeholder)))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Session context

/// The session variables our functions change, saved to be put back.
struct SavedSession {
    values: Vec<(&'static str, Option<String>)>,
}

const SAVED_VARIABLES: &[&str] = &[
    "character_set_client",
    "character_set_results",
    "collation_connection",
    "sql_mode",
    "foreign_key_checks",
    "time_zone",
    "sql_quote_show_create",
];

impl SavedSession {
    async fn save(conn: &mut Conn) -> Result<SavedSession> {
        let select = SAVED_VARIABLES
            .iter()
            .map(|v| format!("CAST(@@SESSION.{v} AS CHAR)"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = conn
            .query_first::<Row, _>(format!("SELECT {select}"))
            .await?
            .ok_or_else(|| Error::internal("SELECT of session variables returned no row"))?;
        let values = SAVED_VARIABLES
            .iter()
            .enumerate()
            .map(|(i, v)| (*v, text(&row, i)))
            .collect();
        Ok(SavedSession { values })
    }

    async fn restore(&self, conn: &mut Conn) -> Result<()> {
        let assignments = self
            .values
            .iter()
            .map(|(name, value)| {
                // Numbers unquoted: MySQL refuses `foreign_key_checks = '1'` (MariaDB takes it).
                let value = match value.as_deref() {
                    None => "NULL".to_string(),
                    Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                        v.to_string()
                    }
                    Some(v) => quote_string(v),
                };
                format!("SESSION {name} = {value}")
            })
            .collect::<Vec<_>>()
            .join(", ");
        conn.query_drop(format!("SET {assignments}"))
            .await
            .map_err(|e| Error::from(e).context("restoring the session settings"))
    }
}

/// Runs `body` with the session switched by `setup`, and puts the session back afterwards,
/// whether `body` succeeded or not.
async fn with_session<T>(
    conn: &mut Conn,
    setup: &str,
    body: impl AsyncFnOnce(&mut Conn) -> Result<T>,
) -> Result<T> {
    let saved = SavedSession::save(conn).await?;
    let result = match conn.query_drop(setup).await {
        Ok(()) => body(conn).await,
        Err(e) => Err(e.into()),
    };
    let restored = saved.restore(conn).await;
    let value = result?;
    restored?;
    Ok(value)
}

/// Creates each `(what, sql, context)` in `target_db` under its context, switching the
/// database's collation to the one the object was created under when it differs (it decides the
/// character set of routine parameters and variables without one) and back at the end.
async fn create_in_context(
    conn: &mut Conn,
    target_db: &str,
    objects: &[(String, &str, &CreationContext)],
    with_time_zone: bool,
) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    with_session(conn, "SET NAMES utf8mb4", async |conn: &mut Conn| {
        let db = quote_ident(target_db);
        run(conn, format!("USE {db}"), || {
            format!("selecting database {db}")
        })
        .await?;
        let original = conn
            .exec_first::<Row, _, _>(
                "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
                 WHERE SCHEMA_NAME = ?",
                (target_db,),
            )
            .await?
            .and_then(|r| text(&r, 0))
            .unwrap_or_default();
        let mut current = original.clone();
        let result = async {
            for (what, sql, context) in objects {
                let wanted = &context.collation_database;
                if !wanted.is_empty() && is_plain_name(wanted) && *wanted != current {
                    conn.query_drop("SET NAMES utf8mb4").await?;
                    run(
                        conn,
                        format!("ALTER DATABASE {db} COLLATE {wanted}"),
                        || format!("creating {what}: switching the database collation to {wanted}"),
                    )
                    .await?;
                    current = wanted.clone();
                }
                exec_in_context(conn, context, sql, with_time_zone, None)
                    .await?
                    .map_err(|e| Error::from(e).context(format!("creating {what}")))?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if current != original && is_plain_name(&original) {
            conn.query_drop("SET NAMES utf8mb4").await?;
            run(
                conn,
                format!("ALTER DATABASE {db} COLLATE {original}"),
                || format!("restoring the collation of database {db}"),
            )
            .await?;
        }
        result
    })
    .await
}

/// Executes `sql` under `ctx`: its `sql_mode`, time zone (when asked), client character set and
/// connection collation. The text is sent in the client character set it was written in
/// (converted by the server, from the UTF-8 we hold), so that string literals mean what they
/// meant; if it cannot be represented in it, it is sent as utf8mb4 (with a warning). The same
/// fallback applies when `target_db` is given (views) and its name cannot be represented: the
/// server stores a view's definition with the current database's name in the client character
/// set, and an unrepresentable name would turn into `?` and break the view.
///
/// The outer error is a failure to set the context; the inner one is the server's verdict on
/// `sql` itself, for callers that branch on its code.
async fn exec_in_context(
    conn: &mut Conn,
    ctx: &CreationContext,
    sql: &str,
    with_time_zone: bool,
    target_db: Option<&str>,
) -> Result<std::result::Result<(), mysql_async::Error>> {
    let mut setup = format!(
        "SET NAMES utf8mb4, SESSION sql_mode = {}",
        quote_string(&ctx.sql_mode)
    );
    if with_time_zone && !ctx.time_zone.is_empty() {
        setup.push_str(&format!(
            ", SESSION time_zone = {}",
            quote_string(&ctx.time_zone)
        ));
    }
    if let Err(e) = conn.query_drop(&setup).await {
        return Err(match server_code(&e) {
            Some(1298) => Error::from(e).context(format!(
                "setting time zone `{}` (load the target's time zone tables with \
                 mariadb-tzinfo-to-sql)",
                ctx.time_zone
            )),
            _ => Error::from(e).context(format!("setting sql_mode `{}`", ctx.sql_mode)),
        });
    }

    let charset = ctx.character_set_client.as_str();
    let collation = ctx.collation_connection.as_str();
    let utf8 = matches!(
        charset.to_ascii_lowercase().as_str(),
        "utf8" | "utf8mb3" | "utf8mb4"
    );
    let mut bytes = sql.as_bytes().to_vec();
    let mut client = charset;
    let target = target_db.unwrap_or("");
    if !is_plain_name(charset) {
        client = "utf8mb4";
    } else if !utf8 && (!sql.is_ascii() || !target.is_ascii()) {
        let converted =
            |s: &str| format!("CONVERT(_utf8mb4 X'{}' USING {charset})", hex::encode(s));
        let round_trips = |s: &str| {
            format!(
                "CAST(CONVERT({} USING utf8mb4) AS BINARY) = X'{}'",
                converted(s),
                hex::encode(s)
            )
        };
        let row = conn
            .query_first::<Row, _>(format!(
                "SELECT CAST({} AS BINARY), {} AND {}",
                converted(sql),
                round_trips(sql),
                round_trips(target)
            ))
            .await?;
        match row.as_ref().map(|r| (r.as_ref(0), text(r, 1))) {
            Some((Some(Value::Bytes(b)), Some(same))) if same == "1" => bytes = b.clone(),
            _ => {
                tracing::warn!(
                    charset,
                    "definition not representable in its client character set; sent as utf8mb4"
                );
                client = "utf8mb4";
            }
        }
    }
    let mut names = format!("SET SESSION character_set_client = {client}");
    if is_plain_name(collation) {
        names.push_str(&format!(", SESSION collation_connection = {collation}"));
    }
    conn.query_drop(&names)
        .await
        .map_err(|e| Error::from(e).context(format!("setting `{names}`")))?;
    Ok(conn.query_drop(bytes).await)
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn qualified(db: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(name))
}

fn is_code(e: &mysql_async::Error, codes: &[u16]) -> bool {
    server_code(e).is_some_and(|c| codes.contains(&c))
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(se) => Some(se.code),
        _ => None,
    }
}

/// Runs a statement, naming what we were doing in the error.
async fn run(conn: &mut Conn, sql: impl AsQuery, what: impl FnOnce() -> String) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| Error::from(e).context(what()))
}

/// The first row of a statement that must return one.
async fn first_row(conn: &mut Conn, sql: String, what: impl FnOnce() -> String) -> Result<Row> {
    match conn.query_first::<Row, _>(sql).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(Error::server(format!(
            "{}: the server returned no row",
            what()
        ))),
        Err(e) => Err(Error::from(e).context(what())),
    }
}

/// Column `i` as text: NULL is `None`; bytes are UTF-8 (we ask for utf8mb4 results), decoded
/// lossily with a warning if they are not.
fn text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        Value::NULL => None,
        Value::Bytes(b) => Some(match String::from_utf8(b.clone()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    column = i,
                    "server sent text that is not UTF-8; replacing invalid bytes"
                );
                String::from_utf8_lossy(e.as_bytes()).into_owned()
            }
        }),
        Value::Int(n) => Some(n.to_string()),
        Value::UInt(n) => Some(n.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Double(f) => Some(f.to_string()),
        other => Some(other.as_sql(true)),
    }
}

fn required(row: &Row, i: usize, column: &str) -> Result<String> {
    text(row, i).ok_or_else(|| Error::server(format!("the server returned NULL for `{column}`")))
}
