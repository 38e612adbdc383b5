//! Small data generators for tests.
//!
//! - Bank accounts: [`create_accounts`] then any number of concurrent [`transfer_money`]
//!   writers. Every transfer moves money between two accounts in one transaction, so the total
//!   ([`total_balance`]) never changes: a backup or restore that is not transactionally
//!   consistent shows a different total. Each transfer is also logged in `transfers`, which
//!   gives binlog/PITR tests a steady stream of row events.
//! - [`create_mixed_table`]: a table whose rows exercise every awkward value a logical dump
//!   must round-trip (NULLs, tabs and newlines, backslashes, binary bytes, unicode, extreme
//!   numbers, temporal types, JSON, ENUM/SET/BIT).
//! - [`table_checksums`]: `CHECKSUM TABLE` of every base table in a database, for comparing
//!   a source with its restored copy.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Error, TxOpts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Quotes an identifier with backticks.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Creates database `db` (if missing) with tables `accounts(id, balance)` (ids `1..=n_accounts`,
/// each holding `initial_balance`) and an empty `transfers` log. Drops existing tables of those
/// names first. The expected total is `n_accounts * initial_balance`.
pub async fn create_accounts(
    conn: &mut Conn,
    db: &str,
    n_accounts: u32,
    initial_balance: i64,
) -> Result<(), Error> {
    let db = quote_ident(db);
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {db}"))
        .await?;
    conn.query_drop(format!(
        "DROP TABLE IF EXISTS {db}.accounts, {db}.transfers; \
         CREATE TABLE {db}.accounts (\
           id INT UNSIGNED NOT NULL PRIMARY KEY, \
           balance BIGINT NOT NULL, \
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
             ON UPDATE CURRENT_TIMESTAMP(6)\
         ) ENGINE=InnoDB; \
         CREATE TABLE {db}.transfers (\
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
           from_id INT UNSIGNED NOT NULL, \
           to_id INT UNSIGNED NOT NULL, \
           amount BIGINT NOT NULL, \
           at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
           KEY (from_id), KEY (to_id)\
         ) ENGINE=InnoDB"
    ))
    .await?;
    let ids: Vec<u32> = (1..=n_accounts).collect();
    for chunk in ids.chunks(1000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|id| format!("({id},{initial_balance})"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO {db}.accounts (id, balance) VALUES {}",
            values.join(",")
        ))
        .await?;
    }
    Ok(())
}

/// Sum of all balances in `db.accounts`.
pub async fn total_balance(conn: &mut Conn, db: &str) -> Result<i64, Error> {
    let total: Option<Option<i64>> = conn
        .query_first(format!(
            "SELECT CAST(SUM(balance) AS SIGNED) FROM {}.accounts",
            quote_ident(db)
        ))
        .await?;
    Ok(total.flatten().unwrap_or(0))
}

/// Bounds for [`transfer_money`]; the writer stops at whichever comes first.
#[derive(Debug, Clone)]
pub struct TransferLimits {
    /// Stop after this many committed transfers.
    pub max_transfers: u64,
    /// Stop after this long.
    pub max_duration: Duration,
    /// Amounts are drawn from `1..=max_amount`.
    pub max_amount: i64,
    /// Pause between transfers (zero: as fast as possible).
    pub pause: Duration,
}

impl Default for TransferLimits {
    fn default() -> Self {
        TransferLimits {
            max_transfers: 1_000_000,
            max_duration: Duration::from_secs(120),
            max_amount: 100,
            pause: Duration::ZERO,
        }
    }
}

/// Moves random amounts between random accounts of `db.accounts` (made by
/// [`create_accounts`]), one transaction per transfer (debit, credit, log row), until `stop`
/// is set or `limits` are reached. Returns the number of committed transfers.
///
/// Safe to run several concurrently: rows are locked in id order, and deadlocks or lock wait
/// timeouts (for example behind a backup lock) are retried. Other errors (such as the server
/// being killed) are returned; the transfer in flight is then rolled back by the server, so
/// the total stays intact.
pub async fn transfer_money(
    conn: &mut Conn,
    db: &str,
    stop: &AtomicBool,
    limits: TransferLimits,
) -> Result<u64, Error> {
    let db = quote_ident(db);
    let n_accounts: Option<Option<u32>> = conn
        .query_first(format!("SELECT MAX(id) FROM {db}.accounts"))
        .await?;
    let n_accounts = n_accounts.flatten().unwrap_or(0);
    if n_accounts < 2 {
        return Ok(0);
    }
    let debit = format!("UPDATE {db}.accounts SET balance = balance - ? WHERE id = ?");
    let credit = format!("UPDATE {db}.accounts SET balance = balance + ? WHERE id = ?");
    let log = format!("INSERT INTO {db}.transfers (from_id, to_id, amount) VALUES (?, ?, ?)");
    let mut rng = StdRng::from_entropy();
    let started = Instant::now();
    let mut done = 0u64;
    while !stop.load(Ordering::Relaxed)
        && done < limits.max_transfers
        && started.elapsed() < limits.max_duration
    {
        let from = rng.gen_range(1..=n_accounts);
        let mut to = rng.gen_range(1..n_accounts);
        if to >= from {
            to += 1;
        }
        let amount = rng.gen_range(1..=limits.max_amount.max(1));
        let result = async {
            let mut tx = conn.start_transaction(TxOpts::default()).await?;
            // Lock in id order so concurrent writers cannot deadlock each other.
            if from < to {
                tx.exec_drop(&debit, (amount, from)).await?;
                tx.exec_drop(&credit, (amount, to)).await?;
            } else {
                tx.exec_drop(&credit, (amount, to)).await?;
                tx.exec_drop(&debit, (amount, from)).await?;
            }
            tx.exec_drop(&log, (from, to, amount)).await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => done += 1,
            Err(Error::Server(e)) if e.code == 1213 || e.code == 1205 => {
                // ER_LOCK_DEADLOCK / ER_LOCK_WAIT_TIMEOUT: rolled back; try another transfer.
            }
            Err(e) => return Err(e),
        }
        if !limits.pause.is_zero() {
            tokio::time::sleep(limits.pause).await;
        }
    }
    Ok(done)
}

/// Creates `db.table` (dropping an existing one) with columns of many types and fills it with
/// `rows` rows, the first of which hold edge cases (NULLs, `\t`, `\n`, `\\`, `\0`, quotes,
/// unicode, extreme numbers; no zero dates). Deterministic for a given `rows`.
pub async fn create_mixed_table(
    conn: &mut Conn,
    db: &str,
    table: &str,
    rows: u32,
) -> Result<(), Error> {
    let qdb = quote_ident(db);
    let name = format!("{qdb}.{}", quote_ident(table));
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {qdb}"))
        .await?;
    conn.query_drop(format!(
        "DROP TABLE IF EXISTS {name}; \
         CREATE TABLE {name} (\
           id INT NOT NULL PRIMARY KEY, \
           i8 TINYINT, u64 BIGINT UNSIGNED, i64 BIGINT, \
           dec_col DECIMAL(30,10), f FLOAT, d DOUBLE, \
           vc VARCHAR(200) CHARACTER SET utf8mb4, ch CHAR(10), \
           txt TEXT, bin VARBINARY(64), blb LONGBLOB, \
           dt DATE, dtm DATETIME(6), ts TIMESTAMP NULL, tm TIME(3), yr YEAR, \
           js JSON, en ENUM('a','b','c'), st SET('x','y','z'), bits BIT(12), \
           KEY (vc), KEY (dtm)\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ))
    .await?;
    let edge_rows = [
        // All NULL except the key.
        "(1,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL,NULL)",
        // Separators, escapes and the literal string NULL.
        "(2,-128,18446744073709551615,-9223372036854775808,-99999999999999999999.9999999999,\
          -3.4e38,1.7976931348623157e308,'tab\\there\\nnewline\\\\ back\\'quote\"dq','NULL','\\\\N',\
          X'00090A0D5C27FF',X'000102030405FF5C4E',\
          '1000-01-01','1970-01-01 00:00:01.000001','2037-12-31 00:00:00','-838:59:59.000',1901,\
          '{\"k\":[1,2,{\"n\":null}],\"s\":\"a\\\\tb\"}','a','x,z',b'101010101010')",
        // Unicode, empty strings, maxima.
        "(3,127,0,9223372036854775807,99999999999999999999.9999999999,0,-0.0,\
          'ünïcødé ✓ 日本語 🦀','','',X'',X'',\
          '9999-12-31','9999-12-31 23:59:59.999999','1971-01-01 00:00:00','838:59:59.999',2155,\
          '[]','c','',b'111111111111')",
    ];
    conn.query_drop(format!("INSERT INTO {name} VALUES {}", edge_rows.join(",")))
        .await?;
    let mut next = 4u32;
    while next <= rows {
        let end = (next + 499).min(rows);
        conn.query_drop(format!(
            "INSERT INTO {name} \
             SELECT n, n % 256 - 128, n * 2654435761, -n * 40503, n / 7, n / 3, \
               n * 1.000001, CONCAT('row ', n, IF(n % 5 = 0, '\\t\\n\\\\', ''), ' ✓'), \
               LEFT(MD5(n), 10), REPEAT(MD5(n), n % 20), UNHEX(MD5(n)), \
               IF(n % 3 = 0, NULL, REPEAT(UNHEX(SHA1(n)), n % 50)), \
               '2000-01-01' + INTERVAL n DAY, \
               '2020-01-01 00:00:00' + INTERVAL n * 1000003 MICROSECOND, \
               IF(n % 4 = 0, NULL, FROM_UNIXTIME(1000000000 + n)), \
               SEC_TO_TIME(n % 86400), 1901 + n % 255, \
               JSON_OBJECT('id', n, 'even', n % 2 = 0), \
               ELT(1 + n % 3, 'a', 'b', 'c'), ELT(1 + n % 4, '', 'x', 'y,z', 'x,y,z'), \
               n % 4096 \
             FROM (SELECT CAST(seq AS SIGNED) AS n FROM {qdb}.seq_{next}_to_{end}) AS s"
        ))
        .await?;
        next = end + 1;
    }
    Ok(())
}

/// `CHECKSUM TABLE` of every base table in `db`, sorted by table name (`None` for a table the
/// server could not checksum).
///
/// MariaDB 10.11's `CHECKSUM TABLE` is unreliable for tables with generated columns (the
/// result depends on which table the session or table cache opened before), so such a table
/// is checksummed through a temporary plain copy (`CREATE TEMPORARY TABLE .. AS SELECT *`),
/// which is stable and equal for equal contents.
pub async fn table_checksums(
    conn: &mut Conn,
    db: &str,
) -> Result<Vec<(String, Option<u64>)>, Error> {
    let tables: Vec<(String, u64)> = conn
        .exec(
            "SELECT t.TABLE_NAME, \
               (SELECT COUNT(*) FROM information_schema.COLUMNS c \
                WHERE c.TABLE_SCHEMA = t.TABLE_SCHEMA AND c.TABLE_NAME = t.TABLE_NAME \
                  AND c.IS_GENERATED <> 'NEVER') \
             FROM information_schema.TABLES t \
             WHERE t.TABLE_SCHEMA = ? AND t.TABLE_TYPE = 'BASE TABLE' ORDER BY t.TABLE_NAME",
            (db,),
        )
        .await?;
    let qdb = quote_ident(db);
    let mut out = Vec::with_capacity(tables.len());
    for (table, generated) in tables {
        let source = format!("{qdb}.{}", quote_ident(&table));
        let target = if generated > 0 {
            let copy = format!("{qdb}.`testkit_checksum_copy`");
            conn.query_drop(format!(
                "DROP TEMPORARY TABLE IF EXISTS {copy}; \
                 CREATE TEMPORARY TABLE {copy} ENGINE=InnoDB AS SELECT * FROM {source}"
            ))
            .await?;
            copy
        } else {
            source
        };
        let row: Option<(String, Option<u64>)> =
            conn.query_first(format!("CHECKSUM TABLE {target}")).await?;
        if generated > 0 {
            conn.query_drop(format!("DROP TEMPORARY TABLE {target}"))
                .await?;
        }
        out.push((table, row.and_then(|(_, sum)| sum)));
    }
    Ok(out)
}
