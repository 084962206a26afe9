//! Apple's server-to-server notifications (docs/apple-protocol.md, F12): what each one does to
//! the account of its `sub`, applied once per `jti` (Apple retries).

use siwa_core::api::NotificationStatus;
use siwa_core::{EventType, NotificationEvent};

use super::Accounts;
use crate::error::ApiError;
use crate::store::{AccountChange, EmailForwarding};

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
            .store
            .apply_notification(&notification.jti, event, change_for(event), self.now())
            .await?;
        let kind = event.kind.as_str();
        metrics::counter!("siwa_notifications_total", "type" => kind.to_owned(), "status" => status.as_str()).increment(1);
        tracing::info!(event = kind, status = status.as_str(), "Apple notification");
        Ok(status)
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
