//! The JSON Web Key Set format Apple publishes at `/auth/keys`, and which of its keys we trust.
//!
//! The same types serve the key set's parser here and `mock-apple`'s publisher, so the two can
//! never disagree about the format.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

/// RSA keys shorter than this are ignored: anything below 2048 bits is breakable.
pub const MIN_RSA_BITS: usize = 2048;
/// The longest RSA key the crypto backend verifies with.
pub const MAX_RSA_BITS: usize = 8192;

/// A JWKS document: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, in the order the endpoint lists them.
    pub keys: Vec<Jwk>,
}

/// One key of a JWKS. Every field is optional when parsing, so that a key of a kind we do not
/// use (an EC key, say) is skipped instead of failing the whole set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Key type: `RSA` for Apple.
    pub kty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The key id tokens name in their header.
    pub kid: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    /// `sig` for Apple.
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `RS256` for Apple.
    pub alg: Option<String>,
    /// RSA modulus, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url without padding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

impl Jwk {
    /// An RS256 signing key exactly as Apple publishes one.
    pub fn rs256(kid: impl Into<String>, n: impl Into<String>, e: impl Into<String>) -> Self {
        Self {
            kty: Some("RSA".into()),
            kid: Some(kid.into()),
            key_use: Some("sig".into()),
            alg: Some("RS256".into()),
            n: Some(n.into()),
            e: Some(e.into()),
        }
    }

    /// The public half of an RSA private key, published as an RS256 signing key. For the
    /// publishers of a key set: `mock-apple` and tests.
    pub fn rs256_from_private_key(
        kid: impl Into<String>,
        key: &jsonwebtoken::EncodingKey,
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        let public =
            jsonwebtoken::jwk::Jwk::from_encoding_key(key, jsonwebtoken::Algorithm::RS256)?;
        match public.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => Ok(Self::rs256(kid, rsa.n, rsa.e)),
            _ => Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into()),
        }
    }

    /// The RSA modulus's length in bits, when the key has a readable one.
    pub fn rsa_bits(&self) -> Option<usize> {
        Some(modulus_bits(
            &URL_SAFE_NO_PAD.decode(self.n.as_deref()?).ok()?,
        ))
    }

    /// Whether identity tokens are verified with this key (see `usable_rs256_key`).
    pub fn is_usable(&self) -> bool {
        self.usable_rs256_key().is_some()
    }

    /// The key, when it is one we verify identity tokens with: an RSA key for signatures with
    /// RS256 (or no `alg`/`use` stated), a `kid`, and a modulus of 2048 to 8192 bits.
    fn usable_rs256_key(&self) -> Option<(String, DecodingKey)> {
        if self.kty.as_deref() != Some("RSA")
            || !matches!(self.alg.as_deref(), None | Some("RS256"))
            || !matches!(self.key_use.as_deref(), None | Some("sig"))
        {
            return None;
        }
        let kid = self.kid.as_ref().filter(|k| !k.is_empty())?;
        let (n, e) = (self.n.as_deref()?, self.e.as_deref()?);
        let bits = modulus_bits(&URL_SAFE_NO_PAD.decode(n).ok()?);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return None;
        }
        let key = DecodingKey::from_rsa_components(n, e).ok()?;
        Some((kid.clone(), key))
    }
}

impl JwkSet {
    /// The keys we trust, by `kid`. Keys of other kinds, weak keys and keys without a `kid` are
    /// left out; if two keys share a `kid`, the first wins.
    pub fn usable_keys(&self) -> HashMap<String, Arc<DecodingKey>> {
        let mut keys = HashMap::new();
        for (kid, key) in self.keys.iter().filter_map(Jwk::usable_rs256_key) {
            keys.entry(kid).or_insert_with(|| Arc::new(key));
        }
        keys
    }
}

/// The bit length of a big-endian unsigned integer.
fn modulus_bits(bytes: &[u8]) -> usize {
    match bytes.iter().position(|&b| b != 0) {
        None => 0,
        Some(first) => (bytes.len() - first - 1) * 8 + (8 - bytes[first].leading_zeros() as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modulus_bits_ignores_leading_zero_bytes() {
        assert_eq!(modulus_bits(&[0, 0, 0x80, 0]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[0, 0]), 0);
    }

    #[test]
    fn keys_of_other_kinds_are_skipped_without_failing_the_set() {
        let set: JwkSet = serde_json::from_str(
            r#"{"keys":[{"kty":"EC","kid":"ec","crv":"P-256","x":"AA","y":"AA"},
                        {"kty":"RSA","kid":"small","alg":"RS256","n":"AQAB","e":"AQAB"},
                        {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
                        {"kid":"no-kty"}]}"#,
        )
        .unwrap();
        assert!(set.usable_keys().is_empty());
    }
}
