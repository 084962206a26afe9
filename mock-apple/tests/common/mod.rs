#![allow(dead_code)]

use std::time::Duration;

use mock_apple::MockApple;
use siwa_core::{KeySet, KeySetOptions, Verifier, VerifierConfig};

pub const APP: &str = "com.example.app";
pub const WEB: &str = "com.example.web";

pub async fn apple() -> MockApple {
    MockApple::start().await.expect("the mock starts")
}

/// A verifier trusting the mock's JWKS, free to refetch at once on an unknown `kid`.
pub fn verifier(apple: &MockApple) -> Verifier {
    let options = KeySetOptions {
        refetch_cooldown: Duration::ZERO,
        ..KeySetOptions::default()
    };
    let keys = KeySet::remote(apple.jwks_url(), options).expect("an HTTP client");
    Verifier::new(VerifierConfig::new([APP, WEB]), keys).unwrap()
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A developer key registered with the mock, and an Apple client pointed at the mock.
pub fn developer(apple: &MockApple) -> (siwa_core::AppleClient, siwa_core::DeveloperKey) {
    let generated = apple.generate_developer_key(None, None).unwrap();
    let key = siwa_core::DeveloperKey::from_p8_pem(
        &generated.team_id,
        &generated.key_id,
        &generated.private_key_pem,
    )
    .unwrap();
    (
        siwa_core::AppleClient::new(apple.endpoints(), Duration::from_secs(5))
            .expect("an HTTP client"),
        key,
    )
}

/// A client secret for `client_id` from `key`, valid for five minutes of the mock's time.
pub fn secret(
    apple: &MockApple,
    key: &siwa_core::DeveloperKey,
    client_id: &str,
) -> siwa_core::ClientSecret {
    key.mint(client_id, apple.now(), Duration::from_secs(300))
        .unwrap()
}

/// The payload of a compact JWS, as JSON, without verifying anything.
pub fn payload_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
