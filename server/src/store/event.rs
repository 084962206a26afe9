//! What a webhook event says: its type, the user it is about, and its payload as the Standard
//! Webhooks specification has receivers read it. The outbox (`events`) writes it in the
//! transaction of the change it reports; `webhooks::delivery` sends it.

use serde_json::{Value, json};

siwa_core::protocol_word! {
    /// The type of a webhook event, as receivers read it in the payload's `type`.
    WebhookEventType, "webhook event type" {
        Created => "user.created",
        Deleted => "user.deleted",
        ConsentRevoked => "user.consent_revoked",
        EmailDisabled => "user.email_disabled",
        EmailEnabled => "user.email_enabled",
        Transferred => "user.transferred",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailForwarding {
    Disabled,
    Enabled,
}

/// Why a user was deleted (`user.deleted`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionReason {
    /// `DELETE /v1/me` (or the web page's "Delete account").
    App,
    /// Apple's `account-delete` notification.
    Apple,
}

/// An event about to be written to the outbox.
pub struct WebhookEvent {
    pub kind: WebhookEventType,
    /// `data` of the payload: our user id and Apple's `sub`, and what the type adds.
    pub data: Value,
}

impl WebhookEvent {
    pub fn created(user_id: &str, apple_sub: &str) -> Self {
        Self::about(WebhookEventType::Created, user_id, apple_sub, json!({}))
    }

    pub fn deleted(user_id: &str, apple_sub: &str, reason: DeletionReason) -> Self {
        let reason = match reason {
            DeletionReason::App => "app",
            DeletionReason::Apple => "apple",
        };
        Self::about(
            WebhookEventType::Deleted,
            user_id,
            apple_sub,
            json!({"reason": reason}),
        )
    }

    pub fn consent_revoked(user_id: &str, apple_sub: &str) -> Self {
        Self::about(
            WebhookEventType::ConsentRevoked,
            user_id,
            apple_sub,
            json!({}),
        )
    }

    /// The email events are the only ones that carry the email.
    pub fn email(
        forwarding: EmailForwarding,
        user_id: &str,
        apple_sub: &str,
        email: Option<&str>,
    ) -> Self {
        let kind = match forwarding {
            EmailForwarding::Disabled => WebhookEventType::EmailDisabled,
            EmailForwarding::Enabled => WebhookEventType::EmailEnabled,
        };
        let is_private_email = email.map(siwa_core::relay::is_relay_address);
        Self::about(
            kind,
            user_id,
            apple_sub,
            json!({"email": email, "isPrivateEmail": is_private_email}),
        )
    }

    pub fn transferred(user_id: &str, previous_sub: &str, apple_sub: &str) -> Self {
        Self::about(
            WebhookEventType::Transferred,
            user_id,
            apple_sub,
            json!({"previousAppleSub": previous_sub}),
        )
    }

    fn about(kind: WebhookEventType, user_id: &str, apple_sub: &str, extra: Value) -> Self {
        let mut data = json!({"userId": user_id, "appleSub": apple_sub});
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        Self { kind, data }
    }

    /// The body sent: `{"type", "timestamp", "data"}`, as the specification suggests.
    pub fn payload(&self, created_at: i64) -> String {
        json!({"type": self.kind.as_str(), "timestamp": rfc3339(created_at), "data": self.data})
            .to_string()
    }
}

/// The type of `doctor`'s test event. Receivers should answer it 2xx and otherwise ignore it:
/// it is about no user.
const TEST_EVENT_TYPE: &str = "siwa.test";

/// The body of `doctor`'s test event: `{"type": "siwa.test", "timestamp", "data": {}}`.
pub fn test_payload(now: i64) -> String {
    json!({"type": TEST_EVENT_TYPE, "timestamp": rfc3339(now), "data": {}}).to_string()
}

/// A time as RFC 3339 (`2023-11-14T22:13:20Z`); empty when out of range.
pub fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// A new event id: `msg_` and a 128-bit id (`tokens::new_ordered_id`: the time, then 80 random
/// bits), the form the specification's examples use.
pub fn new_event_id() -> String {
    format!("msg_{}", crate::tokens::new_ordered_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_the_type_an_rfc3339_time_and_the_users_ids() {
        let payload: Value = serde_json::from_str(
            &WebhookEvent::deleted("u1", "001.abc.1", DeletionReason::Apple).payload(1_700_000_000),
        )
        .unwrap();
        assert_eq!(
            payload,
            json!({"type": "user.deleted", "timestamp": "2023-11-14T22:13:20Z",
                   "data": {"userId": "u1", "appleSub": "001.abc.1", "reason": "apple"}})
        );
        let moved: Value =
            serde_json::from_str(&WebhookEvent::transferred("u1", "old", "new").payload(0))
                .unwrap();
        assert_eq!(moved["data"]["previousAppleSub"], "old");
        assert_eq!(moved["data"]["appleSub"], "new");
        let created: Value =
            serde_json::from_str(&WebhookEvent::created("u1", "s").payload(0)).unwrap();
        assert!(
            created["data"].get("email").is_none(),
            "only email events carry it"
        );
    }
}
