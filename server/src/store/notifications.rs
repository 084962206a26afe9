//! Apple's server-to-server notifications, applied once per `jti`.

use siwa_core::{EventType, NotificationEvent};

use super::Store;
use super::sessions::{Sessions, revoke_sessions};
use super::users::delete_user_rows;
use crate::webhooks::{DeletionReason, Event};

/// What a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    Applied,
    /// Its `jti` was handled before (Apple retries).
    Duplicate,
    /// No user has its `sub`, or its type is not acted on.
    Ignored,
}

impl Store {
    /// Applies a verified notification once per `jti`.
    pub async fn apply_notification(
        &self,
        jti: &str,
        event: &NotificationEvent,
        now: i64,
    ) -> Result<NotificationOutcome, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query("INSERT INTO notifications_seen (jti, event_type, received_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(event.kind.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if first.rows_affected() == 0 {
            return Ok(NotificationOutcome::Duplicate);
        }
        let user: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, email FROM users WHERE apple_sub = $1")
                .bind(&event.sub)
                .fetch_optional(&mut *tx)
                .await?;
        let mut recorded = false;
        let outcome = match (user, &event.kind) {
            (None, _) | (_, EventType::Other(_)) => NotificationOutcome::Ignored,
            (Some((user_id, email)), kind) => {
                match kind {
                    EventType::EmailDisabled | EventType::EmailEnabled => {
                        let disabled = i64::from(*kind == EventType::EmailDisabled);
                        sqlx::query(
                            "UPDATE users SET email_forwarding_disabled = $1 WHERE id = $2",
                        )
                        .bind(disabled)
                        .bind(&user_id)
                        .execute(&mut *tx)
                        .await?;
                        let disabled = disabled == 1;
                        let change = Event::email(disabled, &user_id, &event.sub, email.as_deref());
                        recorded = self.record_event(&mut tx, change, now).await?;
                    }
                    EventType::ConsentRevoked => {
                        // Apple has ended the authorization; the sessions and grants made
                        // under it end too. A sign-in after the user's revocation is a new
                        // authorization (Apple retries notifications, so this one may arrive
                        // late): its session and grant stay.
                        let revoked_at = event.event_time.div_euclid(1000);
                        revoke_sessions(
                            &mut tx,
                            Sessions::OfUserMadeBy(&user_id, revoked_at),
                            "consent_revoked",
                            now,
                        )
                        .await?;
                        sqlx::query(
                            "DELETE FROM apple_tokens WHERE user_id = $1 AND created_at <= $2",
                        )
                        .bind(&user_id)
                        .bind(revoked_at)
                        .execute(&mut *tx)
                        .await?;
                        let revoked = Event::consent_revoked(&user_id, &event.sub);
                        recorded = self.record_event(&mut tx, revoked, now).await?;
                    }
                    EventType::AccountDeleted => {
                        delete_user_rows(&mut tx, &user_id).await?;
                        let deleted = Event::deleted(&user_id, &event.sub, DeletionReason::Apple);
                        recorded = self.record_event(&mut tx, deleted, now).await?;
                    }
                    EventType::Other(_) => unreachable!("matched above"),
                }
                NotificationOutcome::Applied
            }
        };
        tx.commit().await?;
        self.events_committed(recorded);
        Ok(outcome)
    }
}
