//! The durable revocation queue: a deleted account's Apple token is queued in the deletion's
//! transaction, tried at once, and retried with exponential backoff until Apple confirms.
//! Several instances may work the queue at once: revocation is idempotent at Apple.

use std::sync::Arc;

use siwa_core::api::AppleRevocation;
use siwa_core::{Clock, SystemClock};
use tokio_util::sync::CancellationToken;

use crate::retry::{self, Backoff};
use crate::state::AppState;
use crate::store::{PendingRevocation, Queue};

/// How long an instance holds a revocation it attempts: far longer than a call to Apple takes.
const LEASE_SECS: i64 = 120;

/// What became of a deleted account's grants at Apple, as `DELETE /v1/me` answers it.
pub async fn attempt_all(
    state: &AppState,
    pending: &[PendingRevocation],
    now: i64,
) -> AppleRevocation {
    if pending.is_empty() {
        return AppleRevocation::NotNeeded;
    }
    let mut all_revoked = true;
    for one in pending {
        all_revoked &= attempt(state, one, now).await;
    }
    if all_revoked {
        AppleRevocation::Revoked
    } else {
        AppleRevocation::Queued
    }
}

/// Tries one revocation, if no other instance is attempting it; on failure schedules the next
/// attempt. Returns whether Apple confirmed it.
pub async fn attempt(state: &AppState, pending: &PendingRevocation, now: i64) -> bool {
    if !retry::lease(
        &state.store,
        Queue::Revocations,
        &pending.id,
        now,
        LEASE_SECS,
    )
    .await
    {
        return false;
    }
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
            Err(error) => tracing::warn!(%error, "could not read the revocation queue"),
        }
    }
}
