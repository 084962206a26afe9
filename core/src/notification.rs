//! Apple's server-to-server notifications.
//!
//! Apple POSTs `{"payload": "<JWS>"}`, signed with the same keys as identity tokens, with claims
//! `iss`, `aud`, `iat`, `exp`, `jti` and `events`. `events` is a JSON object **encoded as a
//! string** (docs/apple-protocol.md, F12, P12): `{"type", "sub", "event_time" (ms), and for email
//! events "email", "is_private_email"}`. Account deletion is spelled `account-delete` in most
//! sources and `account-deleted` on Apple's current page: both are accepted.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::VerifyError;

/// The body Apple POSTs to the notification endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotificationBody {
    /// The notification: a JWS signed by Apple.
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
    /// Reads Apple's spelling; both spellings of account deletion are accepted.
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
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The user, as the `sub` of their identity tokens.
    pub sub: String,
    /// Milliseconds since the epoch.
    pub event_time: i64,
    /// For email events: the address concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// For email events: whether the address is a private relay address.
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

/// The claims of a notification payload, as Apple signs them (docs/apple-protocol.md, F12).
///
/// Every claim is optional here so that the verifier can name the one that is missing; Apple
/// sends all of them, and [`NotificationClaims::apple`] makes them as Apple does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationClaims {
    /// Apple's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The client id the notification is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Expires at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Unique per notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The event: in Apple's format a JSON string holding an object (P12). An object is read
    /// too, though Apple does not send one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<serde_json::Value>,
}

/// How long Apple's notification payloads are valid for.
const NOTIFICATION_LIFETIME_SECS: i64 = 300;

impl NotificationClaims {
    /// The claims Apple signs for `event`, sent to `client_id` at `now`.
    pub fn apple(
        issuer: &str,
        client_id: &str,
        now: i64,
        jti: &str,
        event: &NotificationEvent,
    ) -> Self {
        Self {
            iss: Some(issuer.into()),
            aud: Some(client_id.into()),
            iat: Some(now),
            exp: Some(now + NOTIFICATION_LIFETIME_SECS),
            jti: Some(jti.into()),
            // Encoded as a string, as Apple does (P12).
            events: Some(serde_json::Value::String(
                serde_json::to_string(event).expect("an event always serializes"),
            )),
        }
    }

    /// The event these claims carry, decoded from its string (or object) form.
    pub fn event(&self) -> Result<NotificationEvent, VerifyError> {
        let event = match self
            .events
            .as_ref()
            .ok_or(VerifyError::MissingClaim("events"))?
        {
            serde_json::Value::String(encoded) => serde_json::from_str(encoded),
            object => NotificationEvent::deserialize(object),
        };
        let event: NotificationEvent =
            event.map_err(|_| VerifyError::Malformed("events is not a notification event"))?;
        if event.sub.is_empty() {
            return Err(VerifyError::MissingClaim("events.sub"));
        }
        Ok(event)
    }
}

/// A verified notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Unique per notification: the key to deduplicate Apple's retries on.
    pub jti: String,
    /// The client id the notification is for.
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// The event, decoded from the `events` claim.
    pub event: NotificationEvent,
}
