//! The test harness: a `mock-apple` in-process, and the server against it on SQLite (a fresh
//! file) or PostgreSQL (a fresh database on the server named by `SIWA_TEST_POSTGRES_URL`).
#![allow(dead_code)]

use std::time::Duration;

use mock_apple::{Endpoint, IdentityTokenRequest, MockApple};
use serde_json::{Value, json};
use siwa_core::{DeveloperKey, RawNonce};
use siwa_server::{Config, RunningServer};
use sqlx::Connection;

pub const APP: &str = "com.example.app";
pub const WEB: &str = "com.example.web";
/// The operator key the test servers seal with (32 bytes of base64).
pub const TEST_ENCRYPTION_KEY: &str = "c2l3YS10ZXN0LWVuY3J5cHRpb24ta2V5LTMyLWJ5dGU=";
/// The bearer token that opens `/metrics` on the test servers.
pub const TEST_METRICS_TOKEN: &str = "siwa-test-metrics-token-of-32-characters";

#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct Harness {
    pub apple: MockApple,
    pub server: RunningServer,
    pub http: reqwest::Client,
    pub database_url: String,
    sqlite_dir: Option<std::path::PathBuf>,
}

fn unique() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    hex::encode(bytes)
}

/// A fresh database of the kind asked for, or `None` when PostgreSQL is not available (which
/// fails instead when `SIWA_TEST_REQUIRE_POSTGRES=1`, as in CI).
pub async fn database(db: Db) -> Option<(String, Option<std::path::PathBuf>)> {
    match db {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join(format!("siwa-test-{}", unique()));
            std::fs::create_dir_all(&dir).unwrap();
            Some((
                format!("sqlite://{}/siwa.db?mode=rwc", dir.display()),
                Some(dir),
            ))
        }
        Db::Postgres => siwa_server::testing::fresh_test_postgres()
            .await
            .map(|url| (url, None)),
    }
}

pub fn config_for(apple: &MockApple, key: DeveloperKey, database_url: &str) -> Config {
    Config {
        host: "127.0.0.1".parse().unwrap(),
        port: 0,
        client_ids: vec![APP.into(), WEB.into()],
        apple_base_url: apple.base_url().to_owned(),
        issuers: vec![siwa_core::ISSUER.into()],
        database_url: database_url.to_owned(),
        apple_key: Some(key),
        rate_limit_per_minute: None,
        trusted_proxy_hops: 0,
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(3600),
        log_json: false,
        revocation_poll_interval: Duration::from_millis(100),
        revocation_retry_base: Duration::ZERO,
        refresh_reuse_grace: Duration::from_secs(10),
        // The tests are many clients on one address: no per-client cap (connections.rs tests it).
        connections: siwa_server::ConnectionLimits {
            per_client: 0,
            ..Default::default()
        },
        encryption_key: Some(siwa_server::Sealer::from_keys(TEST_ENCRYPTION_KEY).unwrap()),
        metrics_address: None,
        metrics_token: Some(TEST_METRICS_TOKEN.into()),
        web: Default::default(),
        webhooks: None,
    }
}

impl Harness {
    pub async fn start(db: Db) -> Option<Self> {
        Self::start_with(db, |_| {}).await
    }

    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let (database_url, sqlite_dir) = database(db).await?;
        Some(Self::start_on(database_url, sqlite_dir, tweak).await)
    }

    /// A server on `database_url`; `sqlite_dir`, when given, is removed with the harness.
    pub async fn start_on(
        database_url: String,
        sqlite_dir: Option<std::path::PathBuf>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let apple = MockApple::start().await.unwrap();
        let generated = apple
            .generate_developer_key(Some("TEAM123456"), Some("KEY1234567"))
            .unwrap();
        let key = DeveloperKey::from_p8_pem(
            &generated.team_id,
            &generated.key_id,
            &generated.private_key_pem,
        )
        .unwrap();
        let mut config = config_for(&apple, key, &database_url);
        tweak(&mut config);
        let server = siwa_server::start(config).await.expect("the server starts");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            apple,
            server,
            http,
            database_url,
            sqlite_dir,
        }
    }

    /// A server with the web flow on: Services ID `com.example.web`, its public URL on a port
    /// picked first (the callback URL names it), and `APP_REDIRECT_URI` allowed.
    pub async fn start_web(db: Db) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        Self::start_with(db, |config| {
            config.port = port;
            config.web = siwa_server::WebConfig {
                services_id: Some(WEB_SERVICES_ID.into()),
                public_url: Some(format!("http://127.0.0.1:{port}").parse().unwrap()),
                app_redirect_uris: vec![
                    APP_REDIRECT_URI.into(),
                    LOOPBACK_REDIRECT_URI.into(),
                    LOOPBACK_V6_REDIRECT_URI.into(),
                ],
                web_origins: vec![WEB_APP_ORIGIN.into()],
                ..Default::default()
            };
        })
        .await
    }

    /// The same database and mock, a new server process (as after a restart, or a second
    /// instance behind a load balancer).
    pub async fn another_instance(&self) -> RunningServer {
        siwa_server::start(self.config()).await.unwrap()
    }

    /// The configuration of another instance: the same database and mock, a developer key of
    /// its own.
    pub fn config(&self) -> Config {
        let generated = self.apple.generate_developer_key(None, None).unwrap();
        let key = DeveloperKey::from_p8_pem(
            &generated.team_id,
            &generated.key_id,
            &generated.private_key_pem,
        )
        .unwrap();
        config_for(&self.apple, key, &self.database_url)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_to(&self.server, path, body).await
    }

    pub async fn post_to(&self, server: &RunningServer, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", server.base_url()))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub async fn get_auth(&self, path: &str, access: &str) -> (u16, Value) {
        read(
            self.http
                .get(self.url(path))
                .bearer_auth(access)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn delete_auth(&self, path: &str, access: &str) -> (u16, Value) {
        read(
            self.http
                .delete(self.url(path))
                .bearer_auth(access)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub fn mint(&self, request: IdentityTokenRequest) -> mock_apple::MintedIdentityToken {
        self.apple.mint_identity_token(request).unwrap()
    }

    /// A full sign-in as an app makes it: token, code and nonce from the fake Apple.
    pub async fn sign_in(
        &self,
        request: IdentityTokenRequest,
        full_name: Option<Value>,
    ) -> (u16, Value) {
        let nonce = RawNonce::generate();
        let minted = self.mint(IdentityTokenRequest {
            raw_nonce: Some(nonce.expose().into()),
            ..request
        });
        let mut body = json!({
            "identityToken": minted.identity_token,
            "authorizationCode": minted.authorization_code,
            "rawNonce": nonce.expose(),
        });
        if let Some(name) = full_name {
            body["fullName"] = name;
        }
        self.post("/v1/auth/apple", &body).await
    }

    /// `/metrics`, read as a scraper configured with the token does.
    pub async fn metrics(&self) -> String {
        let response = self
            .http
            .get(self.url("/metrics"))
            .bearer_auth(TEST_METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.apple.request_count(endpoint)
    }

    pub async fn users(&self) -> i64 {
        self.server.state.store.count_users().await.unwrap()
    }

    /// The first column of every row `sql` returns, read straight from the database.
    pub async fn query(&self, sql: &str) -> Vec<String> {
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .unwrap();
        let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&mut db).await.unwrap();
        rows.into_iter().map(|(v,)| v).collect()
    }

    /// Runs `sql` straight on the database.
    pub async fn execute(&self, sql: &str) {
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&self.database_url)
            .await
            .unwrap();
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }

    /// Apple's refresh tokens the server keeps, opened.
    pub async fn stored_apple_tokens(&self) -> Vec<String> {
        let sealer = siwa_server::Sealer::from_keys(TEST_ENCRYPTION_KEY).unwrap();
        self.query("SELECT refresh_token FROM apple_tokens")
            .await
            .iter()
            .map(|sealed| {
                sealer
                    .open(siwa_server::Purpose::AppleToken, sealed)
                    .unwrap()
            })
            .collect()
    }

    /// What Apple's token endpoint says to a refresh with `token` for `client_id`: 200, or the
    /// OAuth error code.
    pub async fn apple_refresh(&self, client_id: &str, token: &str) -> Result<(), String> {
        let secret = self
            .apple
            .client_secret(None, Some(client_id), None)
            .unwrap();
        let response = self
            .http
            .post(self.apple.endpoints().token())
            .form(&[
                ("client_id", client_id),
                ("client_secret", &secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
            ])
            .send()
            .await
            .unwrap();
        match read(response).await {
            (200, _) => Ok(()),
            (_, body) => Err(body["error"].as_str().unwrap_or_default().to_owned()),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(dir) = &self.sqlite_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// A new user's sign-in with `sub`, as the route and body to post: on the apps' route (token,
/// code and nonce: a transaction) for even `n`, on the seed's (the group-commit writer) for odd.
pub fn new_user_sign_in(apple: &MockApple, sub: &str, n: usize) -> (&'static str, Value) {
    let nonce = RawNonce::generate();
    let minted = apple
        .mint_identity_token(IdentityTokenRequest {
            sub: Some(sub.to_owned()),
            raw_nonce: Some(nonce.expose().into()),
            ..IdentityTokenRequest::default()
        })
        .unwrap();
    if n.is_multiple_of(2) {
        (
            "/v1/auth/apple",
            json!({"identityToken": minted.identity_token,
            "authorizationCode": minted.authorization_code, "rawNonce": nonce.expose()}),
        )
    } else {
        (
            "/auth/apple",
            json!({"identityToken": minted.identity_token}),
        )
    }
}

/// A client that does not follow redirects: each step of a browser flow is looked at.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub const WEB_SERVICES_ID: &str = "com.example.web";
pub const APP_REDIRECT_URI: &str = "com.example.app://signed-in";
/// A desktop app's loopback redirect: any port (RFC 8252, 7.3).
pub const LOOPBACK_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// A single-page app on the server's site (`SIWA_WEB_ORIGINS`).
pub const WEB_APP_ORIGIN: &str = "http://app.siwa.test:5173";
pub const LOOPBACK_V6_REDIRECT_URI: &str = "http://[::1]/callback";

/// Declares each listed `async fn(Harness)` as two tests: on SQLite and on PostgreSQL.
/// `on_both_databases!(web: ...)` starts each with the web flow on (`Harness::start_web`).
#[macro_export]
macro_rules! on_both_databases {
    (web: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let harness = $crate::common::Harness::start_web($crate::common::Db::Sqlite).await.unwrap();
                    super::$name(harness).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(harness) = $crate::common::Harness::start_web($crate::common::Db::Postgres).await {
                        super::$name(harness).await;
                    }
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let harness = $crate::common::Harness::start($crate::common::Db::Sqlite).await.unwrap();
                    super::$name(harness).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some(harness) = $crate::common::Harness::start($crate::common::Db::Postgres).await {
                        super::$name(harness).await;
                    }
                }
            }
        )*
    };
}
