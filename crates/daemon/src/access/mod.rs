//! Access to the daemon's HTTP API and console: who is calling ([`Caller`]) and what their role
//! allows ([`roles`]).
//!
//! The seam: an authentication layer (sessions, tokens; later OIDC) turns a request into a
//! [`Caller`] and puts it into the request's extensions; every route then names its
//! [`Action`](roles::Action) and one check, [`roles::permits`], decides. Routes never look at
//! how the caller authenticated.

pub mod roles;

pub use roles::{permits, Action, Role};

use serde::{Deserialize, Serialize};

/// How a caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Via {
    /// A browser session (cookie) of a local user.
    Session { user: String },
    /// An API token (its id, never its secret).
    Token { id: String, user: String },
}

/// An authenticated caller of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub role: Role,
    pub via: Via,
}

impl Caller {
    /// The name the audit log records: `alice`, or `token:ID (alice)`.
    pub fn principal(&self) -> String {
        match &self.via {
            Via::Session { user } => user.clone(),
            Via::Token { id, user } => format!("token:{id} ({user})"),
        }
    }

    pub fn may(&self, action: Action) -> bool {
        permits(self.role, action)
    }
}
