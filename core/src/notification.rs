//! Apple's server-to-server notifications.
//!
//! Apple POSTs `{"payload": "<JWS>"}`, signed with the same keys as identity tokens, with claims
//! `iss`, `aud`, `iat`, `exp`, `jti` and `events`. `events` is a JSON object **encoded as a
//! string** (protocol notes, pitfall 12): `{"type", "sub", "event_time" (ms), and for email
//! events "email", "is_private_email"}`. Account deletion is spelled `account-delete` in most
//! sources and `account-deleted` on Apple's current page: both are accepted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The body Apple POSTs to the notification endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationBody {
    pub payload: String,
}

/// What happened to a user's relationship with the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// The user stopped forwarding email from the private relay address.
    EmailDisabled,
    /// The user resumed forwarding from the private relay address.
    EmailEnabled,
    /// The user stopped using Sign in with Apple with the app (Settings > Apple ID).
    ConsentRevoked,
    /// The user deleted their Apple account.
    AccountDeleted,
    /// A type Apple may add later: acknowledged, not acted on.
    Other(String),
}

impl EventType {
    pub fn parse(value: &str) -> Self {
        match value {
            "email-disabled" => Self::EmailDisabled,
            "email-enabled" => Self::EmailEnabled,
            "consent-revoked" => Self::ConsentRevoked,
            "account-delete" | "account-deleted" => Self::AccountDeleted,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The spelling most sources (and Apple's older page) use.
    pub fn as_str(&self) -> &str {
        match self {
            Self::EmailDisabled => "email-disabled",
            Self::EmailEnabled => "email-enabled",
            Self::ConsentRevoked => "consent-revoked",
            Self::AccountDeleted => "account-delete",
            Self::Other(other) => other,
        }
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(d)?))
    }
}

/// The decoded `events` claim. `Debug` leaves out the email.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub sub: String,
    /// Milliseconds since the epoch.
    pub event_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::claims::flexible_bool_opt"
    )]
    pub is_private_email: Option<bool>,
}

impl fmt::Debug for NotificationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationEvent")
            .field("kind", &self.kind)
            .field("sub", &self.sub)
            .field("event_time", &self.event_time)
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The claims of a notification payload as signed by Apple.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The event, as a JSON string (Apple's format).
    pub events: String,
}

impl NotificationClaims {
    /// Encodes `event` into `events` as Apple does: a JSON string, not an object.
    pub fn events_string(event: &NotificationEvent) -> String {
        serde_json::to_string(event).expect("an event always serializes")
    }
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Unique per notification: the key to deduplicate Apple's retries on.
    pub jti: String,
    /// The client id the notification is for.
    pub aud: String,
    pub iat: i64,
    pub event: NotificationEvent,
}
