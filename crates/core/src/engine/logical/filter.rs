//! Which databases and tables a backup or restore covers.
//!
//! Patterns are exact names or globs with `*` and `?`; table patterns are `db.table`. An object is
//! included when it matches an include pattern (or there are none) and no exclude pattern. The
//! server's own schemas are never dumped as data.

/// Schemas that belong to the server, not to the user.
pub const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub include_databases: Vec<String>,
    pub exclude_databases: Vec<String>,
    /// `db.table` patterns.
    pub include_tables: Vec<String>,
    pub exclude_tables: Vec<String>,
}

impl Filter {
    pub fn database(&self, db: &str) -> bool {
        if SYSTEM_DATABASES.iter().any(|s| s.eq_ignore_ascii_case(db)) {
            return false;
        }
        if !self.include_databases.is_empty()
            && !self.include_databases.iter().any(|p| glob_match(p, db))
        {
            return false;
        }
        if self.exclude_databases.iter().any(|p| glob_match(p, db)) {
            return false;
        }
        // A database is in scope if some table pattern could match inside it.
        if !self.include_tables.is_empty()
            && !self
                .include_tables
                .iter()
                .any(|p| split_pattern(p).is_some_and(|(d, _)| glob_match(d, db)))
        {
            return false;
        }
        true
    }

    pub fn table(&self, db: &str, table: &str) -> bool {
        if !self.database(db) {
            return false;
        }
        let matches = |p: &String| {
            split_pattern(p).is_some_and(|(d, t)| glob_match(d, db) && glob_match(t, table))
        };
        if !self.include_tables.is_empty() && !self.include_tables.iter().any(matches) {
            return false;
        }
        !self.exclude_tables.iter().any(matches)
    }

    /// Checks patterns for obvious mistakes (a table pattern without a database part).
    pub fn validate(&self) -> crate::Result<()> {
        for p in self.include_tables.iter().chain(&self.exclude_tables) {
            if split_pattern(p).is_none() {
                return Err(crate::Error::usage(format!(
                    "table pattern `{p}` must be `database.table` (globs allowed: `shop.order_*`)"
                )));
            }
        }
        Ok(())
    }
}

impl Filter {
    /// Whether any filter is set (the backup will be partial).
    pub fn is_set(&self) -> bool {
        *self != Filter::default()
    }

    /// Checks the filters against what the server has, so a typo is an error rather than an
    /// empty backup: every `--databases` pattern must match a database, every `--tables`
    /// pattern a table (or view) of a selected database, and together they must select at
    /// least one database. `databases` and `tables` (`(db, table)`) are the server's, system
    /// schemas included or not (they are never selected).
    pub fn check_matches(
        &self,
        databases: &[String],
        tables: &[(String, String)],
    ) -> crate::Result<()> {
        if !self.is_set() {
            return Ok(());
        }
        let user_dbs: Vec<&str> = databases
            .iter()
            .map(String::as_str)
            .filter(|d| !is_system(d))
            .collect();
        for p in &self.include_databases {
            if !user_dbs.iter().any(|d| glob_match(p, d)) {
                return Err(crate::Error::usage(format!(
                    "--databases `{p}` matches no database on the server, which has: {}; \
                     nothing was backed up",
                    listing(user_dbs.iter().map(|d| d.to_string()))
                )));
            }
        }
        for p in &self.include_tables {
            let Some((pd, pt)) = split_pattern(p) else {
                continue;
            };
            let hit = tables
                .iter()
                .any(|(d, t)| self.database(d) && glob_match(pd, d) && glob_match(pt, t));
            if hit {
                continue;
            }
            let in_db: Vec<String> = tables
                .iter()
                .filter(|(d, _)| !is_system(d) && glob_match(pd, d))
                .map(|(d, t)| format!("{d}.{t}"))
                .collect();
            let has = if in_db.is_empty() {
                format!(
                    "no database matches `{pd}`; the server has: {}",
                    listing(user_dbs.iter().map(|d| d.to_string()))
                )
            } else {
                format!("the server has: {}", listing(in_db.into_iter()))
            };
            return Err(crate::Error::usage(format!(
                "--tables `{p}` matches no table of the databases selected ({has}); nothing \
                 was backed up"
            )));
        }
        if !user_dbs.iter().any(|d| self.database(d)) {
            return Err(crate::Error::usage(format!(
                "the filters select no database (the server has: {}); nothing was backed up",
                listing(user_dbs.iter().map(|d| d.to_string()))
            )));
        }
        Ok(())
    }
}

fn is_system(db: &str) -> bool {
    SYSTEM_DATABASES.iter().any(|s| s.eq_ignore_ascii_case(db))
}

/// Names for an error message: sorted, at most 20, `(none)` when empty.
fn listing(names: impl Iterator<Item = String>) -> String {
    const SHOWN: usize = 20;
    let mut names: Vec<String> = names.collect();
    if names.is_empty() {
        return "(none)".to_string();
    }
    names.sort();
    names.dedup();
    let more = names.len().saturating_sub(SHOWN);
    names.truncate(SHOWN);
    let mut text = names.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

/// Splits `db.table` at the first dot.
fn split_pattern(p: &str) -> Option<(&str, &str)> {
    p.split_once('.')
}

/// Glob match with `*` (any run) and `?` (one character); case-sensitive like table names on Linux.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*", "anything", true),
            ("shop", "shop", true),
            ("shop", "shops", false),
            ("order_*", "order_2024", true),
            ("order_?", "order_1", true),
            ("order_?", "order_12", false),
            ("*_log", "app_log", true),
            ("*_log", "app_logs", false),
            ("a*b*c", "axxbyyc", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn filters_that_match_nothing_are_refused_naming_what_exists() {
        let dbs: Vec<String> = ["app", "shop", "mysql", "sys"].map(String::from).into();
        let tables: Vec<(String, String)> = [
            ("app", "users"),
            ("shop", "orders"),
            ("shop", "items"),
            ("mysql", "user"),
        ]
        .map(|(d, t)| (d.to_string(), t.to_string()))
        .into();
        let f = |db: &[&str], xdb: &[&str], t: &[&str]| Filter {
            include_databases: db.iter().map(|s| s.to_string()).collect(),
            exclude_databases: xdb.iter().map(|s| s.to_string()).collect(),
            include_tables: t.iter().map(|s| s.to_string()).collect(),
            exclude_tables: vec![],
        };
        // (filter, Ok or the words of the error)
        let cases: Vec<(Filter, Option<&[&str]>)> = vec![
            (Filter::default(), None),
            (f(&["app"], &[], &[]), None),
            (f(&["sh*"], &[], &[]), None),
            (f(&[], &[], &["shop.o*"]), None),
            (f(&["app", "shop"], &[], &["shop.items"]), None),
            (
                f(&["nosuchdb"], &[], &[]),
                Some(&[
                    "--databases `nosuchdb`",
                    "app, shop",
                    "nothing was backed up",
                ]),
            ),
            (f(&["app", "typo"], &[], &[]), Some(&["`typo`"])),
            // System schemas are never selected, so naming one matches nothing.
            (f(&["mysql"], &[], &[]), Some(&["`mysql`"])),
            (
                f(&[], &[], &["shop.nosuch*"]),
                Some(&["--tables `shop.nosuch*`", "shop.items, shop.orders"]),
            ),
            (
                f(&[], &[], &["nodb.t"]),
                Some(&["no database matches `nodb`", "app, shop"]),
            ),
            // The table exists, but its database is not selected.
            (
                f(&["app"], &[], &["shop.orders"]),
                Some(&["--tables `shop.orders`"]),
            ),
            (
                f(&[], &["*"], &[]),
                Some(&["select no database", "app, shop"]),
            ),
        ];
        for (filter, want) in cases {
            let got = filter.check_matches(&dbs, &tables);
            match want {
                None => assert!(got.is_ok(), "{filter:?}: {got:?}"),
                Some(words) => {
                    let err = got.unwrap_err();
                    assert_eq!(err.kind(), crate::ErrorKind::Usage, "{filter:?}");
                    for w in words {
                        assert!(
                            err.message().contains(w),
                            "{filter:?}: `{w}` missing: {err}"
                        );
                    }
                }
            }
        }
        let many: Vec<String> = (0..30).map(|i| format!("db{i:02}")).collect();
        let err = f(&["x"], &[], &[]).check_matches(&many, &[]).unwrap_err();
        assert!(err.message().contains("and 10 more"), "{err}");
    }

    #[test]
    fn filters() {
        let f = Filter {
            include_databases: vec!["shop*".into()],
            exclude_tables: vec!["shop.audit_*".into()],
            ..Default::default()
        };
        assert!(f.database("shop"));
        assert!(!f.database("mysql"));
        assert!(!f.database("other"));
        assert!(f.table("shop", "orders"));
        assert!(!f.table("shop", "audit_2024"));
        assert!(f.table("shop_eu", "audit_2024"));

        let only = Filter {
            include_tables: vec!["a.t1".into()],
            ..Default::default()
        };
        assert!(only.database("a"));
        assert!(!only.database("b"));
        assert!(only.table("a", "t1"));
        assert!(!only.table("a", "t2"));
        assert!(Filter {
            include_tables: vec!["nodot".into()],
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
