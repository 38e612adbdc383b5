//! `holdfast token create|list|revoke --config FILE`: API tokens in the daemon's store. A new
//! token is printed once, on the last line of the output (`hf_<id>_<secret>`), and never
//! again: the store keeps only the SHA-256 of its secret. Lists show ids, never secrets.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::{Error, ErrorKind};
use holdfast_daemon::auth::manage;
use holdfast_daemon::scheduler::format_utc;
use holdfast_daemon::time::now_millis;
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output::{outln, print_json, print_json_list};
use crate::state;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a token for a user; prints it once, on the last line.
    Create(CreateArgs),
    /// List the tokens (ids, users, roles, expiry, last use; never secrets).
    List(ListArgs),
    /// Revoke a token by its id.
    Revoke(RevokeArgs),
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// The user the token acts for.
    #[arg(long)]
    pub user: String,
    /// The token's role (default: the user's; never more than the user's).
    #[arg(long)]
    pub role: Option<String>,
    /// Lifetime: 30d, 12h, 90m, or `never`.
    #[arg(long, default_value = manage::DEFAULT_TOKEN_LIFETIME)]
    pub expires: String,
    #[command(flatten)]
    pub config: super::user::ConfigArg,
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only this user's tokens.
    #[arg(long)]
    pub user: Option<String>,
    #[command(flatten)]
    pub config: super::user::ConfigArg,
}

#[derive(clap::Args)]
pub struct RevokeArgs {
    /// The token's id (the 12 hex digits after `hf_`).
    pub id: String,
    #[command(flatten)]
    pub config: super::user::ConfigArg,
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    user: String,
    role: String,
    state: &'static str,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Create(a) => {
            let role = a
                .role
                .as_deref()
                .map(manage::parse_role)
                .transpose()
                .map_err(state::manage_error)?;
            let lifetime = manage::parse_lifetime(&a.expires).map_err(state::manage_error)?;
            let store = state::open(&a.config.config).await?;
            let (t, text) = manage::create_token(&store, &a.user, role, lifetime, now_millis())
                .await
                .map_err(state::manage_error)?;
            let expires = t.expires_at.map(format_utc);
            state::audit(
                &store,
                "token.create",
                &t.id,
                format!(
                    "for {} as {}, expires {}",
                    t.user,
                    t.role,
                    expires.as_deref().unwrap_or("never")
                ),
            )
            .await?;
            if global.json {
                print_json(&serde_json::json!({
                    "id": t.id,
                    "user": t.user,
                    "role": t.role,
                    "expires_at": expires,
                    "token": text,
                }))?;
            } else {
                outln!(
                    "token {} for {} ({}), expires {}; shown once, store it now:",
                    t.id,
                    t.user,
                    t.role,
                    expires.as_deref().unwrap_or("never")
                );
                outln!("{text}");
            }
        }
        Command::List(a) => {
            let store = state::open(&a.config.config).await?;
            let now = now_millis();
            let rows: Vec<TokenRow> = store
                .tokens(a.user.as_deref())
                .await
                .map_err(state::store_error)?
                .into_iter()
                .map(|t| TokenRow {
                    state: manage::token_state(&t, now),
                    id: t.id,
                    user: t.user,
                    role: t.role.to_string(),
                    created_at: format_utc(t.created_at),
                    expires_at: t.expires_at.map(format_utc),
                    last_used_at: t.last_used_at.map(format_utc),
                    revoked_at: t.revoked_at.map(format_utc),
                })
                .collect();
            if global.json {
                print_json_list("tokens", &rows)?;
            } else if rows.is_empty() {
                outln!("no tokens");
            } else {
                outln!(
                    "{:<12} {:<20} {:<9} {:<8} {:<24} {}",
                    "ID",
                    "USER",
                    "ROLE",
                    "STATE",
                    "EXPIRES",
                    "LAST USED"
                );
                for r in &rows {
                    outln!(
                        "{:<12} {:<20} {:<9} {:<8} {:<24} {}",
                        r.id,
                        r.user,
                        r.role,
                        r.state,
                        r.expires_at.as_deref().unwrap_or("never"),
                        r.last_used_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        Command::Revoke(a) => {
            let store = state::open(&a.config.config).await?;
            if !store
                .revoke_token(&a.id, now_millis())
                .await
                .map_err(state::store_error)?
            {
                let exists = store.token(&a.id).await.map_err(state::store_error)?;
                if exists.is_none() {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        format!("token {} does not exist (see `holdfast token list`)", a.id),
                    )
                    .into());
                }
                outln!("token {} was revoked already", a.id);
                return Ok(ExitCode::SUCCESS);
            }
            state::audit(&store, "token.revoke", &a.id, String::new()).await?;
            outln!("token {} revoked", a.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}
