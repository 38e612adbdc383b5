//! Authentication of `holdfast.repo` (repository format 3).
//!
//! The descriptor must stay readable before any key is known, so it cannot be encrypted. Since
//! format 3 it carries a [`DescriptorAuth`] over its *canonical* form (the JSON document without
//! `auth`, keys sorted, no whitespace):
//!
//! - `sha256`, checked by [`check`] before any key slot is tried: accidental damage and hand
//!   edits are refused at once, in plain and encrypted repositories alike;
//! - `hmac` (encrypted repositories), HMAC-SHA256 under a key derived from the data key,
//!   checked by [`authenticate`] right after a slot is unwrapped and before the key is used:
//!   any change to the encryption parameters (scheme, key id, slots, their KDF parameters and
//!   recipients) or to the format, id and dates by someone without the data key is refused.
//!
//! A slot written since format 3 says so in its plaintext ([`keys::SLOT_MARKER`]); a descriptor
//! opened through such a slot must carry a valid MAC, so rewriting it as format 2 without one
//! (a downgrade) is refused too. Descriptors of formats 1 and 2 (no `auth`) still open.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::keys::DataKey;
pub use crate::manifest::canonical_json as canonical;
use crate::manifest::{
    decode_versioned, DescriptorAuth, RepoConfig, REPO_FORMAT, REPO_FORMAT_AUTHENTICATED,
};
use crate::{Error, ErrorKind, Result};

/// The [`DescriptorAuth::scheme`] this build writes and reads.
pub const SCHEME: &str = "holdfast-repo-v1";
const MAC_DOMAIN: &[u8] = b"holdfast-repo-v1\0";

/// A decoded `holdfast.repo` whose checksum (when it has one) was verified.
#[derive(Debug, Clone)]
pub struct Checked {
    pub config: RepoConfig,
    canonical: Vec<u8>,
}

/// Serializes `config` as the newest format with fresh authentication: the checksum always,
/// the MAC when `key` is given (an encrypted repository must pass its key).
pub fn seal(config: &RepoConfig, key: Option<&DataKey>) -> Result<(RepoConfig, Bytes)> {
    if config.encryption.is_some() != key.is_some() {
        return Err(Error::internal(
            "holdfast.repo is sealed with the data key exactly when it is encrypted",
        ));
    }
    let mut sealed = config.clone();
    sealed.format = REPO_FORMAT;
    sealed.auth = None;
    let doc = serde_json::to_value(&sealed).map_err(|e| Error::internal(e.to_string()))?;
    let canonical = canonical(&doc);
    sealed.auth = Some(DescriptorAuth {
        scheme: SCHEME.to_string(),
        sha256: hex::encode(Sha256::digest(&canonical)),
        hmac: key.map(|k| hex::encode(mac(k, &canonical).finalize().into_bytes())),
    });
    let body = serde_json::to_vec_pretty(&sealed).map_err(|e| Error::internal(e.to_string()))?;
    Ok((sealed, Bytes::from(body)))
}

/// Decodes `holdfast.repo` and verifies its checksum; needs no key. `what` names the file in
/// messages. A newer format than this build reads is refused first (its authentication may
/// differ), then damage.
pub fn check(bytes: &[u8], what: &str) -> Result<Checked> {
    let config: RepoConfig = decode_versioned(bytes, what, REPO_FORMAT).map_err(|e| {
        if e.kind() == ErrorKind::Integrity {
            Error::new(ErrorKind::RepoInvalid, e.to_string())
        } else {
            e
        }
    })?;
    let mut doc: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::new(ErrorKind::RepoInvalid, format!("{what} is malformed: {e}")))?;
    if let Some(map) = doc.as_object_mut() {
        map.remove("auth");
    }
    let canonical = canonical(&doc);
    let altered = |why: &str| {
        Error::new(
            ErrorKind::Integrity,
            format!(
                "{what} was altered or damaged: {why}; no key was used and nothing was read or \
                 written. Put back a genuine copy of holdfast.repo (from a copy of the storage, or \
                 holdfast.repo.previous if a key change was interrupted)"
            ),
        )
    };
    if config.format < REPO_FORMAT_AUTHENTICATED {
        if config.auth.is_some() {
            return Err(altered(&format!(
                "it says format {} but carries the authentication of format {REPO_FORMAT_AUTHENTICATED}",
                config.format
            )));
        }
        return Ok(Checked { config, canonical });
    }
    let Some(auth) = &config.auth else {
        return Err(altered(&format!(
            "format {} must carry `auth`, and it has none",
            config.format
        )));
    };
    if auth.scheme != SCHEME {
        return Err(altered(&format!(
            "its authentication scheme is `{}`, not `{SCHEME}`",
            auth.scheme
        )));
    }
    let sum = hex::encode(Sha256::digest(&canonical));
    if !eq_hex(&sum, &auth.sha256) {
        return Err(altered("its content does not match its SHA-256 checksum"));
    }
    match (&config.encryption, &auth.hmac) {
        (Some(_), None) => {
            return Err(altered("it is encrypted but carries no MAC"));
        }
        (None, Some(_)) => {
            return Err(altered(
                "it carries a MAC but no encryption parameters (they were removed)",
            ));
        }
        _ => {}
    }
    Ok(Checked { config, canonical })
}

/// Verifies the MAC of an encrypted descriptor with the key just unwrapped from one of its
/// slots (`marked`: that slot carries [`keys::SLOT_MARKER`]). Call before the key is used.
pub fn authenticate(checked: &Checked, key: &DataKey, marked: bool, what: &str) -> Result<()> {
    let altered = |why: &str| {
        Error::new(
            ErrorKind::Integrity,
            format!(
                "{what} was altered: {why}; the key was not used and nothing was read or \
                 written. Put back a genuine copy of holdfast.repo"
            ),
        )
    };
    match checked.config.auth.as_ref().and_then(|a| a.hmac.as_ref()) {
        Some(tag) => {
            let tag = hex::decode(tag).map_err(|_| altered("its MAC is not hex"))?;
            mac(key, &checked.canonical)
                .verify_slice(&tag)
                .map_err(|_| {
                    altered(
                        "its encryption parameters or other fields fail authentication with the \
                     repository's data key",
                    )
                })
        }
        None if marked => Err(altered(&format!(
            "its key slot was written by a holdfast that authenticates holdfast.repo, but the \
             file says format {} and carries no MAC (rewritten without its authentication)",
            checked.config.format
        ))),
        None => Ok(()),
    }
}

fn mac(key: &DataKey, canonical: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.descriptor_key())
        .expect("HMAC takes keys of any length");
    mac.update(MAC_DOMAIN);
    mac.update(canonical);
    mac
}

fn eq_hex(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::EncryptionConfig;
    use crate::repo::keys::{KeyCredentials, KeySource, NewSlot};
    use age::secrecy::ExposeSecret;
    use serde_json::{json, Value};
    use time::OffsetDateTime;

    /// The user's age identity, given as an identity file (recipient slots unwrap in
    /// microseconds; passphrase slots take scrypt's second).
    struct User {
        _dir: tempfile::TempDir,
        file: std::path::PathBuf,
        recipient: String,
    }

    impl User {
        fn new() -> User {
            let identity = age::x25519::Identity::generate();
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("id.txt");
            std::fs::write(&file, identity.to_string().expose_secret()).unwrap();
            User {
                _dir: dir,
                file,
                recipient: identity.to_public().to_string(),
            }
        }

        fn slot(&self) -> NewSlot {
            NewSlot::Recipient(self.recipient.clone())
        }
    }

    impl KeySource for User {
        fn credentials(&self, _: &str, _: &EncryptionConfig) -> Result<KeyCredentials> {
            Ok(KeyCredentials {
                passphrase: None,
                identity_files: vec![self.file.clone()],
            })
        }
    }

    fn config(encryption: Option<EncryptionConfig>) -> RepoConfig {
        RepoConfig {
            format: 1,
            id: "0b5c7a36-6b55-4a1e-9d5e-2f0c8e2f5a11".into(),
            created: OffsetDateTime::UNIX_EPOCH,
            created_by: "holdfast test".into(),
            encryption,
            auth: None,
        }
    }

    /// Opens like the repository does: checksum, unwrap, MAC.
    fn open(bytes: &[u8], user: &User) -> Result<RepoConfig> {
        let checked = check(bytes, "r/holdfast.repo")?;
        if let Some(enc) = &checked.config.encryption {
            let found = crate::repo::keys::unlock("r", enc, user)?;
            authenticate(&checked, &found.key, found.marked, "r/holdfast.repo")?;
        }
        Ok(checked.config)
    }

    fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut doc: Value = serde_json::from_slice(bytes).unwrap();
        f(&mut doc);
        serde_json::to_vec_pretty(&doc).unwrap()
    }

    /// Recomputes the checksum after an edit, as a deliberate attacker would.
    fn resum(bytes: &[u8]) -> Vec<u8> {
        let mut doc: Value = serde_json::from_slice(bytes).unwrap();
        let mut bare = doc.clone();
        bare.as_object_mut().unwrap().remove("auth");
        let sum = hex::encode(Sha256::digest(canonical(&bare)));
        doc["auth"]["sha256"] = Value::String(sum);
        serde_json::to_vec_pretty(&doc).unwrap()
    }

    type Edit = Box<dyn Fn(&mut Value)>;

    /// Decodes an armored age file, edits its text header, and armors it again.
    fn rearmor(armored: &str, f: impl FnOnce(&mut String)) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let body: String = armored
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let bin = b64.decode(body).unwrap();
        let end = bin.windows(4).position(|w| w == b"\n---").unwrap();
        let mut header = String::from_utf8(bin[..end].to_vec()).unwrap();
        f(&mut header);
        let mut out = header.into_bytes();
        out.extend_from_slice(&bin[end..]);
        let text = b64.encode(out);
        let mut armored = String::from("-----BEGIN AGE ENCRYPTED FILE-----\n");
        for line in text.as_bytes().chunks(64) {
            armored.push_str(std::str::from_utf8(line).unwrap());
            armored.push('\n');
        }
        armored.push_str("-----END AGE ENCRYPTED FILE-----\n");
        armored
    }

    #[test]
    fn canonical_form_sorts_keys_and_drops_whitespace() {
        let v = json!({"b": [1, {"d": "x\n", "c": null}], "a": true});
        assert_eq!(
            canonical(&v),
            br#"{"a":true,"b":[1,{"c":null,"d":"x\n"}]}"#.to_vec()
        );
    }

    #[test]
    fn sealed_plain_descriptor_round_trips_and_refuses_edits() {
        let user = User::new();
        let (sealed, bytes) = seal(&config(None), None).unwrap();
        assert_eq!(sealed.format, REPO_FORMAT);
        assert_eq!(open(&bytes, &user).unwrap(), sealed);
        // Reformatting (whitespace, key order) is not damage.
        let compact = serde_json::to_vec(&serde_json::from_slice::<Value>(&bytes).unwrap());
        assert_eq!(open(&compact.unwrap(), &user).unwrap(), sealed);

        let cases: Vec<(&str, Edit)> = vec![
            ("id", Box::new(|d| d["id"] = json!("other"))),
            (
                "created",
                Box::new(|d| d["created"] = json!("2001-01-01T00:00:00Z")),
            ),
            ("created_by", Box::new(|d| d["created_by"] = json!("x"))),
            ("format lowered", Box::new(|d| d["format"] = json!(1))),
            (
                "auth removed",
                Box::new(|d| {
                    d.as_object_mut().unwrap().remove("auth");
                }),
            ),
            ("unknown field added", Box::new(|d| d["extra"] = json!(1))),
            (
                "checksum changed",
                Box::new(|d| {
                    let s = d["auth"]["sha256"]
                        .as_str()
                        .unwrap()
                        .replace(['0', '1'], "f");
                    d["auth"]["sha256"] = json!(s);
                }),
            ),
            (
                "scheme",
                Box::new(|d| d["auth"]["scheme"] = json!("holdfast-repo-v0")),
            ),
        ];
        for (what, f) in cases {
            let err = open(&edit(&bytes, f), &user).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Integrity, "{what}: {err}");
            assert!(err.to_string().contains("altered"), "{what}: {err}");
        }
    }

    #[test]
    fn encrypted_descriptor_refuses_every_field_changed_even_with_a_new_checksum() {
        let user = User::new();
        let key = DataKey::generate();
        let enc = key.config(&[user.slot()]).unwrap();
        let (sealed, bytes) = seal(&config(Some(enc)), Some(&key)).unwrap();
        assert_eq!(open(&bytes, &user).unwrap(), sealed);

        // A slot of another key that opens with the same identity.
        let other = DataKey::generate();
        let other_slot =
            serde_json::to_value(&other.config(&[user.slot()]).unwrap().slots[0]).unwrap();
        let other_id = other.key_id();
        let stranger = DataKey::generate().recipient().to_string();

        // (field changed, what opening says once the checksum is recomputed: Integrity when a
        // slot still unwraps (the MAC or the key id refuses it), Key when none does any more,
        // RepoInvalid for a scheme this build does not know)
        let cases: Vec<(&str, Edit, ErrorKind)> = vec![
            (
                "id",
                Box::new(|d| d["id"] = json!("other")),
                ErrorKind::Integrity,
            ),
            (
                "format lowered",
                Box::new(|d| d["format"] = json!(2)),
                ErrorKind::Integrity,
            ),
            (
                "created",
                Box::new(|d| d["created"] = json!("2001-01-01T00:00:00Z")),
                ErrorKind::Integrity,
            ),
            (
                "scheme",
                Box::new(|d| d["encryption"]["scheme"] = json!("age-x25519-hmac-v0")),
                ErrorKind::RepoInvalid,
            ),
            (
                "key_id",
                Box::new(|d| d["encryption"]["key_id"] = json!("0000000000000000")),
                ErrorKind::Integrity,
            ),
            (
                "slot added time",
                Box::new(|d| d["encryption"]["slots"][0]["added"] = json!("2001-01-01T00:00:00Z")),
                ErrorKind::Integrity,
            ),
            (
                "slot recipient",
                Box::new(move |d| {
                    d["encryption"]["slots"][0]["recipient"] = json!(stranger.clone())
                }),
                ErrorKind::Integrity,
            ),
            (
                "slot kind",
                Box::new(|d| d["encryption"]["slots"][0]["kind"] = json!("passphrase")),
                ErrorKind::Key,
            ),
            (
                "slot's stanza (the recipient's share)",
                Box::new(|d| {
                    let w = d["encryption"]["slots"][0]["wrapped"].as_str().unwrap();
                    let w = rearmor(w, |header| {
                        let at = header.find("-> X25519 ").unwrap() + 10;
                        let c = if &header[at..at + 1] == "A" { "B" } else { "A" };
                        header.replace_range(at..at + 1, c);
                    });
                    d["encryption"]["slots"][0]["wrapped"] = json!(w);
                }),
                ErrorKind::Key,
            ),
            (
                "slot's armor",
                Box::new(|d| {
                    let w = d["encryption"]["slots"][0]["wrapped"].as_str().unwrap();
                    d["encryption"]["slots"][0]["wrapped"] = json!(w.replacen("YWdl", "YWdm", 1));
                }),
                ErrorKind::Integrity,
            ),
            (
                "slot of another key",
                {
                    let s = other_slot.clone();
                    Box::new(move |d| d["encryption"]["slots"][0] = s.clone())
                },
                ErrorKind::Integrity,
            ),
            (
                "slot and key id of another key",
                {
                    let s = other_slot.clone();
                    let id = other_id.clone();
                    Box::new(move |d| {
                        d["encryption"]["slots"][0] = s.clone();
                        d["encryption"]["key_id"] = json!(id.clone());
                    })
                },
                ErrorKind::Integrity,
            ),
            (
                "slot of another key put first",
                {
                    let s = other_slot.clone();
                    Box::new(move |d| {
                        d["encryption"]["slots"]
                            .as_array_mut()
                            .unwrap()
                            .insert(0, s.clone())
                    })
                },
                ErrorKind::Integrity,
            ),
            (
                "slot duplicated",
                Box::new(|d| {
                    let own = d["encryption"]["slots"][0].clone();
                    d["encryption"]["slots"] = json!([own.clone(), own]);
                }),
                ErrorKind::Integrity,
            ),
            (
                "mac changed",
                Box::new(|d| {
                    let s = d["auth"]["hmac"].as_str().unwrap().replace(['0', '1'], "f");
                    d["auth"]["hmac"] = json!(s);
                }),
                ErrorKind::Integrity,
            ),
        ];
        for (what, f, kind) in &cases {
            // Without a new checksum: refused before any slot is tried.
            let err = open(&edit(&bytes, f), &user).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Integrity, "{what}: {err}");
            assert!(
                err.to_string().contains("nothing was read or written"),
                "{what}: {err}"
            );
            // With one (a deliberate edit): refused after unwrapping and before the key is
            // used, or no slot opens any more.
            let err = open(&resum(&edit(&bytes, f)), &user).unwrap_err();
            assert_eq!(err.kind(), *kind, "{what} (new checksum): {err}");
        }

        // The MAC removed and the document relabelled format 2 (a downgrade): the slot says
        // its descriptor is authenticated.
        let downgraded = edit(&bytes, |d| {
            d["format"] = json!(2);
            d.as_object_mut().unwrap().remove("auth");
        });
        let err = open(&downgraded, &user).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
        assert!(
            err.to_string().contains("without its authentication"),
            "{err}"
        );
        // Encryption removed (so new backups would be written in the clear) but the MAC kept.
        let mut plain: Value =
            serde_json::from_slice(&seal(&config(None), None).unwrap().1).unwrap();
        plain["auth"]["hmac"] = json!("00");
        let err = open(&resum(&serde_json::to_vec(&plain).unwrap()), &user).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity, "{err}");
    }

    #[test]
    fn older_formats_still_open() {
        let user = User::new();
        let plain = serde_json::to_vec(&config(None)).unwrap();
        assert_eq!(open(&plain, &user).unwrap().format, 1);
        let newer = edit(&plain, |d| d["format"] = json!(99));
        assert_eq!(
            open(&newer, &user).unwrap_err().kind(),
            ErrorKind::RepoInvalid
        );
        let broken = b"{\"format\": 3, ".to_vec();
        assert_eq!(
            open(&broken, &user).unwrap_err().kind(),
            ErrorKind::RepoInvalid
        );
    }
}
