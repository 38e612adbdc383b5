//! One job model for everything the daemon runs. [`model`] holds the types that are stored
//! ([`JobSpec`], [`Job`], [`Transition`]); [`state`], [`retry`] and [`queue`] are the pure
//! decisions about them.

pub mod model;
pub mod queue;
pub mod retry;
pub mod state;

pub use model::{Job, JobId, JobKind, JobSpec, JobState, RestoreParams, Transition, Trigger};
