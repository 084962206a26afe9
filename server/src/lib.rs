//! # siwa-server
//!
//! The Sign in with Apple backend: sign-in (seed-compatible and `/v1`), sessions of its own,
//! Apple code exchange and token revocation, server-to-server notifications, the web flow,
//! webhooks, SQLite by default and PostgreSQL for several instances. Everything about Apple's
//! protocol, and the words of this server's API, come from `siwa-core`; this crate is the
//! application around them.
//!
//! A map, from the outside in:
//! - `app` starts everything (`start`) and wires the router; `serve` accepts connections;
//!   `config` reads the environment, with every default.
//! - `routes` keep HTTP: they parse, call `accounts`, and answer; `web` is the browser flow's
//!   HTTP (cookies, the checks of where a request came from, the page); `response_policy`,
//!   `request_body` and `error` are what every answer shares.
//! - `accounts` holds the rules: signing in (app, browser, the seed's route), completing in
//!   the browser, one-time codes, refresh, sign-out, deletion, Apple's notifications.
//! - `store` is the SQL: rows and transactions, over `db`'s pool; `sealing` seals secrets at
//!   rest; `tokens` makes the random ids and opaque tokens; `sessions` signs access tokens,
//!   with the key `signer` keeps parsed.
//! - `apple` calls Apple; `revocation` and `webhooks` work their durable queues (`retry`), and
//!   `housekeeping` and `telemetry` keep the server observable and tidy; the store's watch
//!   (`store::health`) knows whether the database is up, so requests need not find out.
//!
//! The layers, from the top: a module imports only from the layers below its own
//! (`server/tests/layers.rs` reads this list and keeps the code to it).
//! - `dev`, `transfer`
//! - `app`
//! - `routes`, `request_body`, `response_policy`
//! - `state`
//! - `web`
//! - `accounts`
//! - `revocation`, `housekeeping`
//! - `doctor`
//! - `config`
//! - `webhooks`
//! - `sessions`, `apple`
//! - `error`
//! - `api`
//! - `retry`
//! - `store`
//! - `db`, `sealing`, `tasks`
//! - `forwarded`
//! - `serve`, `tokens`, `telemetry`, `signer`

mod accounts;
mod api;
mod app;
mod apple;
mod config;
mod db;
#[cfg(feature = "dev")]
pub mod dev;
pub mod doctor;
mod error;
mod forwarded;
mod housekeeping;
mod request_body;
mod response_policy;
mod retry;
mod revocation;
mod routes;
mod sealing;
mod serve;
mod sessions;
mod signer;
mod state;
mod store;
mod tasks;
mod telemetry;
mod tokens;
pub mod transfer;
mod web;
mod webhooks;

pub use app::{RunningServer, StartError, router, start};
pub use config::WebConfig;
pub use config::{Config, ConfigError, DEFAULT_PORT};
pub use sealing::{Purpose, Sealer};
pub use serve::ConnectionLimits;
pub use signer::install as install_jwt_signer;
pub use state::AppState;
pub use store::Store;
pub use telemetry::init_logging;
pub use tokens::new_token_base64;
pub use webhooks::{WebhookConfig, WebhookTarget, parse_webhook_secrets};

/// The API's OpenAPI document, pretty-printed: what `GET /openapi.json` answers.
pub fn openapi_json() -> String {
    use utoipa::OpenApi;
    routes::ops::ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

/// What the integration tests reach past the HTTP API for: rows they plant and files they
/// inspect.
#[doc(hidden)]
pub mod testing {
    pub use crate::db::{fresh_test_postgres, sqlite_file};
    pub use crate::store::NOTICED_WITHIN as READINESS_INTERVAL;
    pub use crate::store::{NewExchangeCode, Rotation, WebCompletion, WebSignIn};
    pub use crate::tokens::token_hash;
}
