//! `siwa-server dev`: the server wired to an in-process `mock-apple`, with an SQLite file, so a
//! newcomer sees a complete sign-in on their own machine with no Apple account.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use mock_apple::{IdentityTokenRequest, MockApple};
use serde_json::json;
use siwa_core::RawNonce;

use crate::app::{self, RunningServer};
use crate::config::Config;

pub const APP_CLIENT_ID: &str = "com.example.app";
pub const WEB_CLIENT_ID: &str = "com.example.web";
/// The native-app redirect URI `dev` accepts for the browser flow.
pub const DEV_APP_REDIRECT_URI: &str = "siwa-example://signed-in";
/// A desktop app's loopback redirect, on any port (RFC 8252, 7.3).
pub const DEV_LOOPBACK_REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The web app `dev` lets sign in (`SIWA_WEB_ORIGINS`): js-package's example, on the port Vite
/// also uses, on the server's site.
pub const DEV_WEB_APP_ORIGIN: &str = "http://127.0.0.1:5173";

pub struct DevOptions {
    pub port: u16,
    pub mock_port: u16,
    pub database_url: String,
    /// `--webhook-url` (unsigned... signed with a generated secret), or printing each event.
    pub webhooks: crate::webhooks::WebhookTarget,
    /// Where the sandbox's variables are written (readable by its owner only), so that
    /// `siwa-server doctor --env-file` checks this very set-up.
    pub env_file: Option<std::path::PathBuf>,
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
    #[error("the sandbox's configuration: {0}")]
    Config(String),
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
    // As at Apple: the key serves the app's bundle ID and the Services ID grouped with it.
    apple
        .enable_developer_key_for(
            &generated.key_id,
            &[APP_CLIENT_ID.to_owned(), WEB_CLIENT_ID.to_owned()],
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
    // `dev` is configured as `serve` is, through the same variables, with the defaults of
    // `serve` for everything it does not set; the real environment is not read.
    let variables = [
        ("SIWA_HOST", localhost.to_string()),
        ("PORT", port.to_string()),
        (
            "SIWA_APPLE_CLIENT_IDS",
            format!("{APP_CLIENT_ID},{WEB_CLIENT_ID}"),
        ),
        ("SIWA_APPLE_BASE_URL", apple.base_url().to_owned()),
        ("SIWA_DATABASE_URL", options.database_url),
        ("SIWA_APPLE_TEAM_ID", generated.team_id),
        ("SIWA_APPLE_KEY_ID", generated.key_id),
        ("SIWA_APPLE_PRIVATE_KEY", generated.private_key_pem),
        // Printed by `dev` with the curl command that reads them.
        ("SIWA_METRICS_TOKEN", crate::tokens::new_token()),
        // The web page at `/`, signing in through the fake Apple's consent page.
        ("SIWA_APPLE_SERVICES_ID", WEB_CLIENT_ID.to_owned()),
        ("SIWA_PUBLIC_URL", format!("http://{localhost}:{port}")),
        (
            "SIWA_APP_REDIRECT_URIS",
            format!("{DEV_APP_REDIRECT_URI},{DEV_LOOPBACK_REDIRECT_URI}"),
        ),
        ("SIWA_WEB_ORIGINS", DEV_WEB_APP_ORIGIN.to_owned()),
        ("SIWA_APP_NAME", "siwa dev".to_owned()),
    ];
    let lookup = |name: &str| {
        variables
            .iter()
            .find(|(variable, _)| *variable == name)
            .map(|(_, value)| value.clone())
    };
    let mut config = Config::from_lookup(lookup).map_err(|e| DevError::Config(e.to_string()))?;
    if let Some(file) = &options.env_file {
        write_env_file(file, &variables)
            .map_err(|e| DevError::Config(format!("{}: {e}", file.display())))?;
    }
    config.webhooks = Some(crate::webhooks::WebhookConfig {
        target: options.webhooks,
        retry_base: Duration::from_secs(crate::webhooks::config::DEFAULT_RETRY_BASE_SECS),
    });
    let server = match app::start(config).await {
        Err(app::StartError::Bind(_, error)) => {
            return Err(DevError::Port(options.port, error.to_string()));
        }
        other => other?,
    };
    Ok(DevSandbox { apple, server })
}

/// `NAME="value"` lines, newlines escaped as `\n` (which the configuration reads back), in a
/// file only its owner reads: it holds the fake Apple's developer key.
fn write_env_file(file: &std::path::Path, variables: &[(&str, String)]) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(file);
    let mut out = crate::db::create_private(file)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "could not be replaced")
    })?;
    writeln!(
        out,
        "# siwa-server dev's configuration: siwa-server doctor --env-file {}",
        file.display()
    )?;
    for (name, value) in variables {
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        writeln!(out, "{name}=\"{value}\"")?;
    }
    Ok(())
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
