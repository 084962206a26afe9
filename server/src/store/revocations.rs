//! The revocation queue: Apple refresh tokens we no longer keep, sealed, until Apple confirms
//! their revocation. Rows are leased (`queue`), so several instances never attempt one at the
//! same time.

use siwa_core::TokenTypeHint;
use sqlx::{Any, Transaction};

use super::Store;
use crate::sealing::{Purpose, Sealer};
use crate::tokens;

/// A revocation waiting to be confirmed by Apple.
#[derive(Clone, sqlx::FromRow)]
pub struct PendingRevocation {
    pub id: String,
    pub client_id: String,
    pub token: String,
    #[sqlx(try_from = "String")]
    pub token_type_hint: TokenTypeHint,
    pub attempts: i64,
}

impl Store {
    pub async fn due_revocations(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<PendingRevocation>, sqlx::Error> {
        let due: Vec<PendingRevocation> = sqlx::query_as("SELECT id, client_id, token, token_type_hint, attempts FROM apple_revocations WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(self.pool()?)
            .await?;
        Ok(due
            .into_iter()
            .filter_map(|mut pending| match self.open_apple_token(&pending.token) {
                Ok(token) => {
                    pending.token = token;
                    Some(pending)
                }
                Err(error) => {
                    tracing::error!(%error, "a queued revocation cannot be opened; it stays queued");
                    None
                }
            })
            .collect())
    }

    pub async fn revocation_done(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM apple_revocations WHERE id = $1")
            .bind(id)
            .execute(self.pool()?)
            .await
            .map(|_| ())
    }

    pub async fn revocation_failed(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE apple_revocations SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3")
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(self.pool()?)
            .await
            .map(|_| ())
    }

    pub async fn pending_revocations(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM apple_revocations")
            .fetch_one(self.pool()?)
            .await?;
        Ok(n)
    }
}

/// How long an instance holds a revocation it attempts: far longer than a call to Apple takes.
pub const REVOCATION_LEASE_SECS: i64 = 120;

/// Puts an Apple refresh token in the revocation queue, sealed, already leased to the deletion
/// that queues it (which attempts it at once): the queue's worker takes it only if that attempt
/// fails or its process dies, once the lease has run out.
pub(super) async fn queue_revocation(
    tx: &mut Transaction<'_, Any>,
    sealer: &Sealer,
    client_id: String,
    token: String,
    now: i64,
) -> Result<PendingRevocation, sqlx::Error> {
    let pending = PendingRevocation {
        id: tokens::new_id(),
        client_id,
        token,
        token_type_hint: TokenTypeHint::RefreshToken,
        attempts: 0,
    };
    sqlx::query("INSERT INTO apple_revocations (id, client_id, token, token_type_hint, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 0, $5, $6)")
        .bind(&pending.id)
        .bind(&pending.client_id)
        .bind(sealer.seal(Purpose::AppleToken, &pending.token))
        .bind(pending.token_type_hint.as_str())
        .bind(now + REVOCATION_LEASE_SECS)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(pending)
}
