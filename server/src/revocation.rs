//! The durable revocation queue: a deleted account's Apple token is queued in the deletion's
//! transaction, tried at once, and retried with exponential backoff until Apple confirms.
//! Several instances may work the queue at once: revocation is idempotent at Apple.

use std::sync::Arc;

use siwa_core::api::AppleRevocation;
use siwa_core::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::retry::{self, Backoff};
use crate::state::AppState;
use crate::store::{PendingRevocation, Queue, REVOCATION_LEASE_SECS};

/// What became of a deleted account's grants at Apple, as `DELETE /v1/me` answers it.
pub async fn attempt_all(
    state: &AppState,
    pending: &[PendingRevocation],
    now: i64,
) -> AppleRevocation {
    if pending.is_empty() {
        return AppleRevocation::NotNeeded;
    }
    // Queued already leased to this deletion: no claim, and no race with the queue's worker.
    let mut all_revoked = true;
    for one in pending {
        all_revoked &= revoke(state, one, now).await;
    }
    if all_revoked {
        AppleRevocation::Revoked
    } else {
        AppleRevocation::Queued
    }
}

/// Tries one due revocation, if no other instance is attempting it. Returns whether Apple
/// confirmed it.
pub async fn attempt(state: &AppState, pending: &PendingRevocation, now: i64) -> bool {
    let leased = retry::lease(
        &state.store,
        Queue::Revocations,
        &pending.id,
        now,
        REVOCATION_LEASE_SECS,
    )
    .await;
    leased && revoke(state, pending, now).await
}

/// Calls Apple for a revocation this instance holds the lease of; on failure schedules the next
/// attempt. Returns whether Apple confirmed it.
async fn revoke(state: &AppState, pending: &PendingRevocation, now: i64) -> bool {
    match state
        .apple
        .revoke(&pending.client_id, &pending.token, pending.token_type_hint)
        .await
    {
        Ok(()) => {
            if let Err(error) = state.store.revocation_done(&pending.id).await {
                tracing::error!(%error, "revoked at Apple, but the queue entry could not be removed");
            }
            true
        }
        Err(error) => {
            let base = state.config.revocation_retry_base.as_secs() as i64;
            let delay = Backoff::from_base(base).delay(pending.attempts);
            tracing::warn!(%error, attempts = pending.attempts + 1, retry_in_secs = delay, "Apple token revocation failed; queued for retry");
            if let Err(error) = state
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

/// Works the queue until `stop`: every poll interval, attempts each due revocation.
pub async fn work_queue(state: Arc<AppState>, stop: CancellationToken) {
    let interval = state.config.revocation_poll_interval;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
        let now = SystemClock.now();
        match state.store.due_revocations(now, 50).await {
            Ok(due) => {
                for pending in &due {
                    if stop.is_cancelled() {
                        return;
                    }
                    attempt(&state, pending, now).await;
                }
            }
            // While the database is known to be down, its watch has said so.
            Err(error) if crate::store::KnownDown::is(&error) => {}
            Err(error) => tracing::warn!(%error, "could not read the revocation queue"),
        }
    }
}
