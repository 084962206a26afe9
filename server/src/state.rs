//! What every request handler shares.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use siwa_core::{KeySet, KeySetOptions, Verifier, VerifierConfig};

use crate::accounts::Flow;
use crate::apple::AppleGateway;
use crate::config::Config;
use crate::error::ApiError;
use crate::sessions::SessionKeys;
use crate::store::Store;
use crate::web::WebFlow;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub verifier: Verifier,
    pub sessions: SessionKeys,
    pub apple: AppleGateway,
    /// Per client (`forwarded::client_of`), on the routes that write for anonymous callers.
    pub client_limiter: Option<DefaultKeyedRateLimiter<crate::forwarded::ClientKey>>,
    /// The web flow, when `SIWA_APPLE_SERVICES_ID` and `SIWA_PUBLIC_URL` are set.
    pub web: Option<WebFlow>,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        sessions: SessionKeys,
    ) -> Result<Arc<Self>, crate::app::StartError> {
        let endpoints = siwa_core::Endpoints::new(config.apple_base_url.clone());
        let keys = KeySet::remote(endpoints.keys(), KeySetOptions::default())?;
        let mut verifier_config = VerifierConfig::new(config.client_ids.clone());
        verifier_config.issuers = config.issuers.clone();
        let web = WebFlow::new(
            &config.web,
            keys.clone(),
            &config.issuers,
            &config.apple_base_url,
        )?;
        let verifier = Verifier::new(verifier_config, keys)?;
        let apple = AppleGateway::new(&config.apple_base_url, config.apple_key.clone())?;
        let client_limiter = config
            .rate_limit_per_minute
            .and_then(NonZeroU32::new)
            .map(|per_minute| RateLimiter::keyed(Quota::per_minute(per_minute)));
        Ok(Arc::new(Self {
            config,
            store,
            verifier,
            sessions,
            apple,
            client_limiter,
            web,
        }))
    }
}

impl AppState {
    /// The verifier of a flow's identity tokens: the app's bundle IDs, or the web flow's
    /// Services ID alone (a web token is not an app token).
    pub fn verifier_for(&self, flow: Flow) -> Result<&Verifier, ApiError> {
        match flow {
            Flow::App => Ok(&self.verifier),
            Flow::Web => self
                .web
                .as_ref()
                .map(|web| &web.verifier)
                .ok_or(ApiError::WebFlowNotConfigured),
        }
    }

    /// The redirect URI a flow's authorization code is exchanged with: none for an app's code,
    /// the callback for the web flow's (docs/apple-protocol.md, P2).
    pub fn redirect_uri_for(&self, flow: Flow) -> Option<&str> {
        match flow {
            Flow::App => None,
            Flow::Web => self.web.as_ref().map(|web| web.callback_url.as_str()),
        }
    }
}
