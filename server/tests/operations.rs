//! Health, readiness, metrics, OpenAPI, limits: what operators and load balancers rely on.

mod common;

use common::*;
use mock_apple::IdentityTokenRequest;
use serde_json::json;

on_both_databases!(
    health_and_readiness_answer,
    bodies_too_large_or_malformed_get_4xx_and_the_server_keeps_serving,
    metrics_count_requests_and_refusals_by_reason,
    the_openapi_document_lists_every_route,
    unknown_routes_answer_json_404,
    every_error_is_the_json_error_even_those_axum_makes,
    a_lowercase_bearer_scheme_is_accepted,
    responses_are_not_cached_or_sniffed_and_a_401_says_how_to_authenticate,
    readiness_needs_apples_keys_known_or_fetchable,
    readiness_needs_the_database_file_that_takes_the_writes,
);

async fn health_and_readiness_answer(h: Harness) {
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        h.http.get(h.url("/readyz")).send().await.unwrap().status(),
        200
    );
    h.server.state.store.close().await;
    // The database is asked at most once a second.
    tokio::time::sleep(siwa_server::testing::READINESS_INTERVAL).await;
    assert_eq!(
        h.http.get(h.url("/readyz")).send().await.unwrap().status(),
        503,
        "readiness checks the database"
    );
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

async fn bodies_too_large_or_malformed_get_4xx_and_the_server_keeps_serving(h: Harness) {
    let huge = json!({"identityToken": "a".repeat(64 * 1024)});
    let (status, body) = h.post("/v1/auth/apple", &huge).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (413, "body_too_large")
    );
    for raw in ["{", "[]", "null", "{\"identityToken\": {}}", "\u{0}"] {
        let response = h
            .http
            .post(h.url("/v1/auth/apple"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{raw:?}");
    }
    let text = h
        .http
        .post(h.url("/v1/auth/apple"))
        .body("identityToken=x")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let (status, _) = h.sign_in(IdentityTokenRequest::default(), None).await;
    assert_eq!(status, 200, "still serving");
    assert_eq!(h.users().await, 1);
}

async fn metrics_count_requests_and_refusals_by_reason(h: Harness) {
    let forged = h.mint(IdentityTokenRequest {
        client_id: Some("com.other".into()),
        ..Default::default()
    });
    h.post(
        "/auth/apple",
        &json!({"identityToken": forged.identity_token}),
    )
    .await;
    h.sign_in(IdentityTokenRequest::default(), None).await;
    let text = h.metrics().await;
    for needle in [
        "siwa_http_requests_total{route=\"/auth/apple\",method=\"POST\",status=\"401\"}",
        "siwa_verification_failures_total{reason=\"wrong_audience\"}",
        "siwa_http_request_duration_seconds_bucket",
        "siwa_apple_calls_total{endpoint=\"token\",outcome=\"ok\"}",
        "siwa_jwks_fetches",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
    assert!(!text.contains(&forged.identity_token));
}

async fn the_openapi_document_lists_every_route(h: Harness) {
    let doc: serde_json::Value = h
        .http
        .get(h.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/auth/apple",
        "/v1/auth/apple",
        "/v1/auth/refresh",
        "/v1/auth/logout",
        "/v1/me",
        "/v1/apple/notifications",
        "/v1/web/session",
        "/v1/web/token",
        "/v1/auth/exchange",
    ] {
        assert!(doc["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    assert!(doc["components"]["schemas"]["SignInRequest"].is_object());
    // Error codes as they are answered (not as Rust names them), and each code's meaning as
    // the schema of its own that generated clients read.
    let schemas = &doc["components"]["schemas"];
    let words = |schema: &str| -> Vec<String> {
        serde_json::from_value(schemas[schema]["enum"].clone()).unwrap()
    };
    let all: Vec<&str> = siwa_core::api::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(words("ErrorCode"), all);
    let mut by_meaning: Vec<String> = [
        "FixRequestCode",
        "RefreshSessionCode",
        "SignInAgainCode",
        "RetryLaterCode",
    ]
    .into_iter()
    .flat_map(words)
    .collect();
    by_meaning.sort();
    let mut all: Vec<String> = all.into_iter().map(str::to_owned).collect();
    all.sort();
    assert_eq!(by_meaning, all, "every code has exactly one meaning");
    assert!(words("RetryLaterCode").contains(&"apple_unavailable".to_owned()));
    assert!(words("SignInAgainCode").contains(&"not_signed_in".to_owned()));
}

async fn unknown_routes_answer_json_404(h: Harness) {
    let (status, body) = read(h.http.get(h.url("/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (404, "not_found")
    );
}

#[tokio::test]
async fn the_sign_in_routes_are_rate_limited_per_client_ip() {
    let h = Harness::start_with(Db::Sqlite, |c| c.rate_limit_per_minute = Some(3))
        .await
        .unwrap();
    let token = h.mint(IdentityTokenRequest::default()).identity_token;
    for _ in 0..3 {
        assert_eq!(
            h.post("/auth/apple", &json!({"identityToken": token}))
                .await
                .0,
            200
        );
    }
    let response = h
        .http
        .post(h.url("/v1/auth/apple"))
        .json(&json!({"identityToken": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = read(response).await;
    assert_eq!(body["error"], "rate_limited");
    // Routes that write nothing for an anonymous caller are not limited; refresh is (see
    // connections.rs).
    assert_eq!(
        h.http.get(h.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        h.post("/v1/auth/refresh", &json!({"refreshToken": "x"}))
            .await
            .0,
        429
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_applies_per_forwarded_client() {
    let h = Harness::start_with(Db::Sqlite, |c| {
        c.rate_limit_per_minute = Some(2);
        c.trusted_proxy_hops = 1;
    })
    .await
    .unwrap();
    let token = h.mint(IdentityTokenRequest::default()).identity_token;
    let post = |forwarded: &'static str| {
        h.http
            .post(h.url("/auth/apple"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"identityToken": token}))
            .send()
    };
    // Two clients behind the same load balancer have a limit each.
    for client in ["203.0.113.1", "203.0.113.2"] {
        assert_eq!(post(client).await.unwrap().status(), 200);
        assert_eq!(post(client).await.unwrap().status(), 200);
    }
    assert_eq!(post("203.0.113.1").await.unwrap().status(), 429);
    // A client cannot escape by forging entries to the left of what the proxy appended.
    assert_eq!(
        post("198.51.100.7, 203.0.113.1").await.unwrap().status(),
        429
    );
}

/// Azure Application Gateway writes `ip:port`, others `[v6]:port`: each such client has its
/// own limit, and an entry that is no address is not the proxy's bucket either.
#[tokio::test]
async fn forwarded_entries_with_ports_are_each_their_own_client() {
    let h = Harness::start_with(Db::Sqlite, |c| {
        c.rate_limit_per_minute = Some(2);
        c.trusted_proxy_hops = 1;
    })
    .await
    .unwrap();
    let refresh = |forwarded: String| {
        h.http
            .post(h.url("/v1/auth/refresh"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"refreshToken": "x"}))
            .send()
    };
    for n in 1..=30 {
        for forwarded in [
            format!("203.0.113.{n}:5{n:04}"),
            format!("[2001:db8:{n:x}::1]:443"),
        ] {
            let status = refresh(forwarded.clone()).await.unwrap().status();
            assert_eq!(status, 401, "{forwarded}");
        }
    }
    // One client behind the proxy that the proxy could not name does not lock out the rest.
    for _ in 0..3 {
        refresh("unknown".into()).await.unwrap();
    }
    assert_eq!(refresh("unknown".into()).await.unwrap().status(), 429);
    assert_eq!(
        refresh("203.0.113.200:1".into()).await.unwrap().status(),
        401
    );
}

#[tokio::test]
async fn a_bad_database_url_stops_start_up_with_a_clear_error() {
    let apple = mock_apple::MockApple::start().await.unwrap();
    let generated = apple.generate_developer_key(None, None).unwrap();
    let key = siwa_core::DeveloperKey::from_p8_pem(
        &generated.team_id,
        &generated.key_id,
        &generated.private_key_pem,
    )
    .unwrap();
    let config = config_for(&apple, key, "postgres://nobody@127.0.0.1:1/none");
    let error = siwa_server::start(config)
        .await
        .err()
        .expect("start-up fails");
    assert!(error.to_string().contains("database"), "{error}");
}

async fn every_error_is_the_json_error_even_those_axum_makes(h: Harness) {
    let big = vec![b'x'; 64 * 1024];
    let response = h
        .http
        .post(h.url("/v1/auth/logout"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );

    let response = h.http.get(h.url("/v1/auth/apple")).send().await.unwrap();
    assert_eq!(response.headers()["allow"], "POST");
    let (status, body) = read(response).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
}

async fn a_lowercase_bearer_scheme_is_accepted(h: Harness) {
    let (_, body) = h.sign_in(IdentityTokenRequest::default(), None).await;
    let access = body["session"]["accessToken"].as_str().unwrap();
    for scheme in ["bearer", "BEARER"] {
        let response = h
            .http
            .get(h.url("/v1/me"))
            .header("authorization", format!("{scheme} {access}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
}

async fn responses_are_not_cached_or_sniffed_and_a_401_says_how_to_authenticate(h: Harness) {
    let nonce = siwa_core::RawNonce::generate();
    let minted = h.mint(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..IdentityTokenRequest::default()
    });
    let body =
        serde_json::json!({"identityToken": minted.identity_token, "rawNonce": nonce.expose()});
    let response = h
        .http
        .post(h.url("/v1/auth/apple"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

    let health = h.http.get(h.url("/healthz")).send().await.unwrap();
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");

    let denied = h.http.get(h.url("/v1/me")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.headers()["www-authenticate"], "Bearer");
    assert_eq!(denied.headers()["cache-control"], "no-store");
}

async fn readiness_needs_apples_keys_known_or_fetchable(h: Harness) {
    // Nothing has fetched Apple's keys yet, and Apple's key endpoint is down.
    h.apple.set_fault(
        mock_apple::Endpoint::Keys,
        mock_apple::Fault {
            status: Some(503),
            ..mock_apple::Fault::default()
        },
    );
    let (status, body) = read(h.http.get(h.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["database"], "ok");
    assert_ne!(body["checks"]["appleKeys"], "ok");
}

async fn readiness_needs_the_database_file_that_takes_the_writes(h: Harness) {
    let (status, body) = read(h.http.get(h.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"], json!({"database": "ok", "appleKeys": "ok"}));
    let Some(file) = siwa_server::testing::sqlite_file(&h.database_url) else {
        return; // PostgreSQL: the closed-pool case of health_and_readiness_answer covers it
    };
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(siwa_server::testing::READINESS_INTERVAL).await;
    let (status, body) = read(h.http.get(h.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["checks"]["database"], "the database file is gone");
}
