//! Account deletion with Apple token revocation, and Apple's notifications.

mod common;

use std::time::Duration;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest, NotificationRequest};
use serde_json::{Value, json};
use siwa_core::Clock;

async fn signed_in(h: &Harness) -> Value {
    let (status, body) = h.sign_in(IdentityTokenRequest::default(), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn access(body: &Value) -> &str {
    body["session"]["accessToken"].as_str().unwrap()
}

async fn notify(h: &Harness, kind: &str, jti: Option<&str>) -> (u16, Value) {
    let sent = h
        .apple
        .send_notification(NotificationRequest {
            url: h.url("/v1/apple/notifications"),
            kind: kind.into(),
            jti: jti.map(Into::into),
            ..Default::default()
        })
        .await
        .unwrap();
    (sent.status, json!(sent.jti))
}

on_both_databases!(
    deletion_revokes_apples_token_and_removes_the_data,
    deletion_with_apple_down_deletes_now_and_revokes_later,
    email_notifications_update_the_flag,
    consent_revoked_ends_every_session,
    a_late_consent_revoked_spares_the_sign_in_made_after_it,
    account_delete_removes_the_user_in_both_spellings,
    a_duplicate_notification_is_acknowledged_once,
    an_invalid_notification_is_refused,
    a_deletion_racing_two_sign_ins_always_completes,
    two_instances_attempt_each_queued_revocation_once_at_a_time,
);

async fn deletion_revokes_apples_token_and_removes_the_data(h: Harness) {
    let body = signed_in(&h).await;
    let (status, deleted) = h.delete_auth("/v1/me", access(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"deleted": true, "appleRevocation": "revoked"})
    );
    assert_eq!(h.count(Endpoint::Revoke), 1);
    assert_eq!(h.users().await, 0);
    let (status, _) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": body["session"]["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 401);
    // Apple forgot the app: signing in again shows the name sheet (a new user for us).
    let again = signed_in(&h).await;
    assert_eq!(again["isNewUser"], true);
}

async fn deletion_with_apple_down_deletes_now_and_revokes_later(h: Harness) {
    let body = signed_in(&h).await;
    h.apple.set_fault(
        Endpoint::Revoke,
        Fault {
            status: Some(503),
            count: Some(2),
            ..Fault::default()
        },
    );
    let (status, deleted) = h.delete_auth("/v1/me", access(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["appleRevocation"], "queued");
    assert_eq!(h.users().await, 0, "the data is gone at once");

    // The worker retries until Apple accepts (the test config polls every 100 ms).
    let state = h.server.state.clone();
    for _ in 0..100 {
        if state.store.pending_revocations().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state.store.pending_revocations().await.unwrap(), 0);
    assert_eq!(h.count(Endpoint::Revoke), 3, "two failures, then success");
}

async fn email_notifications_update_the_flag(h: Harness) {
    let body = signed_in(&h).await;
    assert_eq!(notify(&h, "email-disabled", None).await.0, 200);
    assert_eq!(
        h.get_auth("/v1/me", access(&body)).await.1["emailForwardingDisabled"],
        true
    );
    assert_eq!(notify(&h, "email-enabled", None).await.0, 200);
    assert_eq!(
        h.get_auth("/v1/me", access(&body)).await.1["emailForwardingDisabled"],
        false
    );
}

async fn consent_revoked_ends_every_session(h: Harness) {
    let first = signed_in(&h).await;
    let second = signed_in(&h).await;
    assert_eq!(notify(&h, "consent-revoked", None).await.0, 200);
    for body in [&first, &second] {
        let (status, answer) = h.get_auth("/v1/me", access(body)).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap()),
            (401, "session_ended")
        );
    }
    assert_eq!(h.users().await, 1, "the account stays; the sessions end");
}

async fn a_late_consent_revoked_spares_the_sign_in_made_after_it(h: Harness) {
    // The user revokes at Apple, then signs in again; Apple's notification of the revocation
    // arrives after the new sign-in (Apple retries until it gets a 200).
    let before = signed_in(&h).await;
    h.execute("UPDATE sessions SET created_at = created_at - 120")
        .await;
    h.execute("UPDATE apple_tokens SET created_at = created_at - 120")
        .await;
    let after = signed_in(&h).await;
    let event_time = (siwa_core::SystemClock.now() - 60) * 1000;
    let sent = h
        .apple
        .send_notification(NotificationRequest {
            url: h.url("/v1/apple/notifications"),
            kind: "consent-revoked".into(),
            event_time: Some(event_time),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.status, 200);
    let (status, answer) = h.get_auth("/v1/me", access(&before)).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("session_ended"))
    );
    assert_eq!(h.get_auth("/v1/me", access(&after)).await.0, 200);
    assert_eq!(
        h.stored_apple_tokens().await.len(),
        1,
        "the new grant is kept"
    );
}

async fn account_delete_removes_the_user_in_both_spellings(h: Harness) {
    let jane = h.apple.users()[0].clone();
    for spelling in ["account-delete", "account-deleted"] {
        let body = signed_in(&h).await;
        assert_eq!(notify(&h, spelling, None).await.0, 200);
        assert_eq!(h.users().await, 0, "{spelling}");
        assert_eq!(h.get_auth("/v1/me", access(&body)).await.0, 401);
        // The mock forgot the user with the event; put her back for the next round.
        let back = mock_apple::NewUser {
            sub: Some(jane.sub.clone()),
            email: Some(jane.email.clone()),
            ..Default::default()
        };
        h.apple.add_user(back).unwrap();
    }
}

async fn a_duplicate_notification_is_acknowledged_once(h: Harness) {
    let body = signed_in(&h).await;
    let (status, _) = notify(&h, "consent-revoked", Some("same-jti")).await;
    assert_eq!(status, 200);
    // Apple retries; a new session in between must not be ended by the retry.
    let later = signed_in(&h).await;
    let (status, _) = notify(&h, "consent-revoked", Some("same-jti")).await;
    assert_eq!(status, 200);
    assert_eq!(h.get_auth("/v1/me", access(&later)).await.0, 200);
    assert_eq!(h.get_auth("/v1/me", access(&body)).await.0, 401);
}

async fn an_invalid_notification_is_refused(h: Harness) {
    let forged = h
        .mint(IdentityTokenRequest {
            kid: Some("unknown".into()),
            ..Default::default()
        })
        .identity_token;
    for (payload, code) in [
        (json!({"payload": "garbage"}), "token_malformed"),
        (json!({"payload": forged}), "unknown_key"),
    ] {
        let (status, body) = h.post("/v1/apple/notifications", &payload).await;
        assert_eq!((status, body["error"].as_str().unwrap()), (400, code));
    }
    // An identity token is signed by the same keys but is no notification (no jti, no events).
    let identity = h.mint(IdentityTokenRequest::default()).identity_token;
    let (status, body) = h
        .post("/v1/apple/notifications", &json!({"payload": identity}))
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "missing_claim")
    );
    let (status, _) = h
        .post("/v1/apple/notifications", &json!({"events": "{}"}))
        .await;
    assert_eq!(status, 400);
}

async fn a_deletion_racing_two_sign_ins_always_completes(h: Harness) {
    for round in 0..30 {
        let body = signed_in(&h).await;
        let (deleted, first, second) = tokio::join!(
            h.delete_auth("/v1/me", access(&body)),
            h.sign_in(IdentityTokenRequest::default(), None),
            h.sign_in(IdentityTokenRequest::default(), None),
        );
        assert_eq!(deleted.0, 200, "round {round}: {}", deleted.1);
        // The deletion's revocation ends the user's whole authorization at Apple, codes
        // not yet exchanged included: a sign-in that exchanges after it is refused, cleanly.
        for (status, body) in [first, second] {
            assert!(
                status == 200
                    || (status, body["error"].as_str())
                        == (400, Some("authorization_code_rejected")),
                "round {round}: {body}"
            );
        }
    }
}

async fn two_instances_attempt_each_queued_revocation_once_at_a_time(h: Harness) {
    // Apple is down while ten accounts are deleted: ten revocations wait in the queue.
    h.apple.set_fault(
        Endpoint::Revoke,
        Fault {
            status: Some(503),
            ..Fault::default()
        },
    );
    for i in 0..10 {
        let request = IdentityTokenRequest {
            sub: Some(format!("001000.lease{i:02}.0001")),
            ..IdentityTokenRequest::default()
        };
        let (status, body) = h.sign_in(request, None).await;
        assert_eq!(status, 200, "{body}");
        let (_, deleted) = h.delete_auth("/v1/me", access(&body)).await;
        assert_eq!(deleted["appleRevocation"], "queued");
    }
    // A second instance polls the same queue; Apple comes back, slow enough that the two
    // would overlap on every row without a lease.
    let second = h.another_instance().await;
    h.apple.set_fault(
        Endpoint::Revoke,
        Fault {
            delay_ms: 300,
            ..Fault::default()
        },
    );
    h.apple.reset_request_counts();
    let state = h.server.state.clone();
    for _ in 0..200 {
        if state.store.pending_revocations().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state.store.pending_revocations().await.unwrap(), 0);
    assert_eq!(
        h.count(Endpoint::Revoke),
        10,
        "each revocation attempted once"
    );
    second.shutdown().await;
}
