//! Our own sessions: refresh rotation, reuse detection, logout, and the published key set.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mock_apple::IdentityTokenRequest;
use serde_json::{Value, json};
use siwa_core::Clock;

async fn signed_in(h: &Harness) -> Value {
    let (status, body) = h.sign_in(IdentityTokenRequest::default(), None).await;
    assert_eq!(status, 200, "{body}");
    body["session"].clone()
}

on_both_databases!(
    a_refresh_token_rotates,
    reusing_a_rotated_refresh_token_ends_the_session_family,
    a_token_presented_again_within_the_grace_gets_the_same_successor,
    a_burst_of_refreshes_rotates_each_token_once,
    a_session_is_forgotten_a_week_after_it_expires,
    logout_with_the_refresh_token_ends_the_session,
    logout_with_the_access_token_ends_the_session,
    refresh_refuses_garbage,
    access_tokens_verify_with_the_published_key_set,
    me_needs_a_valid_access_token,
);

async fn a_refresh_token_rotates(h: Harness) {
    let session = signed_in(&h).await;
    let (status, refreshed) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(refreshed["refreshToken"], session["refreshToken"]);
    assert_eq!(refreshed["tokenType"], "Bearer");
    let (status, _) = h
        .get_auth("/v1/me", refreshed["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    let (status, _) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": refreshed["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "the new one rotates in turn");
}

async fn reusing_a_rotated_refresh_token_ends_the_session_family(h: Harness) {
    let session = signed_in(&h).await;
    let (_, rotated) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    // Past the reuse grace (10 s here): the rotation was a minute ago.
    h.execute("UPDATE refresh_tokens SET used_at = used_at - 60 WHERE used_at IS NOT NULL")
        .await;
    let (status, body) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "refresh_token_reused")
    );
    // The thief's and the owner's latest tokens are dead alike.
    let (status, body) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": rotated["refreshToken"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_refresh_token")
    );
    let (status, body) = h
        .get_auth("/v1/me", rotated["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "session_ended")
    );
}

async fn logout_with_the_refresh_token_ends_the_session(h: Harness) {
    let session = signed_in(&h).await;
    let response = h
        .http
        .post(h.url("/v1/auth/logout"))
        .json(&json!({"refreshToken": session["refreshToken"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": session["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = h
        .get_auth("/v1/me", session["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(status, 401);
}

async fn logout_with_the_access_token_ends_the_session(h: Harness) {
    let session = signed_in(&h).await;
    let other = signed_in(&h).await;
    let response = h
        .http
        .post(h.url("/v1/auth/logout"))
        .bearer_auth(session["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        h.get_auth("/v1/me", session["accessToken"].as_str().unwrap())
            .await
            .0,
        401
    );
    assert_eq!(
        h.get_auth("/v1/me", other["accessToken"].as_str().unwrap())
            .await
            .0,
        200,
        "other sessions live on"
    );
    let anonymous = h.http.post(h.url("/v1/auth/logout")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

async fn refresh_refuses_garbage(h: Harness) {
    for body in [json!({"refreshToken": "nope"}), json!({"refreshToken": ""})] {
        let (status, answer) = h.post("/v1/auth/refresh", &body).await;
        assert_eq!(
            (status, answer["error"].as_str().unwrap()),
            (401, "invalid_refresh_token")
        );
    }
    let (status, answer) = h.post("/v1/auth/refresh", &json!({})).await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (400, "invalid_request")
    );
}

async fn access_tokens_verify_with_the_published_key_set(h: Harness) {
    let session = signed_in(&h).await;
    let jwks: jsonwebtoken::jwk::JwkSet = h
        .http
        .get(h.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["siwa"]);
    validation.set_issuer(&["siwa-server"]);
    let data =
        jsonwebtoken::decode::<Value>(session["accessToken"].as_str().unwrap(), &key, &validation)
            .unwrap();
    assert!(data.claims["sid"].is_string());
    // Every instance signs with the same key, kept in the database.
    let other = h.another_instance().await;
    let other_jwks: Value = h
        .http
        .get(format!("{}/.well-known/jwks.json", other.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        other_jwks["keys"][0]["kid"].as_str(),
        jwks.keys[0].common.key_id.as_deref()
    );
    other.shutdown().await;
}

async fn me_needs_a_valid_access_token(h: Harness) {
    let (status, body) = read(h.http.get(h.url("/v1/me")).send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "missing_access_token")
    );
    let (status, body) = h.get_auth("/v1/me", "eyJ.forged.token").await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_access_token")
    );
    // An Apple identity token is not an access token.
    let apple_token = h.mint(IdentityTokenRequest::default()).identity_token;
    let (status, _) = h.get_auth("/v1/me", &apple_token).await;
    assert_eq!(status, 401);
}

async fn a_token_presented_again_within_the_grace_gets_the_same_successor(h: Harness) {
    let session = signed_in(&h).await;
    let original = json!({"refreshToken": session["refreshToken"]});
    // Two processes sharing one stored session refresh at once, or a lost answer is retried.
    let (a, b) = tokio::join!(
        h.post("/v1/auth/refresh", &original),
        h.post("/v1/auth/refresh", &original)
    );
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(a.1["refreshToken"], b.1["refreshToken"], "one successor");
    let (status, again) = h.post("/v1/auth/refresh", &original).await;
    assert_eq!(status, 200);
    assert_eq!(again["refreshToken"], a.1["refreshToken"]);
    for answer in [&a.1, &b.1] {
        assert_eq!(
            h.get_auth("/v1/me", answer["accessToken"].as_str().unwrap())
                .await
                .0,
            200
        );
    }
    // The successor is kept sealed, never in clear.
    let stored = h
        .query("SELECT successor FROM refresh_tokens WHERE successor IS NOT NULL")
        .await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("sealed:v1:"), "sealed at rest");
    // Once the successor has moved on, the original is a reuse again: the session ends.
    let successor = json!({"refreshToken": a.1["refreshToken"]});
    let (status, next) = h.post("/v1/auth/refresh", &successor).await;
    assert_eq!(status, 200, "{next}");
    let (status, body) = h.post("/v1/auth/refresh", &original).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("refresh_token_reused"))
    );
    let (status, _) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": next["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 401, "the whole family ended");
    // Housekeeping forgets successors past the grace.
    h.server
        .state
        .store
        .purge_expired(siwa_core::SystemClock.now() + 60, 10)
        .await
        .unwrap();
    assert!(
        h.query("SELECT successor FROM refresh_tokens WHERE successor IS NOT NULL")
            .await
            .is_empty()
    );
}

/// Housekeeping keeps an expired session and its refresh tokens for a week, then forgets them;
/// a live session is untouched.
async fn a_session_is_forgotten_a_week_after_it_expires(h: Harness) {
    let ended = signed_in(&h).await;
    let (status, _) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": ended["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200);
    h.execute("UPDATE sessions SET expires_at = 1000").await;
    let live = signed_in(&h).await;
    let store = &h.server.state.store;
    let week = 7 * 24 * 3600;
    store.purge_expired(1000 + week - 1, 10).await.unwrap();
    assert_eq!(
        h.query("SELECT id FROM sessions").await.len(),
        2,
        "kept a week"
    );
    store.purge_expired(1000 + week + 1, 10).await.unwrap();
    assert_eq!(h.query("SELECT id FROM sessions").await.len(), 1);
    assert_eq!(
        h.query("SELECT token_hash FROM refresh_tokens").await.len(),
        1,
        "only the live session's token"
    );
    let (status, refreshed) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": live["refreshToken"]}),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (status, body) = h
        .post(
            "/v1/auth/refresh",
            &json!({"refreshToken": ended["refreshToken"]}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
}

/// A burst of refreshes, as the group-commit writer batches them: every live token rotates
/// once, a token presented twice at once gets one successor, an ended session's token stays
/// invalid (given back, not spent: presented again, it is not called a reuse), and nothing else
/// is written.
async fn a_burst_of_refreshes_rotates_each_token_once(h: Harness) {
    use siwa_server::testing::Rotation;
    let mut tokens = Vec::new();
    for _ in 0..24 {
        let session = signed_in(&h).await;
        tokens.push(session["refreshToken"].as_str().unwrap().to_owned());
    }
    let ended = tokens.pop().unwrap();
    let (status, _) = h
        .post("/v1/auth/logout", &json!({"refreshToken": ended}))
        .await;
    assert_eq!(status, 204);
    let store = &h.server.state.store;
    let now = siwa_core::SystemClock.now();
    let live = tokens.len();
    let presented: Vec<&str> = tokens
        .iter()
        .chain(&tokens)
        .map(String::as_str)
        .chain([ended.as_str(), "never-issued", ended.as_str()])
        .collect();
    let describe = |rotation: Rotation| match rotation {
        Rotation::Rotated {
            session_id,
            refresh_token,
            ..
        } => format!("rotated {session_id} {refresh_token}"),
        Rotation::Invalid => "invalid".to_owned(),
        Rotation::Reused => "reused".to_owned(),
    };
    let outcomes: Vec<String> = futures::future::join_all(
        presented
            .iter()
            .map(|t| store.rotate_refresh_token(t, now, 10)),
    )
    .await
    .into_iter()
    .map(|r| describe(r.unwrap()))
    .collect();
    for i in 0..live {
        assert!(outcomes[i].starts_with("rotated"), "{}", outcomes[i]);
        assert_eq!(outcomes[i], outcomes[live + i], "one successor per token");
    }
    assert_eq!(outcomes[2 * live..], ["invalid", "invalid", "invalid"]);
    let h = &h;
    let count = |rows: &'static str| async move {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {rows}");
        h.query(&sql).await[0].parse::<usize>().unwrap()
    };
    assert_eq!(count("refresh_tokens").await, 2 * live + 1);
    assert_eq!(
        count("refresh_tokens WHERE used_at IS NOT NULL").await,
        live
    );
    assert_eq!(
        count("sessions WHERE revoked_at IS NOT NULL").await,
        1,
        "only the logged-out session ended"
    );
    let (status, body) = h
        .post("/v1/auth/refresh", &json!({"refreshToken": ended}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_refresh_token"))
    );
    // Every successor rotates in turn, in another burst.
    let successors: Vec<String> = outcomes[..live]
        .iter()
        .map(|o| o.rsplit(' ').next().unwrap().to_owned())
        .collect();
    let next = futures::future::join_all(
        successors
            .iter()
            .map(|t| store.rotate_refresh_token(t, now, 10)),
    )
    .await;
    assert!(
        next.into_iter()
            .all(|r| matches!(r, Ok(Rotation::Rotated { .. })))
    );
}
