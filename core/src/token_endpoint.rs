//! Apple's token and revocation endpoints: the request and response formats, and a client.
//!
//! `/auth/token` answers `{access_token, token_type: "Bearer", expires_in, refresh_token (only on
//! code exchange), id_token}`; errors are HTTP 400 `{"error", "error_description"?}`
//! (docs/apple-protocol.md, F9, F11). `/auth/revoke` answers 200 with an empty body, also for a token that is
//! already invalid. `mock-apple` serves these formats, the server consumes them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::apple::Endpoints;
use crate::client_secret::ClientSecret;
use crate::transport::transport_reason;
use crate::transport::{HttpClientError, build_client};
use crate::word::{UnknownWord, protocol_word};

/// A successful answer of `/auth/token`. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// An access token (siwa has no use for it beyond revocation).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds the access token lives (3600).
    pub expires_in: u64,
    /// Only on code exchange, never on refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// An identity token for the user, straight from Apple (docs/apple-protocol.md, F10).
    pub id_token: String,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

protocol_word! {
    /// The OAuth error codes Apple's endpoints answer with (docs/apple-protocol.md, F9).
    OAuthErrorCode, "error" {
        /// A parameter is missing or malformed.
        InvalidRequest => "invalid_request",
        /// The client secret (or client id) was refused (P1).
        InvalidClient => "invalid_client",
        /// The code or refresh token is invalid, expired, used or for another client (P2).
        InvalidGrant => "invalid_grant",
        /// The client may not use this grant.
        UnauthorizedClient => "unauthorized_client",
        /// The `grant_type` is not one Apple knows.
        UnsupportedGrantType => "unsupported_grant_type",
        /// The scope is not one Apple knows.
        InvalidScope => "invalid_scope",
    }
}

/// An error answer of Apple's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    /// What went wrong.
    pub error: OAuthErrorCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// A sentence, sometimes (F9).
    pub error_description: Option<String>,
}

/// The form fields of `/auth/token` (both grants) and `/auth/revoke`, as Apple names them.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// The bundle ID or Services ID the request is for.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The client secret (F8).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `/auth/token`: see [`TokenRequest::grant_type()`].
    #[serde(default)]
    pub grant_type: Option<String>,
    /// `authorization_code` grant: the code.
    #[serde(default)]
    pub code: Option<String>,
    /// `refresh_token` grant: the token.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// `authorization_code` grant: only for codes of the web flow.
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// `/auth/revoke`: the token to revoke.
    #[serde(default)]
    pub token: Option<String>,
    /// `/auth/revoke`: see [`TokenRequest::token_type_hint()`].
    #[serde(default)]
    pub token_type_hint: Option<String>,
    /// `client_credentials` grant: see [`TokenRequest::scope()`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl TokenRequest {
    /// The grant asked for: `None` when the field is absent or empty.
    pub fn grant_type(&self) -> Result<Option<GrantType>, UnknownWord> {
        non_empty(&self.grant_type).map(str::parse).transpose()
    }

    /// The scope of a `client_credentials` grant: `None` when absent or empty.
    pub fn scope(&self) -> Result<Option<TokenScope>, UnknownWord> {
        non_empty(&self.scope).map(str::parse).transpose()
    }

    /// The kind of token to revoke: `None` when the field is absent or empty.
    pub fn token_type_hint(&self) -> Result<Option<TokenTypeHint>, UnknownWord> {
        non_empty(&self.token_type_hint).map(str::parse).transpose()
    }
}

fn non_empty(field: &Option<String>) -> Option<&str> {
    field.as_deref().filter(|v| !v.is_empty())
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("client_id", &self.client_id)
            .field("grant_type", &self.grant_type)
            .field("redirect_uri", &self.redirect_uri)
            .field("token_type_hint", &self.token_type_hint)
            .finish_non_exhaustive()
    }
}

protocol_word! {
    /// The `grant_type` of `/auth/token` (docs/apple-protocol.md, F9).
    GrantType, "grant_type" {
        /// Exchange an authorization code; the only grant that gives a refresh token.
        AuthorizationCode => "authorization_code",
        /// Validate a refresh token.
        RefreshToken => "refresh_token",
        /// An access token for the team itself, not a user (an app transfer's migration).
        ClientCredentials => "client_credentials",
    }
}

protocol_word! {
    /// The `scope` of a `client_credentials` grant.
    TokenScope, "scope" {
        /// The user migration endpoint of an app transfer (TN3159).
        UserMigration => "user.migration",
    }
}

/// The answer of a `client_credentials` grant: an access token for the team's own calls (the
/// user migration endpoint), with no refresh token and no identity token.
#[derive(Clone, Serialize, Deserialize)]
pub struct ClientCredentials {
    /// Presented as `Authorization: Bearer` to the migration endpoint.
    pub access_token: String,
    /// `Bearer`.
    #[serde(default)]
    pub token_type: String,
    /// Seconds.
    #[serde(default)]
    pub expires_in: u64,
}

/// The form of `/auth/usermigrationinfo`: the sending team gives a user's `sub` and the
/// recipient team (`target`) and gets the transfer identifier; the recipient gives the
/// transfer identifier (`transfer_sub`) and gets the user's `sub` under its team.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UserMigrationRequest {
    /// The transferred app's client id.
    #[serde(default)]
    pub client_id: Option<String>,
    /// A client secret of the calling team's key.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The sending team: the user's `sub` under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The sending team: the recipient's Team ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The recipient team: the transfer identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_sub: Option<String>,
}

/// The sending team's answer: the user's transfer identifier for the recipient team.
#[derive(Clone, Serialize, Deserialize)]
pub struct TransferIdentifier {
    /// Stable for the user and the recipient team, whatever app of the sending team.
    pub transfer_sub: String,
}

/// The recipient team's answer: the user under the recipient team. `Debug` leaves out the
/// identifier and the email.
#[derive(Clone, Serialize, Deserialize)]
pub struct MigratedUser {
    /// The user's `sub` under the recipient team.
    pub sub: String,
    /// The user's email for the recipient team: a new relay address when they hid theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether `email` is a relay address.
    #[serde(
        default,
        deserialize_with = "crate::claims::flexible_bool_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub is_private_email: Option<bool>,
}

impl fmt::Debug for MigratedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigratedUser")
            .field("has_email", &self.email.is_some())
            .finish_non_exhaustive()
    }
}

protocol_word! {
    /// Which kind of token `/auth/revoke` is given (docs/apple-protocol.md, F11).
    TokenTypeHint, "token_type_hint" {
        /// A refresh token from a code exchange: what account deletion revokes.
        RefreshToken => "refresh_token",
        /// An access token.
        AccessToken => "access_token",
    }
}

/// Why a call to Apple did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AppleApiError {
    /// Apple answered with an OAuth error: retrying the same request will not help.
    #[error("Apple refused the request: {}", .0.error.as_str())]
    Rejected(OAuthError),
    /// Apple could not be reached, timed out, or answered 5xx/429: worth retrying later.
    #[error("Apple is unavailable: {0}")]
    Unavailable(String),
    /// Apple answered something that is not its documented format.
    #[error("Apple's answer was not understood (HTTP {0})")]
    UnexpectedResponse(u16),
}

impl AppleApiError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Calls Apple's `/auth/token` and `/auth/revoke`. Cheap to clone.
#[derive(Clone)]
pub struct AppleClient {
    endpoints: Endpoints,
    http: reqwest::Client,
}

impl AppleClient {
    /// A client of `endpoints`, each request limited to `timeout`.
    pub fn new(endpoints: Endpoints, timeout: Duration) -> Result<Self, HttpClientError> {
        let http = build_client(
            reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                // Apple reportedly rejects requests without a User-Agent (docs/apple-protocol.md, F9).
                .user_agent(concat!("siwa/", env!("CARGO_PKG_VERSION"))),
        )?;
        Ok(Self { endpoints, http })
    }

    /// Exchanges an authorization code. `redirect_uri` only if the authorization request had
    /// one: codes from the iOS app have none. `client_id` must be the one the code was issued
    /// to (the bundle ID for app codes, the Services ID for web codes).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        secret: &ClientSecret,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, AppleApiError> {
        let request = TokenRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(secret.expose().into()),
            grant_type: Some(GrantType::AuthorizationCode.to_string()),
            code: Some(code.into()),
            redirect_uri: redirect_uri.map(Into::into),
            ..TokenRequest::default()
        };
        self.token(&request).await
    }

    /// Validates a refresh token (Apple asks for at most once a day per user).
    pub async fn refresh(
        &self,
        client_id: &str,
        secret: &ClientSecret,
        refresh_token: &str,
    ) -> Result<TokenResponse, AppleApiError> {
        let request = TokenRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(secret.expose().into()),
            grant_type: Some(GrantType::RefreshToken.to_string()),
            refresh_token: Some(refresh_token.into()),
            ..TokenRequest::default()
        };
        self.token(&request).await
    }

    /// Revokes a token; Apple answers success for tokens already invalid too.
    pub async fn revoke(
        &self,
        client_id: &str,
        secret: &ClientSecret,
        token: &str,
        hint: TokenTypeHint,
    ) -> Result<(), AppleApiError> {
        let request = TokenRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(secret.expose().into()),
            token: Some(token.into()),
            token_type_hint: Some(hint.to_string()),
            ..TokenRequest::default()
        };
        let response = self.post(self.endpoints.revoke(), &request).await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(error_from(response).await)
    }

    /// An access token for the team's migration calls (`client_credentials`, `user.migration`).
    pub async fn migration_token(
        &self,
        client_id: &str,
        secret: &ClientSecret,
    ) -> Result<ClientCredentials, AppleApiError> {
        let request = TokenRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(secret.expose().into()),
            grant_type: Some(GrantType::ClientCredentials.to_string()),
            scope: Some(TokenScope::UserMigration.to_string()),
            ..TokenRequest::default()
        };
        let response = self.post(self.endpoints.token(), &request).await?;
        json_answer(response).await
    }

    /// Calls `/auth/usermigrationinfo` with the migration `access_token`; `T` is the answer of
    /// the side calling ([`TransferIdentifier`] or [`MigratedUser`]).
    pub async fn user_migration_info<T: serde::de::DeserializeOwned>(
        &self,
        access_token: &str,
        request: &UserMigrationRequest,
    ) -> Result<T, AppleApiError> {
        let response = self
            .http
            .post(self.endpoints.user_migration_info())
            .bearer_auth(access_token)
            .form(request)
            .send()
            .await
            .map_err(|e| AppleApiError::Unavailable(transport_reason(&e).into()))?;
        json_answer(response).await
    }

    async fn token(&self, request: &TokenRequest) -> Result<TokenResponse, AppleApiError> {
        let response = self.post(self.endpoints.token(), request).await?;
        if !response.status().is_success() {
            return Err(error_from(response).await);
        }
        let status = response.status().as_u16();
        response
            .json()
            .await
            .map_err(|_| AppleApiError::UnexpectedResponse(status))
    }

    async fn post(
        &self,
        url: String,
        request: &TokenRequest,
    ) -> Result<reqwest::Response, AppleApiError> {
        self.http
            .post(url)
            .form(request)
            .send()
            .await
            // Without the URL: it is fixed, and reqwest's error text may quote the request.
            .map_err(|e| AppleApiError::Unavailable(transport_reason(&e).into()))
    }
}

/// A successful answer's JSON, or the error of an unsuccessful one.
async fn json_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, AppleApiError> {
    if !response.status().is_success() {
        return Err(error_from(response).await);
    }
    let status = response.status().as_u16();
    response
        .json()
        .await
        .map_err(|_| AppleApiError::UnexpectedResponse(status))
}

async fn error_from(response: reqwest::Response) -> AppleApiError {
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return AppleApiError::Unavailable(format!("HTTP {}", status.as_u16()));
    }
    match response.json::<OAuthError>().await {
        Ok(error) => AppleApiError::Rejected(error),
        Err(_) => AppleApiError::UnexpectedResponse(status.as_u16()),
    }
}
