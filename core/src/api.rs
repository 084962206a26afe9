//! siwa-server's own API, as both sides speak it: the request and response shapes of its
//! routes and [`ErrorCode`], every code it answers with, each with its [`ErrorMeaning`]. The
//! server answers these types, the client reads them, and the server's OpenAPI document is
//! derived from them (feature `openapi`).
//!
//! Shapes are owned and read leniently where a field is informative only (a client older or
//! newer than the server still reads the answer); `Debug` is left out of every shape that holds
//! a token or an email.

use serde::{Deserialize, Serialize};

use crate::word::protocol_word;

protocol_word! {
    /// Every error code siwa-server answers with, in `{"error": <code>, "message": <text>}`.
    /// Stable: a code is never renamed once released.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[non_exhaustive]
    ErrorCode, "error code" {
        // -- the request itself
        /// The request is malformed; the message says how.
        InvalidRequest => "invalid_request",
        /// The body is not JSON.
        UnsupportedMediaType => "unsupported_media_type",
        /// No such route.
        NotFound => "not_found",
        /// The route does not take this method.
        MethodNotAllowed => "method_not_allowed",
        /// The request took too long to arrive.
        RequestTimeout => "request_timeout",
        /// The body is larger than the route takes.
        BodyTooLarge => "body_too_large",
        /// Too many requests from this client; `Retry-After` says when to come back.
        RateLimited => "rate_limited",
        // -- identity tokens and notifications (`VerifyError`)
        /// The token is larger than any Apple mints.
        TokenTooLarge => "token_too_large",
        /// The token is not a well-formed JWS.
        TokenMalformed => "token_malformed",
        /// The token is not signed with RS256.
        UnsupportedAlgorithm => "unsupported_algorithm",
        /// The token's header names its own key (P13).
        ForbiddenHeader => "forbidden_header",
        /// No key of Apple's key set has the token's key id.
        UnknownKey => "unknown_key",
        /// Apple's key set could not be fetched.
        KeySetUnavailable => "key_set_unavailable",
        /// The token's signature does not verify.
        BadSignature => "bad_signature",
        /// The token's issuer is not Apple.
        WrongIssuer => "wrong_issuer",
        /// The token was issued for another app or Services ID.
        WrongAudience => "wrong_audience",
        /// The token lacks a required claim.
        MissingClaim => "missing_claim",
        /// The token has expired.
        TokenExpired => "token_expired",
        /// The token was issued in the future.
        IssuedInFuture => "issued_in_future",
        /// The token claims a longer life than Apple gives.
        LifetimeTooLong => "lifetime_too_long",
        /// The token was issued too long ago.
        TokenTooOld => "token_too_old",
        /// The token's nonce is not the hash of the request's raw nonce.
        NonceMismatch => "nonce_mismatch",
        /// The token and the request disagree on having a nonce.
        NonceMissing => "nonce_missing",
        // -- signing in
        /// This nonce was already used to sign in.
        NonceReplayed => "nonce_replayed",
        /// This identity token was already used to sign in.
        TokenReplayed => "token_replayed",
        /// Apple refused the authorization code.
        AuthorizationCodeRejected => "authorization_code_rejected",
        /// The authorization code belongs to another user than the identity token.
        AuthorizationCodeMismatch => "authorization_code_mismatch",
        /// Apple could not be reached.
        AppleUnavailable => "apple_unavailable",
        /// Apple refused the server's credentials or answered unexpectedly.
        AppleExchangeFailed => "apple_exchange_failed",
        // -- sessions
        /// No `Authorization: Bearer` access token.
        MissingAccessToken => "missing_access_token",
        /// The access token is invalid or expired.
        InvalidAccessToken => "invalid_access_token",
        /// The session has ended or the account no longer exists.
        SessionEnded => "session_ended",
        /// The refresh token is invalid, expired or its session ended.
        InvalidRefreshToken => "invalid_refresh_token",
        /// The refresh token was presented again after its grace: the session has been ended.
        RefreshTokenReused => "refresh_token_reused",
        // -- the web flow
        /// The server has no web flow configured.
        WebFlowNotConfigured => "web_flow_not_configured",
        /// The web sign-in is unknown, expired or already completed.
        InvalidState => "invalid_state",
        /// Apple did not complete the sign-in.
        AppleAuthorizationFailed => "apple_authorization_failed",
        /// The app redirect URI is not one the server allows.
        AppRedirectUriNotAllowed => "app_redirect_uri_not_allowed",
        /// A native sign-in's PKCE challenge is missing or not S256.
        InvalidCodeChallenge => "invalid_code_challenge",
        /// The one-time code is unknown, expired or used.
        InvalidExchangeCode => "invalid_exchange_code",
        /// The PKCE verifier does not answer the challenge.
        CodeVerifierMismatch => "code_verifier_mismatch",
        /// A form that did not come from the server's own page.
        CsrfTokenInvalid => "csrf_token_invalid",
        /// Apple's form post came from another origin than Apple's.
        CallbackOriginInvalid => "callback_origin_invalid",
        /// A web app's `return_to` is not on one of the server's `SIWA_WEB_ORIGINS`.
        ReturnToNotAllowed => "return_to_not_allowed",
        /// A cookie-authenticated route called from a page that is not one of the server's
        /// `SIWA_WEB_ORIGINS`, or without the `X-Siwa-Request` header.
        OriginNotAllowed => "origin_not_allowed",
        /// No one is signed in in this browser (no web session cookie, or its session ended).
        NotSignedIn => "not_signed_in",
        // -- the server
        /// The database could not be reached.
        DatabaseUnavailable => "database_unavailable",
        /// A fault of the server's own.
        InternalError => "internal_error",
    }
}

/// What the caller does about an [`ErrorCode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMeaning {
    /// Sending the same request again fails again: the app or the user must change it (for a
    /// sign-in: start a new one with Apple).
    FixRequest,
    /// The access token is no longer accepted: refresh the session, then send again.
    RefreshSession,
    /// The session is over for good: sign in again.
    SignInAgain,
    /// The server, its database or Apple is unavailable for now: send again later.
    RetryLater,
}

impl ErrorCode {
    /// What the caller does about this refusal.
    pub fn meaning(self) -> ErrorMeaning {
        match self {
            Self::RateLimited
            | Self::RequestTimeout
            | Self::KeySetUnavailable
            | Self::AppleUnavailable
            | Self::AppleExchangeFailed
            | Self::DatabaseUnavailable
            | Self::InternalError => ErrorMeaning::RetryLater,
            Self::InvalidAccessToken => ErrorMeaning::RefreshSession,
            Self::SessionEnded
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::NotSignedIn => ErrorMeaning::SignInAgain,
            _ => ErrorMeaning::FixRequest,
        }
    }
}

impl ErrorCode {
    /// The fixed text answered with this code, in `{"error", "message"}`: written once, here.
    /// A refused identity token is answered with its `VerifyError`'s own, more precise text;
    /// its codes have the general one.
    pub fn message(self) -> &'static str {
        match self {
            Self::UnsupportedMediaType => "the body must be JSON (content-type: application/json)",
            Self::NotFound => "no such route",
            Self::MethodNotAllowed => "this route does not take this method",
            Self::RequestTimeout => "the request took too long",
            Self::BodyTooLarge => "the request body is too large",
            Self::NonceMissing => "the token carries a nonce: send its rawNonce too",
            Self::NonceReplayed => "this nonce was already used to sign in",
            Self::TokenReplayed => {
                "this identity token was already used to sign in; sign in again with Apple"
            }
            Self::AuthorizationCodeRejected => {
                "Apple refused the authorization code (expired, used, or issued to another client)"
            }
            Self::AuthorizationCodeMismatch => {
                "the authorization code belongs to another user than the identity token"
            }
            Self::AppleUnavailable => "Apple could not be reached; try again",
            Self::MissingAccessToken => "an `Authorization: Bearer` access token is required",
            Self::InvalidAccessToken => "the access token is invalid or expired",
            Self::SessionEnded => "the session has ended or the account no longer exists",
            Self::InvalidRefreshToken => {
                "the refresh token is invalid, expired or its session ended"
            }
            Self::RefreshTokenReused => {
                "the refresh token was already used; the session has been ended"
            }
            Self::WebFlowNotConfigured => {
                "the web flow is not configured: set SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL"
            }
            Self::InvalidState => {
                "this sign-in is unknown, expired (10 minutes) or already completed; start again"
            }
            Self::AppleAuthorizationFailed => "Apple did not complete the sign-in",
            Self::AppRedirectUriNotAllowed => {
                "app_redirect_uri is not one of SIWA_APP_REDIRECT_URIS"
            }
            Self::InvalidCodeChallenge => {
                "a native sign-in needs an S256 code_challenge (43 base64url characters)"
            }
            Self::InvalidExchangeCode => "the code is unknown, expired (60 s) or already used",
            Self::CodeVerifierMismatch => {
                "the code verifier does not match the code challenge; the code is spent"
            }
            Self::CsrfTokenInvalid => "the form did not come from this site's page",
            Self::ReturnToNotAllowed => "return_to is not on one of SIWA_WEB_ORIGINS",
            Self::OriginNotAllowed => {
                "this route takes requests from SIWA_WEB_ORIGINS only, with an X-Siwa-Request header"
            }
            Self::NotSignedIn => "no one is signed in in this browser",
            Self::CallbackOriginInvalid => {
                "Apple's form post came from another origin than Apple's"
            }
            Self::InternalError => "an internal error occurred",
            Self::RateLimited => "too many sign-in attempts from this address",
            Self::DatabaseUnavailable => "the database could not be reached",
            Self::InvalidRequest => "the request is malformed",
            Self::AppleExchangeFailed => {
                "Apple refused the server's credentials or answered unexpectedly"
            }
            _ => "the token was refused",
        }
    }
}

/// An error answer: `{"error": <code>, "message": <fixed text>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable, machine-readable code.
    pub error: ErrorCode,
    /// A human-readable explanation (never a token, a nonce or an email).
    #[serde(default)]
    pub message: String,
}

/// A name, as the app got it from Apple on the first authorization.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FullName {
    /// The given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// The family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

/// `POST /v1/auth/apple`: an app's credential from Apple.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SignInRequest {
    /// The identity token from `ASAuthorizationAppleIDCredential.identityToken`.
    pub identity_token: String,
    /// The authorization code from the same credential; exchanged with Apple when the server
    /// has Apple credentials, so the account can be revoked on deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_code: Option<String>,
    /// The raw nonce whose SHA-256 hex the app gave Apple. Single-use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_nonce: Option<String>,
    /// The name, which Apple gives the app on the first authorization only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<FullName>,
}

/// `POST /v1/auth/exchange`: a native app's one-time code from the browser flow, and its PKCE
/// verifier.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExchangeRequest {
    /// The one-time code the browser brought back.
    pub code: String,
    /// The PKCE verifier whose challenge started the sign-in.
    pub code_verifier: String,
}

/// The query of `GET /v1/web/sign-in`: a native app's part of a browser sign-in (its redirect
/// URI, one of `SIWA_APP_REDIRECT_URIS`, and a PKCE challenge), or a web app's (where it is
/// sent back, on one of `SIWA_WEB_ORIGINS`, and how); the server's own page sends none.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BrowserSignInQuery {
    /// A web app's page to come back to, on one of `SIWA_WEB_ORIGINS`: the browser is sent
    /// there signed in (or with `siwa_error=<code>` added to its query), or, in a popup, the
    /// page's origin is the only one told the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    /// How a web app's sign-in comes back ([`WebSignInMode`]); `redirect` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Where the browser is sent back with a one-time code.
    pub app_redirect_uri: Option<String>,
    /// The S256 challenge of the app's verifier.
    pub code_challenge: Option<String>,
    /// `S256` ([`CodeChallengeMethod`](crate::CodeChallengeMethod)), or absent. Kept as sent: the
    /// server refuses another method as `invalid_code_challenge`.
    pub code_challenge_method: Option<String>,
}

/// The query of `GET /v1/web/app-redirect-uri`: the redirect URI a native app is about to start
/// a browser sign-in with. The server answers 204 when its start would take it, and
/// `app_redirect_uri_not_allowed` otherwise, so that the app fails at once instead of waiting
/// on a browser that shows the refusal to the user alone.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AppRedirectQuery {
    /// The redirect URI, as the start will be given it.
    pub app_redirect_uri: String,
}

/// What a browser sign-in brings back to a native app's redirect URI, in its query: a one-time
/// code for `POST /v1/auth/exchange`, or an error (an [`ErrorCode`], or Apple's
/// [`AuthorizeError`](crate::AuthorizeError) when the user cancelled).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct AppCallback {
    /// The one-time code.
    pub code: Option<String>,
    /// Why there is no code.
    pub error: Option<String>,
}

protocol_word! {
    /// How a web app's browser sign-in comes back to it (`GET /v1/web/sign-in?mode=`).
    WebSignInMode, "web sign-in mode" {
        /// The whole page went to Apple; it is sent back to `return_to`.
        Redirect => "redirect",
        /// A popup went to Apple; its last page tells the opener and closes. The message,
        /// posted to `return_to`'s origin alone, is `{"type": "siwa:sign-in", "outcome":
        /// "signed-in"}`, or `"failed"` with `error` (an [`ErrorCode`], or Apple's
        /// [`AuthorizeError`](crate::AuthorizeError)): never a token, which the opener asks
        /// for over its cookie ([`WebTokenResponse`]).
        Popup => "popup",
    }
}

/// `POST /v1/web/token`: an access token for a web app's page, from its session cookie (the
/// refresh token never leaves the server). Kept in the page's memory only.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct WebTokenResponse {
    /// A short-lived access token (an ES256 JWT of the server's), as `SessionView`'s.
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Always `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: TokenType,
}

/// `POST /v1/auth/refresh`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    /// The session's current refresh token; it rotates.
    pub refresh_token: String,
}

/// `POST /v1/auth/logout`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogoutRequest {
    /// Ends this token's session; without it, the session of the bearer access token ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A user as the API shows them. `Debug` leaves out the email and the name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// The server's own id for the user.
    pub id: String,
    /// Apple's identifier of the user (the identity token's `sub`), for
    /// `getCredentialState(forUserID:)` on Apple platforms.
    #[serde(default)]
    pub apple_user_id: String,
    /// The email Apple gave, possibly a private relay address.
    #[serde(default)]
    pub email: Option<String>,
    /// Apple vouches for the email.
    #[serde(default)]
    pub email_verified: bool,
    /// The email is a private relay address.
    #[serde(default)]
    pub is_private_email: bool,
    /// Apple said the private relay stopped forwarding to this user.
    #[serde(default)]
    pub email_forwarding_disabled: bool,
    /// The given name, kept from the first authorization.
    #[serde(default)]
    pub given_name: Option<String>,
    /// The family name, kept from the first authorization.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Seconds since the epoch.
    #[serde(default)]
    pub created_at: i64,
}

impl std::fmt::Debug for UserView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserView")
            .field("id", &self.id)
            .field("has_email", &self.email.is_some())
            .field("is_private_email", &self.is_private_email)
            .finish_non_exhaustive()
    }
}

protocol_word! {
    /// How an access token is presented.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    TokenType, "token type" {
        /// `Authorization: Bearer <access token>`.
        Bearer => "Bearer",
    }
}

/// A session's tokens: the answer of `POST /v1/auth/refresh`, and part of a sign-in's.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// A short-lived access token (an ES256 JWT of the server's).
    pub access_token: String,
    /// The refresh token: single-use, it rotates on every refresh.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Always `Bearer`.
    #[serde(default = "bearer")]
    pub token_type: TokenType,
}

fn bearer() -> TokenType {
    TokenType::Bearer
}

/// The answer of a sign-in that starts a session: `POST /v1/auth/apple` and
/// `POST /v1/auth/exchange`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SignInResponse {
    /// Who signed in.
    pub user: UserView,
    /// Their new session.
    pub session: SessionView,
    /// Whether this sign-in created the account.
    #[serde(default)]
    pub is_new_user: bool,
}

protocol_word! {
    /// What became of Apple's grant when an account was deleted.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    AppleRevocation, "apple_revocation" {
        /// Apple revoked every grant.
        Revoked => "revoked",
        /// Apple could not be reached: the revocation is retried from a durable queue.
        Queued => "queued",
        /// There was no grant to revoke.
        NotNeeded => "not_needed",
    }
}

/// The answer of `DELETE /v1/me`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeletionResponse {
    /// Always true: the account and its data are gone.
    pub deleted: bool,
    /// What became of Apple's grant.
    pub apple_revocation: AppleRevocation,
}

/// Apple's server-to-server notification, as posted to `POST /v1/apple/notifications`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationRequest {
    /// A JWS signed by Apple.
    pub payload: String,
}

protocol_word! {
    /// What a notification did.
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    NotificationStatus, "notification status" {
        /// It changed the user's account.
        Applied => "applied",
        /// Its `jti` was handled before (Apple retries).
        Duplicate => "duplicate",
        /// No user has its `sub`, or its type is not acted on.
        Ignored => "ignored",
    }
}

/// The answer to Apple's notification: 200 tells Apple not to retry.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationResponse {
    /// What the notification did.
    pub status: NotificationStatus,
}

/// The seed's route `POST /auth/apple`, kept for its clients.
pub mod compat {
    use serde::{Deserialize, Serialize};

    /// `{"identityToken": "..."}`.
    #[derive(Clone, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct SignInRequest {
        /// The identity token.
        pub identity_token: String,
    }

    /// What the seed's iOS client reads, plus `isNewUser`.
    #[derive(Clone, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(rename_all = "camelCase")]
    pub struct SignInResponse {
        /// Always true.
        pub success: bool,
        /// The user, as the seed showed them.
        pub user: User,
        /// Whether this sign-in created the account.
        pub is_new_user: bool,
    }

    /// The seed's user: Apple's claims, snake_case as the seed answered them.
    #[derive(Clone, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    pub struct User {
        /// Apple's `sub`.
        pub id: String,
        /// The email, if shared.
        pub email: Option<String>,
        /// Apple vouches for the email.
        pub email_verified: bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_read_back() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} is spelled twice");
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        let body: ErrorBody =
            serde_json::from_str(r#"{"error":"session_ended","message":"m"}"#).unwrap();
        assert_eq!(body.error, ErrorCode::SessionEnded);
        assert_eq!(body.error.meaning(), ErrorMeaning::SignInAgain);
        assert!(serde_json::from_str::<ErrorBody>(r#"{"error":"no_such_code"}"#).is_err());
    }

    #[test]
    fn query_shapes_leave_out_what_is_absent() {
        let callback = AppCallback {
            code: Some("c d".into()),
            error: None,
        };
        assert_eq!(serde_urlencoded::to_string(&callback).unwrap(), "code=c+d");
        let read: AppCallback = serde_urlencoded::from_str("error=invalid_state&other=1").unwrap();
        assert_eq!(
            (read.code, read.error.as_deref()),
            (None, Some("invalid_state"))
        );
    }
}
