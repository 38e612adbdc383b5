//! API tokens and session ids: random secrets, kept in the store only as their SHA-256.
//!
//! A token reads `hf_<id>_<secret>`: `id` is 12 hex digits (public: listed, audited, revoked by
//! it), `secret` 32 random bytes in unpadded base64url. A session id is 32 random bytes, in the
//! cookie `holdfast_session`. Why SHA-256 here and Argon2id for passwords: a slow hash protects
//! what a human chose, whose entropy is low enough to guess offline; a 256-bit random secret
//! cannot be guessed at any hashing speed, so a fast hash loses nothing, and it lets every API
//! request be checked in microseconds instead of tens of milliseconds of CPU (which would also
//! hand anyone who can reach the port a cheap way to burn the daemon's CPU). A stolen store
//! still yields no usable token or session.
//!
//! Comparisons of hashes and of CSRF tokens are constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of every token (lets secret scanners recognise a leaked one).
pub const TOKEN_PREFIX: &str = "hf_";

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Hex SHA-256 of `secret`.
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time equality of two strings (their lengths may leak, their contents do not).
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A freshly made token: the full text (shown once) and what the store keeps.
pub struct NewToken {
    pub id: String,
    /// `hf_<id>_<secret>`: show once, never store or log.
    pub token: String,
    pub secret_hash: String,
}

pub fn new_token() -> NewToken {
    let id = hex::encode(random(6));
    let secret = URL_SAFE_NO_PAD.encode(random(32));
    NewToken {
        token: format!("{TOKEN_PREFIX}{id}_{secret}"),
        secret_hash: sha256_hex(&secret),
        id,
    }
}

/// Splits `hf_<id>_<secret>` into id and secret; `None` for anything else.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// A fresh session: the id for the cookie, its hash for the store, and its CSRF token.
pub struct NewSession {
    pub id: String,
    pub id_hash: String,
    pub csrf_token: String,
}

pub fn new_session() -> NewSession {
    let id = URL_SAFE_NO_PAD.encode(random(32));
    NewSession {
        id_hash: sha256_hex(&id),
        id,
        csrf_token: URL_SAFE_NO_PAD.encode(random(32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_and_hash_their_secret() {
        let t = new_token();
        let (id, secret) = parse_token(&t.token).expect("parses");
        assert_eq!(id, t.id);
        assert_eq!(sha256_hex(secret), t.secret_hash);
        assert!(!t.token.contains(&t.secret_hash));
        assert_ne!(new_token().token, t.token);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = new_token();
        let cases = [
            "".to_string(),
            "hf_".to_string(),
            t.token.replacen("hf_", "hx_", 1),
            t.token[..t.token.len() - 1].to_string(),
            format!("{}x", t.token),
            format!("hf_{}_{}", "zzzzzzzzzzzz", &t.token[16..]),
            t.token.replace('_', "."),
        ];
        for c in cases {
            assert_eq!(parse_token(&c), None, "{c}");
        }
    }

    #[test]
    fn constant_time_equality() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
