//! The ES256 key that signs access tokens, parsed once.
//!
//! `jsonwebtoken` asks its crypto provider for a signer for every token it signs, and aws-lc's
//! provider parses the PKCS#8 key each time: a parse and a check of the key pair (a scalar
//! multiplication on P-256) before every signature, as much work as the signature itself, on
//! every sign-in and refresh. This provider is aws-lc's with one change, the one jsonwebtoken
//! documents as its extension point: an ES256 key seen before signs with the key pair already
//! parsed. Everything else (verifiers, other algorithms, JWK helpers) is aws-lc's own.

use std::sync::{Arc, LazyLock, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner};
use jsonwebtoken::signature::{Error, Signer};
use jsonwebtoken::{Algorithm, EncodingKey};

/// At most this many keys are kept parsed (a server has one; tests start several).
const KEPT_KEYS: usize = 16;

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: signer_for,
    ..jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.clone()
});

/// The parsed ES256 keys, by their PKCS#8 bytes.
static PARSED: RwLock<Vec<(Vec<u8>, Arc<EcdsaKeyPair>)>> = RwLock::new(Vec::new());

/// Makes this provider jsonwebtoken's for the process. Must come before jsonwebtoken's first
/// use (which fixes its default); otherwise it changes nothing, and keys are parsed per token
/// as before: slower, as correct. Says whether it was installed.
pub fn install() -> bool {
    PROVIDER.install_default().is_ok()
}

fn signer_for(
    algorithm: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    if *algorithm == Algorithm::ES256
        && let Some(pair) = parsed(key.as_bytes())
    {
        return Ok(Box::new(Es256(pair)));
    }
    (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.signer_factory)(algorithm, key)
}

/// The key pair of these PKCS#8 bytes, parsed on first use; none when they are not a P-256 key
/// (aws-lc's own signer then gives the error).
fn parsed(pkcs8: &[u8]) -> Option<Arc<EcdsaKeyPair>> {
    let known = PARSED.read().unwrap_or_else(|e| e.into_inner());
    if let Some((_, pair)) = known.iter().find(|(bytes, _)| bytes == pkcs8) {
        return Some(pair.clone());
    }
    drop(known);
    let pair = Arc::new(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).ok()?);
    let mut known = PARSED.write().unwrap_or_else(|e| e.into_inner());
    if known.len() < KEPT_KEYS {
        known.push((pkcs8.to_vec(), pair.clone()));
    }
    Some(pair)
}

struct Es256(Arc<EcdsaKeyPair>);

impl Signer<Vec<u8>> for Es256 {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let signature = self
            .0
            .sign(&SystemRandom::new(), message)
            .map_err(Error::from_source)?;
        Ok(signature.as_ref().to_vec())
    }
}

impl JwtSigner for Es256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::DecodingKey;

    use super::*;

    /// A signature of the parsed key verifies with the key's public half, under ES256, and is
    /// new each time (ECDSA's random nonce); an ES256 request with a key that is not P-256 fails
    /// as aws-lc's own signer fails, and other algorithms are aws-lc's.
    #[test]
    fn the_parsed_key_signs_what_the_public_key_verifies() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let public = DecodingKey::from_ec_pem(pair.public_key_pem().as_bytes()).unwrap();
        for _ in 0..2 {
            let signer = signer_for(&Algorithm::ES256, &key).unwrap();
            let first = signer.try_sign(b"header.claims").unwrap();
            let second = signer.try_sign(b"header.claims").unwrap();
            assert_ne!(first, second);
            for signature in [first, second] {
                let encoded = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    signature,
                );
                assert!(
                    jsonwebtoken::crypto::verify(
                        &encoded,
                        b"header.claims",
                        &public,
                        Algorithm::ES256
                    )
                    .unwrap()
                );
            }
        }
        assert!(parsed(key.as_bytes()).is_some());
        let secret = EncodingKey::from_secret(b"not an EC key");
        assert!(signer_for(&Algorithm::ES256, &secret).is_err());
        assert!(signer_for(&Algorithm::HS256, &secret).is_ok());
    }
}
