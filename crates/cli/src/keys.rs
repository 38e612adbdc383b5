//! Where the key of an encrypted repository comes from: a passphrase file, an environment
//! variable, an age identity file, or a prompt on the terminal; never argv.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use holdfast::manifest::EncryptionConfig;
use holdfast::repo::keys::{missing_key_hint, KeyCredentials, KeySource};
use holdfast::{Error, ErrorKind};
use rpassword::prompt_password;

/// A [`KeySource`] from command-line flags, the environment and the terminal.
pub struct Keys {
    pub passphrase_file: Option<PathBuf>,
    pub identity_files: Vec<PathBuf>,
    /// The environment variable holding the passphrase (`HOLDFAST_PASSPHRASE`).
    pub env_var: &'static str,
    /// What the key flags of this command start with: `` (`--passphrase-file`), `from-` or
    /// `to-` (`copy`'s `--from-passphrase-file`), for messages.
    pub flag_prefix: &'static str,
}

impl KeySource for Keys {
    fn credentials(
        &self,
        location: &str,
        _: &EncryptionConfig,
    ) -> holdfast::Result<KeyCredentials> {
        let passphrase = match &self.passphrase_file {
            Some(f) => Some(read_passphrase_file(f)?),
            None => std::env::var(self.env_var).ok().filter(|p| !p.is_empty()),
        };
        let passphrase = match passphrase {
            Some(p) => Some(p),
            None if self.identity_files.is_empty() && std::io::stdin().is_terminal() => {
                Some(prompt(&format!("passphrase for {location}: "))?)
            }
            None => None,
        };
        if passphrase.is_none() && self.identity_files.is_empty() {
            return Err(missing_key_hint(location, &self.hint()));
        }
        Ok(KeyCredentials {
            passphrase: passphrase.map(Into::into),
            identity_files: self.identity_files.clone(),
        })
    }

    fn given(&self) -> Option<String> {
        let p = self.flag_prefix;
        if self.passphrase_file.is_some() {
            Some(format!("--{p}passphrase-file"))
        } else if !self.identity_files.is_empty() {
            Some(format!("--{p}identity-file"))
        } else {
            None
        }
    }

    fn hint(&self) -> String {
        let p = self.flag_prefix;
        format!(
            "--{p}passphrase-file FILE (or set {}), or --{p}identity-file FILE for an age recipient slot",
            self.env_var
        )
    }
}

/// The first line of a file, without its line end.
pub fn read_passphrase_file(path: &Path) -> holdfast::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Usage,
            format!("cannot read the passphrase file {}", path.display()),
            e,
        )
    })?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(Error::usage(format!(
            "the passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(line)
}

/// Asks on the terminal without echo.
pub fn prompt(question: &str) -> holdfast::Result<String> {
    let answer = prompt_password(question).map_err(|e| {
        Error::with_source(
            ErrorKind::Usage,
            "cannot read a passphrase from the terminal",
            e,
        )
    })?;
    if answer.is_empty() {
        return Err(Error::usage("the passphrase is empty"));
    }
    Ok(answer)
}

/// A new passphrase: from a file, the environment variable, or typed twice on the terminal.
/// `file_flag` names the option that gives the file, for the message.
pub fn new_passphrase(
    file: Option<&Path>,
    file_flag: &str,
    env_var: &str,
) -> holdfast::Result<String> {
    if let Some(f) = file {
        return read_passphrase_file(f);
    }
    if let Some(p) = std::env::var(env_var).ok().filter(|p| !p.is_empty()) {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("a new passphrase is needed: pass {file_flag} FILE or set {env_var}"),
        ));
    }
    let first = prompt("new passphrase: ")?;
    let again = prompt("new passphrase again: ")?;
    if first != again {
        return Err(Error::usage("the two passphrases differ"));
    }
    Ok(first)
}
