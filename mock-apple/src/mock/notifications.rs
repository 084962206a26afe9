//! Apple's server-to-server notifications: signed in Apple's format and delivered, with the
//! change they report made to the mock's own state.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use siwa_core::apple_side::NotificationClaims;
use siwa_core::{EventType, NotificationBody, NotificationEvent};

use crate::random;

use super::{Mock, MockError, sign_rs256};

/// A notification to sign and deliver.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationRequest {
    /// Where to POST it.
    pub url: String,
    /// `email-disabled`, `email-enabled`, `consent-revoked`, `account-delete` or
    /// `account-deleted` (or anything else, to test unknown types).
    #[serde(rename = "type")]
    pub kind: String,
    /// Default: the default test user.
    pub sub: Option<String>,
    /// The `aud`. Default: the default client id.
    pub client_id: Option<String>,
    /// For email events. Default: the user's relay address.
    pub email: Option<String>,
    pub is_private_email: Option<bool>,
    /// Default: a fresh random one. Set it to test deduplication.
    pub jti: Option<String>,
    /// When the user acted, in milliseconds since the epoch. Default: now. An earlier time
    /// stands for a notification Apple delivers late (it retries until it gets a 200).
    pub event_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentNotification {
    pub jti: String,
    /// The receiver's HTTP status.
    pub status: u16,
}

impl Mock {
    /// Signs a server-to-server notification in Apple's format and POSTs it to `request.url`.
    /// Like the user action it reports, `consent-revoked` ends the user's grants for the
    /// client and `account-delete(d)` removes the user.
    pub async fn send_notification(
        &self,
        request: NotificationRequest,
    ) -> Result<SentNotification, MockError> {
        let url = url::Url::parse(&request.url)
            .map_err(|_| MockError::InvalidRequest("url is not an absolute URL".into()))?;
        if request.kind.is_empty() {
            return Err(MockError::InvalidRequest("type is missing".into()));
        }
        let now = self.now();
        let client_id = request
            .client_id
            .unwrap_or_else(|| self.default_client_id.clone());
        let jti = request.jti.unwrap_or_else(random::token);
        let payload = {
            let mut state = self.state();
            let sub = match request.sub {
                Some(sub) => sub,
                None => state
                    .directory
                    .default_user()
                    .ok_or(MockError::UnknownUser)?
                    .sub
                    .clone(),
            };
            let kind = EventType::parse(&request.kind);
            let is_email_event = matches!(kind, EventType::EmailDisabled | EventType::EmailEnabled);
            let email = request.email.or_else(|| {
                is_email_event.then(|| crate::directory::relay_email(&sub, &client_id))
            });
            let is_private_email = request.is_private_email.or(is_email_event.then_some(true));
            match kind {
                EventType::ConsentRevoked => {
                    state.grants.revoke_user(&sub, Some(&client_id));
                    state.directory.forget_authorization(&sub, &client_id);
                }
                EventType::AccountDeleted => {
                    state.grants.revoke_user(&sub, None);
                    state.directory.remove(&sub);
                }
                _ => {}
            }
            let event = NotificationEvent {
                // Keep the caller's spelling (`account-delete` or `account-deleted`).
                kind: EventType::Other(request.kind.clone()),
                sub,
                event_time: request.event_time.unwrap_or(now * 1000),
                email,
                is_private_email,
            };
            let claims = NotificationClaims::apple(&self.issuer, &client_id, now, &jti, &event);
            let Value::Object(claims) = serde_json::to_value(claims).expect("claims serialize")
            else {
                unreachable!("claims serialize as an object")
            };
            sign_rs256(&state.keys, &claims)
        };
        let response = self
            .http
            .post(url)
            .json(&NotificationBody { payload })
            .send()
            .await
            .map_err(|e| MockError::Delivery(siwa_core::transport_reason(&e).into()))?;
        Ok(SentNotification {
            jti,
            status: response.status().as_u16(),
        })
    }
}
