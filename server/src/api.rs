//! The JSON shapes of the HTTP API (and their OpenAPI schemas).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::User;

/// The seed's request: `{"identityToken": "..."}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatSignInRequest {
    pub identity_token: String,
}

/// What the seed's iOS client reads, plus `isNewUser`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompatSignInResponse {
    pub success: bool,
    pub user: CompatUser,
    pub is_new_user: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CompatUser {
    /// Apple's `sub`.
    pub id: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FullName {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInRequest {
    /// The identity token from `ASAuthorizationAppleIDCredential.identityToken`.
    pub identity_token: String,
    /// The authorization code from the same credential; exchanged with Apple when the server
    /// has Apple credentials, so the account can be revoked on deletion.
    pub authorization_code: Option<String>,
    /// The raw nonce whose SHA-256 hex the app gave Apple. Single-use.
    pub raw_nonce: Option<String>,
    /// The name, which Apple gives the app on the first authorization only.
    pub full_name: Option<FullName>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The server's own id for the user.
    pub id: String,
    /// Apple's identifier of the user (the identity token's `sub`), for
    /// `getCredentialState(forUserID:)` on Apple platforms.
    pub apple_user_id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub is_private_email: bool,
    /// Apple said the private relay stopped forwarding to this user.
    pub email_forwarding_disabled: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Seconds since the epoch.
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            apple_user_id: u.apple_sub.clone(),
            email: u.email.clone(),
            email_verified: u.email_verified != 0,
            is_private_email: u.is_private_email != 0,
            email_forwarding_disabled: u.email_forwarding_disabled != 0,
            given_name: u.given_name.clone(),
            family_name: u.family_name.clone(),
            created_at: u.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Always `Bearer`.
    pub token_type: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInResponse {
    pub user: UserView,
    pub session: SessionView,
    pub is_new_user: bool,
}

/// A native app's one-time code from the browser flow, and its PKCE verifier.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRequest {
    pub code: String,
    pub code_verifier: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    /// Ends this token's session; without it, the session of the bearer access token ends.
    pub refresh_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionResponse {
    pub deleted: bool,
    /// `revoked`, `queued` (Apple unreachable: retried later) or `not_needed`.
    pub apple_revocation: &'static str,
}

/// Apple's notification body.
#[derive(Deserialize, ToSchema)]
pub struct NotificationRequest {
    /// A JWS signed by Apple.
    pub payload: String,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationResponse {
    /// `applied`, `duplicate` or `ignored`.
    pub status: &'static str,
}
