//! Apple's server-to-server notifications (docs/apple-protocol.md, F12): what each one does to
//! the account of its `sub`, applied once per `jti` (Apple retries).

use siwa_core::api::NotificationStatus;
use siwa_core::{EventType, NotificationEvent};

use super::Accounts;
use crate::error::ApiError;
use crate::store::{self, DeletionReason, EmailForwarding, WebhookEvent};

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

impl Accounts {
    /// Verifies a notification's payload with Apple's keys (audience: a configured client id)
    /// and applies it once.
    pub async fn apply_notification(&self, payload: &str) -> Result<NotificationStatus, ApiError> {
        let notification = self
            .app_verifier
            .verify_notification(payload)
            .await
            .map_err(ApiError::Notification)?;
        let event = &notification.event;
        let status = self
            .apply_once(&notification.jti, event, change_for(event))
            .await?;
        let kind = event.kind.as_str();
        metrics::counter!("siwa_notifications_total", "type" => kind.to_owned(), "status" => status.as_str()).increment(1);
        tracing::info!(event = kind, status = status.as_str(), "Apple notification");
        Ok(status)
    }
}

impl Accounts {
    /// Applies `change` once per `jti`, in one transaction with the webhook event it causes:
    /// `Duplicate` when its `jti` was seen before, `Ignored` when no user has its `sub` or it
    /// changes nothing.
    async fn apply_once(
        &self,
        jti: &str,
        event: &NotificationEvent,
        change: Option<AccountChange>,
    ) -> Result<NotificationStatus, ApiError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if !store::mark_notification_seen(&mut tx, jti, event.kind.as_str(), now).await? {
            return Ok(NotificationStatus::Duplicate);
        }
        let user = store::user_of_sub(&mut tx, &event.sub).await?;
        let (Some((user_id, email)), Some(change)) = (user, change) else {
            tx.commit().await?;
            return Ok(NotificationStatus::Ignored);
        };
        let sub = event.sub.as_str();
        let webhook = match change {
            AccountChange::EmailForwarding(forwarding) => {
                let disabled = forwarding == EmailForwarding::Disabled;
                store::set_email_forwarding(&mut tx, &user_id, disabled).await?;
                WebhookEvent::email(forwarding, &user_id, sub, email.as_deref())
            }
            AccountChange::EndAuthorization { at } => {
                store::end_authorization(&mut tx, &user_id, at, now).await?;
                WebhookEvent::consent_revoked(&user_id, sub)
            }
            AccountChange::Delete => {
                store::delete_user(&mut tx, &user_id).await?;
                WebhookEvent::deleted(&user_id, sub, DeletionReason::Apple)
            }
        };
        let recorded = self.store.record_event(&mut tx, webhook, now).await?;
        tx.commit().await?;
        self.store.events_committed(recorded);
        Ok(NotificationStatus::Applied)
    }
}

/// What a notification does to its user's account, if anything.
fn change_for(event: &NotificationEvent) -> Option<AccountChange> {
    match event.kind {
        EventType::EmailDisabled => Some(AccountChange::EmailForwarding(EmailForwarding::Disabled)),
        EventType::EmailEnabled => Some(AccountChange::EmailForwarding(EmailForwarding::Enabled)),
        // Apple has ended the authorization; the sessions and grants made under it end too. A
        // sign-in after the user's revocation is a new authorization (Apple retries
        // notifications, so this one may arrive late): its session and grant stay.
        EventType::ConsentRevoked => Some(AccountChange::EndAuthorization {
            at: event.event_time.div_euclid(1000),
        }),
        EventType::AccountDeleted => Some(AccountChange::Delete),
        EventType::Other(_) => None,
    }
}
