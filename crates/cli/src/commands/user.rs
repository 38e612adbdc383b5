//! `holdfast user add|passwd|disable|enable|list --config FILE`: the daemon's local users (API
//! and console), in its store. Passwords are read from the terminal without echo (twice), or as
//! two lines on stdin when it is not a terminal; never from the command line. Each change is
//! appended to the audit log as done by `cli:$USER` from `local`.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use holdfast::Error;
use holdfast_daemon::auth::manage;
use holdfast_daemon::scheduler::format_utc;
use holdfast_daemon::time::now_millis;
use serde::Serialize;

use crate::args::GlobalArgs;
use crate::output::{outln, print_json_list};
use crate::state;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add a user; the password is read from the terminal (or two lines on stdin).
    Add(AddArgs),
    /// Set a user's password (ends their sessions).
    Passwd(NameArgs),
    /// Disable a user (ends their sessions; their tokens stop working).
    Disable(NameArgs),
    /// Enable a disabled user again.
    Enable(NameArgs),
    /// List the users.
    List(ConfigArg),
}

#[derive(clap::Args)]
pub struct ConfigArg {
    /// The daemon's config file (its `[daemon] state` is the store).
    #[arg(long, env = "HOLDFAST_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(clap::Args)]
pub struct AddArgs {
    /// The user's name: letters, digits, '.', '_', '-', '@' (at most 64).
    pub name: String,
    /// admin, operator or auditor.
    #[arg(long)]
    pub role: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(clap::Args)]
pub struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

/// A new password: typed twice without echo, or two lines on stdin.
fn new_password(name: &str) -> holdfast::Result<String> {
    let (first, again) = if std::io::stdin().is_terminal() {
        let ask = |p: &str| {
            rpassword::prompt_password(p)
                .map_err(|e| Error::usage(format!("cannot read the password: {e}")))
        };
        (
            ask(&format!("password for {name}: "))?,
            ask(&format!("password for {name} again: "))?,
        )
    } else {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = || -> holdfast::Result<String> {
            match lines.next() {
                Some(Ok(l)) => Ok(l.trim_end_matches('\r').to_string()),
                Some(Err(e)) => Err(Error::usage(format!("cannot read stdin: {e}"))),
                None => Err(Error::usage(
                    "stdin is not a terminal: give the password on two lines of stdin",
                )),
            }
        };
        (next()?, next()?)
    };
    if first != again {
        return Err(Error::usage(
            "the two passwords differ; nothing was changed",
        ));
    }
    holdfast_daemon::auth::password::check_policy(&first)
        .map_err(|e| Error::usage(e.to_string()))?;
    Ok(first)
}

#[derive(Serialize)]
struct UserRow {
    name: String,
    role: String,
    disabled: bool,
    created_at: String,
    updated_at: String,
}

pub async fn run(global: &GlobalArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Add(a) => {
            let role = manage::parse_role(&a.role).map_err(state::manage_error)?;
            manage::check_name(&a.name).map_err(state::manage_error)?;
            let store = state::open(&a.config.config).await?;
            if store
                .user(&a.name)
                .await
                .map_err(state::store_error)?
                .is_some()
            {
                return Err(Error::usage(format!(
                    "user {} exists already; change it with `holdfast user passwd` or \
                     `holdfast user disable`",
                    a.name
                ))
                .into());
            }
            let password = new_password(&a.name)?;
            manage::add_user(&store, &a.name, role, password, now_millis())
                .await
                .map_err(state::manage_error)?;
            state::audit(&store, "user.add", &a.name, format!("role {role}")).await?;
            outln!("added user {} ({role})", a.name);
        }
        Command::Passwd(a) => {
            let store = state::open(&a.config.config).await?;
            if store
                .user(&a.name)
                .await
                .map_err(state::store_error)?
                .is_none()
            {
                return Err(Error::new(
                    holdfast::ErrorKind::NotFound,
                    format!(
                        "user {} does not exist; add it with `holdfast user add`",
                        a.name
                    ),
                )
                .into());
            }
            let password = new_password(&a.name)?;
            manage::update_user(&store, &a.name, None, None, Some(password), now_millis())
                .await
                .map_err(state::manage_error)?;
            state::audit(&store, "user.update", &a.name, "password changed".into()).await?;
            outln!("password of {} changed; their sessions ended", a.name);
        }
        Command::Disable(a) => set_disabled(&a, true).await?,
        Command::Enable(a) => set_disabled(&a, false).await?,
        Command::List(a) => {
            let store = state::open(&a.config).await?;
            let users: Vec<UserRow> = store
                .users()
                .await
                .map_err(state::store_error)?
                .into_iter()
                .map(|u| UserRow {
                    name: u.name,
                    role: u.role.to_string(),
                    disabled: u.disabled,
                    created_at: format_utc(u.created_at),
                    updated_at: format_utc(u.updated_at),
                })
                .collect();
            if global.json {
                print_json_list("users", &users)?;
            } else if users.is_empty() {
                outln!("no users; add one with `holdfast user add NAME --role admin`");
            } else {
                outln!("{:<24} {:<9} {:<9} {}", "NAME", "ROLE", "STATE", "CREATED");
                for u in &users {
                    let st = if u.disabled { "disabled" } else { "enabled" };
                    outln!("{:<24} {:<9} {:<9} {}", u.name, u.role, st, u.created_at);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_disabled(a: &NameArgs, disabled: bool) -> Result<()> {
    let store = state::open(&a.config.config).await?;
    manage::update_user(&store, &a.name, None, Some(disabled), None, now_millis())
        .await
        .map_err(state::manage_error)?;
    let what = if disabled { "disabled" } else { "enabled" };
    state::audit(&store, "user.update", &a.name, what.into()).await?;
    if disabled {
        outln!(
            "user {} disabled; their sessions ended and their tokens stop working",
            a.name
        );
    } else {
        outln!("user {} enabled", a.name);
    }
    Ok(())
}
