//! `holdfast init`: create an empty repository, optionally encrypted.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::repo::keys::NewSlot;
use holdfast::repo::Repository;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::keys::new_passphrase;
use crate::output::outln;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Encrypt every file with a new random data key, wrapped by the passphrase
    /// (--passphrase-file, HOLDFAST_PASSPHRASE, or asked on the terminal).
    #[arg(long)]
    encrypt: bool,
    /// Also (or, without a passphrase, only) wrap the data key to this age recipient
    /// (age1...); repeatable. Implies --encrypt.
    #[arg(long, value_name = "AGE_RECIPIENT")]
    recipient: Vec<String>,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let storage = args.repo.storage()?;
    let encrypt = args.encrypt || !args.recipient.is_empty();
    let mut slots = Vec::new();
    if encrypt {
        let passphrase_given = args.repo.key.passphrase_file.is_some()
            || std::env::var("HOLDFAST_PASSPHRASE").is_ok_and(|p| !p.is_empty());
        if passphrase_given || args.recipient.is_empty() {
            let pass = new_passphrase(
                args.repo.key.passphrase_file.as_deref(),
                "--passphrase-file",
                "HOLDFAST_PASSPHRASE",
            )?;
            slots.push(NewSlot::Passphrase(pass.into()));
        }
        for r in &args.recipient {
            slots.push(NewSlot::Recipient(r.clone()));
        }
    }
    let repo = Repository::init_with(storage.clone(), &slots).await?;
    let cfg = repo.config();
    let key_id = cfg.encryption.as_ref().map(|e| e.key_id.clone());
    if global.json {
        print_json(&json!({
            "repository": storage.location(),
            "id": cfg.id,
            "format": cfg.format,
            "encrypted": repo.is_encrypted(),
            "key_id": key_id,
            "key_slots": cfg.encryption.as_ref().map_or(0, |e| e.slots.len()),
        }))?;
    } else {
        outln!(
            "created repository {} (id {}, format {})",
            storage.location(),
            cfg.id,
            cfg.format
        );
        if let Some(id) = key_id {
            outln!(
                "encrypted with data key {id}; keep the passphrase or identity safe: without it \
                 the backups cannot be read (`holdfast key export` saves the data key itself)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
