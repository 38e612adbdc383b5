//! Login rate limiting: at most [`Limit::max_failures`] failed logins per user name (default 5)
//! and per source address (default 20: an office behind one NAT is many people) within
//! [`Limit::window_ms`] (15 minutes); beyond, logins under that key are refused (429,
//! `Retry-After`) until enough failures leave the window, even with the right password, so
//! guessing stays slow. Failures are rows in the store, so the limit holds across
//! daemons sharing a PostgreSQL store. A successful login forgets the user's failures (not the
//! address's).

use crate::time::Millis;

/// The limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub max_failures: usize,
    pub window_ms: Millis,
}

impl Default for Limit {
    /// 5 failures per 15 minutes (OWASP's usual example).
    fn default() -> Self {
        Limit {
            max_failures: 5,
            window_ms: 15 * 60 * 1000,
        }
    }
}

impl Limit {
    /// Given the times of a key's failures in the window (oldest first): `None` when a login
    /// may be tried, else how many milliseconds until one may.
    pub fn wait(&self, failures: &[Millis], now: Millis) -> Option<Millis> {
        let recent: Vec<Millis> = failures
            .iter()
            .copied()
            .filter(|&t| t > now - self.window_ms)
            .collect();
        if recent.len() < self.max_failures {
            return None;
        }
        // The attempt is allowed again when all but max_failures - 1 of them have left.
        let freeing = recent[recent.len() - self.max_failures];
        Some((freeing + self.window_ms - now).max(1))
    }
}

/// The limits of a login: per user name and per source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    pub user: Limit,
    pub address: Limit,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            user: Limit::default(),
            address: Limit {
                max_failures: 20,
                ..Limit::default()
            },
        }
    }
}

impl LoginLimits {
    /// Failures older than this are of no use to either limit.
    pub fn window_ms(&self) -> Millis {
        self.user.window_ms.max(self.address.window_ms)
    }
}

/// The keys a login attempt counts under: the user's, then the address's.
pub fn keys(user: &str, addr: &str) -> [String; 2] {
    [format!("user:{user}"), format!("addr:{addr}")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit() {
        let l = Limit {
            max_failures: 3,
            window_ms: 1000,
        };
        let now = 10_000;
        let cases: &[(&[Millis], Option<Millis>)] = &[
            (&[], None),
            (&[9_500, 9_600], None),
            (&[9_500, 9_600, 9_700], Some(500)),
            (&[9_000, 9_500, 9_600, 9_700], Some(500)), // 9_000 already left the window
            (&[9_100, 9_200, 9_600, 9_700], Some(200)),
            (&[8_000, 8_500, 8_999], None),
            (&[9_999, 9_999, 9_999, 9_999], Some(999)),
        ];
        for (failures, want) in cases {
            assert_eq!(l.wait(failures, now), *want, "{failures:?}");
        }
    }
}
