//! Opening a configured repository inside the daemon (for the metrics derived from it), with its
//! key from the config's passphrase file or environment variable or age identity files; never a
//! prompt.

use std::sync::Arc;

use holdfast::manifest::EncryptionConfig;
use holdfast::repo::keys::{missing_key_hint, KeyCredentials, KeySource};
use holdfast::repo::Repository;
use holdfast::storage::{self, StorageOptions};

use crate::config::RepositoryConfig;

struct ConfigKeys<'a>(&'a RepositoryConfig);

impl KeySource for ConfigKeys<'_> {
    fn credentials(
        &self,
        location: &str,
        _: &EncryptionConfig,
    ) -> holdfast::Result<KeyCredentials> {
        let cfg = self.0;
        let passphrase = match (&cfg.passphrase_file, &cfg.passphrase_env) {
            (Some(file), _) => Some(first_line(file)?),
            (None, Some(var)) => std::env::var(var).ok().filter(|p| !p.is_empty()),
            (None, None) => None,
        };
        if passphrase.is_none() && cfg.identity_file.is_empty() {
            return Err(missing_key_hint(location, &self.hint()));
        }
        Ok(KeyCredentials {
            passphrase: passphrase.map(Into::into),
            identity_files: cfg.identity_file.clone(),
        })
    }

    fn hint(&self) -> String {
        format!(
            "set passphrase_file, passphrase_env or identity_file in the [[repository]] `{}` of the daemon's config",
            self.0.name
        )
    }
}

fn first_line(path: &std::path::Path) -> holdfast::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        holdfast::Error::with_source(
            holdfast::ErrorKind::Usage,
            format!("cannot read the passphrase file {}", path.display()),
            e,
        )
    })?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Opens (and for an encrypted one, unlocks) a configured repository.
pub async fn open(cfg: &RepositoryConfig) -> holdfast::Result<Repository> {
    let storage = storage::open(&cfg.url, &StorageOptions::default())?;
    Repository::open_with(Arc::clone(&storage), &ConfigKeys(cfg)).await
}
