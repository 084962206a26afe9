//! `/auth/token` and `/auth/revoke`, driven through `siwa-core`'s Apple client, with client
//! secrets checked as Apple checks them.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey};
use mock_apple::{IdentityTokenRequest, MockApple};
use rcgen::SigningKey;
use serde_json::json;
use siwa_core::{
    AppleApiError, AppleClient, ClientSecret, DeveloperKey, OAuthErrorCode, TokenTypeHint,
};

struct Setup {
    apple: MockApple,
    client: AppleClient,
    key: DeveloperKey,
    pem: String,
}

async fn setup() -> Setup {
    let apple = apple().await;
    let generated = apple
        .generate_developer_key(Some("TEAM123456"), Some("KEY1234567"))
        .unwrap();
    let key = DeveloperKey::from_p8_pem(
        &generated.team_id,
        &generated.key_id,
        &generated.private_key_pem,
    )
    .unwrap();
    let client =
        AppleClient::new(apple.endpoints(), Duration::from_secs(5)).expect("an HTTP client");
    Setup {
        apple,
        client,
        key,
        pem: generated.private_key_pem,
    }
}

impl Setup {
    fn secret(&self, client_id: &str) -> ClientSecret {
        self.key
            .mint(client_id, self.apple.now(), Duration::from_secs(300))
            .unwrap()
    }

    fn code(&self, client_id: &str) -> String {
        let request = IdentityTokenRequest {
            client_id: Some(client_id.into()),
            ..Default::default()
        };
        self.apple
            .mint_identity_token(request)
            .unwrap()
            .authorization_code
    }

    /// A secret with any header and claims, signed in JOSE form or (`der`) in DER form.
    fn forged_secret(
        &self,
        header: serde_json::Value,
        claims: serde_json::Value,
        der: bool,
    ) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = if der {
            let pair = rcgen::KeyPair::from_pem(&self.pem).unwrap();
            URL_SAFE_NO_PAD.encode(pair.sign(input.as_bytes()).unwrap())
        } else {
            let key = EncodingKey::from_ec_pem(self.pem.as_bytes()).unwrap();
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).unwrap()
        };
        format!("{input}.{signature}")
    }

    async fn exchange_with_raw_secret(&self, secret: &str, code: &str) -> reqwest::StatusCode {
        let response = http()
            .post(self.apple.endpoints().token())
            .form(&[
                ("client_id", APP),
                ("client_secret", secret),
                ("grant_type", "authorization_code"),
                ("code", code),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status != 200 {
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body, json!({"error": "invalid_client"}));
        }
        status
    }
}

fn rejected(
    result: Result<impl std::fmt::Debug, AppleApiError>,
) -> (OAuthErrorCode, Option<String>) {
    match result {
        Err(AppleApiError::Rejected(e)) => (e.error, e.error_description),
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_code_exchanges_for_apples_fields_and_an_id_token_that_verifies() {
    let s = setup().await;
    let tokens = s
        .client
        .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 3600);
    assert!(
        tokens.refresh_token.is_some(),
        "code exchange returns a refresh token"
    );
    let claims = verifier(&s.apple)
        .verify(&tokens.id_token, None)
        .await
        .unwrap();
    assert_eq!(claims.aud, APP);
}

#[tokio::test]
async fn a_code_cannot_be_used_twice() {
    let s = setup().await;
    let code = s.code(APP);
    s.client
        .exchange_code(APP, &s.secret(APP), &code, None)
        .await
        .unwrap();
    let (error, description) = rejected(
        s.client
            .exchange_code(APP, &s.secret(APP), &code, None)
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
    assert_eq!(
        description.as_deref(),
        Some("The code has expired or has been revoked.")
    );
}

#[tokio::test]
async fn a_code_cannot_be_exchanged_by_another_client() {
    let s = setup().await;
    let code = s.code(APP);
    let (error, description) = rejected(
        s.client
            .exchange_code(WEB, &s.secret(WEB), &code, None)
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
    assert_eq!(
        description.as_deref(),
        Some("client_id mismatch. The code was not issued to com.example.web.")
    );
    // The failed attempt did not use the code up for its rightful client.
    assert!(
        s.client
            .exchange_code(APP, &s.secret(APP), &code, None)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let s = setup().await;
    let code = s.code(APP);
    s.apple.advance_clock(301);
    let (error, _) = rejected(
        s.client
            .exchange_code(APP, &s.secret(APP), &code, None)
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
}

#[tokio::test]
async fn an_app_code_exchanged_with_a_redirect_uri_is_refused() {
    let s = setup().await;
    let code = s.code(APP);
    let (error, _) = rejected(
        s.client
            .exchange_code(APP, &s.secret(APP), &code, Some("https://example.com/cb"))
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
}

#[tokio::test]
async fn refresh_returns_no_new_refresh_token() {
    let s = setup().await;
    let tokens = s
        .client
        .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
        .await
        .unwrap();
    let refreshed = s
        .client
        .refresh(
            APP,
            &s.secret(APP),
            tokens.refresh_token.as_deref().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(refreshed.refresh_token, None);
    assert!(
        verifier(&s.apple)
            .verify(&refreshed.id_token, None)
            .await
            .is_ok()
    );
    // As recorded: at_hash, and neither auth_time nor nonce_supported.
    let claims = payload_claims(&refreshed.id_token);
    assert!(claims.get("at_hash").is_some());
    assert!(claims.get("auth_time").is_none(), "{claims}");
    assert!(claims.get("nonce_supported").is_none(), "{claims}");
}

#[tokio::test]
async fn token_answers_carry_apples_recorded_headers_and_our_client_reads_them() {
    let s = setup().await;
    let code = s.code(APP);
    let secret = s.secret(APP);
    let form = [
        ("client_id", APP),
        ("client_secret", secret.expose()),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
    ];
    let success = http()
        .post(s.apple.endpoints().token())
        .form(&form)
        .send()
        .await
        .unwrap();
    let failure = http()
        .post(s.apple.endpoints().token())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (success.status().as_u16(), failure.status().as_u16()),
        (200, 400),
        "the code is single-use"
    );
    for response in [&success, &failure] {
        let headers = response.headers();
        assert_eq!(
            headers["content-type"],
            "application/json;charset=ISO-8859-1"
        );
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["pragma"], "no-cache");
    }
    // siwa-core's client of the endpoint reads answers declared in that charset.
    let tokens = s
        .client
        .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
        .await
        .unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    let refused = s
        .client
        .exchange_code(APP, &s.secret(APP), &code, None)
        .await;
    assert_eq!(rejected(refused).0, OAuthErrorCode::InvalidGrant);
}

#[tokio::test]
async fn invalid_client_comes_without_a_description() {
    let s = setup().await;
    let status = s
        .exchange_with_raw_secret("not-a-secret", &s.code(APP))
        .await;
    assert_eq!(
        status, 400,
        "exchange_with_raw_secret asserts the exact body"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_no_longer_refreshes() {
    let s = setup().await;
    let tokens = s
        .client
        .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
        .await
        .unwrap();
    let refresh_token = tokens.refresh_token.unwrap();
    s.client
        .revoke(
            APP,
            &s.secret(APP),
            &refresh_token,
            TokenTypeHint::RefreshToken,
        )
        .await
        .unwrap();
    let (error, _) = rejected(s.client.refresh(APP, &s.secret(APP), &refresh_token).await);
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
}

#[tokio::test]
async fn revoking_an_access_token_revokes_its_refresh_token() {
    let s = setup().await;
    let tokens = s
        .client
        .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
        .await
        .unwrap();
    s.client
        .revoke(
            APP,
            &s.secret(APP),
            &tokens.access_token,
            TokenTypeHint::AccessToken,
        )
        .await
        .unwrap();
    let (error, _) = rejected(
        s.client
            .refresh(
                APP,
                &s.secret(APP),
                tokens.refresh_token.as_deref().unwrap(),
            )
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidGrant);
}

#[tokio::test]
async fn revoking_an_unknown_token_succeeds_with_an_empty_body() {
    let s = setup().await;
    let response = http()
        .post(s.apple.endpoints().revoke())
        .form(&[
            ("client_id", APP),
            ("client_secret", s.secret(APP).expose()),
            ("token", "never-issued"),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn revoke_needs_a_valid_client_secret() {
    let s = setup().await;
    let (error, _) = rejected(
        s.client
            .revoke(APP, &s.secret(WEB), "t", TokenTypeHint::RefreshToken)
            .await,
    );
    assert_eq!(error, OAuthErrorCode::InvalidClient);
}

fn claims(s: &Setup) -> serde_json::Value {
    let now = s.apple.now();
    json!({"iss": "TEAM123456", "iat": now, "exp": now + 300, "aud": "https://appleid.apple.com", "sub": APP})
}

fn header() -> serde_json::Value {
    json!({"alg": "ES256", "kid": "KEY1234567"})
}

fn with(mut v: serde_json::Value, k: &str, x: serde_json::Value) -> serde_json::Value {
    v[k] = x;
    v
}

#[tokio::test]
async fn the_client_secret_matrix_gets_apples_answers() {
    let s = setup().await;
    let now = s.apple.now();
    let good = s.forged_secret(header(), claims(&s), false);
    assert_eq!(
        s.exchange_with_raw_secret(&good, &s.code(APP)).await,
        200,
        "a well-made secret"
    );

    let refused = [
        ("DER signature", s.forged_secret(header(), claims(&s), true)),
        (
            "wrong kid",
            s.forged_secret(
                json!({"alg": "ES256", "kid": "OTHERKEY00"}),
                claims(&s),
                false,
            ),
        ),
        (
            "wrong team",
            s.forged_secret(
                header(),
                with(claims(&s), "iss", json!("OTHERTEAM0")),
                false,
            ),
        ),
        (
            "expired",
            s.forged_secret(
                header(),
                with(
                    with(claims(&s), "iat", json!(now - 600)),
                    "exp",
                    json!(now - 1),
                ),
                false,
            ),
        ),
        (
            "lifetime over six months",
            s.forged_secret(
                header(),
                {
                    // From the secret's own iat: a second read of the clock may have ticked.
                    let c = claims(&s);
                    let iat = c["iat"].as_i64().unwrap();
                    with(c, "exp", json!(iat + 15_777_001))
                },
                false,
            ),
        ),
        (
            "wrong sub",
            s.forged_secret(header(), with(claims(&s), "sub", json!(WEB)), false),
        ),
        (
            "wrong aud",
            s.forged_secret(
                header(),
                with(claims(&s), "aud", json!("https://account.apple.com")),
                false,
            ),
        ),
        ("not a JWT", "secret".to_owned()),
    ];
    for (what, secret) in refused {
        let status = s.exchange_with_raw_secret(&secret, &s.code(APP)).await;
        assert_eq!(status, 400, "{what}");
    }
}

#[tokio::test]
async fn malformed_requests_get_oauth_errors() {
    let s = setup().await;
    let post = |fields: Vec<(&'static str, String)>| {
        let url = s.apple.endpoints().token();
        async move { http().post(url).form(&fields).send().await.unwrap() }
    };
    let secret = s.secret(APP).expose().to_owned();
    let cases = [
        (
            vec![
                ("client_secret", secret.clone()),
                ("grant_type", "authorization_code".into()),
            ],
            "invalid_request",
        ),
        (
            vec![
                ("client_id", APP.into()),
                ("grant_type", "authorization_code".into()),
                ("code", "c".into()),
            ],
            "invalid_client",
        ),
        (
            vec![
                ("client_id", APP.into()),
                ("client_secret", secret.clone()),
                ("grant_type", "password".into()),
            ],
            "unsupported_grant_type",
        ),
        (
            vec![
                ("client_id", APP.into()),
                ("client_secret", secret.clone()),
                ("grant_type", "authorization_code".into()),
            ],
            "invalid_request",
        ),
    ];
    for (fields, expected) in cases {
        let response = post(fields).await;
        assert_eq!(response.status(), 400);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], expected);
    }
    let json_body = http()
        .post(s.apple.endpoints().token())
        .json(&json!({"client_id": APP}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    assert_eq!(
        json_body.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn the_mock_makes_client_secrets_for_curl_users() {
    let s = setup().await;
    let response: serde_json::Value = http()
        .post(format!("{}/mock/client-secret", s.apple.base_url()))
        .json(&json!({"clientId": APP}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = response["clientSecret"].as_str().unwrap();
    assert_eq!(s.exchange_with_raw_secret(secret, &s.code(APP)).await, 200);
}

#[tokio::test]
async fn revoking_one_token_ends_the_whole_authorization() {
    let s = setup().await;
    // Two devices of one user sign in: two codes, two refresh tokens of one authorization.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let exchanged = s
            .client
            .exchange_code(APP, &s.secret(APP), &s.code(APP), None)
            .await
            .unwrap();
        tokens.push(exchanged.refresh_token.unwrap());
    }
    assert_ne!(tokens[0], tokens[1]);
    s.client
        .revoke(APP, &s.secret(APP), &tokens[1], TokenTypeHint::RefreshToken)
        .await
        .unwrap();
    for token in &tokens {
        let (error, _) = rejected(s.client.refresh(APP, &s.secret(APP), token).await);
        assert_eq!(
            error,
            OAuthErrorCode::InvalidGrant,
            "every device's grant ends"
        );
    }
    // The app is unlinked: the next consent shares the name and email again.
    let again = s
        .apple
        .mint_identity_token(IdentityTokenRequest {
            client_id: Some(APP.into()),
            ..Default::default()
        })
        .unwrap();
    assert!(again.first_authorization);
    assert!(again.email.is_some());
}
