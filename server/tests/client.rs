//! siwa-core's client (what SiwaKit runs) against this server and mock-apple: the wire contract
//! between them, on both databases. The Swift end-to-end test covers the same path through FFI.

mod common;

use std::sync::Arc;

use common::*;
use mock_apple::{Endpoint, IdentityTokenRequest};
use siwa_core::client::{
    AppleCredential, Client, ClientConfig, ClientError, InMemorySessionStore, SignInAttempt,
};

on_both_databases!(
    a_client_signs_in_refreshes_reads_and_signs_out,
    the_name_from_the_first_authorization_is_kept_for_later_sign_ins,
    deleting_the_account_from_the_client_revokes_at_apple,
    a_token_for_another_app_is_refused_with_the_servers_code,
);

fn client(h: &Harness) -> Client {
    let config = ClientConfig::new(h.server.base_url());
    Client::new(config, Arc::new(InMemorySessionStore::new())).unwrap()
}

/// What Apple's sheet gives the app for `attempt`, from the mock.
fn credential(h: &Harness, attempt: &SignInAttempt, client_id: &str) -> AppleCredential {
    let minted = h.mint(IdentityTokenRequest {
        client_id: Some(client_id.into()),
        nonce: Some(attempt.hashed_nonce().into()),
        ..IdentityTokenRequest::default()
    });
    AppleCredential {
        identity_token: minted.identity_token,
        authorization_code: Some(minted.authorization_code),
        user: minted.sub,
        given_name: minted.given_name,
        family_name: minted.family_name,
        email: minted.email,
    }
}

async fn sign_in(h: &Harness, client: &Client) -> Result<siwa_core::client::User, ClientError> {
    let attempt = client.start_sign_in();
    let credential = credential(h, &attempt, APP);
    client.complete_sign_in(&attempt, &credential).await
}

async fn a_client_signs_in_refreshes_reads_and_signs_out(h: Harness) {
    let client = client(&h);
    let user = sign_in(&h, &client).await.unwrap();
    assert_eq!(user.email.as_deref(), Some("jane.appleseed@example.com"));
    assert!(user.email_verified);
    let first = client.access_token().await.unwrap();
    client.refresh_session().await.unwrap();
    assert_ne!(client.access_token().await.unwrap(), first);
    assert_eq!(client.refresh_user().await.unwrap(), user);
    client.sign_out().await.unwrap();
    assert_eq!(client.current_user(), None);
}

async fn the_name_from_the_first_authorization_is_kept_for_later_sign_ins(h: Harness) {
    let client = client(&h);
    let first = sign_in(&h, &client).await.unwrap();
    assert_eq!(first.given_name.as_deref(), Some("Jane"));
    client.sign_out().await.unwrap();
    let again = sign_in(&h, &client).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.given_name.as_deref(), Some("Jane"));
    assert_eq!(again.family_name.as_deref(), Some("Appleseed"));
}

async fn deleting_the_account_from_the_client_revokes_at_apple(h: Harness) {
    let client = client(&h);
    sign_in(&h, &client).await.unwrap();
    client.delete_account().await.unwrap();
    assert_eq!(client.current_user(), None);
    // The request's own attempt, or the revocation worker's when its poll claimed the queued
    // row first (both lease it: exactly one calls Apple).
    for _ in 0..50 {
        if h.count(Endpoint::Revoke) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(h.count(Endpoint::Revoke), 1);
    assert_eq!(h.users().await, 0);
}

async fn a_token_for_another_app_is_refused_with_the_servers_code(h: Harness) {
    let client = client(&h);
    let attempt = client.start_sign_in();
    let credential = credential(&h, &attempt, "com.example.other");
    let error = client
        .complete_sign_in(&attempt, &credential)
        .await
        .unwrap_err();
    assert_eq!(
        error.server_code(),
        Some(siwa_core::api::ErrorCode::WrongAudience)
    );
    assert_eq!(h.users().await, 0);
}
