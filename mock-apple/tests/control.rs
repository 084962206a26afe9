//! The control API: notifications, faults, counters, users, clock, reset, and the binary.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest, NewUser, NotificationRequest};
use serde_json::json;
use siwa_core::{EventType, KeySet, KeySetOptions, Verifier, VerifierConfig, VerifyError};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers};

async fn receiver(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/apple/notifications"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_notification_arrives_in_apples_format_and_verifies() {
    let apple = apple().await;
    let server = receiver(200).await;
    let sent = apple
        .send_notification(NotificationRequest {
            url: format!("{}/apple/notifications", server.uri()),
            kind: "email-disabled".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.status, 200);

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    let payload = body["payload"].as_str().unwrap();
    // `events` is a JSON string, not an object (docs/apple-protocol.md, F12, P12).
    let claims = payload_claims(payload);
    assert!(claims["events"].is_string());
    assert!(claims["jti"].is_string());

    let notification = verifier(&apple).verify_notification(payload).await.unwrap();
    assert_eq!(notification.jti, sent.jti);
    assert_eq!(notification.aud, APP);
    assert_eq!(notification.event.kind, EventType::EmailDisabled);
    assert_eq!(notification.event.sub, apple.users()[0].sub);
    assert!(
        notification
            .event
            .email
            .as_deref()
            .unwrap()
            .ends_with("@privaterelay.appleid.com")
    );
    assert_eq!(notification.event.is_private_email, Some(true));
}

#[tokio::test]
async fn each_notification_type_is_sent_with_the_given_spelling() {
    let apple = apple().await;
    let server = receiver(200).await;
    for kind in [
        "email-enabled",
        "consent-revoked",
        "account-delete",
        "account-deleted",
    ] {
        let user = apple.add_user(NewUser::default()).unwrap();
        apple
            .send_notification(NotificationRequest {
                url: format!("{}/apple/notifications", server.uri()),
                kind: kind.into(),
                sub: Some(user.sub.clone()),
                jti: Some(format!("jti-{kind}")),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let verifier = verifier(&apple);
    let mut kinds = Vec::new();
    for request in server.received_requests().await.unwrap() {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let n = verifier
            .verify_notification(body["payload"].as_str().unwrap())
            .await
            .unwrap();
        kinds.push((n.jti, n.event.kind));
    }
    assert_eq!(
        kinds,
        vec![
            ("jti-email-enabled".into(), EventType::EmailEnabled),
            ("jti-consent-revoked".into(), EventType::ConsentRevoked),
            ("jti-account-delete".into(), EventType::AccountDeleted),
            ("jti-account-deleted".into(), EventType::AccountDeleted),
        ]
    );
    // Account deletion removed those users from the directory.
    assert_eq!(apple.users().len(), 3);
}

#[tokio::test]
async fn the_receivers_status_is_reported_and_an_unreachable_url_is_an_error() {
    let apple = apple().await;
    let server = receiver(500).await;
    let sent = apple
        .send_notification(NotificationRequest {
            url: format!("{}/apple/notifications", server.uri()),
            kind: "email-enabled".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.status, 500);
    let unreachable = apple
        .send_notification(NotificationRequest {
            url: "http://127.0.0.1:9/none".into(),
            kind: "email-enabled".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(
        unreachable,
        Err(mock_apple::MockError::Delivery(_))
    ));
    let bad_url = apple
        .send_notification(NotificationRequest {
            url: "not a url".into(),
            kind: "email-enabled".into(),
            ..Default::default()
        })
        .await;
    assert!(matches!(
        bad_url,
        Err(mock_apple::MockError::InvalidRequest(_))
    ));
}

#[tokio::test]
async fn notifications_can_be_sent_over_the_control_api() {
    let apple = apple().await;
    let server = receiver(200).await;
    let response = http()
        .post(format!("{}/mock/notifications", apple.base_url()))
        .json(&json!({"url": format!("{}/apple/notifications", server.uri()), "type": "consent-revoked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], 200);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

fn keyset_verifier(apple: &mock_apple::MockApple) -> Verifier {
    let options = KeySetOptions {
        refetch_cooldown: Duration::ZERO,
        fetch_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    Verifier::new(
        VerifierConfig::new([APP]),
        KeySet::remote(apple.jwks_url(), options).expect("an HTTP client"),
    )
    .unwrap()
}

#[tokio::test]
async fn a_fault_for_n_requests_then_clears_itself_and_counters_count_every_request() {
    let apple = apple().await;
    apple.set_fault(
        Endpoint::Keys,
        Fault {
            status: Some(503),
            count: Some(2),
            ..Fault::default()
        },
    );
    let token = apple
        .mint_identity_token(IdentityTokenRequest::default())
        .unwrap()
        .identity_token;

    assert_eq!(
        keyset_verifier(&apple)
            .verify(&token, None)
            .await
            .unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    assert_eq!(
        keyset_verifier(&apple)
            .verify(&token, None)
            .await
            .unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    assert!(keyset_verifier(&apple).verify(&token, None).await.is_ok());
    assert_eq!(apple.request_count(Endpoint::Keys), 3);
    assert_eq!(apple.request_count(Endpoint::Token), 0);
}

#[tokio::test]
async fn malformed_and_slow_faults_reach_the_client() {
    let apple = apple().await;
    let token = apple
        .mint_identity_token(IdentityTokenRequest::default())
        .unwrap()
        .identity_token;
    apple.set_fault(
        Endpoint::Keys,
        Fault {
            malformed_body: true,
            ..Fault::default()
        },
    );
    assert_eq!(
        keyset_verifier(&apple)
            .verify(&token, None)
            .await
            .unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    apple.set_fault(
        Endpoint::Keys,
        Fault {
            delay_ms: 2_000,
            ..Fault::default()
        },
    );
    assert_eq!(
        keyset_verifier(&apple)
            .verify(&token, None)
            .await
            .unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    apple.clear_faults(None);
    assert!(keyset_verifier(&apple).verify(&token, None).await.is_ok());
}

#[tokio::test]
async fn faults_and_counters_work_over_the_control_api() {
    let apple = apple().await;
    let base = apple.base_url().to_owned();
    let put = http()
        .put(format!("{base}/mock/faults/token"))
        .json(&json!({"status": 500, "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    let failed = http()
        .post(format!("{base}/auth/token"))
        .form(&[("client_id", APP)])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 500);
    let normal = http()
        .post(format!("{base}/auth/token"))
        .form(&[("client_id", APP)])
        .send()
        .await
        .unwrap();
    assert_eq!(normal.status(), 400);

    let counters: serde_json::Value = http()
        .get(format!("{base}/mock/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counters["token"], 2);
    assert_eq!(counters["keys"], 0);
    assert_eq!(
        http()
            .delete(format!("{base}/mock/counters"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(apple.request_count(Endpoint::Token), 0);

    let unknown = http()
        .put(format!("{base}/mock/faults/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = http()
        .put(format!("{base}/mock/faults/keys"))
        .json(&json!({"status": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn keys_rotate_over_the_control_api() {
    let apple = apple().await;
    let base = apple.base_url().to_owned();
    let added: serde_json::Value = http()
        .post(format!("{base}/mock/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = added["kid"].as_str().unwrap().to_owned();
    let jwks: serde_json::Value = http()
        .get(format!("{base}/auth/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
    assert_eq!(
        http()
            .delete(format!("{base}/mock/keys/{kid}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let jwks: serde_json::Value = http()
        .get(format!("{base}/auth/keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
    assert_eq!(
        http()
            .delete(format!("{base}/mock/keys/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn users_can_be_added_and_used() {
    let apple = apple().await;
    let base = apple.base_url().to_owned();
    let user: serde_json::Value = http()
        .post(format!("{base}/mock/users"))
        .json(&json!({"email": "sam@example.com", "givenName": "Sam", "realUserStatus": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sub = user["sub"].as_str().unwrap().to_owned();
    let dup = http()
        .post(format!("{base}/mock/users"))
        .json(&json!({"email": "sam@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), 409);
    let minted = apple
        .mint_identity_token(IdentityTokenRequest {
            sub: Some(sub.clone()),
            ..Default::default()
        })
        .unwrap();
    let claims = verifier(&apple)
        .verify(&minted.identity_token, None)
        .await
        .unwrap();
    assert_eq!(claims.sub, sub);
    assert_eq!(claims.email.as_deref(), Some("sam@example.com"));
    assert_eq!(
        claims.real_user_status,
        Some(siwa_core::RealUserStatus::Unknown)
    );
}

#[tokio::test]
async fn reset_forgets_users_grants_and_counters_but_keeps_the_keys() {
    let apple = apple().await;
    apple.add_user(NewUser::default()).unwrap();
    let minted = apple
        .mint_identity_token(IdentityTokenRequest::default())
        .unwrap();
    let jwks = serde_json::to_value(apple.jwks()).unwrap();
    http().get(apple.jwks_url()).send().await.unwrap();
    apple.advance_clock(1000);

    let reset = http()
        .post(format!("{}/mock/reset", apple.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 204);
    assert_eq!(apple.users().len(), 1);
    assert_eq!(apple.request_count(Endpoint::Keys), 0);
    assert_eq!(serde_json::to_value(apple.jwks()).unwrap(), jwks);
    assert!((apple.now() - siwa_core::Clock::now(&siwa_core::SystemClock)).abs() < 5);
    let (client, key) = developer(&apple);
    let secret = secret(&apple, &key, APP);
    assert!(
        client
            .exchange_code(APP, &secret, &minted.authorization_code, None)
            .await
            .is_err(),
        "codes are gone"
    );
}

#[tokio::test]
async fn the_clock_advances_over_the_control_api() {
    let apple = apple().await;
    let before = apple.now();
    let body: serde_json::Value = http()
        .post(format!("{}/mock/clock", apple.base_url()))
        .json(&json!({"advanceSecs": 600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["now"].as_i64().unwrap() >= before + 600);
}

#[test]
fn the_binary_prints_its_addresses_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-apple"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("the binary prints its base URL")
            .unwrap();
        printed.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("base URL:") {
            break url.trim().to_owned();
        }
    };
    for _ in 0..6 {
        printed.push(lines.next().unwrap().unwrap());
    }
    let output = printed.join("\n");
    assert!(output.contains(&format!("{base}/auth/keys")), "{output}");
    assert!(output.contains("curl -s -X POST"), "{output}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        http()
            .get(format!("{base}/auth/keys"))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}
