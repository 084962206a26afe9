//! Tokens minted by the mock, verified by `siwa-core` against the mock's JWKS.

mod common;

use common::*;
use mock_apple::{BooleanForm, Endpoint, IdentityTokenRequest, TokenAlgorithm};
use serde_json::json;
use siwa_core::{RawNonce, VerifyError};

fn request() -> IdentityTokenRequest {
    IdentityTokenRequest::default()
}

#[tokio::test]
async fn a_minted_token_verifies_with_the_core_verifier() {
    let apple = apple().await;
    let raw = RawNonce::generate();
    let minted = apple
        .mint_identity_token(IdentityTokenRequest {
            raw_nonce: Some(raw.expose().into()),
            ..request()
        })
        .unwrap();
    let claims = verifier(&apple)
        .verify(&minted.identity_token, Some(&raw))
        .await
        .unwrap();
    assert_eq!(claims.sub, minted.sub);
    assert_eq!(claims.aud, APP);
    assert_eq!(claims.iss, "https://appleid.apple.com");
    assert_eq!(claims.email.as_deref(), Some("jane.appleseed@example.com"));
    assert!(claims.email_verified);
    assert!(!claims.is_private_email);
    assert!(claims.c_hash.is_some());
}

#[tokio::test]
async fn the_jwks_publishes_several_rsa_keys_with_distinct_kids() {
    let apple = apple().await;
    let jwks = apple.jwks();
    assert!(jwks.keys.len() >= 2);
    let mut kids: Vec<_> = jwks.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
    kids.sort();
    kids.dedup();
    assert_eq!(kids.len(), jwks.keys.len());
    assert!(
        jwks.keys
            .iter()
            .all(|k| k.kty.as_deref() == Some("RSA") && k.alg.as_deref() == Some("RS256"))
    );
    assert_eq!(
        jwks.usable_keys().len(),
        jwks.keys.len(),
        "all are 2048-bit RS256 keys"
    );
}

#[tokio::test]
async fn hidden_email_is_a_stable_relay_address_per_client() {
    let apple = apple().await;
    let mint = |client: &str| {
        apple
            .mint_identity_token(IdentityTokenRequest {
                client_id: Some(client.into()),
                hide_email: true,
                ..request()
            })
            .unwrap()
    };
    let v = verifier(&apple);
    let first = v.verify(&mint(APP).identity_token, None).await.unwrap();
    let again = v.verify(&mint(APP).identity_token, None).await.unwrap();
    let web = v.verify(&mint(WEB).identity_token, None).await.unwrap();
    assert!(first.is_private_email);
    assert!(
        first
            .email
            .as_deref()
            .unwrap()
            .ends_with("@privaterelay.appleid.com")
    );
    assert_eq!(first.email, again.email);
    assert_ne!(first.email, web.email);
}

#[tokio::test]
async fn booleans_can_be_sent_as_strings() {
    let apple = apple().await;
    let minted = apple
        .mint_identity_token(IdentityTokenRequest {
            booleans_as: BooleanForm::String,
            hide_email: true,
            ..request()
        })
        .unwrap();
    let payload = siwa_core::decode_unverified(&minted.identity_token).unwrap();
    assert!(payload.claims.email_verified && payload.claims.is_private_email);
    let raw = payload_claims(&minted.identity_token);
    assert_eq!(raw["email_verified"], json!("true"));
    assert_eq!(raw["is_private_email"], json!("true"));
    assert!(
        verifier(&apple)
            .verify(&minted.identity_token, None)
            .await
            .is_ok()
    );
}

async fn refusal(apple: &mock_apple::MockApple, request: IdentityTokenRequest) -> VerifyError {
    let minted = apple.mint_identity_token(request).unwrap();
    verifier(apple)
        .verify(&minted.identity_token, None)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn attack_forms_are_refused_with_their_specific_errors() {
    let apple = apple().await;
    let claims = |pairs: serde_json::Value| pairs.as_object().unwrap().clone();
    let cases = [
        (
            IdentityTokenRequest {
                alg: TokenAlgorithm::None,
                ..request()
            },
            VerifyError::Malformed("empty segment"),
        ),
        (
            IdentityTokenRequest {
                alg: TokenAlgorithm::Hs256PublicKey,
                ..request()
            },
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            IdentityTokenRequest {
                alg: TokenAlgorithm::RS512,
                ..request()
            },
            VerifyError::UnsupportedAlgorithm,
        ),
        (
            IdentityTokenRequest {
                kid: Some("no-such-kid".into()),
                ..request()
            },
            VerifyError::UnknownKey,
        ),
        (
            IdentityTokenRequest {
                client_id: Some("com.other.app".into()),
                ..request()
            },
            VerifyError::WrongAudience,
        ),
        (
            IdentityTokenRequest {
                claims: claims(json!({"iss": "https://account.apple.com"})),
                ..request()
            },
            VerifyError::WrongIssuer,
        ),
        (
            IdentityTokenRequest {
                claims: claims(json!({"sub": null})),
                ..request()
            },
            VerifyError::MissingClaim("sub"),
        ),
        (
            IdentityTokenRequest {
                lifetime_secs: Some(365 * 86_400),
                ..request()
            },
            VerifyError::LifetimeTooLong,
        ),
        (
            IdentityTokenRequest {
                issued_at: Some(apple.now() - 7200),
                lifetime_secs: Some(600),
                ..request()
            },
            VerifyError::Expired,
        ),
        (
            IdentityTokenRequest {
                issued_at: Some(apple.now() + 3600),
                ..request()
            },
            VerifyError::IssuedInFuture,
        ),
        (
            IdentityTokenRequest {
                header: claims(json!({"jku": "https://evil.example"})),
                ..request()
            },
            VerifyError::ForbiddenHeader("jku"),
        ),
    ];
    for (request, expected) in cases {
        let shown = format!("{request:?}");
        assert_eq!(refusal(&apple, request).await, expected, "{shown}");
    }
}

#[tokio::test]
async fn a_key_rotation_is_picked_up_and_a_retired_key_stops_verifying() {
    let apple = apple().await;
    let verifier = verifier(&apple);
    let before = apple.mint_identity_token(request()).unwrap();
    assert!(verifier.verify(&before.identity_token, None).await.is_ok());
    assert_eq!(apple.request_count(Endpoint::Keys), 1);

    let new_kid = apple.add_key().unwrap();
    let after = apple.mint_identity_token(request()).unwrap();
    assert_eq!(after.kid, new_kid, "the newest key signs");
    assert!(verifier.verify(&after.identity_token, None).await.is_ok());
    assert_eq!(
        apple.request_count(Endpoint::Keys),
        2,
        "one refetch for the unknown kid"
    );

    apple.retire_key(&new_kid).unwrap();
    // The verifier's cache still has the retired key until it refetches; a fresh verifier
    // sees the JWKS as it now is.
    let fresh = common::verifier(&apple);
    let signed_by_retired = apple
        .mint_identity_token(IdentityTokenRequest {
            kid: Some(new_kid.clone()),
            ..request()
        })
        .unwrap();
    assert_eq!(
        fresh
            .verify(&signed_by_retired.identity_token, None)
            .await
            .unwrap_err(),
        VerifyError::UnknownKey
    );
    assert!(
        apple
            .keys()
            .iter()
            .any(|k| k.kid == new_kid && !k.published)
    );
}

#[tokio::test]
async fn the_last_published_key_cannot_be_retired() {
    let apple = mock_apple::MockApple::builder()
        .initial_keys(1)
        .start()
        .await
        .unwrap();
    let kid = apple.keys()[0].kid.clone();
    assert!(matches!(
        apple.retire_key(&kid),
        Err(mock_apple::MockError::Keys(mock_apple::KeyError::LastKey))
    ));
    assert!(matches!(
        apple.retire_key("nope"),
        Err(mock_apple::MockError::Keys(mock_apple::KeyError::NotFound(
            _
        )))
    ));
}

#[tokio::test]
async fn a_key_dir_keeps_the_jwks_across_restarts() {
    let dir = std::env::temp_dir().join(format!("mock-apple-keys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = mock_apple::MockApple::builder()
        .key_dir(&dir)
        .start()
        .await
        .unwrap();
    first.add_key().unwrap();
    let jwks = serde_json::to_value(first.jwks()).unwrap();
    first.shutdown().await;

    let second = mock_apple::MockApple::builder()
        .key_dir(&dir)
        .start()
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(second.jwks()).unwrap(), jwks);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_configured_issuer_is_used_in_tokens_and_discovery() {
    let apple = mock_apple::MockApple::builder()
        .issuer("https://account.apple.com")
        .start()
        .await
        .unwrap();
    let minted = apple.mint_identity_token(request()).unwrap();
    assert_eq!(
        siwa_core::decode_unverified(&minted.identity_token)
            .unwrap()
            .claims
            .iss,
        "https://account.apple.com"
    );
    let discovery: serde_json::Value = http()
        .get(format!(
            "{}/.well-known/openid-configuration",
            apple.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], "https://account.apple.com");
    assert_eq!(discovery["jwks_uri"], apple.jwks_url());
    assert_eq!(
        discovery["token_endpoint"],
        format!("{}/auth/token", apple.base_url())
    );
}

#[tokio::test]
async fn the_control_api_mints_tokens_over_http() {
    let apple = apple().await;
    let response = http()
        .post(format!("{}/mock/identity-token", apple.base_url()))
        .json(&json!({"clientId": WEB, "claims": {"email_verified": "false"}, "booleansAs": "string"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let claims = verifier(&apple)
        .verify(body["identityToken"].as_str().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(claims.aud, WEB);
    assert!(!claims.email_verified);
    assert!(body["authorizationCode"].as_str().unwrap().starts_with('c'));

    let bad = http()
        .post(format!("{}/mock/identity-token", apple.base_url()))
        // Any other key is a claim; a control field of the wrong type is still refused.
        .body("{\"hideEmail\": \"yes\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let error: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(error["error"], "invalid_request");
}

#[tokio::test]
async fn the_credential_carries_name_and_email_on_the_first_authorization_only() {
    let apple = apple().await;
    let first = apple.mint_identity_token(request()).unwrap();
    assert!(first.first_authorization);
    assert_eq!(first.given_name.as_deref(), Some("Jane"));
    assert_eq!(first.family_name.as_deref(), Some("Appleseed"));
    assert_eq!(first.email.as_deref(), Some("jane.appleseed@example.com"));

    let again = apple.mint_identity_token(request()).unwrap();
    assert!(!again.first_authorization);
    assert_eq!(
        (again.given_name, again.family_name, again.email),
        (None, None, None)
    );
}

#[tokio::test]
async fn revoking_the_apps_tokens_makes_the_next_authorization_a_first_one_again() {
    let apple = apple().await;
    let (client, key) = developer(&apple);
    let minted = apple.mint_identity_token(request()).unwrap();
    let secret = secret(&apple, &key, APP);
    let tokens = client
        .exchange_code(APP, &secret, &minted.authorization_code, None)
        .await
        .unwrap();
    let refresh = tokens.refresh_token.unwrap();
    client
        .revoke(
            APP,
            &secret,
            &refresh,
            siwa_core::TokenTypeHint::RefreshToken,
        )
        .await
        .unwrap();
    let after = apple.mint_identity_token(request()).unwrap();
    assert!(after.first_authorization);
    assert_eq!(after.given_name.as_deref(), Some("Jane"));
}

#[tokio::test]
async fn tokens_live_a_day_by_default_as_apples_have_since_2020() {
    let apple = apple().await;
    let minted = apple.mint_identity_token(request()).unwrap();
    let claims = payload_claims(&minted.identity_token);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 86_400);
}

#[tokio::test]
async fn keys_of_the_body_that_are_not_control_fields_are_claims() {
    let apple = apple().await;
    let response = http()
        .post(format!("{}/mock/identity-token", apple.base_url()))
        .json(
            &json!({"aud": "com.example.other", "sub": "001999.custom.0001",
                      "email": "someone@example.com", "claims": {"email_verified": false}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let minted: serde_json::Value = response.json().await.unwrap();
    let claims = payload_claims(minted["identityToken"].as_str().unwrap());
    assert_eq!(claims["aud"], "com.example.other");
    assert_eq!(claims["sub"], "001999.custom.0001");
    assert_eq!(claims["email"], "someone@example.com");
    assert_eq!(claims["email_verified"], false, "`claims` still applies");
}
