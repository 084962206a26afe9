//! Opaque identifiers and tokens, drawn at random, and the hash under which tokens are stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A 128-bit identifier (users, sessions, queue entries).
pub fn new_id() -> String {
    URL_SAFE_NO_PAD.encode(random::<16>())
}

/// A 256-bit opaque token (refresh tokens).
pub fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random::<32>())
}

/// 256 random bits in standard base64: a key such as a webhook secret's (`whsec_` + this).
pub fn new_token_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(random::<32>())
}

/// How tokens are stored: a database leak does not leak usable tokens.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
