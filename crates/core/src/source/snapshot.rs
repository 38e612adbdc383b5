//! One consistent snapshot shared by a driver connection and N raw reader connections.
//!
//! Every member opens a `REPEATABLE READ` transaction `WITH CONSISTENT SNAPSHOT` while a brief
//! server-wide lock stops commits (MariaDB: `BACKUP STAGE BLOCK_COMMIT`, which waits only for
//! commits in flight, not for long queries; MySQL: `FLUSH TABLES WITH READ LOCK`), and the binlog
//! coordinates and GTID position are read under the same lock. The lock is then released: it is
//! held for milliseconds. A watchdog bounds the whole locked phase: if acquiring or holding the
//! lock takes longer than the timeout (a long DDL or a stuck commit ahead of us), the locking
//! connection is killed from another connection, which releases everything, and the backup fails
//! with [`ErrorKind::LockTimeout`] instead of stalling production.
//!
//! The control member is a driver ([`Conn`]) connection, for the schema, planning and counting;
//! the readers are raw-protocol ([`WireConn`]) connections that stream rows without building a
//! value per column. On MariaDB each member's `binlog_snapshot_position` is then compared with
//! the locked coordinates: equal values prove the snapshots are the same point in history.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use mysql_async::prelude::*;
use mysql_async::Conn;
use time::OffsetDateTime;

use super::conn::ConnectionConfig;
use super::server::{Flavor, ServerIdentity};
use super::wire::WireConn;
use crate::manifest::ConsistentPoint;
use crate::{Error, ErrorKind, Result};

#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Raw reader connections besides the control connection.
    pub readers: usize,
    /// Longest time the server-wide lock may be waited for plus held.
    pub lock_timeout: Duration,
    /// Longest silence of the server while a reader waits for rows (`None`: unlimited).
    pub stall_timeout: Option<Duration>,
}

/// Connections inside one consistent snapshot.
pub struct Snapshot {
    /// The driver connection, for typed queries (schema, plans, counts).
    pub control: Conn,
    /// Raw connections that read rows.
    pub readers: Vec<WireConn>,
    pub point: ConsistentPoint,
    /// How long the server-wide lock was held (acquired to released).
    pub lock_held: Duration,
}

/// Session settings of a snapshot member, one statement each: exact bytes (no charset
/// conversion), TIMESTAMP values in UTC (no daylight-saving ambiguity), no statement timeouts,
/// patience with a slow reader.
pub const WORKER_SETUP: &[&str] = &[
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SET NAMES binary",
    "SET time_zone = '+00:00'",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION net_read_timeout = 3600",
    "SET SESSION wait_timeout = 86400",
];

/// On MySQL, after `SET NAMES binary`: rows still arrive as raw bytes (`character_set_results`)
/// and our literals carry their own character set, but the connection collation must not be
/// `binary`. MySQL resolves a table's generated-column expressions in the collation of the
/// session that opens it and caches the result: a table first opened by a `binary` session
/// fails later, for every session, to evaluate JSON functions in its generated columns
/// ("Cannot create a JSON value from a string with CHARACTER SET 'binary'"). A backup must
/// never do that to the application's tables.
pub const MYSQL_CONNECTION_COLLATION: &str = "SET collation_connection = utf8mb4_bin";

/// A savepoint every member sets as soon as its snapshot is open. A transaction keeps the
/// metadata lock of every table it reads until it ends: a snapshot that reads 100,000 tables
/// holds 100,000 locks, the server slows down with every lock more (each new table took tens of
/// milliseconds past 20,000 in one transaction) and every `ALTER TABLE` on a table already
/// read waits for the end of the backup. Rolling back to this savepoint
/// ([`RELEASE_TABLE_LOCKS`]) releases the locks taken since and keeps the snapshot (the read
/// view belongs to the transaction, which stays open), as `mysqldump --single-transaction`
/// does. MariaDB releases them only in a session whose binary log is off, so every member
/// turns it off for itself before its transaction starts (`sql_log_bin = 0`: it only reads, and
/// the snapshot's binlog position is unaffected); that needs SUPER or BINLOG ADMIN, and without
/// it the locks stay until the end, as before. Releasing a lock only lets DDL proceed on a table
/// already read; a table not yet read was never locked (see docs/design.md, "DDL during a
/// backup").
const SET_SNAPSHOT_SAVEPOINT: &str = "SAVEPOINT holdfast_snapshot";

/// Releases the metadata locks a snapshot member took since [`SET_SNAPSHOT_SAVEPOINT`], keeping
/// the snapshot.
pub const RELEASE_TABLE_LOCKS: &str = "ROLLBACK TO SAVEPOINT holdfast_snapshot";

/// A connection of either kind taking part in the snapshot.
enum Member {
    Driver(Conn),
    Raw(WireConn),
}

impl Member {
    async fn run(&mut self, sql: &str) -> Result<()> {
        match self {
            Member::Driver(c) => Ok(c.query_drop(sql).await?),
            Member::Raw(c) => c.execute(sql).await,
        }
    }

    /// Name/value rows of a `SHOW ... STATUS` statement.
    async fn pairs(&mut self, sql: &str) -> Result<Vec<(String, String)>> {
        match self {
            Member::Driver(c) => Ok(c.query(sql).await?),
            Member::Raw(c) => Ok(c
                .query_text(sql)
                .await?
                .into_iter()
                .filter_map(|row| match row.as_slice() {
                    [Some(k), Some(v)] => Some((k.clone(), v.clone())),
                    _ => None,
                })
                .collect()),
        }
    }

    /// Session settings; also says whether the session's binary log could be turned off (see
    /// [`SET_SNAPSHOT_SAVEPOINT`]).
    async fn setup(mut self, flavor: Flavor) -> Result<(Self, bool)> {
        for sql in member_session(flavor) {
            self.run(sql).await?;
        }
        // Only before the transaction: the server refuses the change inside one.
        let binlog_off = match self.run("SET SESSION sql_log_bin = 0").await {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::Auth => false,
            Err(e) => return Err(e),
        };
        Ok((self, binlog_off))
    }
}

/// The session settings of a snapshot member on `flavor`, one statement each: [`WORKER_SETUP`]
/// and the flavor's own.
pub fn member_session(flavor: Flavor) -> impl Iterator<Item = &'static str> {
    let own = match flavor {
        Flavor::MariaDb => "SET SESSION max_statement_time = 0",
        Flavor::MySql => MYSQL_CONNECTION_COLLATION,
    };
    WORKER_SETUP.iter().copied().chain(std::iter::once(own))
}

/// Gives `conn`, a connection outside the snapshot, a member's session settings: what it reads
/// (key boundaries above all: bytes, not converted text; TIMESTAMPs in UTC) then means what it
/// would on a member.
pub async fn like_a_member(conn: &mut Conn, flavor: Flavor) -> Result<()> {
    for sql in member_session(flavor) {
        conn.query_drop(sql).await?;
    }
    Ok(())
}

pub async fn open_snapshot(
    config: &ConnectionConfig,
    identity: &ServerIdentity,
    opts: &SnapshotOptions,
) -> Result<Snapshot> {
    let control = async {
        Member::Driver(config.connect().await?)
            .setup(identity.flavor)
            .await
    };
    let readers = (0..opts.readers).map(|_| async {
        let mut conn = WireConn::connect(config).await?;
        conn.set_read_timeout(opts.stall_timeout);
        Member::Raw(conn).setup(identity.flavor).await
    });
    let (control, readers) = futures::try_join!(control, try_join_all(readers))?;
    let mut workers = Vec::with_capacity(readers.len() + 1);
    let mut releases_locks = true;
    for (member, binlog_off) in readers.into_iter().chain(std::iter::once(control)) {
        releases_locks &= binlog_off;
        workers.push(member);
    }
    if !releases_locks && identity.flavor == Flavor::MariaDb {
        tracing::info!(
            "the backup user may not turn off its sessions' binary log (SUPER or BINLOG ADMIN): \
             every table read keeps its metadata lock until the backup ends, which slows a \
             backup of tens of thousands of tables and holds up DDL on the tables already read"
        );
    }
    let mut locker = config.connect().await?;
    let locker_id = locker.id();
    let mut watchdog = config.connect().await?;

    let started = Instant::now();
    let locked = tokio::time::timeout(
        opts.lock_timeout,
        locked_phase(&mut locker, workers, identity.flavor, opts.lock_timeout),
    )
    .await;
    match locked {
        Ok(Ok((mut workers, point, held))) => {
            drop(watchdog);
            let Some(Member::Driver(control)) = workers.pop() else {
                return Err(Error::internal("the snapshot lost its control connection"));
            };
            let readers = workers
                .into_iter()
                .filter_map(|m| match m {
                    Member::Raw(c) => Some(c),
                    Member::Driver(_) => None,
                })
                .collect();
            Ok(Snapshot {
                control,
                readers,
                point,
                lock_held: held,
            })
        }
        Ok(Err(e)) => {
            let _ = watchdog
                .query_drop(format!("KILL CONNECTION {locker_id}"))
                .await;
            Err(e)
        }
        Err(_elapsed) => {
            // The lock phase is stuck: kill the locking connection, which releases any lock.
            let _ = watchdog
                .query_drop(format!("KILL CONNECTION {locker_id}"))
                .await;
            Err(Error::new(
                ErrorKind::LockTimeout,
                format!(
                    "could not align the snapshot within {:.1}s (waited {:.1}s): something holds up \
                     commits or DDL (see SHOW PROCESSLIST); the lock was released and nothing was \
                     written; retry later or raise --lock-timeout",
                    opts.lock_timeout.as_secs_f64(),
                    started.elapsed().as_secs_f64()
                ),
            ))
        }
    }
}

async fn locked_phase(
    locker: &mut Conn,
    mut workers: Vec<Member>,
    flavor: Flavor,
    timeout: Duration,
) -> Result<(Vec<Member>, ConsistentPoint, Duration)> {
    let wait_secs = timeout.as_secs().max(1);
    locker
        .query_drop(format!("SET SESSION lock_wait_timeout = {wait_secs}"))
        .await?;
    let lock_sql: &[&str] = match flavor {
        Flavor::MariaDb => &["BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"],
        Flavor::MySql => &[
            "FLUSH NO_WRITE_TO_BINLOG TABLES",
            "FLUSH TABLES WITH READ LOCK",
        ],
    };
    for sql in lock_sql {
        locker
            .query_drop(*sql)
            .await
            .map_err(|e| lock_error(e, sql, timeout))?;
    }
    let acquired = Instant::now();

    try_join_all(
        workers
            .iter_mut()
            .map(|w| w.run("START TRANSACTION WITH CONSISTENT SNAPSHOT")),
    )
    .await?;
    let point = read_point(locker, flavor).await?;

    let unlock = match flavor {
        Flavor::MariaDb => "BACKUP STAGE END",
        Flavor::MySql => "UNLOCK TABLES",
    };
    locker.query_drop(unlock).await?;
    let held = acquired.elapsed();

    if flavor == Flavor::MariaDb && !point.binlog_file.is_empty() {
        for w in workers.iter_mut() {
            prove_same_point(w, &point).await?;
        }
    }
    try_join_all(workers.iter_mut().map(|w| w.run(SET_SNAPSHOT_SAVEPOINT))).await?;
    Ok((workers, point, held))
}

fn lock_error(e: mysql_async::Error, sql: &str, timeout: Duration) -> Error {
    if let mysql_async::Error::Server(se) = &e {
        if se.code == 1205 {
            return Error::new(
                ErrorKind::LockTimeout,
                format!(
                    "`{sql}` waited {}s for the lock without getting it: another session holds a \
                     backup lock, a long DDL or FLUSH TABLES is running (see SHOW PROCESSLIST); \
                     nothing was written; retry later or raise --lock-timeout",
                    timeout.as_secs()
                ),
            );
        }
    }
    let e = Error::from(e);
    if e.kind() == ErrorKind::Auth {
        return Error::new(
            ErrorKind::Auth,
            format!("`{sql}` was refused: the backup user needs the RELOAD privilege ({e})"),
        );
    }
    e.context(format!("`{sql}`"))
}

async fn read_point(conn: &mut Conn, flavor: Flavor) -> Result<ConsistentPoint> {
    let time = OffsetDateTime::now_utc();
    let status: Option<mysql_async::Row> = conn.query_first("SHOW MASTER STATUS").await?;
    let (binlog_file, binlog_pos) = match status {
        Some(row) => {
            let file: String = row.get(0).unwrap_or_default();
            let pos: u64 = row.get(1).unwrap_or_default();
            (file, pos)
        }
        None => (String::new(), 0),
    };
    // MySQL 5.7: a bare @@gtid_executed is the (deprecated) session value, empty outside a
    // transaction; the server prints a set of several UUIDs over several lines.
    let gtid_sql = match flavor {
        Flavor::MariaDb => "SELECT @@gtid_binlog_pos",
        Flavor::MySql => "SELECT @@GLOBAL.gtid_executed",
    };
    let gtid: Option<String> = conn.query_first(gtid_sql).await?;
    let gtid_set = gtid
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Ok(ConsistentPoint {
        binlog_file,
        binlog_pos,
        gtid_set,
        time,
    })
}

async fn prove_same_point(worker: &mut Member, point: &ConsistentPoint) -> Result<()> {
    let rows = worker
        .pairs("SHOW SESSION STATUS LIKE '%inlog_snapshot_%'")
        .await?;
    // The session runs `SET NAMES binary`, so match names in Rust, case-insensitively.
    let get = |name: &str| {
        rows.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = get("binlog_snapshot_file").unwrap_or_default();
    let pos: u64 = get("binlog_snapshot_position")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if file != point.binlog_file || pos != point.binlog_pos {
        return Err(Error::internal(format!(
            "a worker's snapshot is at {file}:{pos} but the locked point is {}:{}; \
             the snapshots are not aligned",
            point.binlog_file, point.binlog_pos
        )));
    }
    Ok(())
}
