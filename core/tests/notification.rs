//! Server-to-server notification payloads, verified with the identity-token key set.

mod common;

use common::*;
use serde_json::json;
use siwa_core::{EventType, VerifyError};

fn payload(events: serde_json::Value) -> String {
    mint(&json!({
        "iss": "https://appleid.apple.com",
        "aud": BUNDLE_ID,
        "iat": NOW,
        "exp": NOW + 300,
        "jti": "jti-1",
        "events": events,
    }))
}

fn event(kind: &str) -> serde_json::Value {
    json!({"type": kind, "sub": SUB, "event_time": NOW * 1000, "email": "x@privaterelay.appleid.com", "is_private_email": "true"})
}

#[tokio::test]
async fn events_encoded_as_a_string_are_decoded() {
    let token = payload(json!(event("email-disabled").to_string()));
    let n = verifier().verify_notification(&token).await.unwrap();
    assert_eq!(n.jti, "jti-1");
    assert_eq!(n.event.kind, EventType::EmailDisabled);
    assert_eq!(n.event.sub, SUB);
    assert_eq!(n.event.is_private_email, Some(true));
}

#[tokio::test]
async fn both_spellings_of_account_deletion_are_accepted() {
    for spelling in ["account-delete", "account-deleted"] {
        let token = payload(json!(event(spelling).to_string()));
        let n = verifier().verify_notification(&token).await.unwrap();
        assert_eq!(n.event.kind, EventType::AccountDeleted);
    }
}

#[tokio::test]
async fn each_event_type_is_recognised_and_unknown_ones_are_kept() {
    for (name, kind) in [
        ("email-enabled", EventType::EmailEnabled),
        ("consent-revoked", EventType::ConsentRevoked),
        ("something-new", EventType::Other("something-new".into())),
    ] {
        let n = verifier()
            .verify_notification(&payload(json!(event(name).to_string())))
            .await
            .unwrap();
        assert_eq!(n.event.kind, kind);
    }
}

#[tokio::test]
async fn a_notification_without_jti_is_refused() {
    let token = mint(
        &json!({"iss": "https://appleid.apple.com", "aud": BUNDLE_ID, "iat": NOW, "exp": NOW + 300, "events": event("email-enabled").to_string()}),
    );
    assert_eq!(
        verifier().verify_notification(&token).await.unwrap_err(),
        VerifyError::MissingClaim("jti")
    );
}

#[tokio::test]
async fn a_notification_for_another_app_is_refused() {
    let token = mint(
        &json!({"iss": "https://appleid.apple.com", "aud": "com.other", "iat": NOW, "exp": NOW + 300, "jti": "j", "events": event("email-enabled").to_string()}),
    );
    assert_eq!(
        verifier().verify_notification(&token).await.unwrap_err(),
        VerifyError::WrongAudience
    );
}

#[tokio::test]
async fn events_that_do_not_decode_are_malformed() {
    let token = payload(json!("{not json"));
    assert_eq!(
        verifier().verify_notification(&token).await.unwrap_err(),
        VerifyError::Malformed("events is not a notification event")
    );
}

#[tokio::test]
async fn a_notification_signed_by_another_key_is_refused() {
    let token = mint_with(
        &ATTACKER,
        &json!({"iss": "https://appleid.apple.com", "aud": BUNDLE_ID, "iat": NOW, "exp": NOW + 300, "jti": "j", "events": event("account-delete").to_string()}),
    );
    assert_eq!(
        verifier().verify_notification(&token).await.unwrap_err(),
        VerifyError::UnknownKey
    );
}
