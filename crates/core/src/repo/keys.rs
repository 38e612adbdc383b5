//! Key management of an encrypted repository.
//!
//! - [`DataKey`]: the random key every file is encrypted with. It is an age X25519 identity, so
//!   `age -d -i key.txt FILE` decrypts any file by hand, plus a MAC key derived from it that
//!   authenticates files (see [`crate::storage::encrypted`]).
//! - [`NewSlot`]: a way to wrap the data key: a passphrase (age's scrypt recipient) or an age
//!   X25519 recipient. The wrapped copies ([`KeySlot`]s) live in the clear `holdfast.repo`.
//! - [`KeySource`] / [`KeyCredentials`]: what a caller supplies to unwrap the key. It is asked
//!   only when the repository is encrypted, so a terminal prompt never appears for a plain one.
//!
//! Re-wrapping (adding or removing slots) never touches data: files are encrypted to the data
//! key, never to a passphrase or a user's recipient.

use std::fmt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;

use age::armor::{ArmoredReader, ArmoredWriter, Format};
pub use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::manifest::{EncryptionConfig, KeySlot, KeySlotKind};
use crate::{Error, ErrorKind, Result};

/// The encryption scheme this build writes and reads.
pub const SCHEME: &str = "age-x25519-hmac-v1";

const MAC_KEY_INFO: &[u8] = b"holdfast repository file authentication v1";
const DESCRIPTOR_KEY_INFO: &[u8] = b"holdfast repository descriptor authentication v1";

/// A comment line written into every key slot's plaintext since format 3: a slot that says so
/// only opens a `holdfast.repo` that carries its MAC, so stripping the MAC (rewriting the
/// descriptor as format 2) is detected. Identity parsers skip comment lines, so `age -d` of a
/// slot still yields a usable identity file.
pub const SLOT_MARKER: &str = "# holdfast: holdfast.repo is authenticated (format 3 or later)";

/// scrypt cost of passphrase slots: N = 2^18 (256 MiB, about a second). Fixed rather than
/// tuned to the machine running `init` (age's default), which picked 2^20 (1 GiB, several
/// seconds under load) on a fast idle box: too heavy next to a database server.
const SCRYPT_LOG_N: u8 = 18;
/// The highest scrypt cost a slot may ask for when opening (a damaged or hostile slot cannot
/// make holdfast spend more than 1 GiB and a few seconds).
const SCRYPT_MAX_LOG_N: u8 = 20;

/// The data key of an encrypted repository. Never printed (its `Debug` is redacted).
pub struct DataKey {
    identity: x25519::Identity,
    recipient: x25519::Recipient,
    mac_key: [u8; 32],
    descriptor_key: [u8; 32],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", self.key_id())
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> DataKey {
        DataKey::from_identity(x25519::Identity::generate())
    }

    fn from_identity(identity: x25519::Identity) -> DataKey {
        let recipient = identity.to_public();
        let hk = Hkdf::<Sha256>::new(
            Some(b"holdfast"),
            identity.to_string().expose_secret().as_bytes(),
        );
        let mut mac_key = [0u8; 32];
        hk.expand(MAC_KEY_INFO, &mut mac_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let mut descriptor_key = [0u8; 32];
        hk.expand(DESCRIPTOR_KEY_INFO, &mut descriptor_key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        DataKey {
            identity,
            recipient,
            mac_key,
            descriptor_key,
        }
    }

    /// Parses an age identity file holding the data key (comment lines are ignored).
    pub fn parse(text: &str) -> Result<DataKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| Error::new(ErrorKind::Key, "the key file holds no age identity"))?;
        let identity = x25519::Identity::from_str(line).map_err(|e| {
            Error::new(
                ErrorKind::Key,
                format!("the key is not an age X25519 identity ({e})"),
            )
        })?;
        Ok(DataKey::from_identity(identity))
    }

    /// A non-secret fingerprint: the first 16 hex digits of SHA-256 of the public recipient.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.recipient.to_string().as_bytes());
        hex::encode(&digest[..8])
    }

    pub fn identity(&self) -> &x25519::Identity {
        &self.identity
    }

    pub fn recipient(&self) -> &x25519::Recipient {
        &self.recipient
    }

    /// The key that authenticates files (derived from the identity with HKDF-SHA256).
    pub fn mac_key(&self) -> &[u8; 32] {
        &self.mac_key
    }

    /// The key that authenticates `holdfast.repo` (HKDF-SHA256 of the identity, its own info
    /// string, so it is independent of [`DataKey::mac_key`]).
    pub fn descriptor_key(&self) -> &[u8; 32] {
        &self.descriptor_key
    }

    /// The data key as an age identity file, for `holdfast key export` and `age -d -i`.
    pub fn export(&self, repository_id: &str) -> SecretString {
        SecretString::from(format!(
            "# holdfast data key of repository {repository_id} (key id {})\n\
             # public key: {}\n{}\n",
            self.key_id(),
            self.recipient,
            self.identity.to_string().expose_secret()
        ))
    }

    /// Wraps the data key for a new slot. Passphrase slots cost about a second (scrypt).
    pub fn wrap(&self, slot: &NewSlot) -> Result<KeySlot> {
        let plaintext = SecretString::from(format!(
            "{SLOT_MARKER}\n{}\n",
            self.identity.to_string().expose_secret()
        ));
        let (kind, recipient, encryptor) = match slot {
            NewSlot::Passphrase(pass) => {
                if pass.expose_secret().is_empty() {
                    return Err(Error::usage("the passphrase is empty"));
                }
                let mut r = age::scrypt::Recipient::new(pass.clone());
                r.set_work_factor(SCRYPT_LOG_N);
                let enc = age::Encryptor::with_recipients(std::iter::once(&r as _))
                    .map_err(|e| Error::internal(format!("age encryption setup failed: {e}")))?;
                (KeySlotKind::Passphrase, None, enc)
            }
            NewSlot::Recipient(text) => {
                let r = parse_recipient(text)?;
                let enc = age::Encryptor::with_recipients(std::iter::once(&r as _))
                    .map_err(|e| Error::internal(format!("age encryption setup failed: {e}")))?;
                (KeySlotKind::Recipient, Some(r.to_string()), enc)
            }
        };
        let mut out = Vec::new();
        let io = |e: std::io::Error| Error::internal(format!("wrapping the data key: {e}"));
        let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io)?;
        let mut w = encryptor.wrap_output(armor).map_err(io)?;
        w.write_all(plaintext.expose_secret().as_bytes())
            .map_err(io)?;
        w.finish().and_then(|a| a.finish()).map_err(io)?;
        Ok(KeySlot {
            kind,
            recipient,
            added: OffsetDateTime::now_utc(),
            wrapped: String::from_utf8(out).map_err(|e| Error::internal(e.to_string()))?,
        })
    }

    /// The encryption parameters of a new repository with these slots.
    pub fn config(&self, slots: &[NewSlot]) -> Result<EncryptionConfig> {
        if slots.is_empty() {
            return Err(Error::usage(
                "an encrypted repository needs a passphrase or at least one --recipient",
            ));
        }
        Ok(EncryptionConfig {
            scheme: SCHEME.to_string(),
            key_id: self.key_id(),
            slots: slots.iter().map(|s| self.wrap(s)).collect::<Result<_>>()?,
        })
    }
}

/// Parses an age X25519 recipient (`age1...`).
pub fn parse_recipient(text: &str) -> Result<x25519::Recipient> {
    x25519::Recipient::from_str(text.trim()).map_err(|e| {
        Error::usage(format!(
            "`{}` is not an age X25519 recipient ({e}); recipients look like age1... \
             (`age-keygen -y key.txt` prints yours)",
            text.trim()
        ))
    })
}

/// A way to wrap the data key.
pub enum NewSlot {
    Passphrase(SecretString),
    /// An age X25519 recipient, `age1...`.
    Recipient(String),
}

/// What a caller offers to unwrap the data key.
#[derive(Default)]
pub struct KeyCredentials {
    pub passphrase: Option<SecretString>,
    /// age identity files (as written by `age-keygen`).
    pub identity_files: Vec<PathBuf>,
}

/// Supplies credentials for an encrypted repository; called only when one is opened.
pub trait KeySource: Send + Sync {
    fn credentials(&self, location: &str, encryption: &EncryptionConfig) -> Result<KeyCredentials>;

    /// How a user gives this source a key, for messages: the flags and environment variable
    /// the command really accepts (`copy` has `--from-passphrase-file`, not `--passphrase-file`).
    fn hint(&self) -> String {
        KEY_HINT.to_string()
    }

    /// The option by which the user explicitly gave a key (`--passphrase-file`), if any: a
    /// repository whose `holdfast.repo` says it is unencrypted refuses to open then, since an
    /// encrypted repository relabelled as plain would otherwise receive new backups in the
    /// clear. Keys from the environment do not count (they may be set for other repositories).
    fn given(&self) -> Option<String> {
        None
    }
}

/// The usual ways to give a key, named in messages.
pub const KEY_HINT: &str =
    "--passphrase-file FILE (or set HOLDFAST_PASSPHRASE), or --identity-file FILE for an age recipient slot";

/// For callers that only work with plain repositories: an encrypted one is a [`ErrorKind::Key`]
/// error.
pub struct NoKey;

impl KeySource for NoKey {
    fn credentials(&self, location: &str, _: &EncryptionConfig) -> Result<KeyCredentials> {
        Err(missing_key(location))
    }
}

pub fn missing_key(location: &str) -> Error {
    missing_key_hint(location, KEY_HINT)
}

/// [`missing_key`] naming the ways `hint` gives (see [`KeySource::hint`]).
pub fn missing_key_hint(location: &str, hint: &str) -> Error {
    Error::new(
        ErrorKind::Key,
        format!("{location} is encrypted and no key was given: pass {hint}"),
    )
}

/// A data key unwrapped from a slot, and whether that slot carries [`SLOT_MARKER`].
#[derive(Debug)]
pub struct Unlocked {
    pub key: DataKey,
    pub marked: bool,
}

/// Unwraps the data key with the credentials `source` supplies. Reads nothing but the slots and
/// writes nothing. The caller authenticates the descriptor with the key before using it
/// (`repo::descriptor`).
pub fn unlock(
    location: &str,
    encryption: &EncryptionConfig,
    source: &dyn KeySource,
) -> Result<Unlocked> {
    if encryption.scheme != SCHEME {
        return Err(Error::new(
            ErrorKind::RepoInvalid,
            format!(
                "{location} uses encryption scheme `{}`, which this holdfast ({}) does not know; upgrade holdfast",
                encryption.scheme,
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    let creds = source.credentials(location, encryption)?;
    if creds.passphrase.is_none() && creds.identity_files.is_empty() {
        return Err(missing_key_hint(location, &source.hint()));
    }
    let slots_of = |kind| encryption.slots.iter().filter(move |s| s.kind == kind);
    let mut tried = Vec::new();
    if let Some(pass) = &creds.passphrase {
        let mut identity = age::scrypt::Identity::new(pass.clone());
        identity.set_max_work_factor(SCRYPT_MAX_LOG_N);
        let n = slots_of(KeySlotKind::Passphrase).count();
        for slot in slots_of(KeySlotKind::Passphrase) {
            if let Some(found) = open_slot(slot, &[&identity as &dyn age::Identity])? {
                return checked(location, encryption, found);
            }
        }
        tried.push(if n == 0 {
            "a passphrase, but the repository has no passphrase slot".to_string()
        } else {
            format!("a passphrase that opens none of its {n} passphrase slot(s)")
        });
    }
    if !creds.identity_files.is_empty() {
        let mut identities = Vec::new();
        for f in &creds.identity_files {
            let file =
                age::IdentityFile::from_file(f.to_string_lossy().into_owned()).map_err(|e| {
                    Error::with_source(
                        ErrorKind::Usage,
                        format!("cannot read the identity file {}", f.display()),
                        e,
                    )
                })?;
            identities.extend(file.into_identities().map_err(|e| {
                Error::new(
                    ErrorKind::Usage,
                    format!("identity file {}: {e}", f.display()),
                )
            })?);
        }
        let refs: Vec<&dyn age::Identity> = identities.iter().map(|b| b.as_ref()).collect();
        let n = slots_of(KeySlotKind::Recipient).count();
        for slot in slots_of(KeySlotKind::Recipient) {
            if let Some(found) = open_slot(slot, &refs)? {
                return checked(location, encryption, found);
            }
        }
        tried.push(format!(
            "identities that match none of its {n} recipient slot(s)"
        ));
    }
    Err(Error::new(
        ErrorKind::Key,
        format!(
            "wrong key for {location}: holdfast was given {}; nothing was done. Check {} \
             (`holdfast key list` shows the slots). If the key is right, a key slot in \
             holdfast.repo was altered or damaged: put back a copy of holdfast.repo",
            tried.join(" and "),
            source.hint()
        ),
    ))
}

/// `Ok(None)` when these identities do not open the slot.
fn open_slot(slot: &KeySlot, identities: &[&dyn age::Identity]) -> Result<Option<Unlocked>> {
    let decryptor = match age::Decryptor::new_buffered(ArmoredReader::new(slot.wrapped.as_bytes()))
    {
        Ok(d) => d,
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("holdfast.repo was altered or damaged: a key slot is not an age file ({e}); put back a genuine copy of holdfast.repo"),
            ))
        }
    };
    let mut reader = match decryptor.decrypt(identities.iter().copied()) {
        Ok(r) => r,
        Err(age::DecryptError::ExcessiveWork { required, target }) => {
            return Err(Error::new(
                ErrorKind::Key,
                format!(
                    "the passphrase slot needs scrypt work factor {required}, above the limit of {target} on this machine"
                ),
            ))
        }
        Err(_) => return Ok(None),
    };
    let mut text = String::new();
    if reader.read_to_string(&mut text).is_err() {
        return Err(Error::new(
            ErrorKind::Integrity,
            "holdfast.repo was altered or damaged: a key slot does not decrypt to a key; put back a genuine copy of holdfast.repo",
        ));
    }
    let marked = text.lines().any(|l| l.trim() == SLOT_MARKER);
    Ok(Some(Unlocked {
        key: DataKey::parse(&text)?,
        marked,
    }))
}

fn checked(location: &str, encryption: &EncryptionConfig, found: Unlocked) -> Result<Unlocked> {
    if found.key.key_id() != encryption.key_id {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "{location}/holdfast.repo was altered: a key slot holds key {} but the \
                 repository's key is {}; the key was not used and nothing was read or written. \
                 Put back a genuine copy of holdfast.repo",
                found.key.key_id(),
                encryption.key_id
            ),
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Given(Option<&'static str>, Vec<PathBuf>);
    impl KeySource for Given {
        fn credentials(&self, _: &str, _: &EncryptionConfig) -> Result<KeyCredentials> {
            Ok(KeyCredentials {
                passphrase: self.0.map(SecretString::from),
                identity_files: self.1.clone(),
            })
        }
    }

    #[test]
    fn passphrase_and_recipient_slots_open_the_same_key() {
        let key = DataKey::generate();
        let user = x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let id_file = dir.path().join("id.txt");
        std::fs::write(&id_file, format!("{}\n", user.to_string().expose_secret())).unwrap();
        let cfg = key
            .config(&[
                NewSlot::Passphrase(SecretString::from("correct horse")),
                NewSlot::Recipient(user.to_public().to_string()),
            ])
            .unwrap();
        let by_pass = unlock("r", &cfg, &Given(Some("correct horse"), vec![])).unwrap();
        assert_eq!(by_pass.key.key_id(), key.key_id());
        assert!(by_pass.marked, "new slots carry the marker");
        let by_id = unlock("r", &cfg, &Given(None, vec![id_file])).unwrap();
        assert_eq!(by_id.key.mac_key(), key.mac_key());
        assert!(by_id.marked);

        let wrong = unlock("r", &cfg, &Given(Some("wrong"), vec![])).unwrap_err();
        assert_eq!(wrong.kind(), ErrorKind::Key);
        let none = unlock("r", &cfg, &Given(None, vec![])).unwrap_err();
        assert_eq!(none.kind(), ErrorKind::Key);
        assert_eq!(
            unlock("r", &cfg, &NoKey).unwrap_err().kind(),
            ErrorKind::Key
        );
    }

    #[test]
    fn export_parses_back() {
        let key = DataKey::generate();
        let text = key.export("repo-id");
        let back = DataKey::parse(text.expose_secret()).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        assert!(parse_recipient("age1nope").is_err());
    }
}
