//! The client logic against scripted server answers (wiremock): the sign-in's local checks,
//! the session's refresh and persistence, sign-out, deletion, and what each failure does.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use siwa_core::FixedClock;
use siwa_core::api::ErrorCode;
use siwa_core::client::{
    AppleCredential, Client, ClientConfig, ClientError, FileSessionStore, InMemorySessionStore,
    SessionStore, SignInAttempt,
};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const NOW: i64 = 1_790_000_000;
const SUB: &str = "001234.abcdef0123456789abcdef0123456789.1234";

/// A token as Apple would shape it. The client never checks signatures (the server does), so
/// the signature here is a placeholder.
fn identity_token(sub: &str, nonce: Option<&str>) -> String {
    let header = json!({"kid": "K1", "alg": "RS256"});
    let mut claims = json!({"iss": "https://appleid.apple.com", "aud": "com.example.app",
        "sub": sub, "iat": NOW, "exp": NOW + 600, "email": "jane@example.com",
        "email_verified": true});
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.c2lnbmF0dXJl", b64(&header), b64(&claims))
}

fn credential(attempt: &SignInAttempt) -> AppleCredential {
    AppleCredential {
        identity_token: identity_token(SUB, Some(attempt.hashed_nonce())),
        authorization_code: Some("c0de".into()),
        user: SUB.into(),
        given_name: Some("Jane".into()),
        family_name: Some("Appleseed".into()),
        email: Some("jane@example.com".into()),
    }
}

fn tokens(n: u32) -> Value {
    json!({"accessToken": format!("access-{n}"), "refreshToken": format!("refresh-{n}"),
           "expiresIn": 900, "tokenType": "Bearer"})
}

fn user_json() -> Value {
    json!({"id": "u1", "email": "jane@example.com", "emailVerified": true,
           "isPrivateEmail": false, "emailForwardingDisabled": false, "givenName": "Jane",
           "familyName": "Appleseed", "createdAt": NOW})
}

/// The server's answer to a sign-in: the user and session 1.
fn signed_in_answer() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"user": user_json(), "session": tokens(1), "isNewUser": true}))
}

fn error(code: &str) -> Value {
    json!({"error": code, "message": "fixed text"})
}

struct Harness {
    server: MockServer,
    clock: Arc<FixedClock>,
    store: Arc<InMemorySessionStore>,
    client: Client,
}

impl Harness {
    async fn new() -> Self {
        let server = MockServer::start().await;
        let clock = Arc::new(FixedClock::new(NOW));
        let store = Arc::new(InMemorySessionStore::new());
        let client = client_for(&server.uri(), clock.clone(), store.clone());
        Self {
            server,
            clock,
            store,
            client,
        }
    }

    /// Signs in through a scripted `/v1/auth/apple` that answers session 1.
    async fn signed_in(self) -> Self {
        let guard = Mock::given(method("POST"))
            .and(path("/v1/auth/apple"))
            .respond_with(signed_in_answer())
            .mount_as_scoped(&self.server)
            .await;
        let attempt = self.client.start_sign_in();
        self.client
            .complete_sign_in(&attempt, &credential(&attempt))
            .await
            .expect("sign-in");
        drop(guard);
        self
    }

    async fn requests_to(&self, route: &str) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        requests.iter().filter(|r| r.url.path() == route).count()
    }
}

fn client_for(url: &str, clock: Arc<FixedClock>, store: Arc<dyn SessionStore>) -> Client {
    let mut config = ClientConfig::new(url);
    config.clock = clock;
    config.timeout = Duration::from_millis(500);
    Client::new(config, store).expect("client")
}

fn stored(h: &Harness) -> Option<String> {
    h.store.load().unwrap()
}

#[tokio::test]
async fn an_attempt_gives_apple_the_lowercase_hex_sha256_of_a_fresh_nonce() {
    let h = Harness::new().await;
    let (a, b) = (h.client.start_sign_in(), h.client.start_sign_in());
    assert_eq!(a.hashed_nonce().len(), 64);
    assert!(
        a.hashed_nonce()
            .bytes()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    );
    assert_ne!(a.hashed_nonce(), b.hashed_nonce());
}

#[tokio::test]
async fn completing_sends_token_code_raw_nonce_and_name_then_keeps_the_session() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .expect(1)
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let user = h
        .client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await
        .unwrap();
    assert_eq!(user.id, "u1");
    assert_eq!(user.given_name.as_deref(), Some("Jane"));
    assert_eq!(h.client.current_user(), Some(user));
    assert_eq!(h.client.apple_user_id().as_deref(), Some(SUB));

    let request = &h.server.received_requests().await.unwrap()[0];
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["authorizationCode"], "c0de");
    assert_eq!(
        body["fullName"],
        json!({"givenName": "Jane", "familyName": "Appleseed"})
    );
    let raw = body["rawNonce"].as_str().unwrap();
    assert_eq!(
        siwa_core::RawNonce::new(raw).hashed().as_str(),
        attempt.hashed_nonce()
    );
    assert_eq!(body["identityToken"], credential(&attempt).identity_token);

    let stored = stored(&h).expect("the session is stored");
    assert!(stored.contains("access-1") && stored.contains("refresh-1"));
    assert!(!stored.contains(raw), "the raw nonce is never stored");
    assert_eq!(h.client.access_token().await.unwrap(), "access-1");
}

#[tokio::test]
async fn no_full_name_is_sent_when_apple_gave_none() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let mut returning = credential(&attempt);
    returning.given_name = None;
    returning.family_name = Some("  ".into());
    returning.authorization_code = None;
    h.client
        .complete_sign_in(&attempt, &returning)
        .await
        .unwrap();
    let body: Value =
        serde_json::from_slice(&h.server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(body.get("fullName").is_none(), "{body}");
    assert!(body.get("authorizationCode").is_none());
}

#[tokio::test]
async fn a_credential_for_another_attempt_is_refused_before_any_request() {
    let h = Harness::new().await;
    let attempt = h.client.start_sign_in();
    let other = h.client.start_sign_in();
    let result = h
        .client
        .complete_sign_in(&attempt, &credential(&other))
        .await;
    assert_eq!(result, Err(ClientError::NonceMismatch));

    let mut no_nonce = credential(&attempt);
    no_nonce.identity_token = identity_token(SUB, None);
    let result = h.client.complete_sign_in(&attempt, &no_nonce).await;
    assert_eq!(result, Err(ClientError::NonceMismatch));
    assert!(h.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_token_of_another_user_is_refused_before_any_request() {
    let h = Harness::new().await;
    let attempt = h.client.start_sign_in();
    let mut wrong = credential(&attempt);
    wrong.user = "000999.someone.else".into();
    let result = h.client.complete_sign_in(&attempt, &wrong).await;
    assert_eq!(result, Err(ClientError::UserMismatch));
    assert!(h.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_token_that_does_not_decode_is_refused_before_any_request() {
    let h = Harness::new().await;
    let attempt = h.client.start_sign_in();
    let mut garbage = credential(&attempt);
    garbage.identity_token = "not.a-token".into();
    let result = h.client.complete_sign_in(&attempt, &garbage).await;
    assert!(
        matches!(result, Err(ClientError::InvalidIdentityToken(_))),
        "{result:?}"
    );
    assert_eq!(result.unwrap_err().code(), "invalid_identity_token");
    assert!(h.server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_attempt_this_client_did_not_start_is_refused() {
    let h = Harness::new().await;
    let elsewhere = Harness::new().await.client.start_sign_in();
    let result = h
        .client
        .complete_sign_in(&elsewhere, &credential(&elsewhere))
        .await;
    assert_eq!(result, Err(ClientError::UnknownAttempt));
}

#[tokio::test]
async fn a_refused_sign_in_spends_the_attempt_and_stores_nothing() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error("wrong_audience")))
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let result = h
        .client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await;
    assert_eq!(
        result.unwrap_err().server_code(),
        Some(ErrorCode::WrongAudience)
    );
    assert_eq!(stored(&h), None);
    assert_eq!(h.client.current_user(), None);
    let again = h
        .client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await;
    assert_eq!(again, Err(ClientError::UnknownAttempt));
}

#[tokio::test]
async fn a_retry_that_finds_the_credential_spent_asks_for_a_new_sign_in() {
    // The first request signed in but its answer was lost; the retry is a replay.
    for code in ["token_replayed", "nonce_replayed"] {
        let h = Harness::new().await;
        Mock::given(method("POST"))
            .and(path("/v1/auth/apple"))
            .respond_with(ResponseTemplate::new(401).set_body_json(error(code)))
            .mount(&h.server)
            .await;
        let attempt = h.client.start_sign_in();
        let result = h
            .client
            .complete_sign_in(&attempt, &credential(&attempt))
            .await;
        assert_eq!(result, Err(ClientError::UnknownAttempt), "{code}");
        assert_eq!(stored(&h), None);
        // A new attempt works as ever.
        assert_ne!(
            h.client.start_sign_in().hashed_nonce(),
            attempt.hashed_nonce()
        );
    }
}

#[tokio::test]
async fn an_attempt_can_be_completed_again_after_a_server_fault() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(ResponseTemplate::new(503).set_body_json(error("database_unavailable")))
        .up_to_n_times(1)
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let first = h
        .client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await;
    assert!(first.unwrap_err().is_transient());
    h.client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await
        .expect("the retry succeeds");
}

#[tokio::test]
async fn a_fresh_access_token_is_served_without_a_request() {
    let h = Harness::new().await.signed_in().await;
    h.clock.advance(900 - 61);
    assert_eq!(h.client.access_token().await.unwrap(), "access-1");
    assert_eq!(
        h.server.received_requests().await.unwrap().len(),
        1,
        "the sign-in only"
    );
}

#[tokio::test]
async fn twenty_concurrent_callers_on_an_expiring_token_share_one_refresh() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .and(body_json(json!({"refreshToken": "refresh-1"})))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(tokens(2))
                .set_delay(Duration::from_millis(100)),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    h.clock.advance(900);
    let calls = (0..20).map(|_| h.client.access_token());
    let results = futures::future::join_all(calls).await;
    for result in results {
        assert_eq!(result.unwrap(), "access-2");
    }
    assert_eq!(h.requests_to("/v1/auth/refresh").await, 1);
    let stored = stored(&h).unwrap();
    assert!(stored.contains("refresh-2") && !stored.contains("refresh-1"));
}

#[tokio::test]
async fn a_forced_refresh_rotates_the_tokens_and_stores_them() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(2)))
        .expect(1)
        .mount(&h.server)
        .await;
    h.client.refresh_session().await.unwrap();
    assert_eq!(h.client.access_token().await.unwrap(), "access-2");
    assert!(stored(&h).unwrap().contains("refresh-2"));
}

#[tokio::test]
async fn a_reused_refresh_token_ends_the_local_session() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error("refresh_token_reused")))
        .mount(&h.server)
        .await;
    h.clock.advance(900);
    assert_eq!(
        h.client.access_token().await,
        Err(ClientError::SessionExpired)
    );
    assert_eq!(h.client.current_user(), None);
    assert_eq!(stored(&h), None);
    assert_eq!(h.client.access_token().await, Err(ClientError::NotSignedIn));
}

#[tokio::test]
async fn a_server_fault_during_refresh_keeps_a_token_that_has_not_expired() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(ResponseTemplate::new(500).set_body_json(error("internal_error")))
        .mount(&h.server)
        .await;
    h.clock.advance(900 - 30);
    assert_eq!(h.client.access_token().await.unwrap(), "access-1");
    h.clock.advance(30);
    let expired = h.client.access_token().await.unwrap_err();
    assert_eq!(expired.server_code(), Some(ErrorCode::InternalError));
    assert!(
        h.client.current_user().is_some(),
        "a fault does not sign out"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_network_error() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&h.server)
        .await;
    assert_eq!(
        h.client.refresh_user().await,
        Err(ClientError::Network("timed out"))
    );
    assert!(h.client.current_user().is_some());
}

#[tokio::test]
async fn refresh_user_reads_the_server_and_keeps_the_answer() {
    let h = Harness::new().await.signed_in().await;
    let mut renamed = user_json();
    renamed["givenName"] = json!("Janet");
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(renamed))
        .expect(1)
        .mount(&h.server)
        .await;
    let user = h.client.refresh_user().await.unwrap();
    assert_eq!(user.given_name.as_deref(), Some("Janet"));
    assert_eq!(
        h.client.current_user().unwrap().given_name.as_deref(),
        Some("Janet")
    );
    assert!(stored(&h).unwrap().contains("Janet"));
}

#[tokio::test]
async fn a_401_for_the_access_token_refreshes_once_and_retries() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error("invalid_access_token")))
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(2)))
        .expect(1)
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .and(header("authorization", "Bearer access-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user_json()))
        .mount(&h.server)
        .await;
    assert_eq!(h.client.refresh_user().await.unwrap().id, "u1");
    assert_eq!(h.requests_to("/v1/me").await, 2);
}

#[tokio::test]
async fn a_session_the_server_ended_is_forgotten_here() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("GET"))
        .and(path("/v1/me"))
        .respond_with(ResponseTemplate::new(401).set_body_json(error("session_ended")))
        .mount(&h.server)
        .await;
    assert_eq!(
        h.client.refresh_user().await,
        Err(ClientError::SessionExpired)
    );
    assert_eq!(h.client.current_user(), None);
    assert_eq!(stored(&h), None);
}

#[tokio::test]
async fn sign_out_ends_the_session_at_the_server_and_here() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/logout"))
        .and(body_json(json!({"refreshToken": "refresh-1"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&h.server)
        .await;
    h.client.sign_out().await.unwrap();
    assert_eq!(h.client.current_user(), None);
    assert_eq!(stored(&h), None);
}

#[tokio::test]
async fn sign_out_clears_local_state_even_when_the_server_is_unreachable() {
    let h = Harness::new().await.signed_in().await;
    let url = h.server.uri();
    drop(h.server);
    let store: Arc<dyn SessionStore> = h.store.clone();
    let client = client_for(&url, h.clock.clone(), store);
    assert!(client.current_user().is_some(), "restored from the store");
    client.sign_out().await.unwrap();
    assert_eq!(client.current_user(), None);
    assert_eq!(h.store.load().unwrap(), None);
}

#[tokio::test]
async fn deleting_the_account_calls_the_server_then_signs_out() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("DELETE"))
        .and(path("/v1/me"))
        .and(header("authorization", "Bearer access-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"deleted": true, "appleRevocation": "revoked"})),
        )
        .expect(1)
        .mount(&h.server)
        .await;
    h.client.delete_account().await.unwrap();
    assert_eq!(h.client.current_user(), None);
    assert_eq!(stored(&h), None);
}

#[tokio::test]
async fn a_failed_deletion_keeps_the_account_and_the_session() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("DELETE"))
        .and(path("/v1/me"))
        .respond_with(ResponseTemplate::new(503).set_body_json(error("database_unavailable")))
        .mount(&h.server)
        .await;
    let error = h.client.delete_account().await.unwrap_err();
    assert_eq!(error.server_code(), Some(ErrorCode::DatabaseUnavailable));
    assert!(h.client.current_user().is_some());
    assert!(stored(&h).is_some());
}

#[tokio::test]
async fn a_revoked_apple_credential_signs_out_locally_without_a_request() {
    let h = Harness::new().await.signed_in().await;
    h.client.credential_revoked().unwrap();
    assert_eq!(h.client.current_user(), None);
    assert_eq!(stored(&h), None);
    assert_eq!(
        h.server.received_requests().await.unwrap().len(),
        1,
        "the sign-in only"
    );
}

#[tokio::test]
async fn the_session_survives_a_restart_from_its_file() {
    let dir = std::env::temp_dir().join(format!("siwa-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("session.json");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .mount(&server)
        .await;
    let clock = Arc::new(FixedClock::new(NOW));
    let first = client_for(
        &server.uri(),
        clock.clone(),
        Arc::new(FileSessionStore::new(&file)),
    );
    let attempt = first.start_sign_in();
    let user = first
        .complete_sign_in(&attempt, &credential(&attempt))
        .await
        .unwrap();
    drop(first);

    let restarted = client_for(&server.uri(), clock, Arc::new(FileSessionStore::new(&file)));
    assert_eq!(restarted.current_user(), Some(user));
    assert_eq!(restarted.access_token().await.unwrap(), "access-1");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_stored_session_that_cannot_be_read_is_discarded() {
    let store = Arc::new(InMemorySessionStore::new());
    store.save("{not a session").unwrap();
    let client = client_for(
        "http://127.0.0.1:9",
        Arc::new(FixedClock::new(NOW)),
        store.clone(),
    );
    assert_eq!(client.current_user(), None);
    assert_eq!(store.load().unwrap(), None);
}

#[test]
fn the_server_url_must_be_an_absolute_http_url() {
    for url in [
        "",
        "api.example.com",
        "ftp://example.com",
        "mailto:a@example.com",
    ] {
        let result = Client::new(
            ClientConfig::new(url),
            Arc::new(InMemorySessionStore::new()),
        );
        assert!(
            matches!(result, Err(ClientError::InvalidServerUrl)),
            "{url}"
        );
    }
}

#[test]
fn plain_http_is_for_loopback_servers_only() {
    let make = |url: &str| {
        Client::new(
            ClientConfig::new(url),
            Arc::new(InMemorySessionStore::new()),
        )
    };
    for url in [
        "http://api.example.com",
        "http://10.0.2.2:3000",
        "http://192.168.1.20:3000",
        "http://127.0.0.1.example.com",
    ] {
        assert!(
            matches!(make(url), Err(ClientError::InsecureServerUrl)),
            "{url}"
        );
    }
    for url in [
        "https://api.example.com",
        "http://127.0.0.1:3000",
        "http://127.5.6.7",
        "http://[::1]:3000",
        "http://localhost:3000",
    ] {
        assert!(make(url).is_ok(), "{url}");
    }
}

#[tokio::test]
async fn routes_are_joined_under_a_server_path_prefix() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .expect(1)
        .mount(&server)
        .await;
    let url = format!("{}/identity", server.uri());
    let client = client_for(
        &url,
        Arc::new(FixedClock::new(NOW)),
        Arc::new(InMemorySessionStore::new()),
    );
    let attempt = client.start_sign_in();
    client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await
        .unwrap();
}

#[tokio::test]
async fn no_error_or_debug_output_carries_a_token_a_nonce_or_an_email() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(|_: &Request| {
            ResponseTemplate::new(401).set_body_json(error("invalid_refresh_token"))
        })
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let cred = credential(&attempt);
    let shown = format!(
        "{:?} {:?} {:?} {}",
        cred,
        h.client.current_user(),
        h.client.refresh_session().await,
        h.client
            .complete_sign_in(&h.client.start_sign_in(), &cred)
            .await
            .unwrap_err(),
    );
    for secret in [
        "access-1",
        "refresh-1",
        "jane@example.com",
        "c0de",
        attempt.hashed_nonce(),
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(!shown.contains(&cred.identity_token));
}

#[tokio::test]
async fn a_sign_in_while_a_refresh_is_in_flight_wins_over_the_refresh() {
    let h = Harness::new().await.signed_in().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(tokens(2))
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"user": user_json(), "session": tokens(3), "isNewUser": false}),
            ),
        )
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    let credential = credential(&attempt);
    let (refreshed, signed_in) = tokio::join!(h.client.refresh_session(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.client.complete_sign_in(&attempt, &credential).await
    });
    refreshed.unwrap();
    signed_in.unwrap();
    assert_eq!(h.client.access_token().await.unwrap(), "access-3");
    assert!(stored(&h).unwrap().contains("refresh-3"));
}

/// A store whose writes fail (a full disk, a locked Keychain).
struct UnwritableStore;

impl SessionStore for UnwritableStore {
    fn load(&self) -> Result<Option<String>, siwa_core::client::StoreError> {
        Ok(None)
    }
    fn save(&self, _: &str) -> Result<(), siwa_core::client::StoreError> {
        Err(siwa_core::client::StoreError("disk full".into()))
    }
    fn clear(&self) -> Result<(), siwa_core::client::StoreError> {
        Ok(())
    }
}

/// A sign-in whose session cannot be stored is undone, not kept in memory only: no one is
/// signed in, and the server's session is ended.
#[tokio::test]
async fn a_sign_in_that_cannot_be_stored_is_undone_and_ended_at_the_server() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/logout"))
        .and(body_json(json!({"refreshToken": "refresh-1"})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let clock = Arc::new(FixedClock::new(NOW));
    let client = client_for(&server.uri(), clock, Arc::new(UnwritableStore));
    let attempt = client.start_sign_in();
    let result = client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await;
    assert!(matches!(result, Err(ClientError::Storage(_))), "{result:?}");
    assert!(client.current_user().is_none());
    assert_eq!(client.access_token().await, Err(ClientError::NotSignedIn));
}

/// The API never redirects; a 307 or 308 would re-send the refresh token in its JSON body to
/// wherever it points. The client follows none, and the other host hears nothing.
#[tokio::test]
async fn the_client_follows_no_redirect() {
    let h = Harness::new().await.signed_in().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tokens(2)))
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 307, 308] {
        let guard = Mock::given(method("POST"))
            .and(path("/v1/auth/refresh"))
            .respond_with(
                ResponseTemplate::new(status)
                    .insert_header("location", format!("{}/v1/auth/refresh", elsewhere.uri())),
            )
            .mount_as_scoped(&h.server)
            .await;
        assert_eq!(
            h.client.refresh_session().await,
            Err(ClientError::UnexpectedResponse(status))
        );
        drop(guard);
    }
    assert!(elsewhere.received_requests().await.unwrap().is_empty());
}

/// A token that lives a minute is not "about to expire" the moment it arrives: the margin is a
/// quarter of its lifetime, at most 60 s, and overlapping callers share one refresh.
#[tokio::test]
async fn a_short_lived_access_token_is_not_refreshed_the_moment_it_arrives() {
    let h = Harness::new().await;
    let short = |n: u32| {
        json!({"accessToken": format!("access-{n}"), "refreshToken": format!("refresh-{n}"),
               "expiresIn": 60, "tokenType": "Bearer"})
    };
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"user": user_json(), "session": short(1), "isNewUser": true}),
            ),
        )
        .mount(&h.server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/auth/refresh"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(short(2))
                .set_delay(Duration::from_millis(50)),
        )
        .mount(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    h.client
        .complete_sign_in(&attempt, &credential(&attempt))
        .await
        .unwrap();
    assert_eq!(h.client.access_token().await.unwrap(), "access-1");
    h.clock.advance(44);
    assert_eq!(h.client.access_token().await.unwrap(), "access-1");
    assert_eq!(h.requests_to("/v1/auth/refresh").await, 0);
    h.clock.advance(2);
    let calls = (0..20).map(|_| h.client.access_token());
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap(), "access-2");
    }
    // The fresh token is fresh: twenty more callers take it as it is.
    let calls = (0..20).map(|_| h.client.access_token());
    for result in futures::future::join_all(calls).await {
        assert_eq!(result.unwrap(), "access-2");
    }
    assert_eq!(h.requests_to("/v1/auth/refresh").await, 1);
}

/// A redirect URI the server does not list fails at the start, with the server's code, before
/// the app opens a browser that would show the refusal to the user alone.
#[tokio::test]
async fn a_browser_sign_in_asks_the_server_about_its_redirect_uri_first() {
    let h = Harness::new().await;
    let listed = "com.example.app://signed-in";
    Mock::given(method("GET"))
        .and(path("/v1/web/app-redirect-uri"))
        .and(wiremock::matchers::query_param("app_redirect_uri", listed))
        .respond_with(ResponseTemplate::new(204))
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/web/app-redirect-uri"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(error("app_redirect_uri_not_allowed")),
        )
        .mount(&h.server)
        .await;
    let url = h.client.start_browser_sign_in(listed).await.unwrap();
    assert!(
        url.starts_with(&format!("{}/v1/web/sign-in?", h.server.uri())),
        "{url}"
    );
    let refused = h
        .client
        .start_browser_sign_in("com.example.other://signed-in")
        .await
        .unwrap_err();
    assert_eq!(
        refused.server_code(),
        Some(ErrorCode::AppRedirectUriNotAllowed)
    );
    // The refused start left the listed one's attempt in place.
    assert_eq!(
        h.client
            .complete_browser_sign_in(&format!("{listed}?error=user_cancelled_authorize"))
            .await,
        Err(ClientError::Cancelled)
    );
    // A URI that is no URL is refused before any request.
    let before = h.requests_to("/v1/web/app-redirect-uri").await;
    assert_eq!(
        h.client.start_browser_sign_in("not a url").await,
        Err(ClientError::InvalidRedirectUri)
    );
    assert_eq!(h.requests_to("/v1/web/app-redirect-uri").await, before);
}

#[test]
fn retry_later_codes_are_retry_later_wherever_they_come_from() {
    assert!(ClientError::BrowserSignInFailed("apple_unavailable".into()).retry_later());
    assert!(ClientError::BrowserSignInFailed("database_unavailable".into()).retry_later());
    assert!(!ClientError::BrowserSignInFailed("invalid_state".into()).retry_later());
    assert!(!ClientError::BrowserSignInFailed("not_a_code".into()).retry_later());
    assert!(ClientError::Network("timed out").retry_later());
}

/// Apple gives the name once. When that sign-in fails and the app retries with a new
/// credential of the same user (which has no name), the client sends the name it was given.
#[tokio::test]
async fn a_retry_with_a_new_credential_sends_the_name_of_the_failed_one() {
    let h = Harness::new().await;
    let down = Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(ResponseTemplate::new(503).set_body_json(error("apple_unavailable")))
        .mount_as_scoped(&h.server)
        .await;
    let attempt = h.client.start_sign_in();
    assert!(
        h.client
            .complete_sign_in(&attempt, &credential(&attempt))
            .await
            .unwrap_err()
            .retry_later()
    );
    drop(down);
    Mock::given(method("POST"))
        .and(path("/v1/auth/apple"))
        .respond_with(signed_in_answer())
        .mount(&h.server)
        .await;
    let nameless = |attempt: &SignInAttempt| AppleCredential {
        given_name: None,
        family_name: None,
        email: None,
        ..credential(attempt)
    };
    let retry = h.client.start_sign_in();
    h.client
        .complete_sign_in(&retry, &nameless(&retry))
        .await
        .unwrap();
    let sent: Vec<Value> = h
        .server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.body_json().unwrap())
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["fullName"], sent[0]["fullName"]);
    assert_eq!(sent[1]["fullName"]["givenName"], "Jane");
    // Once signed in, the name is forgotten: a later sign-in sends none of its own.
    let later = h.client.start_sign_in();
    h.client
        .complete_sign_in(&later, &nameless(&later))
        .await
        .unwrap();
    let last: Value = h.server.received_requests().await.unwrap()[2]
        .body_json()
        .unwrap();
    assert!(last.get("fullName").is_none(), "{last}");
}
