//! Apple's server-to-server notifications, applied once per `jti`, each in one transaction
//! with the webhook event it causes. What each notification changes is `accounts`' rule.

use siwa_core::NotificationEvent;
use siwa_core::api::NotificationStatus;

use super::Store;
use super::event::{DeletionReason, EmailForwarding, WebhookEvent};
use super::sessions::{RevocationReason, Sessions, revoke_sessions};
use super::users::delete_user_rows;

/// A change Apple's notification makes to a user's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountChange {
    /// The private relay stopped or resumed forwarding to the user.
    EmailForwarding(EmailForwarding),
    /// The authorization ended at this time (seconds): the sessions and Apple grants made up to
    /// it end.
    EndAuthorization { at: i64 },
    /// The Apple account is gone: so is the user, with everything of theirs.
    Delete,
}

impl Store {
    /// Applies a verified notification's `change` once per `jti`: `Duplicate` when its `jti`
    /// was seen before, `Ignored` when no user has its `sub` or it changes nothing.
    pub async fn apply_notification(
        &self,
        jti: &str,
        event: &NotificationEvent,
        change: Option<AccountChange>,
        now: i64,
    ) -> Result<NotificationStatus, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        let first = sqlx::query("INSERT INTO notifications_seen (jti, event_type, received_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(event.kind.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if first.rows_affected() == 0 {
            return Ok(NotificationStatus::Duplicate);
        }
        let user: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT id, email FROM users WHERE apple_sub = $1")
                .bind(&event.sub)
                .fetch_optional(&mut *tx)
                .await?;
        let (Some((user_id, email)), Some(change)) = (user, change) else {
            tx.commit().await?;
            return Ok(NotificationStatus::Ignored);
        };
        let sub = event.sub.as_str();
        let webhook = match change {
            AccountChange::EmailForwarding(forwarding) => {
                sqlx::query("UPDATE users SET email_forwarding_disabled = $1 WHERE id = $2")
                    .bind(i64::from(forwarding == EmailForwarding::Disabled))
                    .bind(&user_id)
                    .execute(&mut *tx)
                    .await?;
                WebhookEvent::email(forwarding, &user_id, sub, email.as_deref())
            }
            AccountChange::EndAuthorization { at } => {
                revoke_sessions(
                    &mut tx,
                    Sessions::OfUserMadeBy(&user_id, at),
                    RevocationReason::ConsentRevoked,
                    now,
                )
                .await?;
                sqlx::query("DELETE FROM apple_tokens WHERE user_id = $1 AND created_at <= $2")
                    .bind(&user_id)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                WebhookEvent::consent_revoked(&user_id, sub)
            }
            AccountChange::Delete => {
                delete_user_rows(&mut tx, &user_id).await?;
                WebhookEvent::deleted(&user_id, sub, DeletionReason::Apple)
            }
        };
        let recorded = self.record_event(&mut tx, webhook, now).await?;
        tx.commit().await?;
        self.events_committed(recorded);
        Ok(NotificationStatus::Applied)
    }
}
