//! `holdfast key list|add|remove|export`: the key slots of an encrypted repository. Adding or
//! removing a slot re-wraps the data key in `holdfast.repo`; no data file is rewritten.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use holdfast::manifest::{KeySlot, KeySlotKind};
use holdfast::repo::keys::ExposeSecret;
use holdfast::repo::keys::NewSlot;
use holdfast::repo::Repository;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::keys::new_passphrase;
use crate::output::outln;
use crate::output::{print_json, rfc3339};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the key slots.
    List {
        #[command(flatten)]
        repo: RepoArgs,
    },
    /// Wrap the data key with a new passphrase and/or age recipients.
    Add {
        #[command(flatten)]
        repo: RepoArgs,
        /// Add a passphrase slot; its passphrase comes from --new-passphrase-file,
        /// HOLDFAST_NEW_PASSPHRASE, or the terminal. The default without --recipient.
        #[arg(long)]
        passphrase: bool,
        /// A file whose first line is the new passphrase (implies --passphrase).
        #[arg(long)]
        new_passphrase_file: Option<PathBuf>,
        /// Add a slot for this age recipient (age1...); repeatable.
        #[arg(long, value_name = "AGE_RECIPIENT")]
        recipient: Vec<String>,
    },
    /// Remove key slots, by number (from `key list`) or by recipient.
    Remove {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(required = true, value_name = "SLOT")]
        slots: Vec<String>,
    },
    /// Write the unwrapped data key to a new file (mode 0600) as an age identity, so that
    /// `age -d -i FILE` decrypts any file of the repository by hand.
    Export {
        #[command(flatten)]
        repo: RepoArgs,
        /// The file to create; an existing file is never overwritten.
        #[arg(long, short)]
        output: PathBuf,
    },
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    match args.command {
        KeyCommand::List { repo } => {
            let repo = repo.open().await?;
            list(global, &repo)
        }
        KeyCommand::Add {
            repo,
            passphrase,
            new_passphrase_file,
            recipient,
        } => {
            let mut repo = repo.open().await?;
            let mut slots = Vec::new();
            if passphrase || new_passphrase_file.is_some() || recipient.is_empty() {
                let pass = new_passphrase(
                    new_passphrase_file.as_deref(),
                    "--new-passphrase-file",
                    "HOLDFAST_NEW_PASSPHRASE",
                )?;
                slots.push(NewSlot::Passphrase(pass.into()));
            }
            slots.extend(recipient.into_iter().map(NewSlot::Recipient));
            let lock = repo.lock("key add").await?;
            let done = repo.add_key_slots(&lock, &slots).await;
            lock.release().await?;
            done?;
            list(global, &repo)
        }
        KeyCommand::Remove { repo, slots } => {
            let mut repo = repo.open().await?;
            let indexes = resolve_slots(&repo, &slots)?;
            let lock = repo.lock("key remove").await?;
            let done = repo.remove_key_slots(&lock, &indexes).await;
            lock.release().await?;
            done?;
            list(global, &repo)
        }
        KeyCommand::Export { repo, output } => {
            let repo = repo.open().await?;
            let Some(key) = repo.data_key() else {
                bail!(holdfast::Error::usage(format!(
                    "{} is not encrypted; there is no key to export",
                    repo.storage().location()
                )));
            };
            write_private(&output, key.export(&repo.config().id).expose_secret())?;
            if global.json {
                print_json(&json!({ "file": output, "key_id": key.key_id() }))?;
            } else {
                outln!(
                    "wrote data key {} to {} (mode 0600); decrypt any file with \
                     `age -d -i {} FILE`",
                    key.key_id(),
                    output.display(),
                    output.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn slots(repo: &Repository) -> Result<&[KeySlot]> {
    match &repo.config().encryption {
        Some(e) => Ok(&e.slots),
        None => bail!(holdfast::Error::usage(format!(
            "{} is not encrypted; it has no key slots",
            repo.storage().location()
        ))),
    }
}

fn list(global: &GlobalArgs, repo: &Repository) -> Result<ExitCode> {
    let slots = slots(repo)?;
    let key_id = repo.data_key().map(|k| k.key_id()).unwrap_or_default();
    if global.json {
        let rows: Vec<_> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                json!({ "slot": i, "kind": s.kind, "recipient": s.recipient, "added": rfc3339(s.added) })
            })
            .collect();
        print_json(&json!({ "key_id": key_id, "slots": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!("data key {key_id}, {} slot(s):", slots.len());
    for (i, s) in slots.iter().enumerate() {
        let what = match s.kind {
            KeySlotKind::Passphrase => "passphrase".to_string(),
            KeySlotKind::Recipient => {
                format!("recipient {}", s.recipient.as_deref().unwrap_or("?"))
            }
        };
        outln!("  {i}  {what}  (added {})", rfc3339(s.added));
    }
    Ok(ExitCode::SUCCESS)
}

/// Slot numbers from numbers or recipients.
fn resolve_slots(repo: &Repository, given: &[String]) -> Result<Vec<usize>> {
    let slots = slots(repo)?;
    given
        .iter()
        .map(|g| {
            if let Ok(i) = g.parse::<usize>() {
                return Ok(i);
            }
            slots
                .iter()
                .position(|s| s.recipient.as_deref() == Some(g.as_str()))
                .ok_or_else(|| {
                    holdfast::Error::usage(format!(
                        "`{g}` is neither a slot number nor the recipient of a slot (see `holdfast key list`)"
                    ))
                    .into()
                })
        })
        .collect()
}

/// Creates `path` with mode 0600, refusing to overwrite.
fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::AlreadyExists {
                "already exists; choose a new file"
            } else {
                "cannot be created"
            };
            anyhow::Error::new(holdfast::Error::with_source(
                holdfast::ErrorKind::Usage,
                format!("{} {kind}", path.display()),
                e,
            ))
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
