//! Passwords: Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane — the `argon2` crate's
//! defaults), stored as PHC strings so the parameters travel with each hash and can be raised
//! later without invalidating stored ones. Verification compares in constant time (inside
//! `argon2`), and a login for a user that does not exist verifies against a dummy hash, so the
//! time taken does not say whether the name exists.
//!
//! Hashing costs tens of milliseconds of CPU on purpose: callers in async code run it with
//! `tokio::task::spawn_blocking`.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password accepted (NIST SP 800-63B asks for at least 8; a dashboard that can
/// start restores deserves more).
pub const MIN_LENGTH: usize = 12;
/// The longest (Argon2 hashes anything, but a megabyte "password" is a denial of service).
pub const MAX_LENGTH: usize = 1024;

/// Why a password is not accepted (never containing it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password is too short: use at least {MIN_LENGTH} characters")]
    TooShort,
    #[error("the password is too long: use at most {MAX_LENGTH} bytes")]
    TooLong,
    #[error("the password hash cannot be computed: {0}")]
    Hash(String),
}

/// Checks the policy: length only (no composition rules, as NIST advises).
pub fn check_policy(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_LENGTH {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_LENGTH {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The Argon2id PHC string of `password` (after [`check_policy`]), with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_policy(password)?;
    hash_unchecked(password)
}

fn hash_unchecked(password: &str) -> Result<String, PasswordError> {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let salt = SaltString::encode_b64(&bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Does `password` match the PHC string `stored`? A stored value that does not parse never
/// matches.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_LENGTH {
        return false;
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spends the time of a real verification, for a user that does not exist (or is disabled):
/// the answer is always `false`.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let mut random = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        hash_unchecked(&hex::encode(random)).expect("hashing a random string")
    });
    let _ = verify(password, dummy);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_their_parameters() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
        verify_dummy("anything");
    }

    #[test]
    fn the_policy_is_length() {
        assert_eq!(check_policy("short"), Err(PasswordError::TooShort));
        assert_eq!(check_policy("twelve chars"), Ok(()));
        assert_eq!(check_policy(&"x".repeat(2000)), Err(PasswordError::TooLong));
    }
}
