//! Sign-in, end to end against `mock-apple`, on SQLite and PostgreSQL.

mod common;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest};
use serde_json::{Value, json};
use siwa_core::RawNonce;

fn default() -> IdentityTokenRequest {
    IdentityTokenRequest::default()
}

on_both_databases!(
    a_first_sign_in_creates_the_user_and_a_session,
    an_address_on_either_relay_domain_is_private,
    the_seed_route_answers_what_the_seed_client_reads,
    the_seed_route_refuses_bad_input_with_4xx,
    a_replayed_nonce_is_refused_across_restarts_and_instances,
    the_name_from_the_first_authorization_is_kept,
    the_code_is_exchanged_with_a_secret_the_mock_accepts,
    a_refused_code_leaves_no_account_behind,
    apple_down_during_the_exchange_leaves_no_account_behind,
    a_first_authorizations_name_survives_a_failed_sign_in,
    a_code_of_another_user_is_refused_as_an_injection,
    a_hundred_concurrent_first_sign_ins_make_one_user,
    sign_in_keeps_working_when_the_jwks_endpoint_goes_down,
    a_token_for_another_app_is_refused,
    a_transferred_user_keeps_their_account,
    concurrent_seed_route_sign_ins_make_one_user_per_sub,
    two_instances_batching_the_same_users_lose_and_repeat_nothing,
    grouped_app_sign_ins_use_each_nonce_and_token_once,
    a_returning_sign_in_with_nothing_new_is_not_written,
    a_nonce_bearing_token_is_single_use_even_without_its_raw_nonce,
    a_name_with_control_characters_is_refused_and_nothing_is_written,
    a_name_longer_than_the_limit_is_refused,
    a_second_device_signing_in_does_not_unlink_the_app,
    an_identity_token_opens_one_session_nonce_or_not,
    an_app_and_a_web_grant_are_both_kept_and_both_revoked,
    the_grant_of_a_sign_in_that_loses_a_nonce_race_is_not_revoked,
    a_key_rotation_inside_an_attackers_refetch_cooldown_does_not_waste_the_code,
);

async fn a_first_sign_in_creates_the_user_and_a_session(h: Harness) {
    let (status, body) = h.sign_in(default(), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isNewUser"], true);
    assert_eq!(body["user"]["email"], "jane.appleseed@example.com");
    assert_eq!(body["user"]["emailVerified"], true);
    assert_eq!(body["session"]["tokenType"], "Bearer");
    assert_eq!(body["session"]["expiresIn"], 900);
    let access = body["session"]["accessToken"].as_str().unwrap();
    let (status, me) = h.get_auth("/v1/me", access).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], body["user"]["id"]);

    let (_, again) = h.sign_in(default(), None).await;
    assert_eq!(again["isNewUser"], false);
    assert_eq!(
        again["user"]["id"], body["user"]["id"],
        "the internal id is stable"
    );
    assert_eq!(h.users().await, 1);
}

async fn the_seed_route_answers_what_the_seed_client_reads(h: Harness) {
    let minted = h.mint(IdentityTokenRequest {
        booleans_as: mock_apple::BooleanForm::String,
        ..default()
    });
    let (status, body) = h
        .post(
            "/auth/apple",
            &json!({"identityToken": minted.identity_token}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(
        body["user"]["id"], minted.sub,
        "the seed route's id is Apple's sub"
    );
    assert_eq!(body["user"]["email"], "jane.appleseed@example.com");
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(body["isNewUser"], true);
    assert_eq!(h.users().await, 1, "it signs the user in like /v1");
}

async fn the_seed_route_refuses_bad_input_with_4xx(h: Harness) {
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (json!({"identityToken": 42}), 400, "invalid_request"),
        (json!({"identityToken": null}), 400, "invalid_request"),
        (
            json!({"identityToken": "not.a.token"}),
            401,
            "token_malformed",
        ),
        (json!({"identityToken": ""}), 401, "token_malformed"),
    ] {
        let (got, answer) = h.post("/auth/apple", &body).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap()),
            (status, code),
            "{body}"
        );
        assert!(answer["message"].is_string());
    }
    let raw = h
        .http
        .post(h.url("/auth/apple"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    let forged = h.mint(IdentityTokenRequest {
        alg: mock_apple::TokenAlgorithm::Hs256PublicKey,
        ..default()
    });
    let (status, answer) = h
        .post(
            "/auth/apple",
            &json!({"identityToken": forged.identity_token}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (401, "unsupported_algorithm")
    );
    assert_eq!(h.users().await, 0);
}

async fn a_replayed_nonce_is_refused_across_restarts_and_instances(h: Harness) {
    let nonce = RawNonce::generate();
    let minted = h.mint(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..default()
    });
    let body = json!({"identityToken": minted.identity_token, "rawNonce": nonce.expose()});
    assert_eq!(h.post("/v1/auth/apple", &body).await.0, 200);
    let (status, answer) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (401, "nonce_replayed")
    );

    let other = h.another_instance().await;
    let (status, answer) = h.post_to(&other, "/v1/auth/apple", &body).await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (401, "nonce_replayed")
    );
    other.shutdown().await;

    let wrong = json!({"identityToken": minted.identity_token, "rawNonce": "another"});
    let (status, answer) = h.post("/v1/auth/apple", &wrong).await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (401, "nonce_mismatch")
    );
    let missing = h.mint(default());
    let (status, answer) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": missing.identity_token, "rawNonce": "n"}),
        )
        .await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (401, "nonce_missing")
    );
}

async fn the_name_from_the_first_authorization_is_kept(h: Harness) {
    let name = json!({"givenName": "Jane", "familyName": "Appleseed"});
    let (_, first) = h.sign_in(default(), Some(name)).await;
    assert_eq!(first["user"]["givenName"], "Jane");
    let (_, second) = h.sign_in(default(), None).await;
    assert_eq!(second["user"]["givenName"], "Jane");
    assert_eq!(second["user"]["familyName"], "Appleseed");
    let (_, third) = h
        .sign_in(
            default(),
            Some(json!({"givenName": "", "familyName": null})),
        )
        .await;
    assert_eq!(
        third["user"]["givenName"], "Jane",
        "never overwritten with nothing"
    );
}

async fn the_code_is_exchanged_with_a_secret_the_mock_accepts(h: Harness) {
    let (status, body) = h.sign_in(default(), None).await;
    assert_eq!(status, 200);
    assert_eq!(h.count(Endpoint::Token), 1);
    // The exchange's refresh token is kept for revocation: deleting the account revokes it.
    let (_, deleted) = h
        .delete_auth("/v1/me", body["session"]["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(deleted["appleRevocation"], "revoked");
    assert_eq!(h.count(Endpoint::Revoke), 1);
}

async fn a_refused_code_leaves_no_account_behind(h: Harness) {
    // A code issued to the Services ID, sent with an app token: Apple says invalid_grant.
    let web_code = h
        .mint(IdentityTokenRequest {
            client_id: Some(WEB.into()),
            ..default()
        })
        .authorization_code;
    let token = h.mint(default()).identity_token;
    let (status, body) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": token, "authorizationCode": web_code}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (400, "authorization_code_rejected")
    );
    assert_eq!(h.users().await, 0);
}

async fn apple_down_during_the_exchange_leaves_no_account_behind(h: Harness) {
    h.apple.set_fault(
        Endpoint::Token,
        Fault {
            status: Some(503),
            ..Fault::default()
        },
    );
    let nonce = RawNonce::generate();
    let minted = h.mint(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..default()
    });
    let body = json!({"identityToken": minted.identity_token, "authorizationCode": minted.authorization_code, "rawNonce": nonce.expose()});
    let (status, answer) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(
        (status, answer["error"].as_str().unwrap()),
        (503, "apple_unavailable")
    );
    assert_eq!(h.users().await, 0);
    // Nothing was burnt: once Apple is back, the same sign-in goes through.
    h.apple.clear_faults(None);
    assert_eq!(h.post("/v1/auth/apple", &body).await.0, 200);
}

/// Apple sends the name with the first authorization only. When that sign-in fails after its
/// token was verified (Apple's token endpoint down), the retry, a new authorization, comes
/// without a name: the account is made with the kept one, which is sealed at rest meanwhile.
async fn a_first_authorizations_name_survives_a_failed_sign_in(h: Harness) {
    h.apple.set_fault(
        Endpoint::Token,
        Fault {
            status: Some(503),
            count: Some(1),
            ..Fault::default()
        },
    );
    async fn sign_in(h: &Harness, name: Option<Value>) -> (u16, Value) {
        let nonce = RawNonce::generate();
        let minted = h.mint(IdentityTokenRequest {
            raw_nonce: Some(nonce.expose().into()),
            ..default()
        });
        let mut body = json!({"identityToken": minted.identity_token,
            "authorizationCode": minted.authorization_code, "rawNonce": nonce.expose()});
        if let Some(name) = name {
            body["fullName"] = name;
        }
        h.post("/v1/auth/apple", &body).await
    }
    let name = json!({"givenName": "Zephyrine", "familyName": "Quillfeather"});
    let (status, failed) = sign_in(&h, Some(name)).await;
    assert_eq!(
        (status, failed["error"].as_str()),
        (503, Some("apple_unavailable"))
    );
    assert_eq!(h.users().await, 0);
    let kept = h.query("SELECT sealed_name FROM pending_names").await;
    assert_eq!(kept.len(), 1);
    assert!(
        !kept[0].contains("Zephyrine") && !kept[0].contains("Quillfeather"),
        "the kept name is sealed: {}",
        kept[0]
    );
    let (status, retried) = sign_in(&h, None).await;
    assert_eq!(status, 200);
    assert_eq!(retried["isNewUser"], true);
    assert_eq!(retried["user"]["givenName"], "Zephyrine");
    assert_eq!(retried["user"]["familyName"], "Quillfeather");
    assert!(
        h.query("SELECT sealed_name FROM pending_names")
            .await
            .is_empty()
    );
    // Kept in the account, not in the answer only.
    let (_, again) = sign_in(&h, None).await;
    assert_eq!(again["user"]["givenName"], "Zephyrine");

    // A refusal of the request itself (another app's token) keeps nothing.
    let foreign = h.mint(IdentityTokenRequest {
        client_id: Some("com.example.other".into()),
        sub: Some("001.other.user".into()),
        ..default()
    });
    let body = json!({"identityToken": foreign.identity_token, "fullName": {"givenName": "X"}});
    assert_eq!(h.post("/v1/auth/apple", &body).await.0, 401);
    assert!(
        h.query("SELECT sealed_name FROM pending_names")
            .await
            .is_empty()
    );
}

/// Authorization code injection (RFC 9700, 4.5): a victim's identity token with the attacker's
/// code (or the reverse) is refused, and no account is made.
async fn a_code_of_another_user_is_refused_as_an_injection(h: Harness) {
    let victim = h.mint(IdentityTokenRequest {
        sub: Some("001.victim".into()),
        ..default()
    });
    let attacker = h.mint(IdentityTokenRequest {
        sub: Some("001.attacker".into()),
        ..default()
    });
    let body = json!({"identityToken": victim.identity_token,
        "authorizationCode": attacker.authorization_code});
    let (status, refused) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("authorization_code_mismatch"))
    );
    assert_eq!(h.users().await, 0);
}

async fn a_hundred_concurrent_first_sign_ins_make_one_user(h: Harness) {
    let bodies: Vec<_> = (0..100)
        .map(|_| json!({"identityToken": h.mint(default()).identity_token}))
        .collect();
    let results =
        futures::future::join_all(bodies.iter().map(|b| h.post("/v1/auth/apple", b))).await;
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{:?}",
        results.iter().find(|r| r.0 != 200)
    );
    let new_users = results
        .iter()
        .filter(|(_, b)| b["isNewUser"] == true)
        .count();
    assert_eq!(new_users, 1);
    assert_eq!(h.users().await, 1);
}

async fn sign_in_keeps_working_when_the_jwks_endpoint_goes_down(h: Harness) {
    assert_eq!(h.sign_in(default(), None).await.0, 200);
    h.apple.set_fault(
        Endpoint::Keys,
        Fault {
            status: Some(500),
            ..Fault::default()
        },
    );
    let minted = h.mint(default());
    let (status, _) = h
        .post(
            "/auth/apple",
            &json!({"identityToken": minted.identity_token}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(h.count(Endpoint::Keys), 1, "the cached key set served");
}

async fn a_token_for_another_app_is_refused(h: Harness) {
    let minted = h.mint(IdentityTokenRequest {
        client_id: Some("com.other.app".into()),
        ..default()
    });
    let (status, body) = h
        .post(
            "/auth/apple",
            &json!({"identityToken": minted.identity_token}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "wrong_audience")
    );
}

async fn a_transferred_user_keeps_their_account(h: Harness) {
    let (_, before) = h.sign_in(default(), None).await;
    // transfer_sub is the transfer identifier (F16), not the old sub: an unknown one links
    // nothing, and the user is new.
    let unknown = json!({"sub": "888888.eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.8888", "transfer_sub": h.apple.users()[0].sub});
    let minted = h.mint(IdentityTokenRequest {
        claims: unknown.as_object().unwrap().clone(),
        ..default()
    });
    let (status, stranger) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": minted.identity_token}),
        )
        .await;
    assert_eq!(status, 200, "{stranger}");
    assert_eq!(stranger["isNewUser"], true);
    // The identifier `transfer prepare` kept relinks the account, once.
    h.execute(&format!(
        "INSERT INTO user_transfers (user_id, target_team, transfer_sub, prepared_at) \
         VALUES ('{}', 'TEAMBBBBBB', '000999.dddddddddddddddddddddddddddddddd.0009', 0)",
        before["user"]["id"].as_str().unwrap()
    ))
    .await;
    let claims = json!({"sub": "999999.ffffffffffffffffffffffffffffffff.9999", "transfer_sub": "000999.dddddddddddddddddddddddddddddddd.0009"});
    for _ in 0..2 {
        let minted = h.mint(IdentityTokenRequest {
            claims: claims.as_object().unwrap().clone(),
            ..default()
        });
        let (status, after) = h
            .post(
                "/v1/auth/apple",
                &json!({"identityToken": minted.identity_token}),
            )
            .await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(after["user"]["id"], before["user"]["id"]);
        assert_eq!(after["isNewUser"], false);
    }
    assert_eq!(
        h.query("SELECT CAST(COUNT(*) AS TEXT) FROM user_transfers WHERE completed_at IS NOT NULL")
            .await,
        ["1"]
    );
}

async fn concurrent_seed_route_sign_ins_make_one_user_per_sub(h: Harness) {
    // On SQLite these are batched by the group-commit writer: each request still gets its own
    // answer, and each sub exactly one user.
    let bodies: Vec<_> = (0..200)
        .map(|i| {
            let sub = format!("000000.{:032}.0000", i % 50);
            let token = h
                .mint(IdentityTokenRequest {
                    sub: Some(sub),
                    claims: json!({"email": format!("user.{i}@example.com")})
                        .as_object()
                        .unwrap()
                        .clone(),
                    ..default()
                })
                .identity_token;
            json!({"identityToken": token})
        })
        .collect();
    let results = futures::future::join_all(bodies.iter().map(|b| h.post("/auth/apple", b))).await;
    assert!(results.iter().all(|(status, _)| *status == 200));
    let mut new_users: Vec<_> = results
        .iter()
        .filter(|(_, b)| b["isNewUser"] == true)
        .map(|(_, b)| b["user"]["id"].clone())
        .collect();
    new_users.sort_by_key(|v| v.to_string());
    new_users.dedup();
    assert_eq!(new_users.len(), 50);
    assert_eq!(
        results
            .iter()
            .filter(|(_, b)| b["isNewUser"] == true)
            .count(),
        50
    );
    assert_eq!(h.users().await, 50);
}

async fn two_instances_batching_the_same_users_lose_and_repeat_nothing(h: Harness) {
    // Each instance's group-commit writer upserts the same 20 users in its batches, at once, the
    // two instances receiving them in opposite orders. On PostgreSQL the writers lock rows in
    // `apple_sub` order, so their batches do not deadlock (a batch that failed would be replayed
    // one by one). Every sign-in is answered 200, and counted exactly once: each brings an email
    // address of its own, so none is left unwritten as bringing nothing new.
    let other = h.another_instance().await;
    let bodies: Vec<_> = (0..240)
        .map(|i| {
            let token = h
                .mint(IdentityTokenRequest {
                    // Descending on one instance, ascending on the other.
                    sub: Some(format!(
                        "000000.{:032}.0000",
                        if i % 2 == 0 {
                            (i / 2) % 20
                        } else {
                            19 - (i / 2) % 20
                        }
                    )),
                    claims: json!({"email": format!("user.{i}@example.com")})
                        .as_object()
                        .unwrap()
                        .clone(),
                    ..default()
                })
                .identity_token;
            json!({"identityToken": token})
        })
        .collect();
    let (first, second) = (&h, &other);
    let results = futures::future::join_all(bodies.iter().enumerate().map(|(i, b)| async move {
        if i % 2 == 0 {
            first.post("/auth/apple", b).await
        } else {
            first.post_to(second, "/auth/apple", b).await
        }
    }))
    .await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(h.users().await, 20);
    let counts = h
        .query("SELECT CAST(sign_in_count AS TEXT) FROM users")
        .await;
    let total: i64 = counts.iter().map(|c| c.parse::<i64>().unwrap()).sum();
    assert_eq!(total, 240, "a sign-in was lost or counted twice");
    other.shutdown().await;
}

/// The apps' route, many at once, as the group-commit writer groups them: each nonce and each
/// identity token opens one session, whether its twin is in the same group, the next one, or
/// another instance's; every refusal is the specific one, and a refused sign-in writes nothing.
async fn grouped_app_sign_ins_use_each_nonce_and_token_once(h: Harness) {
    let other = h.another_instance().await;
    let mut bodies = Vec::new();
    let sub = |n: usize| format!("000000.{n:032}.0000");
    // 40 users, each token with a nonce of its own, sent three times.
    for i in 0..40 {
        let nonce = RawNonce::generate();
        let minted = h.mint(IdentityTokenRequest {
            sub: Some(sub(i)),
            raw_nonce: Some(nonce.expose().into()),
            ..default()
        });
        let body = json!({"identityToken": minted.identity_token, "rawNonce": nonce.expose()});
        bodies.extend([
            ("nonce", body.clone()),
            ("nonce", body.clone()),
            ("nonce", body),
        ]);
    }
    // 10 pairs of users whose two tokens carry one nonce: one of each pair signs in.
    for i in 0..10 {
        let nonce = RawNonce::generate();
        for user in [100 + i, 200 + i] {
            let minted = h.mint(IdentityTokenRequest {
                sub: Some(sub(user)),
                raw_nonce: Some(nonce.expose().into()),
                ..default()
            });
            bodies.push((
                "pair",
                json!({"identityToken": minted.identity_token, "rawNonce": nonce.expose()}),
            ));
        }
    }
    // 10 users whose tokens carry no nonce, sent three times.
    for i in 0..10 {
        let minted = h.mint(IdentityTokenRequest {
            sub: Some(sub(300 + i)),
            ..default()
        });
        let body = json!({"identityToken": minted.identity_token});
        bodies.extend([
            ("token", body.clone()),
            ("token", body.clone()),
            ("token", body),
        ]);
    }
    let (first, second) = (&h, &other);
    let results = futures::future::join_all(bodies.iter().enumerate().map(
        |(i, (kind, body))| async move {
            let answer = if i % 5 == 4 {
                first.post_to(second, "/v1/auth/apple", body).await
            } else {
                first.post("/v1/auth/apple", body).await
            };
            (*kind, answer)
        },
    ))
    .await;
    let mut signed_in = Vec::new();
    for (kind, (status, body)) in &results {
        match (status, body["error"].as_str()) {
            (200, None) => signed_in.push((*kind, body.clone())),
            (401, Some("nonce_replayed")) => assert_ne!(*kind, "token", "{body}"),
            (401, Some("token_replayed")) => assert_eq!(*kind, "token", "{body}"),
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    let count = |kind: &str| signed_in.iter().filter(|(k, _)| *k == kind).count();
    assert_eq!(
        (count("nonce"), count("pair"), count("token")),
        (40, 10, 10),
        "each nonce and each token signed in exactly once"
    );
    // Every answered session was committed: its tokens work.
    for (_, body) in &signed_in {
        assert_eq!(body["isNewUser"], true);
        let access = body["session"]["accessToken"].as_str().unwrap();
        assert_eq!(h.get_auth("/v1/me", access).await.0, 200);
        let refresh = json!({"refreshToken": body["session"]["refreshToken"]});
        assert_eq!(h.post("/v1/auth/refresh", &refresh).await.0, 200);
    }
    assert_eq!(h.users().await, 60);
    for (table, rows) in [
        ("sessions", "60"),
        ("used_nonces", "50"),
        // Only tokens without a nonce: a recorded nonce keeps its token from signing in again.
        ("used_identity_tokens", "10"),
    ] {
        let sql = format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}");
        assert_eq!(
            h.query(&sql).await,
            [rows],
            "{table}: a refused sign-in wrote"
        );
    }
    other.shutdown().await;
}

async fn a_returning_sign_in_with_nothing_new_is_not_written(h: Harness) {
    // The seed route's sign-ins of one user: the first creates the row; a second within the
    // minute, the same token's claims, is answered from the row without a write; one with
    // a new email address is written.
    let token = |email: &str| {
        h.mint(IdentityTokenRequest {
            sub: Some("001.returning.1".into()),
            claims: json!({"email": email}).as_object().unwrap().clone(),
            ..default()
        })
        .identity_token
    };
    let row = || h.query("SELECT email || ' ' || CAST(sign_in_count AS TEXT) FROM users");
    // Whether the sign-in, answered 200, made a new user.
    let h = &h;
    let is_new = |token: String| async move {
        let (status, body) = h
            .post("/auth/apple", &json!({"identityToken": token}))
            .await;
        assert_eq!(status, 200, "{body}");
        body["isNewUser"].as_bool().unwrap()
    };
    let first = token("first@example.com");
    assert!(is_new(first.clone()).await);
    assert!(!is_new(first).await);
    assert!(!is_new(token("first@example.com")).await);
    let kept = row().await;
    assert_eq!(
        kept,
        ["first@example.com 1"],
        "nothing new, nothing written"
    );
    assert!(!is_new(token("second@example.com")).await);
    let moved = row().await;
    assert_eq!(moved, ["second@example.com 2"], "a new email is written");
}

async fn a_nonce_bearing_token_is_single_use_even_without_its_raw_nonce(h: Harness) {
    let nonce = RawNonce::generate();
    let minted = h.mint(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..default()
    });
    let with_nonce = json!({"identityToken": minted.identity_token, "rawNonce": nonce.expose()});
    let without = json!({"identityToken": minted.identity_token});

    let (status, body) = h.post("/v1/auth/apple", &without).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("nonce_missing")),
        "{body}"
    );
    let (status, _) = h.post("/v1/auth/apple", &with_nonce).await;
    assert_eq!(status, 200);
    let (status, body) = h.post("/v1/auth/apple", &with_nonce).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("nonce_replayed"))
    );
    let (status, body) = h.post("/v1/auth/apple", &without).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("nonce_missing"))
    );

    // A token minted without a nonce needs none.
    let plain = h.mint(default());
    let (status, _) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": plain.identity_token}),
        )
        .await;
    assert_eq!(status, 200);
}

async fn a_name_with_control_characters_is_refused_and_nothing_is_written(h: Harness) {
    for name in [
        json!({"givenName": "Ja\u{0}ne"}),
        json!({"familyName": "Apple\nseed"}),
    ] {
        let (status, body) = h.sign_in(default(), Some(name)).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request");
    }
    assert_eq!(h.users().await, 0);
    assert_eq!(
        h.count(Endpoint::Token),
        0,
        "refused before the code was spent"
    );
}

async fn a_name_longer_than_the_limit_is_refused(h: Harness) {
    let long = "J".repeat(101);
    let (status, body) = h.sign_in(default(), Some(json!({"givenName": long}))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("100"));
    let longest = "é".repeat(100);
    let (status, body) = h
        .sign_in(default(), Some(json!({"givenName": longest})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["givenName"], longest);
}

/// Waits (at most 5 s) for the mock to have had `n` revocations.
async fn a_second_device_signing_in_does_not_unlink_the_app(h: Harness) {
    // Two devices sign in (two codes, two grants of one authorization at Apple).
    let (status, first) = h.sign_in(default(), None).await;
    assert_eq!(status, 200);
    let first_grant = h.stored_apple_tokens().await;
    let (status, second) = h.sign_in(default(), None).await;
    assert_eq!(status, 200);
    assert_eq!(h.count(Endpoint::Token), 2);
    let kept = h.stored_apple_tokens().await;
    assert_eq!(kept.len(), 1, "one grant per client id");
    assert_ne!(first_grant, kept, "the newest grant is the one kept");
    // The revocation worker (polling every 100 ms here) finds nothing to revoke.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(h.server.state.store.pending_revocations().await.unwrap(), 0);
    assert_eq!(h.count(Endpoint::Revoke), 0, "Apple saw no revocation");
    let grants = [first_grant[0].clone(), kept[0].clone()];
    for grant in &grants {
        assert_eq!(
            h.apple_refresh(APP, grant).await,
            Ok(()),
            "both devices stay linked"
        );
    }
    for body in [&first, &second] {
        let access = body["session"]["accessToken"].as_str().unwrap();
        assert_eq!(h.get_auth("/v1/me", access).await.0, 200);
        let refresh = json!({"refreshToken": body["session"]["refreshToken"]});
        assert_eq!(h.post("/v1/auth/refresh", &refresh).await.0, 200);
    }
    // Deleting the account revokes, and that ends the whole authorization at Apple.
    let (_, deleted) = h
        .delete_auth("/v1/me", second["session"]["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(deleted["appleRevocation"], "revoked");
    assert_eq!(h.count(Endpoint::Revoke), 1);
    for grant in &grants {
        assert_eq!(
            h.apple_refresh(APP, grant).await,
            Err("invalid_grant".to_owned())
        );
    }
}

async fn an_app_and_a_web_grant_are_both_kept_and_both_revoked(h: Harness) {
    let (status, _) = h.sign_in(default(), None).await;
    assert_eq!(status, 200);
    let web = IdentityTokenRequest {
        client_id: Some(WEB.into()),
        ..default()
    };
    let (status, body) = h.sign_in(web, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h.stored_apple_tokens().await.len(), 2);
    let (_, deleted) = h
        .delete_auth("/v1/me", body["session"]["accessToken"].as_str().unwrap())
        .await;
    assert_eq!(deleted["appleRevocation"], "revoked");
    assert_eq!(h.count(Endpoint::Revoke), 2);
    assert!(h.stored_apple_tokens().await.is_empty());
}

async fn the_grant_of_a_sign_in_that_loses_a_nonce_race_is_not_revoked(h: Harness) {
    // Two credentials for one nonce, exchanged slowly enough that both pass the early replay
    // check before either writes its nonce.
    h.apple.set_fault(
        Endpoint::Token,
        Fault {
            delay_ms: 300,
            count: Some(2),
            ..Fault::default()
        },
    );
    let nonce = RawNonce::generate();
    let bodies: Vec<_> = (0..2)
        .map(|_| {
            let minted = h.mint(IdentityTokenRequest {
                raw_nonce: Some(nonce.expose().into()),
                ..default()
            });
            json!({"identityToken": minted.identity_token,
                   "authorizationCode": minted.authorization_code, "rawNonce": nonce.expose()})
        })
        .collect();
    let (a, b) = tokio::join!(
        h.post("/v1/auth/apple", &bodies[0]),
        h.post("/v1/auth/apple", &bodies[1])
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} {}", a.1, b.1);
    assert_eq!(h.count(Endpoint::Token), 2, "both codes were exchanged");
    // The loser's grant is of the same authorization as the winner's: revoking it would unlink
    // the app, and end the winner's grant with it.
    let winner = if a.0 == 200 { &a.1 } else { &b.1 };
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(h.count(Endpoint::Revoke), 0);
    let kept = h.stored_apple_tokens().await;
    assert_eq!(h.apple_refresh(APP, &kept[0]).await, Ok(()));
    let access = winner["session"]["accessToken"].as_str().unwrap();
    assert_eq!(h.get_auth("/v1/me", access).await.0, 200);
}

async fn a_key_rotation_inside_an_attackers_refetch_cooldown_does_not_waste_the_code(h: Harness) {
    // A genuine credential, signed with the key Apple uses now.
    let nonce = RawNonce::generate();
    let minted = h.mint(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..default()
    });
    // Someone sends a made-up kid: the server refetches Apple's keys, and may not again for a
    // while.
    let forged = h.mint(IdentityTokenRequest {
        kid: Some("made-up".into()),
        ..default()
    });
    let (status, body) = h
        .post(
            "/v1/auth/apple",
            &json!({"identityToken": forged.identity_token}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unknown_key")));
    // Apple rotates: the id_token of the code exchange is signed with a key the server has
    // not fetched.
    h.apple.add_key().unwrap();
    let body = json!({"identityToken": minted.identity_token,
                      "authorizationCode": minted.authorization_code, "rawNonce": nonce.expose()});
    let (status, answer) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(status, 200, "{answer}");
}

async fn an_identity_token_opens_one_session_nonce_or_not(h: Harness) {
    // A token without a nonce, sent without a code: what leaks through a request log.
    let token = h.mint(default()).identity_token;
    let body = json!({"identityToken": token});
    let (status, first) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = h.post("/v1/auth/apple", &body).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (401, Some("token_replayed"))
    );
    // Across instances too: the record is in the database.
    let other = h.another_instance().await;
    let (status, again) = h.post_to(&other, "/v1/auth/apple", &body).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (401, Some("token_replayed"))
    );
    // The first session is untouched.
    let access = first["session"]["accessToken"].as_str().unwrap();
    assert_eq!(h.get_auth("/v1/me", access).await.0, 200);
    // With a code, the replay is refused before Apple is called.
    let minted = h.mint(default());
    let with_code = json!({"identityToken": minted.identity_token,
                           "authorizationCode": minted.authorization_code});
    assert_eq!(h.post("/v1/auth/apple", &with_code).await.0, 200);
    let exchanges = h.count(Endpoint::Token);
    let (status, again) = h.post("/v1/auth/apple", &with_code).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (401, Some("token_replayed"))
    );
    assert_eq!(h.count(Endpoint::Token), exchanges);
    // The seed route opens no session and keeps answering repeats.
    for _ in 0..2 {
        assert_eq!(h.post("/auth/apple", &body).await.0, 200);
    }
}

async fn an_address_on_either_relay_domain_is_private(h: Harness) {
    // Apple issues new relay addresses on private.icloud.com since June 2026, beside
    // privaterelay.appleid.com; a token whose is_private_email is absent is read by its address.
    for (sub, email, private) in [
        ("001.relay.old", "ab12cd34ef@privaterelay.appleid.com", true),
        ("001.relay.new", "ab12cd34ef@private.icloud.com", true),
        ("001.relay.own", "jane@icloud.com", false),
    ] {
        let minted = h.mint(IdentityTokenRequest {
            sub: Some(sub.into()),
            claims: json!({"email": email, "is_private_email": null})
                .as_object()
                .unwrap()
                .clone(),
            ..default()
        });
        let (status, body) = h
            .post(
                "/v1/auth/apple",
                &json!({"identityToken": minted.identity_token}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["user"]["isPrivateEmail"], private, "{email}");
    }
}
