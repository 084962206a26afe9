//! Test fixtures: RSA keys made with `rcgen`, and tokens minted with them, well-formed or not.
#![allow(dead_code)]

use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use siwa_core::apple_side::{Jwk, JwkSet};
use siwa_core::{FixedClock, KeySet, Verifier, VerifierConfig};

pub const NOW: i64 = 1_790_000_000;
pub const BUNDLE_ID: &str = "com.example.app";
pub const SERVICES_ID: &str = "com.example.web";
pub const SUB: &str = "001234.abcdef0123456789abcdef0123456789.1234";

pub struct TestKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub private_pem: String,
    pub public_pem: String,
    pub jwk: Jwk,
}

impl TestKey {
    pub fn generate(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let private_pem = pair.serialize_pem();
        let encoding = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("PEM");
        let jwk = Jwk::rs256_from_private_key(kid, &encoding).expect("JWK");
        Self {
            kid: kid.into(),
            encoding,
            private_pem,
            public_pem: pair.public_key_pem(),
            jwk,
        }
    }
}

/// Apple's key, and an attacker's key that is not in the key set. RSA generation is slow, so
/// they are made once per test binary.
pub static APPLE: LazyLock<TestKey> = LazyLock::new(|| TestKey::generate("apple-key-1"));
pub static ATTACKER: LazyLock<TestKey> = LazyLock::new(|| TestKey::generate("attacker-key"));

pub fn jwks(keys: &[&TestKey]) -> JwkSet {
    JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    }
}

/// Claims as Apple sends them for a fresh sign-in at `NOW`.
pub fn apple_claims() -> Value {
    json!({
        "iss": "https://appleid.apple.com",
        "aud": BUNDLE_ID,
        "exp": NOW + 600,
        "iat": NOW,
        "sub": SUB,
        "c_hash": "h8UIkzl8HGvrHxSdeJX0Ww",
        "email": "jane@privaterelay.appleid.com",
        "email_verified": true,
        "is_private_email": true,
        "auth_time": NOW,
        "nonce_supported": true,
        "real_user_status": 2
    })
}

pub fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

pub fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header, signed with `key` under `alg` (the header is not checked).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap();
    format!("{signing_input}.{signature}")
}

/// A well-formed RS256 token signed by `key`, naming it by `kid`.
pub fn mint_with(key: &TestKey, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "kid": key.kid});
    sign_raw(&header, claims, &key.encoding, Algorithm::RS256)
}

/// A token as Apple would sign it.
pub fn mint(claims: &Value) -> String {
    mint_with(&APPLE, claims)
}

pub fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(NOW))
}

pub fn config() -> VerifierConfig {
    let mut config = VerifierConfig::new([BUNDLE_ID, SERVICES_ID]);
    config.clock = clock();
    config
}

/// A verifier that knows Apple's key only, fetching nothing.
pub fn verifier() -> Verifier {
    verifier_with(config())
}

pub fn verifier_with(config: VerifierConfig) -> Verifier {
    Verifier::new(config, KeySet::fixed(&jwks(&[&APPLE]))).unwrap()
}
