//! Shows the verifier at work with no Apple account: a key pair stands in for Apple's, a genuine
//! token is accepted, and the classic forgeries are refused, each with its stable code.
//!
//! `cargo run -p siwa-core --example demo`

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;
use siwa_core::RawNonce;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let verifier = verifier();
    let nonce = RawNonce::generate();
    let genuine = with(apple_claims(), "nonce", json!(nonce.hashed().as_str()));

    let hs256_with_public_key = sign_raw(
        &json!({"alg": "HS256", "kid": APPLE.kid}),
        &genuine,
        &EncodingKey::from_secret(APPLE.public_pem.as_bytes()),
        Algorithm::HS256,
    );
    let cases = [
        (
            "genuine token, matching nonce",
            mint(&genuine),
            Some(&nonce),
        ),
        (
            "minted for another app",
            mint(&with(genuine.clone(), "aud", json!("com.other.app"))),
            None,
        ),
        (
            "expired",
            mint(&with(
                with(genuine.clone(), "iat", json!(NOW - 7200)),
                "exp",
                json!(NOW - 3600),
            )),
            None,
        ),
        (
            "lives a year",
            mint(&with(genuine.clone(), "exp", json!(NOW + 31_536_000))),
            None,
        ),
        (
            "signed by an unknown key",
            mint_with(&ATTACKER, &genuine),
            None,
        ),
        (
            "HS256 keyed with Apple's public key",
            hs256_with_public_key,
            None,
        ),
        (
            "replayed with another nonce",
            mint(&genuine),
            Some(&RawNonce::generate()),
        ),
    ];
    for (what, token, nonce) in cases {
        match verifier.verify(&token, nonce).await {
            Ok(claims) => println!("accepted  {what:<38} sub={} aud={}", claims.sub, claims.aud),
            Err(e) => println!("refused   {what:<38} {:<22} {e}", e.code()),
        }
    }
}
