//! Secrets at rest: the server's signing key and Apple's refresh tokens are stored sealed with
//! the operator key, rows stored in clear before are sealed on start, keys rotate, and SQLite
//! files and the key file are readable by their owner only.

mod common;

use common::*;
use mock_apple::{Endpoint, Fault, IdentityTokenRequest};
use serde_json::Value;
use siwa_server::Sealer;
use sqlx::Connection;

on_both_databases!(
    every_secret_is_stored_sealed,
    rows_stored_in_clear_are_sealed_on_start,
    a_rotated_key_reseals_and_the_old_one_can_then_go,
);

async fn query(h: &Harness, sql: &str) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&h.database_url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut db).await.unwrap();
    rows.into_iter().map(|(v,)| v).collect()
}

async fn execute(h: &Harness, sql: &str) {
    let mut db = sqlx::AnyConnection::connect(&h.database_url).await.unwrap();
    sqlx::query(sql).execute(&mut db).await.unwrap();
}

async fn signed_in(h: &Harness) -> Value {
    let (status, body) = h.sign_in(IdentityTokenRequest::default(), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

fn sealed(values: &[String]) -> bool {
    !values.is_empty() && values.iter().all(|v| Sealer::is_sealed(v))
}

async fn every_secret_is_stored_sealed(h: Harness) {
    signed_in(&h).await;
    let keys = query(&h, "SELECT private_key_pem FROM server_keys").await;
    assert!(sealed(&keys), "{keys:?}");
    // What was used to forge access tokens is no longer a key.
    assert!(jsonwebtoken::EncodingKey::from_ec_pem(keys[0].as_bytes()).is_err());
    assert!(sealed(
        &query(&h, "SELECT refresh_token FROM apple_tokens").await
    ));

    // Apple down: the deletion's revocation waits in the queue, sealed, and is still revoked
    // once Apple is back.
    h.apple.set_fault(
        Endpoint::Revoke,
        // Down until the queue has been looked at: the worker retries at once in these tests.
        Fault {
            status: Some(503),
            ..Fault::default()
        },
    );
    let body = signed_in(&h).await;
    let access = body["session"]["accessToken"].as_str().unwrap();
    let (_, deleted) = h.delete_auth("/v1/me", access).await;
    assert_eq!(deleted["appleRevocation"], "queued");
    let queued = query(&h, "SELECT token FROM apple_revocations").await;
    assert!(sealed(&queued), "{queued:?}");
    h.apple.clear_faults(Some(Endpoint::Revoke));
    for _ in 0..100 {
        if h.server.state.store.pending_revocations().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(h.server.state.store.pending_revocations().await.unwrap(), 0);
}

async fn rows_stored_in_clear_are_sealed_on_start(h: Harness) {
    let body = signed_in(&h).await;
    // As a server from before sealing would have left them.
    let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    execute(
        &h,
        &format!("UPDATE server_keys SET private_key_pem = '{pem}'"),
    )
    .await;
    execute(
        &h,
        "UPDATE apple_tokens SET refresh_token = 'r.cleartext-apple-token'",
    )
    .await;

    let restarted = h.another_instance().await;
    assert!(sealed(
        &query(&h, "SELECT private_key_pem FROM server_keys").await
    ));
    let tokens = query(&h, "SELECT refresh_token FROM apple_tokens").await;
    assert!(
        sealed(&tokens) && !tokens[0].contains("cleartext"),
        "{tokens:?}"
    );
    // The resealed key is the one the server signs with: its tokens verify at the restarted
    // instance, and the old session's refresh still works there.
    let refresh = body["session"]["refreshToken"].clone();
    let response = h
        .http
        .post(format!("{}/v1/auth/refresh", restarted.base_url()))
        .json(&serde_json::json!({"refreshToken": refresh}))
        .send()
        .await
        .unwrap();
    let (status, session) = read(response).await;
    assert_eq!(status, 200, "{session}");
    let me = h
        .http
        .get(format!("{}/v1/me", restarted.base_url()))
        .bearer_auth(session["accessToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    restarted.shutdown().await;
}

async fn a_rotated_key_reseals_and_the_old_one_can_then_go(h: Harness) {
    signed_in(&h).await;
    let before = query(&h, "SELECT private_key_pem FROM server_keys").await;
    let new_key = Sealer::generate_key();

    // Rotation: the new key first, the old one after it.
    let mut config = h.config();
    config.encryption_key =
        Some(Sealer::from_keys(&format!("{new_key},{TEST_ENCRYPTION_KEY}")).unwrap());
    let rotated = siwa_server::start(config).await.unwrap();
    rotated.shutdown().await;
    let after = query(&h, "SELECT private_key_pem FROM server_keys").await;
    assert_ne!(before, after, "resealed with the new key");

    // Every row now opens with the new key alone.
    let mut config = h.config();
    config.encryption_key = Some(Sealer::from_keys(&new_key).unwrap());
    let only_new = siwa_server::start(config).await.unwrap();
    only_new.shutdown().await;

    // A key that sealed nothing here cannot start the server: it names the variable.
    let mut config = h.config();
    config.encryption_key = Some(Sealer::from_keys(&Sealer::generate_key()).unwrap());
    let error = siwa_server::start(config).await.err().expect("refused");
    assert!(error.to_string().contains("SIWA_ENCRYPTION_KEY"), "{error}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_without_a_key_a_private_key_file_is_made_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let h = Harness::start_with(Db::Sqlite, |config| config.encryption_key = None)
        .await
        .unwrap();
    signed_in(&h).await;
    let database = siwa_server::testing::sqlite_file(&h.database_url).unwrap();
    let mut key_file = database.clone().into_os_string();
    key_file.push(".key");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(key_file.as_ref()), 0o600, "the key file");
    for suffix in ["", "-wal", "-shm"] {
        let mut file = database.clone().into_os_string();
        file.push(suffix);
        assert_eq!(mode(file.as_ref()), 0o600, "the database file{suffix}");
    }
    // A restart reads the same key: the sealed server key opens.
    let mut config = h.config();
    config.encryption_key = None;
    let restarted = siwa_server::start(config)
        .await
        .expect("the key file is reused");
    restarted.shutdown().await;
}
