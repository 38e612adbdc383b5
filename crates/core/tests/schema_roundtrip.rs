//! Schema objects survive a dump and a restore, under the same and under another database name:
//! every definition compares equal to the source's, and the restored objects behave the same.

use holdfast::engine::logical::ddl::quote_ident;
use holdfast::engine::logical::schema::{
    add_deferred, create_database, create_events, create_routines, create_table, create_triggers,
    create_views, dump_schema, object_definitions, restore_sequence_state, restore_users,
};
use holdfast::engine::logical::{ddl::SplitCreate, Filter};
use holdfast::manifest::{DatabaseSchema, SchemaDump, TableKind};
use holdfast_testkit::TestServer;
use mysql_async::prelude::*;
use mysql_async::Conn;

const SRC: &str = "src `db` ü";

async fn exec(conn: &mut Conn, sql: impl AsRef<str>) {
    let sql = sql.as_ref();
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n-> {e}"));
}

async fn one(conn: &mut Conn, sql: impl AsRef<str>) -> Option<String> {
    let sql = sql.as_ref();
    conn.query_first::<Option<String>, _>(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\n-> {e}"))
        .flatten()
}

/// A schema with most of what can go wrong.
async fn create_nasty_schema(conn: &mut Conn) {
    let db = quote_ident(SRC);
    for sql in [
        format!("CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        format!("USE {db}"),
        "SET NAMES utf8mb4".into(),
        // Referencing tables created before the tables they reference.
        "SET foreign_key_checks = 0".into(),
        "CREATE TABLE `child` (id INT AUTO_INCREMENT, parent_id INT NOT NULL, \
         `we``ird col` VARCHAR(20) COMMENT 'a KEY, in (a) comment', PRIMARY KEY (id), \
         KEY by_parent (parent_id), CONSTRAINT `fk child→parent` FOREIGN KEY (parent_id) \
         REFERENCES `parent` (id) ON DELETE CASCADE) ENGINE=InnoDB COMMENT='KEY `fake` (x),'"
            .into(),
        // References a column of `parent` that only a deferred (non-unique) index covers.
        "CREATE TABLE `orders` (id INT PRIMARY KEY, qty INT, KEY q (qty), \
         CONSTRAINT fk_qty FOREIGN KEY (qty) REFERENCES parent (qty))"
            .into(),
        "SET foreign_key_checks = 1".into(),
        "CREATE TABLE `parent` (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, \
         price DECIMAL(10,2) CHECK (price >= 0), qty INT, \
         total DECIMAL(12,2) AS (price * qty) VIRTUAL, total_s DECIMAL(12,2) AS (price * qty) PERSISTENT, \
         secret INT INVISIBLE DEFAULT 7, body TEXT, UNIQUE KEY uq_name (name), KEY idx_total (total_s), \
         KEY `idx multi` (qty, name(10)), KEY idx_virtual (total), FULLTEXT KEY ft_body (body), \
         CONSTRAINT chk_qty CHECK (qty >= 0)) ENGINE=InnoDB"
            .into(),
        "INSERT INTO parent (id, name, price, qty, body) VALUES (1, 'a', 1.5, 2, 'hello world'), \
         (2, 'b', 2.5, 3, 'foo bar')"
            .into(),
        "INSERT INTO child (parent_id, `we``ird col`) VALUES (1, 'x'), (2, 'y')".into(),
        "INSERT INTO orders VALUES (1, 2)".into(),
        "CREATE TABLE geo (id INT AUTO_INCREMENT, g GEOMETRY NOT NULL, k INT, SPATIAL KEY sp_g (g), \
         KEY k_idx (k, id), KEY auto_first (id, k), KEY after_ai (k), PRIMARY KEY (k, id)) ENGINE=InnoDB"
            .into(),
        "CREATE TABLE parted (id INT NOT NULL, d DATE NOT NULL, v INT, PRIMARY KEY (id, d), KEY v_idx (v)) \
         PARTITION BY RANGE (YEAR(d)) (PARTITION p2020 VALUES LESS THAN (2021), \
         PARTITION p2021 VALUES LESS THAN (2022), PARTITION pmax VALUES LESS THAN MAXVALUE)"
            .into(),
        "CREATE TABLE vers (id INT PRIMARY KEY, v INT, KEY vv (v)) WITH SYSTEM VERSIONING".into(),
        "CREATE SEQUENCE seq1 START WITH 100 INCREMENT BY 5 CACHE 10".into(),
        "SELECT NEXTVAL(seq1), NEXTVAL(seq1), NEXTVAL(seq1)".into(),
        "CREATE SEQUENCE seq_cycled START WITH 10 INCREMENT BY 3 MAXVALUE 30 CYCLE CACHE 2".into(),
        "SELECT NEXTVAL(seq_cycled), NEXTVAL(seq_cycled), NEXTVAL(seq_cycled), NEXTVAL(seq_cycled), \
         NEXTVAL(seq_cycled), NEXTVAL(seq_cycled), NEXTVAL(seq_cycled), NEXTVAL(seq_cycled)"
            .into(),
        "CREATE TABLE `lat1 tbl` (id INT PRIMARY KEY, s VARCHAR(10) DEFAULT 'é', KEY s_idx (s)) CHARACTER SET latin1"
            .into(),
        "CREATE TABLE `gbk_表` (id INT PRIMARY KEY, s VARCHAR(10) DEFAULT '中文', `列` INT, KEY `索引` (`列`)) \
         CHARACTER SET gbk"
            .into(),
        "CREATE TABLE `we``ird` (`a b` INT, KEY `k``1` (`a b`))".into(),
        "CREATE TABLE ai_unique (id INT AUTO_INCREMENT, b INT, UNIQUE KEY (id), KEY (b)) AUTO_INCREMENT = 50"
            .into(),
        // Routines (before the views: one view calls a function).
        "CREATE PROCEDURE `proc one`(IN x INT) BEGIN SELECT x + 1, 'ö'; END".into(),
        "CREATE FUNCTION f_add(a INT, b INT) RETURNS INT DETERMINISTIC RETURN a + b".into(),
        // Views depending on views, in reverse alphabetical order.
        "CREATE VIEW v_z AS SELECT id, name FROM parent".into(),
        "CREATE VIEW v_y AS SELECT id FROM v_z".into(),
        "CREATE VIEW v_a AS SELECT id FROM v_y WHERE id > 1".into(),
        "CREATE VIEW `v calls` AS SELECT f_add(id, 1) AS n FROM v_a".into(),
        // Triggers: the second runs first (PRECEDES); one qualified with the database.
        "CREATE TRIGGER trg_b BEFORE INSERT ON parent FOR EACH ROW \
         BEGIN IF NEW.qty IS NULL THEN SET NEW.qty = 0; END IF; END"
            .into(),
        "CREATE TRIGGER trg_a BEFORE INSERT ON parent FOR EACH ROW PRECEDES trg_b SET NEW.qty = NEW.qty".into(),
        format!("CREATE TRIGGER {db}.`trg q` AFTER DELETE ON {db}.parent FOR EACH ROW SET @deleted = OLD.id"),
        // Events: disabled on replicas, and one in another time zone.
        "CREATE EVENT ev_one ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE ON SLAVE \
         DO DELETE FROM child WHERE id < 0"
            .into(),
        "SET time_zone = '+03:00'".into(),
        "CREATE EVENT ev3 ON SCHEDULE EVERY 1 HOUR STARTS '2031-02-03 04:05:06' DO SELECT 1".into(),
        "SET time_zone = SYSTEM".into(),
        // An Oracle-mode package.
        "SET sql_mode = ORACLE".into(),
        "CREATE PACKAGE pkg AS FUNCTION f1 RETURN INT; END".into(),
        "CREATE PACKAGE BODY pkg AS FUNCTION f1 RETURN INT AS BEGIN RETURN 1; END; END".into(),
        "SET sql_mode = DEFAULT".into(),
        // Accounts and roles.
        "CREATE USER 'app'@'%' IDENTIFIED BY 'pw'".into(),
        "CREATE USER 'we`ird'@'10.0.%' IDENTIFIED VIA unix_socket".into(),
        "CREATE ROLE r_read".into(),
        "CREATE ROLE r2".into(),
        "GRANT r2 TO r_read".into(),
        format!("GRANT SELECT ON {db}.* TO r_read"),
        "GRANT r_read TO 'app'@'%'".into(),
        "SET DEFAULT ROLE r_read FOR 'app'@'%'".into(),
        format!("GRANT INSERT (name) ON {db}.parent TO 'app'@'%'"),
        format!("GRANT EXECUTE ON PROCEDURE {db}.`proc one` TO 'app'@'%' WITH GRANT OPTION"),
        "ALTER USER 'app'@'%' WITH MAX_QUERIES_PER_HOUR 10".into(),
        "CREATE USER 'keep'@'localhost' IDENTIFIED BY 'source password'".into(),
    ] {
        exec(conn, sql).await;
    }
    // Objects created by a latin1 client: their literals were latin1 bytes.
    exec(conn, "SET NAMES latin1").await;
    for sql in [
        &b"CREATE PROCEDURE p_lat() SELECT '\xf6' AS x"[..],
        &b"CREATE VIEW v_lat AS SELECT '\xe9' AS e, id FROM parent"[..],
        &b"CREATE TRIGGER trg_lat BEFORE UPDATE ON parent FOR EACH ROW SET NEW.body = CONCAT(NEW.body, '\xf6')"[..],
    ] {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(sql)));
    }
    exec(conn, "SET NAMES utf8mb4").await;
}

/// What the restore orchestrator does, for one database.
async fn restore_database(conn: &mut Conn, db: &DatabaseSchema, target: &str) {
    create_database(conn, db, target).await.unwrap();
    let mut deferred: Vec<(String, SplitCreate)> = Vec::new();
    for t in &db.tables {
        let split = create_table(conn, target, t, true)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        deferred.push((t.name.clone(), split));
    }
    // Rows, as a loader would put them.
    let tdb = quote_ident(target);
    exec(conn, format!("INSERT INTO {tdb}.parent (id, name, price, qty, body) VALUES (1, 'a', 1.5, 2, 'hello world'), (2, 'b', 2.5, 3, 'foo bar')")).await;
    exec(conn, format!("INSERT INTO {tdb}.child (id, parent_id, `we``ird col`) VALUES (1, 1, 'x'), (2, 2, 'y')")).await;
    exec(conn, format!("INSERT INTO {tdb}.orders VALUES (1, 2)")).await;

    let parent = deferred.iter().find(|(n, _)| n == "parent").unwrap();
    assert_eq!(parent.1.deferred_indexes.len(), 3, "{:?}", parent.1);
    let orders = deferred.iter().find(|(n, _)| n == "orders").unwrap();
    assert_eq!(orders.1.foreign_keys.len(), 1, "{:?}", orders.1);
    // Indexes of every table, then foreign keys (orders needs an index of parent).
    for (name, split) in &deferred {
        let indexes = SplitCreate {
            deferred_indexes: split.deferred_indexes.clone(),
            ..Default::default()
        };
        add_deferred(conn, target, name, &indexes)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for (name, split) in &deferred {
        let fks = SplitCreate {
            foreign_keys: split.foreign_keys.clone(),
            ..Default::default()
        };
        add_deferred(conn, target, name, &fks)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for t in db.tables.iter().filter(|t| t.kind == TableKind::Sequence) {
        // Idempotent: create_table already did it.
        restore_sequence_state(conn, target, t).await.unwrap();
    }
    create_routines(conn, target, &db.routines).await.unwrap();
    create_views(conn, target, &db.views).await.unwrap();
    create_triggers(conn, target, &db.triggers).await.unwrap();
    create_events(conn, target, &db.events).await.unwrap();
}

async fn session_state(conn: &mut Conn) -> Vec<Option<String>> {
    conn.query_first::<mysql_async::Row, _>(
        "SELECT @@character_set_client, @@character_set_results, @@collation_connection, @@sql_mode, \
         @@time_zone, CAST(@@foreign_key_checks AS CHAR)",
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap()
    .into_iter()
    .map(|v| match v {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        other => Some(other.as_sql(true)),
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nasty_schema_round_trips() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    create_nasty_schema(&mut conn).await;

    // Dump the way the backup does: inside a consistent snapshot, on a binary connection.
    let mut snap = source.conn().await;
    exec(
        &mut snap,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    )
    .await;
    exec(&mut snap, "START TRANSACTION WITH CONSISTENT SNAPSHOT").await;
    exec(&mut snap, "SET NAMES binary").await;
    exec(&mut snap, "SET time_zone = '+00:00'").await;
    let before = session_state(&mut snap).await;
    let dump = dump_schema(&mut snap, &Filter::default(), true)
        .await
        .unwrap();
    assert_eq!(
        session_state(&mut snap).await,
        before,
        "dump_schema must leave the session as it was"
    );
    exec(&mut snap, "COMMIT").await;

    // Through the manifest's serialization.
    let dump: SchemaDump = serde_json::from_slice(&serde_json::to_vec(&dump).unwrap()).unwrap();
    assert_eq!(dump.databases.len(), 1);
    let db = &dump.databases[0];
    assert_eq!(db.name, SRC);
    let names = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        db.tables
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        [
            "ai_unique",
            "child",
            "gbk_表",
            "geo",
            "lat1 tbl",
            "orders",
            "parent",
            "parted",
            "seq1",
            "seq_cycled",
            "vers",
            "we`ird"
        ]
    );
    assert_eq!(
        db.tables
            .iter()
            .find(|t| t.name == "seq1")
            .unwrap()
            .sequence
            .as_ref()
            .unwrap()
            .next_value,
        "150"
    );
    assert_eq!(
        db.tables.iter().find(|t| t.name == "vers").unwrap().kind,
        TableKind::SystemVersioned
    );
    assert_eq!(
        db.views.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        names(vec!["v calls", "v_a", "v_lat", "v_y", "v_z"])
    );
    assert_eq!(
        db.routines
            .iter()
            .map(|r| format!("{} {}", r.kind, r.name))
            .collect::<Vec<_>>(),
        names(vec![
            "PACKAGE pkg",
            "PACKAGE BODY pkg",
            "FUNCTION f_add",
            "PROCEDURE p_lat",
            "PROCEDURE proc one"
        ])
    );
    assert_eq!(
        db.triggers
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["trg q", "trg_a", "trg_b", "trg_lat"],
        "by table, timing, event, then action order"
    );
    let p_lat = db.routines.iter().find(|r| r.name == "p_lat").unwrap();
    assert!(p_lat.create.contains("'ö'"), "{}", p_lat.create);
    assert_eq!(p_lat.context.character_set_client, "latin1");
    assert_eq!(
        db.events
            .iter()
            .find(|e| e.name == "ev3")
            .unwrap()
            .context
            .time_zone,
        "+03:00"
    );
    let accounts: Vec<String> = dump
        .users
        .iter()
        .map(|u| format!("{}@{}", u.user, u.host))
        .collect();
    for want in ["app@%", "we`ird@10.0.%", "r_read@", "r2@", "root@localhost"] {
        assert!(
            accounts.contains(&want.to_string()),
            "{want} missing from {accounts:?}"
        );
    }
    assert!(
        !accounts
            .iter()
            .any(|a| a.starts_with("mariadb.sys") || a == "PUBLIC@"),
        "{accounts:?}"
    );

    let source_defs = object_definitions(&mut conn, SRC).await.unwrap();
    assert!(source_defs.len() > 25, "{source_defs:?}");

    // Restore twice on another server: under the same name (with the accounts) and renamed.
    let target = TestServer::start();
    let mut tconn = target.conn().await;
    exec(&mut tconn, "SET NAMES utf8mb4").await;
    let renamed = "restored `x` é";
    // A name latin1 cannot spell: the latin1 view is re-created from utf8mb4 (the server would
    // store its database as `?`), so only its recorded client character set differs.
    let unspellable = "restored ✓";
    // The restore's connection is set up for loading rows, not for DDL.
    let mut admin = target.conn().await;
    exec(
        &mut admin,
        "SET NAMES binary, time_zone = '+00:00', SESSION foreign_key_checks = 0, \
         SESSION unique_checks = 0, SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    )
    .await;
    for name in [SRC, renamed, unspellable] {
        let before = session_state(&mut admin).await;
        restore_database(&mut admin, db, name).await;
        assert_eq!(
            session_state(&mut admin).await,
            before,
            "restore must leave the session as it was"
        );
        let restored = object_definitions(&mut tconn, name).await.unwrap();
        assert_eq!(source_defs.len(), restored.len());
        for ((k1, d1), (k2, d2)) in source_defs.iter().zip(&restored) {
            assert_eq!(k1, k2);
            if name == unspellable && k1 == "view.v_lat" {
                assert_eq!(
                    d1.replace(
                        "character_set_client=latin1",
                        "character_set_client=utf8mb4"
                    ),
                    *d2
                );
                continue;
            }
            assert_eq!(d1, d2, "{k1} differs after a restore into {name}");
        }
    }
    assert_eq!(
        one(
            &mut tconn,
            format!("SELECT e FROM {}.v_lat LIMIT 1", quote_ident(unspellable))
        )
        .await
        .as_deref(),
        Some("é")
    );
    // An account that exists on the target keeps its credentials.
    exec(
        &mut tconn,
        "CREATE USER 'keep'@'localhost' IDENTIFIED BY 'target password'",
    )
    .await;
    let keep = "SHOW CREATE USER 'keep'@'localhost'";
    let kept = one(&mut tconn, keep).await;
    let skipped = restore_users(&mut tconn, &dump.users).await.unwrap();
    assert_eq!(one(&mut tconn, keep).await, kept);
    assert_ne!(one(&mut conn, keep).await, kept);
    assert!(skipped.is_empty(), "{skipped:?}");
    // Idempotent.
    restore_users(&mut tconn, &dump.users).await.unwrap();
    for account in ["'app'@'%'", "r_read", "'we`ird'@'10.0.%'"] {
        let sql = format!("SHOW GRANTS FOR {account}");
        let want = conn.query::<String, _>(&sql).await.unwrap();
        assert_eq!(
            tconn.query::<String, _>(&sql).await.unwrap(),
            want,
            "grants of {account}"
        );
    }
    assert_eq!(
        one(&mut conn, "SHOW CREATE USER 'app'@'%'").await,
        one(&mut tconn, "SHOW CREATE USER 'app'@'%'").await
    );

    // The renamed copy behaves like the source.
    let r = quote_ident(renamed);
    let s = quote_ident(SRC);
    exec(&mut tconn, "SET NAMES utf8mb4").await;
    exec(&mut conn, "SET NAMES utf8mb4").await;
    for (sql, want) in [
        (format!("SELECT NEXTVAL({r}.seq1)"), "150"),
        (format!("SELECT NEXTVAL({r}.seq_cycled)"), "7"),
        (format!("SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{renamed}' AND TABLE_NAME = 'ai_unique'"), "50"),
        (format!("SELECT STATUS FROM information_schema.EVENTS WHERE EVENT_SCHEMA = '{renamed}' AND EVENT_NAME = 'ev_one'"), "SLAVESIDE_DISABLED"),
        (format!("SELECT {r}.f_add(2, 3)"), "5"),
        (format!("SELECT GROUP_CONCAT(n ORDER BY n) FROM {r}.`v calls`"), "3"),
        (format!("SELECT e FROM {r}.v_lat LIMIT 1"), "é"),
    ] {
        assert_eq!(one(&mut tconn, &sql).await.as_deref(), Some(want), "{sql}");
    }
    let p_lat = |db: String| format!("CALL {db}.p_lat()");
    assert_eq!(
        one(&mut tconn, p_lat(r.clone())).await.as_deref(),
        Some("ö")
    );
    assert_eq!(one(&mut conn, p_lat(s.clone())).await.as_deref(), Some("ö"));
    // Triggers fire, in the original order (trg_a before trg_b).
    exec(
        &mut tconn,
        format!("INSERT INTO {r}.parent (id, name, price, qty) VALUES (3, 'c', 1, NULL)"),
    )
    .await;
    assert_eq!(
        one(
            &mut tconn,
            format!("SELECT qty FROM {r}.parent WHERE id = 3")
        )
        .await
        .as_deref(),
        Some("0")
    );
    exec(
        &mut tconn,
        format!("UPDATE {r}.parent SET body = 'x' WHERE id = 3"),
    )
    .await;
    assert_eq!(
        one(
            &mut tconn,
            format!("SELECT body FROM {r}.parent WHERE id = 3")
        )
        .await
        .as_deref(),
        Some("xö")
    );
    // Foreign keys and checks are enforced.
    let err = tconn
        .query_drop(format!("INSERT INTO {r}.child (parent_id) VALUES (999)"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("foreign key constraint fails"),
        "{err}"
    );
    let err = tconn
        .query_drop(format!(
            "INSERT INTO {r}.parent (id, name, price) VALUES (9, 'n', -1)"
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CONSTRAINT"), "{err}");
    exec(&mut tconn, format!("DELETE FROM {r}.parent WHERE id = 2")).await;
    assert_eq!(
        one(&mut tconn, format!("SELECT COUNT(*) FROM {r}.child"))
            .await
            .as_deref(),
        Some("1"),
        "ON DELETE CASCADE"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unresolvable_view_is_named() {
    let server = TestServer::start();
    let mut conn = server.conn().await;
    exec(&mut conn, "CREATE DATABASE s").await;
    exec(&mut conn, "CREATE TABLE s.t (id INT)").await;
    exec(&mut conn, "CREATE VIEW s.v2 AS SELECT id FROM s.t").await;
    exec(&mut conn, "CREATE VIEW s.v1 AS SELECT id FROM s.v2").await;
    let dump = dump_schema(&mut conn, &Filter::default(), false)
        .await
        .unwrap();
    let db = &dump.databases[0];
    // Restore the views without their table.
    create_database(&mut conn, db, "d").await.unwrap();
    let err = create_views(&mut conn, "d", &db.views).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("`d`.`v"), "{msg}");
    assert!(msg.contains("1146"), "{msg}");
    // With the table, both views resolve, whatever the order.
    create_table(&mut conn, "d", &db.tables[0], true)
        .await
        .unwrap();
    create_views(&mut conn, "d", &db.views).await.unwrap();
    assert_eq!(
        object_definitions(&mut conn, "s").await.unwrap(),
        object_definitions(&mut conn, "d").await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grants_on_missing_objects_are_skipped() {
    let source = TestServer::start();
    let mut conn = source.conn().await;
    for sql in [
        "CREATE DATABASE s",
        "CREATE TABLE s.t (id INT, name TEXT)",
        "CREATE PROCEDURE s.p() SELECT 1",
        "CREATE USER u IDENTIFIED BY 'pw'",
        "GRANT SELECT ON s.* TO u",
        "GRANT INSERT (name) ON s.t TO u",
        "GRANT EXECUTE ON PROCEDURE s.p TO u",
    ] {
        exec(&mut conn, sql).await;
    }
    let dump = dump_schema(&mut conn, &Filter::default(), true)
        .await
        .unwrap();
    let target = TestServer::start();
    let mut tconn = target.conn().await;
    let skipped = restore_users(&mut tconn, &dump.users).await.unwrap();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].contains("INSERT (`name`) ON `s`.`t`"),
        "{skipped:?}"
    );
    assert!(
        skipped[1].contains("EXECUTE ON PROCEDURE `s`.`p`"),
        "{skipped:?}"
    );
    let grants = tconn.query::<String, _>("SHOW GRANTS FOR u").await.unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g.contains("GRANT SELECT ON `s`.* TO `u`@`%`")),
        "{grants:?}"
    );
}
