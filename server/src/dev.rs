//! `siwa-server dev`: the server wired to an in-process `mock-apple`, with an SQLite file, so a
//! newcomer sees a complete sign-in on their own machine with no Apple account.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mock_apple::{IdentityTokenRequest, MockApple};
use serde_json::json;
use siwa_core::{DeveloperKey, RawNonce};

use crate::app::{self, RunningServer};
use crate::config::Config;

pub const APP_CLIENT_ID: &str = "com.example.app";
pub const WEB_CLIENT_ID: &str = "com.example.web";
/// The native-app redirect URI `dev` accepts for the browser flow.
pub const DEV_APP_REDIRECT_URI: &str = "siwa-example://signed-in";

pub struct DevOptions {
    pub port: u16,
    pub mock_port: u16,
    pub database_url: String,
    /// `--webhook-url` (unsigned... signed with a generated secret), or printing each event.
    pub webhooks: crate::webhooks::WebhookTarget,
}

/// The mock and the server, running.
pub struct DevSandbox {
    pub apple: MockApple,
    pub server: RunningServer,
}

/// Why the sandbox could not start, naming the flag to change.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("the fake Apple could not listen on port {0} ({1}): choose another with --mock-port")]
    MockPort(u16, String),
    #[error("the server could not listen on port {0} ({1}): choose another with --port")]
    Port(u16, String),
    #[error(transparent)]
    Server(#[from] app::StartError),
    #[error("the fake Apple's developer key: {0}")]
    DeveloperKey(String),
}

/// Starts the mock, gives it a developer key, and starts the server against it.
pub async fn start(options: DevOptions) -> Result<DevSandbox, DevError> {
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let apple = MockApple::builder()
        .address(SocketAddr::new(localhost, options.mock_port))
        .default_client_id(APP_CLIENT_ID)
        .start()
        .await
        .map_err(|e| DevError::MockPort(options.mock_port, e.to_string()))?;
    let generated = apple
        .generate_developer_key(Some("DEVTEAM001"), Some("DEVKEY0001"))
        .map_err(|e| DevError::DeveloperKey(e.to_string()))?;
    let key = DeveloperKey::from_p8_pem(
        &generated.team_id,
        &generated.key_id,
        &generated.private_key_pem,
    )
    .map_err(|e| DevError::DeveloperKey(e.to_string()))?;
    // The public URL names the port, so port 0 ("any") is resolved here, before start-up.
    let port = match options.port {
        0 => std::net::TcpListener::bind((localhost, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| DevError::Port(0, e.to_string()))?,
        port => port,
    };
    let config = Config {
        host: localhost,
        port,
        client_ids: vec![APP_CLIENT_ID.into(), WEB_CLIENT_ID.into()],
        apple_base_url: apple.base_url().to_owned(),
        issuers: vec![siwa_core::ISSUER.into()],
        database_url: options.database_url,
        apple_key: Some(key),
        rate_limit_per_minute: Some(crate::config::DEFAULT_RATE_LIMIT_PER_MINUTE),
        trusted_proxy_hops: 0,
        access_token_ttl: Duration::from_secs(900),
        refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
        log_json: false,
        revocation_poll_interval: Duration::from_secs(10),
        revocation_retry_base: Duration::from_secs(30),
        refresh_reuse_grace: Duration::from_secs(crate::config::DEFAULT_REFRESH_REUSE_GRACE_SECS),
        connections: Default::default(),
        encryption_key: None,
        metrics_address: None,
        // Printed by `dev` with the curl command that reads them.
        metrics_token: Some(crate::secrets::new_token()),
        // The web page at `/`, signing in through the fake Apple's consent page.
        web: crate::web::WebConfig {
            services_id: Some(WEB_CLIENT_ID.into()),
            public_url: Some(
                format!("http://{localhost}:{port}")
                    .parse()
                    .expect("a loopback URL is valid"),
            ),
            app_redirect_uris: vec![DEV_APP_REDIRECT_URI.into()],
            app_name: Some("siwa dev".into()),
            app_icon_url: None,
        },
        webhooks: Some(crate::webhooks::WebhookConfig {
            target: options.webhooks,
            retry_base: Duration::from_secs(crate::webhooks::config::DEFAULT_RETRY_BASE_SECS),
        }),
    };
    let server = match app::start(config).await {
        Err(app::StartError::Bind(_, error)) => {
            return Err(DevError::Port(options.port, error.to_string()));
        }
        other => other?,
    };
    Ok(DevSandbox { apple, server })
}

/// Signs a user in through the server exactly as an app would, and returns the answer.
pub async fn demo_sign_in(
    sandbox: &DevSandbox,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let nonce = RawNonce::generate();
    let minted = sandbox.apple.mint_identity_token(IdentityTokenRequest {
        raw_nonce: Some(nonce.expose().into()),
        ..Default::default()
    })?;
    let response = reqwest_post(
        &format!("{}/v1/auth/apple", sandbox.server.base_url()),
        &json!({
            "identityToken": minted.identity_token,
            "authorizationCode": minted.authorization_code,
            "rawNonce": nonce.expose(),
            "fullName": {"givenName": "Jane", "familyName": "Appleseed"},
        }),
    )
    .await?;
    Ok(response)
}

async fn reqwest_post(
    url: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let response = client.post(url).json(body).send().await?;
    Ok(response.json().await?)
}
