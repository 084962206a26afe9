//! # mock-apple
//!
//! A faithful, controllable fake of Apple's Sign in with Apple service, so the whole chain
//! (app → core → server → Apple) is tested without Apple, and developers can sign in on a laptop
//! without an Apple Account.
//!
//! - Apple's endpoints at Apple's paths: `/auth/keys`, `/.well-known/openid-configuration`,
//!   `/auth/token` (checking client secrets as Apple does), `/auth/revoke`, and the web flow's
//!   consent page at `/auth/authorize`.
//! - A control API under `/mock/` and the same operations on [`Mock`]: tokens with any claims
//!   (and the classic forgeries), key rotation, fault injection, request counters, developer
//!   keys, test users, server-to-server notifications, a clock to advance, reset.
//!
//! ```no_run
//! # async fn example() {
//! let apple = mock_apple::MockApple::start().await.unwrap();
//! let minted = apple.mint_identity_token(Default::default()).unwrap();
//! println!("{} verifies against {}", minted.identity_token, apple.jwks_url());
//! # }
//! ```
//!
//! Every protocol fact (claims, client secrets, formats) comes from `siwa-core`.

pub mod batch;
mod clock;
pub mod directory;
pub mod faults;
mod grants;
mod http;
pub mod identity;
mod keys;
mod mock;
mod random;
pub mod teams;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use directory::{NewUser, TestUser};
pub use faults::{Endpoint, Fault};
pub use identity::{BooleanForm, IdentityTokenRequest, MintedIdentityToken, TokenAlgorithm};
pub use keys::KeyError;
pub use mock::{
    GeneratedDeveloperKey, KeyInfo, Mock, MockConfig, MockError, NotificationRequest,
    SentNotification,
};

/// The mock's HTTP router, for embedding it in another server or test harness.
pub fn router(mock: Arc<Mock>) -> axum::Router {
    http::router(mock)
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// Sets a mock up before starting it.
#[derive(Debug, Clone)]
pub struct MockAppleBuilder {
    config: MockConfig,
    address: SocketAddr,
}

impl MockAppleBuilder {
    /// The `iss` of tokens (default `https://appleid.apple.com`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = issuer.into();
        self
    }

    /// The address clients reach the mock at, if not the one it listens on.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.config.base_url = Some(base_url.into());
        self
    }

    /// Keep signing keys in `dir`, so a restart publishes the same JWKS.
    pub fn key_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.key_dir = Some(dir.into());
        self
    }

    /// How many keys to publish at first (default 2).
    pub fn initial_keys(mut self, count: usize) -> Self {
        self.config.initial_keys = count;
        self
    }

    /// The client id of tokens minted without one (default `com.example.app`).
    pub fn default_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.config.default_client_id = client_id.into();
        self
    }

    /// Listen on this address (default `127.0.0.1`, a random port).
    pub fn address(mut self, address: SocketAddr) -> Self {
        self.address = address;
        self
    }

    pub async fn start(self) -> Result<MockApple, StartError> {
        let listener = TcpListener::bind(self.address)
            .await
            .map_err(|e| StartError::Bind(self.address, e))?;
        let address = listener
            .local_addr()
            .map_err(|e| StartError::Bind(self.address, e))?;
        let config = self.config;
        // RSA key generation blocks for a moment.
        let mock =
            tokio::task::spawn_blocking(move || Mock::new(config, format!("http://{address}")))
                .await
                .expect("key generation does not panic")?;
        let mock = Arc::new(mock);
        let (stop, stopped) = oneshot::channel::<()>();
        let app = http::router(mock.clone());
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = server.await {
                tracing::error!(%error, "mock-apple stopped");
            }
        });
        Ok(MockApple {
            mock,
            address,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running mock: derefs to [`Mock`] for every operation. Stops when dropped.
pub struct MockApple {
    mock: Arc<Mock>,
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockApple {
    pub fn builder() -> MockAppleBuilder {
        MockAppleBuilder {
            config: MockConfig::default(),
            address: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        }
    }

    /// A mock with the defaults, on a random loopback port.
    pub async fn start() -> Result<Self, StartError> {
        Self::builder().start().await
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The shared state, for handing to other tasks.
    pub fn handle(&self) -> Arc<Mock> {
        self.mock.clone()
    }

    /// Stops serving and waits until the server has finished.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server stops (for the binary: it runs until a signal).
    pub async fn serve_until(mut self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Deref for MockApple {
    type Target = Mock;
    fn deref(&self) -> &Mock {
        &self.mock
    }
}

impl Drop for MockApple {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
