//! Nonces, in the convention Firebase and Supabase use and this project follows
//! (docs/apple-protocol.md, F7, P4): the client makes a random raw nonce, gives Apple its SHA-256
//! as lowercase hex, and sends the raw value to its backend, which hashes it and compares with the token's
//! `nonce` claim in constant time.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of OS randomness in a generated nonce (256 bits; the floor is 128).
const NONCE_BYTES: usize = 32;

/// The raw nonce: stays with the client until it is sent to its own backend.
///
/// `Debug` is redacted; the value is reachable only through [`RawNonce::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct RawNonce(String);

impl RawNonce {
    /// A fresh nonce of 256 bits from the operating system's random source, URL-safe base64.
    pub fn generate() -> Self {
        let mut bytes = [0u8; NONCE_BYTES];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A raw nonce received from a client.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value to give Apple in the authorization request.
    pub fn hashed(&self) -> HashedNonce {
        HashedNonce(hex::encode(Sha256::digest(self.0.as_bytes())))
    }

    /// The raw value, to send to the backend over TLS. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the `nonce` claim of a token is this nonce's hash, compared in constant time.
    pub fn matches_claim(&self, claim: &str) -> bool {
        self.hashed().0.as_bytes().ct_eq(claim.as_bytes()).into()
    }
}

impl fmt::Debug for RawNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawNonce(<redacted>)")
    }
}

/// Lowercase hex SHA-256 of a raw nonce: what goes to Apple and comes back in the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedNonce(String);

impl HashedNonce {
    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HashedNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_nonces_carry_at_least_128_bits_and_are_url_safe() {
        let n = RawNonce::generate();
        assert!(n.expose().len() * 6 >= 128);
        assert!(
            n.expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(n, RawNonce::generate());
    }

    #[test]
    fn the_hash_is_lowercase_hex_sha256() {
        // sha256("abc"), a published test vector.
        assert_eq!(
            RawNonce::new("abc").hashed().as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn matching_accepts_only_the_lowercase_hex_hash() {
        let n = RawNonce::new("abc");
        assert!(n.matches_claim(n.hashed().as_str()));
        assert!(!n.matches_claim(&n.hashed().as_str().to_uppercase()));
        assert!(
            !n.matches_claim("abc"),
            "the raw nonce itself is not its hash"
        );
        assert!(!n.matches_claim(""));
    }

    #[test]
    fn debug_output_hides_the_raw_value() {
        assert!(!format!("{:?}", RawNonce::new("secret-nonce")).contains("secret-nonce"));
    }
}
