//! The verifier against every way a token can be wrong, each case asserting the specific error.
//! Keys come from a fixed key set, time from a fixed clock: nothing here touches the network.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use siwa_core::{RawNonce, RealUserStatus, VerifyError};

async fn verify(token: &str) -> Result<siwa_core::IdentityClaims, VerifyError> {
    verifier().verify(token, None).await
}

async fn refused(token: &str) -> VerifyError {
    verify(token).await.expect_err("the token must be refused")
}

fn header_rs256() -> Value {
    json!({"alg": "RS256", "kid": APPLE.kid})
}

// --- The token as Apple sends it -------------------------------------------------------------

#[tokio::test]
async fn a_genuine_token_is_accepted_with_its_claims() {
    let claims = verify(&mint(&apple_claims())).await.unwrap();
    assert_eq!(claims.sub, SUB);
    assert_eq!(claims.aud, BUNDLE_ID);
    assert_eq!(
        claims.email.as_deref(),
        Some("jane@privaterelay.appleid.com")
    );
    assert!(claims.email_verified && claims.is_private_email);
    assert_eq!(claims.real_user_status, Some(RealUserStatus::LikelyReal));
}

#[tokio::test]
async fn a_token_for_the_services_id_is_accepted_too() {
    let claims = verify(&mint(&with(apple_claims(), "aud", json!(SERVICES_ID))))
        .await
        .unwrap();
    assert_eq!(claims.aud, SERVICES_ID);
}

#[tokio::test]
async fn boolean_claims_sent_as_strings_are_accepted() {
    let claims = with(apple_claims(), "email_verified", json!("true"));
    let claims = with(claims, "is_private_email", json!("false"));
    let verified = verify(&mint(&claims)).await.unwrap();
    assert!(verified.email_verified);
    assert!(!verified.is_private_email);
}

#[tokio::test]
async fn an_absent_is_private_email_is_read_from_the_address() {
    // The fixture's address is on a relay domain (siwa_core::relay).
    let verified = verify(&mint(&without(apple_claims(), "is_private_email")))
        .await
        .unwrap();
    assert!(verified.is_private_email);
    let own = with(
        without(apple_claims(), "is_private_email"),
        "email",
        json!("jane@example.com"),
    );
    assert!(!verify(&mint(&own)).await.unwrap().is_private_email);
}

#[tokio::test]
async fn a_token_without_email_is_accepted() {
    let claims = without(without(apple_claims(), "email"), "email_verified");
    let verified = verify(&mint(&claims)).await.unwrap();
    assert_eq!(verified.email, None);
    assert!(!verified.email_verified);
}

#[tokio::test]
async fn transfer_sub_is_read() {
    let verified = verify(&mint(&with(
        apple_claims(),
        "transfer_sub",
        json!("old.sub"),
    )))
    .await
    .unwrap();
    assert_eq!(verified.transfer_sub.as_deref(), Some("old.sub"));
}

// --- Algorithm and header attacks ------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_refused() {
    let header = b64(json!({"alg": "none", "kid": APPLE.kid})
        .to_string()
        .as_bytes());
    let payload = b64(apple_claims().to_string().as_bytes());
    assert_eq!(
        refused(&format!("{header}.{payload}.")).await,
        VerifyError::Malformed("empty segment")
    );
    let with_junk_signature = format!("{header}.{payload}.c2ln");
    assert_eq!(
        refused(&with_junk_signature).await,
        VerifyError::UnsupportedAlgorithm
    );
}

#[tokio::test]
async fn hs256_keyed_with_the_rsa_public_key_is_refused() {
    let key = EncodingKey::from_secret(APPLE.public_pem.as_bytes());
    let header = json!({"alg": "HS256", "kid": APPLE.kid});
    let token = sign_raw(&header, &apple_claims(), &key, Algorithm::HS256);
    assert_eq!(refused(&token).await, VerifyError::UnsupportedAlgorithm);
}

#[tokio::test]
async fn rs512_is_refused_even_with_apples_key() {
    let header = json!({"alg": "RS512", "kid": APPLE.kid});
    let token = sign_raw(&header, &apple_claims(), &APPLE.encoding, Algorithm::RS512);
    assert_eq!(refused(&token).await, VerifyError::UnsupportedAlgorithm);
}

#[tokio::test]
async fn ps256_is_refused_even_with_apples_key() {
    let header = json!({"alg": "PS256", "kid": APPLE.kid});
    let token = sign_raw(&header, &apple_claims(), &APPLE.encoding, Algorithm::PS256);
    assert_eq!(refused(&token).await, VerifyError::UnsupportedAlgorithm);
}

#[tokio::test]
async fn a_header_without_alg_is_refused() {
    let token = sign_raw(
        &json!({"kid": APPLE.kid}),
        &apple_claims(),
        &APPLE.encoding,
        Algorithm::RS256,
    );
    assert_eq!(refused(&token).await, VerifyError::UnsupportedAlgorithm);
}

#[tokio::test]
async fn an_attacker_key_embedded_in_a_jwk_header_is_refused() {
    let header = json!({"alg": "RS256", "kid": ATTACKER.kid, "jwk": ATTACKER.jwk});
    let token = sign_raw(
        &header,
        &apple_claims(),
        &ATTACKER.encoding,
        Algorithm::RS256,
    );
    assert_eq!(refused(&token).await, VerifyError::ForbiddenHeader("jwk"));
}

#[tokio::test]
async fn a_jku_header_is_refused() {
    let header = json!({"alg": "RS256", "kid": APPLE.kid, "jku": "https://evil.example/keys"});
    let token = sign_raw(&header, &apple_claims(), &APPLE.encoding, Algorithm::RS256);
    assert_eq!(refused(&token).await, VerifyError::ForbiddenHeader("jku"));
}

#[tokio::test]
async fn x5u_and_x5c_headers_are_refused() {
    for (field, value) in [
        ("x5u", json!("https://evil.example/cert")),
        ("x5c", json!(["MIIB"])),
    ] {
        let header = with(header_rs256(), field, value);
        let token = sign_raw(&header, &apple_claims(), &APPLE.encoding, Algorithm::RS256);
        let expected = if field == "x5u" { "x5u" } else { "x5c" };
        assert_eq!(
            refused(&token).await,
            VerifyError::ForbiddenHeader(expected)
        );
    }
}

#[tokio::test]
async fn a_crit_header_is_refused() {
    let header = with(header_rs256(), "crit", json!(["exp"]));
    let token = sign_raw(&header, &apple_claims(), &APPLE.encoding, Algorithm::RS256);
    assert_eq!(refused(&token).await, VerifyError::ForbiddenHeader("crit"));
}

#[tokio::test]
async fn a_header_without_kid_is_refused() {
    let token = sign_raw(
        &json!({"alg": "RS256"}),
        &apple_claims(),
        &APPLE.encoding,
        Algorithm::RS256,
    );
    assert_eq!(
        refused(&token).await,
        VerifyError::Malformed("the header has no key id")
    );
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    assert_eq!(
        refused(&mint_with(&ATTACKER, &apple_claims())).await,
        VerifyError::UnknownKey
    );
}

#[tokio::test]
async fn an_attacker_signature_under_apples_kid_is_refused() {
    let token = sign_raw(
        &header_rs256(),
        &apple_claims(),
        &ATTACKER.encoding,
        Algorithm::RS256,
    );
    assert_eq!(refused(&token).await, VerifyError::BadSignature);
}

// --- Tampering and malformed input -----------------------------------------------------------

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let token = mint(&apple_claims());
    let forged = b64(with(apple_claims(), "sub", json!("someone.else"))
        .to_string()
        .as_bytes());
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
    assert_eq!(refused(&tampered).await, VerifyError::BadSignature);
}

#[tokio::test]
async fn a_truncated_signature_is_refused() {
    let token = mint(&apple_claims());
    assert_eq!(
        refused(&token[..token.len() - 4]).await,
        VerifyError::BadSignature
    );
}

#[tokio::test]
async fn a_signature_that_is_not_base64url_is_refused() {
    let token = mint(&apple_claims());
    let (head, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        refused(&format!("{head}.***")).await,
        VerifyError::BadSignature
    );
}

#[tokio::test]
async fn five_segments_are_refused() {
    let token = format!("{}.a.b", mint(&apple_claims()));
    assert_eq!(
        refused(&token).await,
        VerifyError::Malformed("a JWS has exactly three segments")
    );
}

#[tokio::test]
async fn two_segments_are_refused() {
    let token = mint(&apple_claims());
    let (head, _) = token.rsplit_once('.').unwrap();
    assert_eq!(
        refused(head).await,
        VerifyError::Malformed("a JWS has exactly three segments")
    );
}

#[tokio::test]
async fn empty_input_is_refused() {
    assert_eq!(refused("").await, VerifyError::Malformed("empty token"));
    assert_eq!(refused("  ").await, VerifyError::Malformed("empty token"));
}

#[tokio::test]
async fn oversize_input_is_refused_before_parsing() {
    let huge = "a".repeat(siwa_core::MAX_TOKEN_BYTES + 1);
    assert_eq!(refused(&huge).await, VerifyError::TooLarge);
    let big_claim = with(apple_claims(), "padding", json!("x".repeat(9000)));
    assert_eq!(refused(&mint(&big_claim)).await, VerifyError::TooLarge);
}

#[tokio::test]
async fn a_header_that_is_not_base64url_is_refused() {
    assert_eq!(
        refused("!!!.e30.c2ln").await,
        VerifyError::Malformed("header is not base64url")
    );
}

#[tokio::test]
async fn a_padded_header_is_refused() {
    let token = mint(&apple_claims());
    let (header, rest) = token.split_once('.').unwrap();
    let padded = format!("{header}==.{rest}");
    assert_eq!(
        refused(&padded).await,
        VerifyError::Malformed("header is not base64url")
    );
}

#[tokio::test]
async fn a_header_that_is_not_json_is_refused() {
    let token = format!("{}.e30.c2ln", b64(b"not json"));
    assert_eq!(
        refused(&token).await,
        VerifyError::Malformed("header is not a JSON object of the expected shape")
    );
}

#[tokio::test]
async fn a_signed_payload_that_is_not_json_is_refused() {
    let signing_input = format!(
        "{}.{}",
        b64(header_rs256().to_string().as_bytes()),
        b64(b"[1,2")
    );
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &APPLE.encoding, Algorithm::RS256)
            .unwrap();
    assert_eq!(
        refused(&format!("{signing_input}.{signature}")).await,
        VerifyError::Malformed("payload is not a JSON object of the expected shape")
    );
}

#[tokio::test]
async fn an_ill_typed_claim_is_refused() {
    let token = mint(&with(apple_claims(), "exp", json!("tomorrow")));
    assert_eq!(
        refused(&token).await,
        VerifyError::Malformed("payload is not a JSON object of the expected shape")
    );
}

// --- Issuer and audience ---------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    let token = mint(&with(apple_claims(), "iss", json!("https://evil.example")));
    assert_eq!(refused(&token).await, VerifyError::WrongIssuer);
}

#[tokio::test]
async fn the_discovery_issuer_is_refused_unless_configured() {
    // In June 2025 Apple's discovery document said `https://account.apple.com` (docs/apple-protocol.md, F2).
    let token = mint(&with(
        apple_claims(),
        "iss",
        json!("https://account.apple.com"),
    ));
    assert_eq!(refused(&token).await, VerifyError::WrongIssuer);

    let mut config = config();
    config.issuers.push("https://account.apple.com".into());
    assert!(verifier_with(config).verify(&token, None).await.is_ok());
}

#[tokio::test]
async fn a_token_minted_for_another_app_is_refused() {
    let token = mint(&with(apple_claims(), "aud", json!("com.other.app")));
    assert_eq!(refused(&token).await, VerifyError::WrongAudience);
}

#[tokio::test]
async fn an_audience_list_is_refused_even_when_it_holds_ours() {
    let token = mint(&with(
        apple_claims(),
        "aud",
        json!([BUNDLE_ID, "com.other.app"]),
    ));
    assert_eq!(refused(&token).await, VerifyError::WrongAudience);
}

#[tokio::test]
async fn audience_matching_is_exact() {
    let token = mint(&with(apple_claims(), "aud", json!("COM.EXAMPLE.APP")));
    assert_eq!(refused(&token).await, VerifyError::WrongAudience);
}

// --- Missing claims --------------------------------------------------------------------------

#[tokio::test]
async fn each_required_claim_is_named_when_missing() {
    for claim in ["iss", "aud", "sub", "iat", "exp"] {
        let token = mint(&without(apple_claims(), claim));
        assert_eq!(
            refused(&token).await,
            VerifyError::MissingClaim(claim),
            "without {claim}"
        );
    }
}

#[tokio::test]
async fn an_empty_sub_is_refused_as_missing() {
    let token = mint(&with(apple_claims(), "sub", json!("")));
    assert_eq!(refused(&token).await, VerifyError::MissingClaim("sub"));
}

// --- Time ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_refused() {
    let claims = with(
        with(apple_claims(), "iat", json!(NOW - 700)),
        "exp",
        json!(NOW - 100),
    );
    assert_eq!(refused(&mint(&claims)).await, VerifyError::Expired);
}

#[tokio::test]
async fn a_token_expired_within_the_leeway_is_accepted() {
    let claims = with(
        with(apple_claims(), "iat", json!(NOW - 630)),
        "exp",
        json!(NOW - 30),
    );
    assert!(verify(&mint(&claims)).await.is_ok());
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let claims = with(
        with(apple_claims(), "iat", json!(NOW + 300)),
        "exp",
        json!(NOW + 900),
    );
    assert_eq!(refused(&mint(&claims)).await, VerifyError::IssuedInFuture);
}

#[tokio::test]
async fn a_token_issued_slightly_ahead_within_the_leeway_is_accepted() {
    let claims = with(
        with(apple_claims(), "iat", json!(NOW + 30)),
        "exp",
        json!(NOW + 630),
    );
    assert!(verify(&mint(&claims)).await.is_ok());
}

#[tokio::test]
async fn a_token_living_a_year_is_refused() {
    let claims = with(apple_claims(), "exp", json!(NOW + 365 * 24 * 3600));
    assert_eq!(refused(&mint(&claims)).await, VerifyError::LifetimeTooLong);
}

#[tokio::test]
async fn a_lifetime_of_a_day_is_accepted() {
    // 86,400 s is the longest lifetime Apple has been seen to use (docs/apple-protocol.md, F4).
    let claims = with(apple_claims(), "exp", json!(NOW + 86_400));
    assert!(verify(&mint(&claims)).await.is_ok());
}

#[tokio::test]
async fn a_token_older_than_the_maximum_age_is_refused() {
    let mut config = config();
    config.max_age = std::time::Duration::from_secs(300);
    let claims = with(
        with(apple_claims(), "iat", json!(NOW - 3600)),
        "exp",
        json!(NOW + 3600),
    );
    let error = verifier_with(config)
        .verify(&mint(&claims), None)
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::TooOld);
}

#[tokio::test]
async fn exp_before_iat_is_refused() {
    let claims = with(
        with(apple_claims(), "iat", json!(NOW)),
        "exp",
        json!(NOW - 1),
    );
    assert_eq!(
        refused(&mint(&claims)).await,
        VerifyError::Malformed("exp is before iat")
    );
}

// --- Nonce -----------------------------------------------------------------------------------

fn claims_with_nonce(raw: &RawNonce) -> Value {
    with(apple_claims(), "nonce", json!(raw.hashed().as_str()))
}

#[tokio::test]
async fn a_matching_nonce_is_accepted() {
    let raw = RawNonce::generate();
    let token = mint(&claims_with_nonce(&raw));
    assert!(verifier().verify(&token, Some(&raw)).await.is_ok());
}

#[tokio::test]
async fn a_different_nonce_is_refused() {
    let token = mint(&claims_with_nonce(&RawNonce::generate()));
    let error = verifier()
        .verify(&token, Some(&RawNonce::generate()))
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::NonceMismatch);
}

#[tokio::test]
async fn a_raw_nonce_in_the_token_is_refused() {
    // Pitfall 4: the client gave Apple the raw value instead of its hash.
    let raw = RawNonce::generate();
    let token = mint(&with(apple_claims(), "nonce", json!(raw.expose())));
    assert_eq!(
        verifier().verify(&token, Some(&raw)).await.unwrap_err(),
        VerifyError::NonceMismatch
    );
}

#[tokio::test]
async fn a_base64_hashed_nonce_is_refused() {
    use sha2::Digest;
    let raw = RawNonce::generate();
    let b64_hash = b64(&sha2::Sha256::digest(raw.expose().as_bytes()));
    let token = mint(&with(apple_claims(), "nonce", json!(b64_hash)));
    assert_eq!(
        verifier().verify(&token, Some(&raw)).await.unwrap_err(),
        VerifyError::NonceMismatch
    );
}

#[tokio::test]
async fn a_token_without_nonce_is_refused_when_the_request_has_one() {
    let token = mint(&apple_claims());
    let error = verifier()
        .verify(&token, Some(&RawNonce::generate()))
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::NonceMissing);
}

#[tokio::test]
async fn nonce_supported_false_skips_the_check_only_when_policy_allows() {
    let token = mint(&with(apple_claims(), "nonce_supported", json!(false)));
    let raw = RawNonce::generate();
    assert_eq!(
        verifier().verify(&token, Some(&raw)).await.unwrap_err(),
        VerifyError::NonceMissing
    );

    let mut config = config();
    config.allow_nonce_unsupported = true;
    assert!(
        verifier_with(config.clone())
            .verify(&token, Some(&raw))
            .await
            .is_ok()
    );

    // The policy never lets a token that says nonces are supported go without one.
    let supported = mint(&with(apple_claims(), "nonce_supported", json!("true")));
    let error = verifier_with(config)
        .verify(&supported, Some(&raw))
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::NonceMissing);
}

#[tokio::test]
async fn a_token_with_a_nonce_verifies_when_the_caller_has_none() {
    let token = mint(&claims_with_nonce(&RawNonce::generate()));
    assert!(verify(&token).await.is_ok());
}

// --- Configuration and errors ----------------------------------------------------------------

#[test]
fn a_verifier_needs_an_audience() {
    let config = siwa_core::VerifierConfig::new(Vec::<String>::new());
    let keys = siwa_core::KeySet::fixed(&jwks(&[&APPLE]));
    assert!(matches!(
        siwa_core::Verifier::new(config, keys),
        Err(siwa_core::ConfigError::NoAudience)
    ));
}

#[tokio::test]
async fn error_messages_never_contain_the_token_or_its_personal_data() {
    let raw = RawNonce::generate();
    let claims = with(claims_with_nonce(&raw), "aud", json!("com.other.app"));
    let token = mint(&claims);
    let error = verifier().verify(&token, Some(&raw)).await.unwrap_err();
    let shown = format!("{error} {error:?}");
    for secret in [
        token.as_str(),
        "jane@privaterelay.appleid.com",
        raw.expose(),
        SUB,
    ] {
        assert!(!shown.contains(secret));
    }
}

#[test]
fn every_error_has_a_distinct_listed_code() {
    let every_variant = [
        VerifyError::TooLarge,
        VerifyError::Malformed("x"),
        VerifyError::UnsupportedAlgorithm,
        VerifyError::ForbiddenHeader("jwk"),
        VerifyError::UnknownKey,
        VerifyError::KeySetUnavailable,
        VerifyError::BadSignature,
        VerifyError::WrongIssuer,
        VerifyError::WrongAudience,
        VerifyError::MissingClaim("sub"),
        VerifyError::Expired,
        VerifyError::IssuedInFuture,
        VerifyError::LifetimeTooLong,
        VerifyError::TooOld,
        VerifyError::NonceMismatch,
        VerifyError::NonceMissing,
    ];
    let codes: std::collections::BTreeSet<_> = every_variant.iter().map(|e| e.code()).collect();
    let listed: std::collections::BTreeSet<_> =
        VerifyError::ALL_CODES.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        codes.len(),
        every_variant.len(),
        "two variants share a code"
    );
    assert_eq!(codes, listed);
}
