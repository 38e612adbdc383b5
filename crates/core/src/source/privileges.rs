//! The privileges each command needs, checked up front so a user learns everything that is
//! missing in one run, with the `GRANT` to fix it (docs/privileges.md has one per role).
//!
//! - [`needed`]: what a [`Role`] needs on a server of a given flavor and version (a pure table).
//! - [`parse_grants`]: what `SHOW GRANTS` says the current account (and its active roles) has.
//! - [`missing`]: needed vs granted, the decision, pure and table-tested.
//! - [`check`] / [`check_wire`]: the above against a live connection; an account that lacks
//!   something is an [`ErrorKind::Auth`] error (exit 11) before any work starts.
//!
//! The check errs on the side of letting the server decide: privileges on objects (SELECT,
//! CREATE, …) count when granted on any database, since the databases a run touches are known
//! only later, and an account that holds roles `SHOW GRANTS` does not expand is not refused.

use std::collections::BTreeSet;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::server::{Flavor, ServerIdentity};
use super::wire::WireConn;
use crate::{Error, ErrorKind, Result};

/// What a command does on a server, for the purpose of privileges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    LogicalBackup,
    PhysicalBackup,
    BinlogStream,
    /// A logical restore into a running server.
    Restore,
}

impl Role {
    pub fn describe(self) -> &'static str {
        match self {
            Role::LogicalBackup => "a logical backup",
            Role::PhysicalBackup => "a physical backup",
            Role::BinlogStream => "binlog archiving",
            Role::Restore => "a restore",
        }
    }
}

/// Details of a run that change what it needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleOptions {
    /// Restore: the load is written to the target's binlog, so `sql_log_bin` is left alone.
    pub keep_binlog: bool,
}

/// Where a privilege must be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// On `*.*`.
    Global,
    /// On `*.*` or on some database or table (object privileges).
    Anywhere,
}

/// One privilege a role needs; any of `alternatives` (or ALL PRIVILEGES) will do too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub privilege: &'static str,
    pub alternatives: &'static [&'static str],
    pub scope: Scope,
    /// What it is for, in a few words.
    pub why: &'static str,
}

const fn need(privilege: &'static str, why: &'static str) -> Need {
    Need {
        privilege,
        alternatives: &[],
        scope: Scope::Anywhere,
        why,
    }
}

const fn global(
    privilege: &'static str,
    alternatives: &'static [&'static str],
    why: &'static str,
) -> Need {
    Need {
        privilege,
        alternatives,
        scope: Scope::Global,
        why,
    }
}

/// The privilege that lets an account read binlog coordinates (`SHOW MASTER STATUS`,
/// `SHOW BINARY LOGS`): MariaDB 10.5 renamed REPLICATION CLIENT to BINLOG MONITOR.
fn binlog_monitor(flavor: Flavor, version: (u32, u32)) -> Need {
    if flavor == Flavor::MariaDb && version >= (10, 5) {
        global(
            "BINLOG MONITOR",
            &["REPLICATION CLIENT", "SUPER"],
            "read the binlog position",
        )
    } else {
        global("REPLICATION CLIENT", &["SUPER"], "read the binlog position")
    }
}

/// What `role` needs on a server of `flavor` at `version` (`major.minor`).
pub fn needed(role: Role, flavor: Flavor, version: (u32, u32), opts: RoleOptions) -> Vec<Need> {
    let mariadb105 = flavor == Flavor::MariaDb && version >= (10, 5);
    match role {
        Role::LogicalBackup => vec![
            need("SELECT", "read the tables"),
            need("SHOW VIEW", "read view definitions"),
            need("TRIGGER", "read trigger definitions"),
            need("EVENT", "read event definitions"),
            global(
                "RELOAD",
                &[],
                "align the snapshot (BACKUP STAGE / FLUSH TABLES WITH READ LOCK)",
            ),
            binlog_monitor(flavor, version),
        ],
        Role::PhysicalBackup => vec![
            global("RELOAD", &[], "take the backup locks"),
            global("PROCESS", &[], "read InnoDB's state"),
            global("LOCK TABLES", &[], "lock non-InnoDB tables"),
            binlog_monitor(flavor, version),
        ],
        Role::BinlogStream => vec![
            global("REPLICATION SLAVE", &[], "receive the binlog as a replica"),
            binlog_monitor(flavor, version),
        ],
        Role::Restore => {
            let mut v = vec![
                need("SELECT", "count and verify rows"),
                need("INSERT", "load rows"),
                need("CREATE", "create databases and tables"),
                need("DROP", "replace databases and remove a failed restore"),
                need("ALTER", "add indexes after the data"),
                need("INDEX", "add indexes after the data"),
                need("CREATE VIEW", "create views"),
                need("CREATE ROUTINE", "create routines"),
                need("ALTER ROUTINE", "create routines"),
                need("TRIGGER", "create triggers"),
                need("EVENT", "create events"),
            ];
            if !opts.keep_binlog {
                v.push(if mariadb105 {
                    global(
                        "BINLOG ADMIN",
                        &["SUPER"],
                        "keep the load out of the target's binlog (or pass --keep-binlog)",
                    )
                } else {
                    global(
                        "SUPER",
                        &["SYSTEM_VARIABLES_ADMIN", "SESSION_VARIABLES_ADMIN"],
                        "keep the load out of the target's binlog (or pass --keep-binlog)",
                    )
                });
            }
            v
        }
    }
}

/// What `SHOW GRANTS` says an account holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    /// Privileges on `*.*`, upper case (`ALL PRIVILEGES` as given).
    pub global: BTreeSet<String>,
    /// Privileges on some database, table or routine.
    pub objects: BTreeSet<String>,
    /// Roles granted to the account (`GRANT r TO u`): their privileges show only when active.
    pub roles: Vec<String>,
}

/// Parses `SHOW GRANTS` output, one statement per line, MariaDB's or MySQL's spelling.
pub fn parse_grants<S: AsRef<str>>(lines: &[S]) -> Granted {
    let mut g = Granted::default();
    for line in lines {
        let line = line.as_ref().trim();
        let Some(rest) = strip_prefix_ci(line, "GRANT ") else {
            continue;
        };
        let Some((privs, object)) = split_on_clause(rest) else {
            // `GRANT role TO user`: no ON clause.
            if let Some(i) = find_ci(rest, " TO ") {
                g.roles.push(rest[..i].trim().to_string());
            }
            continue;
        };
        let object = object.trim_start();
        let is_global = object.starts_with("*.*");
        for p in split_privileges(privs) {
            if p == "PROXY" {
                continue;
            }
            if is_global {
                g.global.insert(p);
            } else {
                g.objects.insert(p);
            }
        }
    }
    g
}

/// The needs `granted` does not satisfy, in the order given.
pub fn missing(needs: &[Need], granted: &Granted) -> Vec<Need> {
    let all_global = granted.global.contains("ALL PRIVILEGES") || granted.global.contains("ALL");
    let all_objects = granted.objects.contains("ALL PRIVILEGES") || granted.objects.contains("ALL");
    needs
        .iter()
        .filter(|n| {
            if all_global {
                return false;
            }
            let names = std::iter::once(n.privilege).chain(n.alternatives.iter().copied());
            let held = |p: &str| {
                granted.global.contains(p)
                    || (n.scope == Scope::Anywhere && (all_objects || granted.objects.contains(p)))
            };
            !names.into_iter().any(held)
        })
        .cloned()
        .collect()
}

/// The error for an account that lacks `missing` for `role`, with the statement to run.
pub fn missing_error(role: Role, account: &str, missing: &[Need]) -> Error {
    let list = missing
        .iter()
        .map(|n| format!("{} (to {})", n.privilege, n.why))
        .collect::<Vec<_>>()
        .join(", ");
    let grant = missing
        .iter()
        .map(|n| n.privilege)
        .collect::<Vec<_>>()
        .join(", ");
    Error::new(
        ErrorKind::Auth,
        format!(
            "{account} lacks privileges {} needs: {list}; nothing was done. As an administrator \
             run: GRANT {grant} ON *.* TO {account}; (see docs/privileges.md)",
            role.describe()
        ),
    )
}

/// Decides from what the server said: `Ok` when nothing is missing (or when the account holds
/// roles whose privileges `SHOW GRANTS` did not list, which the server then judges).
pub fn evaluate(
    role: Role,
    flavor: Flavor,
    version: (u32, u32),
    opts: RoleOptions,
    account: &str,
    grants: &[String],
) -> Result<()> {
    if grants.is_empty() {
        return Ok(());
    }
    let granted = parse_grants(grants);
    let lacking = missing(&needed(role, flavor, version, opts), &granted);
    if lacking.is_empty() {
        return Ok(());
    }
    if !granted.roles.is_empty() {
        tracing::warn!(
            account,
            roles = ?granted.roles,
            missing = ?lacking.iter().map(|n| n.privilege).collect::<Vec<_>>(),
            "the account seems to lack privileges but holds roles; going ahead"
        );
        return Ok(());
    }
    Err(missing_error(role, account, &lacking))
}

/// Checks the account of `conn` for `role`.
pub async fn check(
    conn: &mut Conn,
    identity: &ServerIdentity,
    role: Role,
    opts: RoleOptions,
) -> Result<()> {
    let account: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
    let grants: Vec<String> = conn.query("SHOW GRANTS").await?;
    evaluate(
        role,
        identity.flavor,
        identity.major_minor(),
        opts,
        &quote_account(&account.unwrap_or_default()),
        &grants,
    )
}

/// [`check`] over the raw-protocol connection the binlog stream uses.
pub async fn check_wire(
    conn: &mut WireConn,
    flavor: Flavor,
    version: &str,
    role: Role,
) -> Result<()> {
    let first = |rows: Vec<Vec<Option<String>>>| -> Vec<String> {
        rows.into_iter()
            .filter_map(|r| r.into_iter().next().flatten())
            .collect()
    };
    let account = first(conn.query_text("SELECT CURRENT_USER()").await?);
    let grants = first(conn.query_text("SHOW GRANTS").await?);
    evaluate(
        role,
        flavor,
        version_of(version),
        RoleOptions::default(),
        &quote_account(account.first().map(String::as_str).unwrap_or("")),
        &grants,
    )
}

/// `major.minor` of a version string.
fn version_of(version: &str) -> (u32, u32) {
    let mut it = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty());
    let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (major, minor)
}

/// `user@host` (what `CURRENT_USER()` returns) as `'user'@'host'`.
pub fn quote_account(current_user: &str) -> String {
    let (user, host) = current_user.rsplit_once('@').unwrap_or((current_user, "%"));
    format!(
        "'{}'@'{}'",
        user.replace('\'', "''"),
        host.replace('\'', "''")
    )
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

fn find_ci(s: &str, needle: &str) -> Option<usize> {
    s.to_ascii_uppercase().find(&needle.to_ascii_uppercase())
}

/// Splits `SELECT (a, b), INSERT ON db.* TO …` at the ` ON ` outside parentheses and quotes.
fn split_on_clause(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut depth = 0i32;
    let mut quote: Option<u8> = None;
    for i in 0..bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            b'`' | b'\'' | b'"' => quote = Some(c),
            b'(' => depth += 1,
            b')' => depth -= 1,
            b' ' if depth == 0
                && bytes.len() >= i + 4
                && bytes[i + 1..i + 4].eq_ignore_ascii_case(b"ON ") =>
            {
                return Some((&s[..i], &s[i + 4..]));
            }
            _ => {}
        }
    }
    None
}

/// `SELECT (a, b), INSERT, SHOW VIEW` → `SELECT`, `INSERT`, `SHOW VIEW` (column lists dropped).
fn split_privileges(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
            }
            _ if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| {
            p.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_ascii_uppercase()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: (Flavor, (u32, u32)) = (Flavor::MariaDb, (10, 11));
    const MYSQL: (Flavor, (u32, u32)) = (Flavor::MySql, (5, 7));

    #[test]
    fn parses_show_grants_of_both_flavors() {
        let g = parse_grants(&[
            "GRANT RELOAD, PROCESS, BINLOG MONITOR ON *.* TO `bk`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT SELECT, SHOW VIEW ON `app`.* TO `bk`@`%`",
            "GRANT SELECT (`a`, `b`), UPDATE (`on x`) ON `app`.`t` TO `bk`@`%`",
            "GRANT EXECUTE ON PROCEDURE `app`.`p` TO `bk`@`%`",
            "GRANT `auditor` TO `bk`@`%`",
            "GRANT PROXY ON ''@'%' TO 'root'@'localhost' WITH GRANT OPTION",
        ]);
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(g.global, set(&["RELOAD", "PROCESS", "BINLOG MONITOR"]));
        assert_eq!(
            g.objects,
            set(&["SELECT", "SHOW VIEW", "UPDATE", "EXECUTE"])
        );
        assert_eq!(g.roles, vec!["`auditor`".to_string()]);
        let mysql =
            parse_grants(&["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'r'@'%'"]);
        assert_eq!(
            mysql.global,
            set(&["REPLICATION SLAVE", "REPLICATION CLIENT"])
        );
    }

    fn names(v: &[Need]) -> Vec<&'static str> {
        v.iter().map(|n| n.privilege).collect()
    }

    #[test]
    fn needed_versus_granted() {
        let none: &[&str] = &[];
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            Role,
            (Flavor, (u32, u32)),
            RoleOptions,
            Vec<&str>,
            Vec<&str>,
        )> = vec![
            // root: nothing missing.
            (
                Role::PhysicalBackup,
                MARIADB,
                RoleOptions::default(),
                vec!["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"],
                none.to_vec(),
            ),
            // the case: PROCESS (and more) missing, all listed at once.
            (
                Role::PhysicalBackup,
                MARIADB,
                RoleOptions::default(),
                vec!["GRANT RELOAD ON *.* TO `bk`@`%`"],
                vec!["PROCESS", "LOCK TABLES", "BINLOG MONITOR"],
            ),
            // MySQL's name for reading binlog coordinates; SUPER covers it.
            (
                Role::PhysicalBackup,
                MYSQL,
                RoleOptions::default(),
                vec!["GRANT RELOAD, PROCESS, LOCK TABLES, SUPER ON *.* TO 'bk'@'%'"],
                none.to_vec(),
            ),
            (
                Role::BinlogStream,
                MYSQL,
                RoleOptions::default(),
                vec!["GRANT SELECT ON *.* TO 'peek'@'%'"],
                vec!["REPLICATION SLAVE", "REPLICATION CLIENT"],
            ),
            // the old name still counts on MariaDB 10.5+.
            (
                Role::BinlogStream,
                MARIADB,
                RoleOptions::default(),
                vec!["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `r`@`%`"],
                none.to_vec(),
            ),
            // object privileges count on a database, global ones do not.
            (
                Role::LogicalBackup,
                MARIADB,
                RoleOptions::default(),
                vec![
                    "GRANT USAGE ON *.* TO `bk`@`%`",
                    "GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, RELOAD ON `app`.* TO `bk`@`%`",
                ],
                vec!["RELOAD", "BINLOG MONITOR"],
            ),
            (
                Role::LogicalBackup,
                MARIADB,
                RoleOptions::default(),
                vec!["GRANT ALL PRIVILEGES ON `app`.* TO `bk`@`%`"],
                vec!["RELOAD", "BINLOG MONITOR"],
            ),
            // restore: sql_log_bin needs BINLOG ADMIN unless --keep-binlog.
            (
                Role::Restore,
                MARIADB,
                RoleOptions::default(),
                vec!["GRANT ALL PRIVILEGES ON `app`.* TO `r`@`%`"],
                vec!["BINLOG ADMIN"],
            ),
            (
                Role::Restore,
                MARIADB,
                RoleOptions { keep_binlog: true },
                vec!["GRANT ALL PRIVILEGES ON `app`.* TO `r`@`%`"],
                none.to_vec(),
            ),
            (
                Role::Restore,
                MYSQL,
                RoleOptions::default(),
                vec!["GRANT SELECT, INSERT ON *.* TO 'r'@'%'"],
                vec![
                    "CREATE",
                    "DROP",
                    "ALTER",
                    "INDEX",
                    "CREATE VIEW",
                    "CREATE ROUTINE",
                    "ALTER ROUTINE",
                    "TRIGGER",
                    "EVENT",
                    "SUPER",
                ],
            ),
        ];
        for (role, (flavor, version), opts, grants, want) in cases {
            let got = missing(&needed(role, flavor, version, opts), &parse_grants(&grants));
            assert_eq!(names(&got), want, "{role:?} {flavor:?} {grants:?}");
        }
    }

    #[test]
    fn one_error_lists_everything_with_the_grant_to_run() {
        let lines = vec!["GRANT RELOAD ON *.* TO `bk`@`%`".to_string()];
        let e = evaluate(
            Role::PhysicalBackup,
            Flavor::MariaDb,
            (10, 11),
            RoleOptions::default(),
            &quote_account("bk@%"),
            &lines,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Auth);
        assert!(
            e.message()
                .contains("GRANT PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'bk'@'%';"),
            "{e}"
        );
        // An account with roles SHOW GRANTS does not expand is left to the server.
        let with_role = vec![
            "GRANT USAGE ON *.* TO `bk`@`%`".to_string(),
            "GRANT `backup_role` TO `bk`@`%`".to_string(),
        ];
        assert!(evaluate(
            Role::PhysicalBackup,
            Flavor::MariaDb,
            (10, 11),
            RoleOptions::default(),
            "'bk'@'%'",
            &with_role
        )
        .is_ok());
    }

    #[test]
    fn accounts_are_quoted() {
        assert_eq!(quote_account("bk@%"), "'bk'@'%'");
        assert_eq!(quote_account("o'neil@10.0.0.1"), "'o''neil'@'10.0.0.1'");
        assert_eq!(version_of("10.11.6-MariaDB-log"), (10, 11));
    }
}
