//! The durable revocation queue: a deleted account's Apple token is queued in the deletion's
//! transaction, tried at once, and retried with exponential backoff until Apple confirms.
//! Several instances may work the queue at once: revocation is idempotent at Apple.

use std::sync::Arc;
use std::time::Duration;

use siwa_core::Clock;
use siwa_core::api::AppleRevocation;
use tokio_util::sync::CancellationToken;

use crate::apple::AppleGateway;
use crate::retry::{self, Backoff};
use crate::store::{PendingRevocation, Queue, REVOCATION_LEASE_SECS, Store};

/// What revoking takes: the queue, Apple, and the first retry delay.
#[derive(Clone)]
pub struct Revocations {
    pub store: Store,
    pub apple: Arc<AppleGateway>,
    /// The first retry delay of a failed revocation, in seconds; doubled at each failure.
    pub retry_base_secs: i64,
}

impl Revocations {
    /// What became of a deleted account's grants at Apple, as `DELETE /v1/me` answers it.
    pub async fn attempt_all(&self, pending: &[PendingRevocation], now: i64) -> AppleRevocation {
        if pending.is_empty() {
            return AppleRevocation::NotNeeded;
        }
        // Queued already leased to this deletion: no claim, and no race with the queue's worker.
        let mut all_revoked = true;
        for one in pending {
            all_revoked &= self.revoke(one, now).await;
        }
        if all_revoked {
            AppleRevocation::Revoked
        } else {
            AppleRevocation::Queued
        }
    }

    /// Tries one due revocation, if no other instance is attempting it. Returns whether Apple
    /// confirmed it.
    pub async fn attempt(&self, pending: &PendingRevocation, now: i64) -> bool {
        let leased = retry::lease(
            &self.store,
            Queue::Revocations,
            &pending.id,
            now,
            REVOCATION_LEASE_SECS,
        )
        .await;
        leased && self.revoke(pending, now).await
    }

    /// Calls Apple for a revocation this instance holds the lease of; on failure schedules the next
    /// attempt. Returns whether Apple confirmed it.
    async fn revoke(&self, pending: &PendingRevocation, now: i64) -> bool {
        match self
            .apple
            .revoke(&pending.client_id, &pending.token, pending.token_type_hint)
            .await
        {
            Ok(()) => {
                if let Err(error) = self.store.revocation_done(&pending.id).await {
                    tracing::error!(%error, "revoked at Apple, but the queue entry could not be removed");
                }
                true
            }
            Err(error) => {
                let delay = Backoff::from_base(self.retry_base_secs).delay(pending.attempts);
                tracing::warn!(%error, attempts = pending.attempts + 1, retry_in_secs = delay, "Apple token revocation failed; queued for retry");
                if let Err(error) = self
                    .store
                    .revocation_failed(&pending.id, now + delay, &error.to_string())
                    .await
                {
                    tracing::error!(%error, "could not reschedule a revocation");
                }
                false
            }
        }
    }
}

/// Works the queue until `stop`: every `interval`, attempts each due revocation.
pub async fn work_queue(
    revocations: Revocations,
    interval: Duration,
    clock: Arc<dyn Clock>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let now = clock.now();
        match revocations.store.due_revocations(now, 50).await {
            Ok(due) => {
                for pending in &due {
                    if stop.is_cancelled() {
                        return;
                    }
                    revocations.attempt(pending, now).await;
                }
            }
            // While the database is known to be down, its watch has said so.
            Err(error) if crate::store::KnownDown::is(&error) => {}
            Err(error) => tracing::warn!(%error, "could not read the revocation queue"),
        }
    }
}
