//! What every request handler shares: the accounts (every rule), the web flow's HTTP side, the
//! per-client rate limit, and the configuration. Built by `app`.

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::forwarded::ClientLimiter;
use crate::store::Store;
use crate::web::WebFlow;

pub struct AppState {
    pub config: Config,
    pub accounts: Accounts,
    /// The web flow, when `SIWA_APPLE_SERVICES_ID` and `SIWA_PUBLIC_URL` are set.
    pub web: Option<WebFlow>,
    /// Per client (`forwarded::client_of`), on the routes that write for anonymous callers.
    pub client_limiter: Option<Arc<ClientLimiter>>,
    /// The store, for the server's own start and stop and for tests: no route uses it
    /// (`server/tests/layers.rs` checks), they ask `accounts`.
    pub store: Store,
}
