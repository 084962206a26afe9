//! Housekeeping: forgets what no longer needs keeping (nonces past their time, old notification
//! ids) and the rate limiter's idle entries. Every instance may run it: each step is idempotent.

use std::sync::Arc;
use std::time::Duration;

use siwa_core::Clock;
use tokio_util::sync::CancellationToken;

use crate::forwarded::ClientLimiter;
use crate::store::Store;

const EVERY: Duration = Duration::from_secs(60);

/// What housekeeping tidies.
pub struct Housekeeping {
    pub store: Store,
    /// The per-client rate limiter, if any.
    pub limiter: Option<Arc<ClientLimiter>>,
    /// `SIWA_REFRESH_REUSE_GRACE_SECS`: successors are forgotten past it.
    pub refresh_reuse_grace_secs: i64,
    pub clock: Arc<dyn Clock>,
}

/// Runs every minute until `stop`.
pub async fn run(work: Housekeeping, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
        let grace = work.refresh_reuse_grace_secs;
        match work.store.purge_expired(work.clock.now(), grace).await {
            // While the database is known to be down, its watch has said so.
            Err(error) if !crate::store::KnownDown::is(&error) => {
                tracing::warn!(%error, "could not purge expired rows");
            }
            _ => {}
        }
        if let Some(limiter) = &work.limiter {
            limiter.retain_recent();
        }
    }
}
