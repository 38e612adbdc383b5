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
