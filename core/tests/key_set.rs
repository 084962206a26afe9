//! The key set against a scripted JWKS endpoint (wiremock), counting the endpoint's requests.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::future::join_all;
use serde_json::json;
use siwa_core::apple_side::{Jwk, JwkSet};
use siwa_core::{KeySet, KeySetOptions, Verifier, VerifyError};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers};

/// A JWKS endpoint whose answer a test can change while it runs.
#[derive(Clone)]
struct Script(Arc<Mutex<ResponseTemplate>>);

impl Script {
    fn set(&self, response: ResponseTemplate) {
        *self.0.lock().unwrap() = response;
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        self.0.lock().unwrap().clone()
    }
}

fn serving(set: &JwkSet) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(set)
}

struct Endpoint {
    server: MockServer,
    script: Script,
}

impl Endpoint {
    async fn start(initial: ResponseTemplate) -> Self {
        let server = MockServer::start().await;
        let script = Script(Arc::new(Mutex::new(initial)));
        Mock::given(matchers::method("GET"))
            .and(matchers::path("/auth/keys"))
            .respond_with(script.clone())
            .mount(&server)
            .await;
        Self { server, script }
    }

    async fn fetches(&self) -> usize {
        self.server.received_requests().await.unwrap().len()
    }

    fn verifier(&self, options: KeySetOptions) -> Verifier {
        let keys = KeySet::remote(format!("{}/auth/keys", self.server.uri()), options)
            .expect("an HTTP client");
        Verifier::new(config(), keys).unwrap()
    }
}

/// An endpoint whose keys are stale as soon as fetched, and a verifier free to refetch at every
/// verification: the harshest case for the cache.
async fn always_stale() -> (Endpoint, Verifier) {
    let endpoint =
        Endpoint::start(serving(&jwks(&[&APPLE])).insert_header("cache-control", "max-age=0"))
            .await;
    let verifier = endpoint.verifier(KeySetOptions {
        refetch_cooldown: Duration::ZERO,
        min_lifetime: Duration::ZERO,
        ..Default::default()
    });
    (endpoint, verifier)
}

/// Waits (at most 5 s) until the endpoint has had `n` requests: background revalidations
/// complete after the verification that started them.
async fn fetches_reach(endpoint: &Endpoint, n: usize) {
    for _ in 0..100 {
        if endpoint.fetches().await >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(endpoint.fetches().await, n);
}

fn token_with_kid(kid: &str) -> String {
    let header = json!({"alg": "RS256", "kid": kid});
    sign_raw(
        &header,
        &apple_claims(),
        &ATTACKER.encoding,
        jsonwebtoken::Algorithm::RS256,
    )
}

#[tokio::test]
async fn a_hundred_concurrent_verifications_on_a_cold_cache_cause_one_fetch() {
    // The delay keeps the fetch in flight while all hundred verifications arrive.
    let endpoint =
        Endpoint::start(serving(&jwks(&[&APPLE])).set_delay(Duration::from_millis(300))).await;
    let verifier = endpoint.verifier(KeySetOptions::default());
    let token = mint(&apple_claims());

    let results = join_all((0..100).map(|_| verifier.verify(&token, None))).await;

    assert!(
        results.iter().all(Result::is_ok),
        "{:?}",
        results.iter().find(|r| r.is_err())
    );
    assert_eq!(endpoint.fetches().await, 1);
    assert_eq!(verifier.key_set().stats().fetches, 1);
}

#[tokio::test]
async fn a_flood_of_random_kids_costs_at_most_one_fetch_per_cooldown() {
    let endpoint = Endpoint::start(serving(&jwks(&[&APPLE]))).await;
    let verifier = endpoint.verifier(KeySetOptions::default());

    let tokens: Vec<String> = (0..100)
        .map(|_| token_with_kid(&siwa_core::RawNonce::generate().expose()[..12]))
        .collect();
    let results = join_all(tokens.iter().map(|t| verifier.verify(t, None))).await;
    // Sequential ones too: each arrives after the previous fetch has completed.
    for token in &tokens {
        assert_eq!(
            verifier.verify(token, None).await.unwrap_err(),
            VerifyError::UnknownKey
        );
    }

    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap_err() == &VerifyError::UnknownKey)
    );
    assert_eq!(endpoint.fetches().await, 1);
    // Known keys still work during the flood.
    assert!(verifier.verify(&mint(&apple_claims()), None).await.is_ok());
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_after_the_cooldown() {
    let endpoint = Endpoint::start(serving(&jwks(&[&APPLE]))).await;
    let cooldown = Duration::from_millis(200);
    let verifier = endpoint.verifier(KeySetOptions {
        refetch_cooldown: cooldown,
        ..Default::default()
    });
    assert!(verifier.verify(&mint(&apple_claims()), None).await.is_ok());

    // Apple publishes a new key and starts signing with it.
    let new_key = &*ATTACKER; // any key not yet published will do
    endpoint.script.set(serving(&jwks(&[&APPLE, new_key])));
    let token = mint_with(new_key, &apple_claims());
    assert_eq!(
        verifier.verify(&token, None).await.unwrap_err(),
        VerifyError::UnknownKey
    );
    assert_eq!(
        endpoint.fetches().await,
        1,
        "no refetch inside the cooldown"
    );

    tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    assert!(verifier.verify(&token, None).await.is_ok());
    assert_eq!(endpoint.fetches().await, 2);
}

#[tokio::test]
async fn a_retired_key_stops_verifying_once_the_key_set_is_refetched() {
    let (endpoint, verifier) = always_stale().await;
    let token = mint(&apple_claims());
    assert!(verifier.verify(&token, None).await.is_ok());

    endpoint.script.set(serving(&jwks(&[&ATTACKER])));
    // The stale key still serves while the key set is refreshed in the background...
    assert!(verifier.verify(&token, None).await.is_ok());
    fetches_reach(&endpoint, 2).await;
    // ...and once the refreshed set is in, the retired key is gone.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        verifier.verify(&token, None).await.unwrap_err(),
        VerifyError::UnknownKey
    );
}

#[tokio::test]
async fn known_keys_keep_working_when_the_endpoint_goes_down() {
    let (endpoint, verifier) = always_stale().await;
    let token = mint(&apple_claims());
    assert!(verifier.verify(&token, None).await.is_ok());

    for failure in [
        ResponseTemplate::new(503),
        ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"),
        ResponseTemplate::new(200).set_body_json(json!({"keys": []})),
        ResponseTemplate::new(200).set_body_json(json!({"keys": "nope"})),
    ] {
        endpoint.script.set(failure);
        assert!(
            verifier.verify(&token, None).await.is_ok(),
            "stale keys must keep verifying"
        );
        // A key we never had is reported as the key set being unavailable, not as unknown.
        let unknown = mint_with(&ATTACKER, &apple_claims());
        assert_eq!(
            verifier.verify(&unknown, None).await.unwrap_err(),
            VerifyError::KeySetUnavailable
        );
    }
    assert!(verifier.key_set().stats().fetch_failures >= 4);
}

#[tokio::test]
async fn a_cold_cache_with_the_endpoint_down_reports_the_key_set_unavailable() {
    let endpoint = Endpoint::start(ResponseTemplate::new(500)).await;
    let verifier = endpoint.verifier(KeySetOptions::default());
    let token = mint(&apple_claims());
    assert_eq!(
        verifier.verify(&token, None).await.unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    // Within the cooldown the failure is not retried for every request.
    assert_eq!(
        verifier.verify(&token, None).await.unwrap_err(),
        VerifyError::KeySetUnavailable
    );
    assert_eq!(endpoint.fetches().await, 1);
}

#[tokio::test]
async fn a_slow_endpoint_is_cut_off_by_the_fetch_timeout() {
    let endpoint =
        Endpoint::start(serving(&jwks(&[&APPLE])).set_delay(Duration::from_secs(30))).await;
    let verifier = endpoint.verifier(KeySetOptions {
        fetch_timeout: Duration::from_millis(200),
        ..Default::default()
    });
    let error = verifier
        .verify(&mint(&apple_claims()), None)
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::KeySetUnavailable);
}

#[tokio::test]
async fn the_cache_lifetime_comes_from_cache_control() {
    let endpoint = Endpoint::start(
        serving(&jwks(&[&APPLE])).insert_header("cache-control", "public, max-age=3600"),
    )
    .await;
    let verifier = endpoint.verifier(KeySetOptions {
        refetch_cooldown: Duration::ZERO,
        ..Default::default()
    });
    let token = mint(&apple_claims());
    for _ in 0..10 {
        assert!(verifier.verify(&token, None).await.is_ok());
    }
    assert_eq!(endpoint.fetches().await, 1);
}

#[tokio::test]
async fn a_stale_cache_is_refreshed() {
    let (endpoint, verifier) = always_stale().await;
    let token = mint(&apple_claims());
    for n in 1..=3 {
        assert!(verifier.verify(&token, None).await.is_ok());
        fetches_reach(&endpoint, n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_slow_endpoint_never_stalls_requests_for_keys_we_have() {
    let (endpoint, verifier) = always_stale().await;
    let token = mint(&apple_claims());
    assert!(verifier.verify(&token, None).await.is_ok());
    // Apple's endpoint hangs past the fetch timeout (5 s by default).
    endpoint
        .script
        .set(serving(&jwks(&[&APPLE])).set_delay(Duration::from_secs(60)));
    // Every verification with a known key answers without waiting for the fetch: a behaviour,
    // not a speed (the bound is far below the endpoint's delay).
    let within = Duration::from_secs(2);
    for _ in 0..32 {
        let verified = tokio::time::timeout(within, verifier.verify(&token, None)).await;
        assert!(matches!(verified, Ok(Ok(_))), "waited for the key set");
    }
    // The endpoint records a request once it answers; the key set counts fetches it started
    // (once the test's single-threaded runtime lets the background task run).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = verifier.key_set().stats().fetches;
    assert_eq!(started, 2, "one background revalidation at a time");
}

#[tokio::test]
async fn weak_and_foreign_keys_in_the_set_are_never_used() {
    let weak_modulus = b64(&[0xC3; 128]); // 1024 bits
    let set = JwkSet {
        keys: vec![
            APPLE.jwk.clone(),
            Jwk::rs256("weak", weak_modulus, "AQAB"),
            Jwk {
                alg: Some("RS512".into()),
                ..Jwk::rs256("rs512", APPLE.jwk.n.clone().unwrap(), "AQAB")
            },
        ],
    };
    let endpoint = Endpoint::start(serving(&set)).await;
    let verifier = endpoint.verifier(KeySetOptions::default());
    for kid in ["weak", "rs512"] {
        let header = json!({"alg": "RS256", "kid": kid});
        let token = sign_raw(
            &header,
            &apple_claims(),
            &APPLE.encoding,
            jsonwebtoken::Algorithm::RS256,
        );
        assert_eq!(
            verifier.verify(&token, None).await.unwrap_err(),
            VerifyError::UnknownKey,
            "{kid}"
        );
    }
    assert!(verifier.verify(&mint(&apple_claims()), None).await.is_ok());
}

#[tokio::test]
async fn an_oversized_key_set_response_is_refused() {
    let padding = "x".repeat(100 * 1024);
    let body = json!({"keys": [APPLE.jwk], "padding": padding});
    let endpoint = Endpoint::start(ResponseTemplate::new(200).set_body_json(body)).await;
    let verifier = endpoint.verifier(KeySetOptions::default());
    let error = verifier
        .verify(&mint(&apple_claims()), None)
        .await
        .unwrap_err();
    assert_eq!(error, VerifyError::KeySetUnavailable);
}
