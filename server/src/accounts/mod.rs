//! The accounts: the rules of signing in (from an app, in a browser, on the seed's route),
//! completing a browser's sign-in, trading a one-time code, refreshing and ending a session,
//! deleting an account and applying Apple's notifications, whichever route asks. [`Accounts`]
//! owns what the rules need; the store keeps the SQL and the transactions; the routes keep
//! HTTP and call nothing else.

mod browser;
mod deletion;
mod notifications;
mod sessions;
mod sign_in;

use std::sync::Arc;

use siwa_core::{Clock, Verifier};

use crate::apple::AppleGateway;
use crate::error::ApiError;
use crate::revocation::Revocations;
use crate::sessions::SessionKeys;
use crate::store::Store;

pub use browser::{BrowserFlow, CallbackOutcome, Completion, NativeApp, STATE_TTL_SECS, WebApp};
pub use sign_in::{Flow, SignIn};

/// How long what the accounts issue lives.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// A session's refresh token (`SIWA_REFRESH_TOKEN_TTL_SECS`).
    pub refresh_ttl_secs: i64,
    /// How long a rotated refresh token presented again gets the same successor
    /// (`SIWA_REFRESH_REUSE_GRACE_SECS`).
    pub refresh_reuse_grace_secs: i64,
}

/// The accounts and everything their rules need. Built by `app` with a struct literal; the
/// routes reach none of its fields (`server/tests/layers.rs`), only its operations.
pub struct Accounts {
    pub(crate) store: Store,
    /// Verifies identity tokens for the app's bundle IDs.
    pub(crate) app_verifier: Verifier,
    /// The web flow's verifier and callback, when it is configured.
    pub(crate) browser: Option<BrowserFlow>,
    pub(crate) apple: Arc<AppleGateway>,
    pub(crate) sessions: SessionKeys,
    pub(crate) revocations: Revocations,
    pub(crate) rules: SessionRules,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Accounts {
    /// The server's one clock, which the background workers read too.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Apple's gateway, shared with the revocation worker.
    pub fn apple(&self) -> Arc<AppleGateway> {
        self.apple.clone()
    }

    /// The access tokens' keys: the routes verify bearer tokens and publish the key set.
    pub fn sessions(&self) -> &SessionKeys {
        &self.sessions
    }

    /// The app's verifier, whose key set `/readyz` and `/metrics` report on.
    pub fn app_verifier(&self) -> &Verifier {
        &self.app_verifier
    }

    /// Whether the database takes writes, as its watch last saw.
    pub fn database_health(&self) -> Result<(), crate::store::Down> {
        self.store.health()
    }

    /// Sets the gauges of the durable queues: revocations waiting for Apple, and, with
    /// webhooks on, events by state.
    pub async fn record_queue_gauges(&self, webhooks: bool) {
        match self.store.pending_revocations().await {
            Ok(n) => metrics::gauge!("siwa_apple_revocations_pending").set(n as f64),
            Err(error) => tracing::warn!(%error, "could not count queued revocations"),
        }
        if !webhooks {
            return;
        }
        match self.store.event_counts().await {
            Ok(counts) => {
                for (status, n) in [
                    ("pending", counts.pending),
                    ("delivered", counts.delivered),
                    ("failed", counts.failed),
                ] {
                    metrics::gauge!("siwa_webhook_events", "status" => status).set(n as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "could not count webhook events"),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The verifier of a flow's identity tokens: the app's bundle IDs, or the web flow's
    /// Services ID alone (a web token is not an app token).
    fn verifier_for(&self, flow: Flow) -> Result<&Verifier, ApiError> {
        match flow {
            Flow::App => Ok(&self.app_verifier),
            Flow::Web => self
                .browser
                .as_ref()
                .map(|b| &b.verifier)
                .ok_or(ApiError::WebFlowNotConfigured),
        }
    }

    /// The redirect URI a flow's authorization code is exchanged with: none for an app's code,
    /// the callback for the web flow's (docs/apple-protocol.md, P2).
    fn redirect_uri_for(&self, flow: Flow) -> Option<&str> {
        match flow {
            Flow::App => None,
            Flow::Web => self.browser.as_ref().map(|b| b.callback_url.as_str()),
        }
    }
}
