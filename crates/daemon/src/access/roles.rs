//! Who may do what: the one role table of the HTTP API and the console.
//!
//! Every route names the [`Action`] it performs (see `api::routes`); [`permits`] is the only
//! place that decides whether a [`Role`] may perform it. The table is checked on the server for
//! every request, and tested here row by row and in `tests/api_roles.rs` route by route.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's or a token's role.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: users and tokens, repository keys, restores into any registered target.
    Admin,
    /// Runs the fleet: triggers backups, verifies and drills, cancels jobs, pins backups,
    /// restores into registered non-production targets. No user, token or key management.
    Operator,
    /// Reads everything, the audit log included; changes nothing; never sees a credential.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Operator, Role::Auditor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a request does. Reads are split only where a role must not see something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Servers, repositories, backups, the archive and its windows, jobs and their logs, drill
    /// reports, the schedule plan (never a credential or a key: those are not served at all).
    Read,
    /// The audit log.
    ReadAudit,
    /// Start a backup, physical backup, incremental, verify, drill, expire or copy now.
    TriggerJob,
    /// Cancel a queued, retrying or running job.
    CancelJob,
    /// Pin a backup (retention keeps it).
    Pin,
    /// Unpin a backup (retention may then remove it).
    Unpin,
    /// Restore or PITR into a registered target that is not marked production.
    RestoreNonProduction,
    /// Restore or PITR into a registered production target.
    RestoreProduction,
    /// Add, disable users, set passwords, change roles.
    ManageUsers,
    /// Create, list and revoke API tokens.
    ManageTokens,
    /// Repository keys (add, remove, rotate).
    ManageKeys,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Read,
        Action::ReadAudit,
        Action::TriggerJob,
        Action::CancelJob,
        Action::Pin,
        Action::Unpin,
        Action::RestoreNonProduction,
        Action::RestoreProduction,
        Action::ManageUsers,
        Action::ManageTokens,
        Action::ManageKeys,
    ];

    /// Does the action change anything (such requests are audited and need a CSRF token
    /// from a browser session)?
    pub fn mutates(self) -> bool {
        !matches!(self, Action::Read | Action::ReadAudit)
    }
}

/// May `role` perform `action`? The whole policy, in one match.
pub fn permits(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            action,
            Read | TriggerJob | CancelJob | Pin | RestoreNonProduction
        ),
        Role::Auditor => matches!(action, Read | ReadAudit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// The table as a reader checks it: one row per action, one column per role
    /// (admin, operator, auditor).
    const TABLE: &[(Action, [bool; 3])] = &[
        (Read, [true, true, true]),
        (ReadAudit, [true, false, true]),
        (TriggerJob, [true, true, false]),
        (CancelJob, [true, true, false]),
        (Pin, [true, true, false]),
        (Unpin, [true, false, false]),
        (RestoreNonProduction, [true, true, false]),
        (RestoreProduction, [true, false, false]),
        (ManageUsers, [true, false, false]),
        (ManageTokens, [true, false, false]),
        (ManageKeys, [true, false, false]),
    ];

    #[test]
    fn the_role_table() {
        assert_eq!(TABLE.len(), Action::ALL.len(), "every action has a row");
        for (action, allowed) in TABLE {
            for (role, want) in Role::ALL.into_iter().zip(allowed) {
                assert_eq!(permits(role, *action), *want, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn an_auditor_changes_nothing() {
        for a in Action::ALL {
            if a.mutates() {
                assert!(!permits(Role::Auditor, a), "{a:?}");
            }
        }
    }

    #[test]
    fn roles_round_trip_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
