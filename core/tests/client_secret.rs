//! Client secrets: minted as Apple wants them, and checked as Apple checks them.

mod common;

use std::time::Duration;

use common::{NOW, b64};
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::SigningKey;
use serde_json::json;
use siwa_core::apple_side::{RegisteredDeveloperKey, verify_client_secret};
use siwa_core::{ClientSecretError, DeveloperKey};

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY1234567";
const CLIENT: &str = "com.example.app";

struct Developer {
    pair: rcgen::KeyPair,
    key: DeveloperKey,
    registered: RegisteredDeveloperKey,
}

fn developer() -> Developer {
    let pair = rcgen::KeyPair::generate().unwrap(); // P-256, PKCS#8: a .p8
    let key = DeveloperKey::from_p8_pem(TEAM, KEY_ID, &pair.serialize_pem()).unwrap();
    let registered =
        RegisteredDeveloperKey::from_public_pem(TEAM, KEY_ID, &pair.public_key_pem()).unwrap();
    Developer {
        pair,
        key,
        registered,
    }
}

fn check(dev: &Developer, secret: &str, client_id: &str) -> Result<(), ClientSecretError> {
    verify_client_secret(secret, client_id, NOW, |kid| {
        (kid == KEY_ID).then_some(&dev.registered)
    })
    .map(|_| ())
}

/// A secret with any claims, signed with the developer's key in JOSE form (or DER).
fn secret_with(
    dev: &Developer,
    header: serde_json::Value,
    claims: serde_json::Value,
    der: bool,
) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = if der {
        b64(&dev.pair.sign(input.as_bytes()).unwrap())
    } else {
        let key = EncodingKey::from_ec_pem(dev.pair.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).unwrap()
    };
    format!("{input}.{signature}")
}

fn claims() -> serde_json::Value {
    json!({"iss": TEAM, "iat": NOW, "exp": NOW + 600, "aud": "https://appleid.apple.com", "sub": CLIENT})
}

fn header() -> serde_json::Value {
    json!({"alg": "ES256", "kid": KEY_ID})
}

#[test]
fn a_minted_secret_is_accepted_and_has_apples_shape() {
    let dev = developer();
    let secret = dev.key.mint(CLIENT, NOW, Duration::from_secs(600)).unwrap();
    assert_eq!(check(&dev, secret.expose(), CLIENT), Ok(()));
    assert_eq!(secret.expires_at, NOW + 600);

    let parts: Vec<&str> = secret.expose().split('.').collect();
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[2])
            .unwrap();
    assert_eq!(signature.len(), 64, "JOSE R||S, not DER");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[0])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], KEY_ID);
}

#[test]
fn a_der_signature_is_refused() {
    let dev = developer();
    let secret = secret_with(&dev, header(), claims(), true);
    assert_eq!(
        check(&dev, &secret, CLIENT),
        Err(ClientSecretError::BadSignature)
    );
}

#[test]
fn an_unregistered_key_id_is_refused() {
    let dev = developer();
    let secret = secret_with(
        &dev,
        json!({"alg": "ES256", "kid": "OTHERKEY00"}),
        claims(),
        false,
    );
    assert_eq!(
        check(&dev, &secret, CLIENT),
        Err(ClientSecretError::UnknownKey)
    );
}

#[test]
fn a_secret_signed_by_another_key_is_refused() {
    let dev = developer();
    let other = developer();
    let secret = other
        .key
        .mint(CLIENT, NOW, Duration::from_secs(600))
        .unwrap();
    assert_eq!(
        check(&dev, secret.expose(), CLIENT),
        Err(ClientSecretError::BadSignature)
    );
}

#[test]
fn another_team_is_refused() {
    let dev = developer();
    let secret = secret_with(
        &dev,
        header(),
        common::with(claims(), "iss", json!("OTHERTEAM0")),
        false,
    );
    assert_eq!(
        check(&dev, &secret, CLIENT),
        Err(ClientSecretError::WrongTeam)
    );
}

#[test]
fn an_expired_secret_is_refused() {
    let dev = developer();
    let c = common::with(
        common::with(claims(), "iat", json!(NOW - 700)),
        "exp",
        json!(NOW - 100),
    );
    assert_eq!(
        check(&dev, &secret_with(&dev, header(), c, false), CLIENT),
        Err(ClientSecretError::Expired)
    );
}

#[test]
fn a_lifetime_over_six_months_is_refused() {
    let dev = developer();
    let c = common::with(claims(), "exp", json!(NOW + 15_777_001));
    let secret = secret_with(&dev, header(), c, false);
    assert_eq!(
        check(&dev, &secret, CLIENT),
        Err(ClientSecretError::LifetimeTooLong)
    );
    assert_eq!(
        dev.key
            .mint(CLIENT, NOW, Duration::from_secs(15_777_001))
            .unwrap_err(),
        ClientSecretError::LifetimeTooLong
    );
}

#[test]
fn a_lifetime_of_exactly_six_months_is_accepted() {
    let dev = developer();
    let secret = dev
        .key
        .mint(CLIENT, NOW, Duration::from_secs(15_777_000))
        .unwrap();
    assert_eq!(check(&dev, secret.expose(), CLIENT), Ok(()));
}

#[test]
fn a_secret_for_another_client_id_is_refused() {
    let dev = developer();
    let secret = dev
        .key
        .mint("com.example.web", NOW, Duration::from_secs(600))
        .unwrap();
    assert_eq!(
        check(&dev, secret.expose(), CLIENT),
        Err(ClientSecretError::WrongSubject)
    );
}

#[test]
fn another_audience_is_refused() {
    let dev = developer();
    let c = common::with(claims(), "aud", json!("https://account.apple.com"));
    assert_eq!(
        check(&dev, &secret_with(&dev, header(), c, false), CLIENT),
        Err(ClientSecretError::WrongAudience)
    );
}

#[test]
fn a_secret_issued_in_the_future_is_refused() {
    let dev = developer();
    let c = common::with(
        common::with(claims(), "iat", json!(NOW + 3600)),
        "exp",
        json!(NOW + 4000),
    );
    assert_eq!(
        check(&dev, &secret_with(&dev, header(), c, false), CLIENT),
        Err(ClientSecretError::IssuedInFuture)
    );
}

#[test]
fn an_hs256_secret_is_refused() {
    let dev = developer();
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "kid": KEY_ID})
            .to_string()
            .as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(b"k"),
        Algorithm::HS256,
    )
    .unwrap();
    assert_eq!(
        check(&dev, &format!("{input}.{sig}"), CLIENT),
        Err(ClientSecretError::WrongAlgorithm)
    );
}

#[test]
fn garbage_is_refused_as_malformed() {
    let dev = developer();
    assert_eq!(
        check(&dev, "not-a-jwt", CLIENT),
        Err(ClientSecretError::Malformed)
    );
}

#[test]
fn developer_key_inputs_are_validated() {
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(
        DeveloperKey::from_p8_pem("team", KEY_ID, &pem).unwrap_err(),
        ClientSecretError::InvalidTeamId
    );
    assert_eq!(
        DeveloperKey::from_p8_pem(TEAM, "KEY", &pem).unwrap_err(),
        ClientSecretError::InvalidKeyId
    );
    assert_eq!(
        DeveloperKey::from_p8_pem(
            TEAM,
            KEY_ID,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .unwrap_err(),
        ClientSecretError::InvalidPrivateKey
    );
    let rsa = common::APPLE.private_pem.clone();
    assert_eq!(
        DeveloperKey::from_p8_pem(TEAM, KEY_ID, &rsa).unwrap_err(),
        ClientSecretError::InvalidPrivateKey
    );
}

#[test]
fn debug_output_never_shows_the_secret_or_key() {
    let dev = developer();
    let secret = dev.key.mint(CLIENT, NOW, Duration::from_secs(600)).unwrap();
    assert!(!format!("{secret:?}").contains(secret.expose()));
    assert!(!format!("{:?}", dev.key).contains("PRIVATE"));
}
