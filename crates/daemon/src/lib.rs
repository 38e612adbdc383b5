//! The holdfast platform: what makes the engine run by itself.
//!
//! - [`config`]: the daemon's TOML (servers, repositories, schedules, notifiers), validated before
//!   it runs, with credentials resolved like the CLI's and never kept in the file in clear.
//! - [`scheduler`]: when schedules fire: croner cron with seconds in chrono-tz zones (DST-safe),
//!   [`scheduler::due`] with one catch-up run after downtime and the misses counted, start windows.
//!   Pure functions, tested with tables.
//! - [`jobs`]: one job model for everything the daemon runs: [`jobs::JobSpec`] (what to run),
//!   [`jobs::Job`] (a stored record), the state machine ([`jobs::state`]), retries with backoff
//!   ([`jobs::retry`]) and the priority queue with aging and concurrency limits ([`jobs::queue`]).
//!   These are pure decisions, tested with tables.
//! - [`store`]: where jobs, their transitions and logs, and schedules' last runs live: SQLite
//!   embedded by default, PostgreSQL for several daemons sharing work (leases claimed with
//!   `FOR UPDATE SKIP LOCKED`).
//! - [`notify`]: alert channels (webhook, Alertmanager, Slack, DingTalk, WeCom, Feishu, e-mail) with
//!   shared retry, rate limiting and de-duplication.
//! - [`api`]: the `/api/v1` HTTP API (one route table, one role check per route via
//!   [`access`], JSON errors, cursors, the OpenAPI document), served from [`fleet`]: each
//!   repository's facts as the daemon's refresh last read them.
//!
//! The repository stays the source of truth for backups, drills and the binlog archive; a lost
//! daemon store loses history, never a backup.

pub mod access;
pub mod alerts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod config;
pub mod console;
pub mod daemon;
pub mod fleet;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod repos;
pub mod runner;
pub mod scheduler;
pub mod store;
pub mod supervisor;
pub mod time;
pub mod tls;
