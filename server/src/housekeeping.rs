//! Housekeeping: forgets what no longer needs keeping (nonces past their time, old notification
//! ids) and the rate limiter's idle entries. Every instance may run it: each step is idempotent.

use std::sync::Arc;
use std::time::Duration;

use siwa_core::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

const EVERY: Duration = Duration::from_secs(60);

/// Runs every minute until `stop`.
pub async fn run(state: Arc<AppState>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
        let grace = state.config.refresh_reuse_grace.as_secs() as i64;
        match state.store.purge_expired(SystemClock.now(), grace).await {
            // While the database is known to be down, its watch has said so.
            Err(error) if !crate::store::KnownDown::is(&error) => {
                tracing::warn!(%error, "could not purge expired rows");
            }
            _ => {}
        }
        if let Some(limiter) = &state.client_limiter {
            limiter.retain_recent();
        }
    }
}
