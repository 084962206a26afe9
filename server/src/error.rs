//! The one error type of the HTTP API: every cause a request can fail for, each with its
//! [`ErrorCode`] (spelled in `siwa_core::api`, where clients read it) and a status, answered as
//! `{"error": <code>, "message": <human text>}`.
//!
//! Messages are fixed texts: never a token, a nonce, an email or a key. A response made for an
//! error carries the error (see [`ApiError::attach`]), and one middleware around the router,
//! [`record`], counts and logs every error, whoever answered it: the JSON API, the web page, a
//! redirect to a native app.

use std::borrow::Cow;
use std::sync::Arc;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use siwa_core::VerifyError;
pub use siwa_core::api::{ErrorBody, ErrorCode};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the text says how (never quoting what was sent).
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("the body must be JSON (content-type: application/json)")]
    UnsupportedMediaType,
    #[error("no such route")]
    NotFound,
    #[error("this route does not take this method")]
    MethodNotAllowed,
    #[error("the request took too long")]
    RequestTimeout,
    #[error("the request body is too large")]
    BodyTooLarge,
    #[error("too many sign-in attempts from this address")]
    RateLimited { retry_after_secs: u64 },

    /// An identity token refused (401), or Apple's keys not to be had (503).
    #[error(transparent)]
    Token(VerifyError),
    /// A notification payload refused: 400 tells Apple that retrying will not help.
    #[error(transparent)]
    Notification(VerifyError),
    #[error("the token carries a nonce: send its rawNonce too")]
    NonceMissing,
    #[error("this nonce was already used to sign in")]
    NonceReplayed,
    #[error("this identity token was already used to sign in; sign in again with Apple")]
    TokenReplayed,
    #[error("Apple refused the authorization code (expired, used, or issued to another client)")]
    AuthorizationCodeRejected,
    #[error("the authorization code belongs to another user than the identity token")]
    AuthorizationCodeMismatch,
    #[error("Apple could not be reached; try again")]
    AppleUnavailable,
    /// Apple refused our credentials or answered something we cannot use; `detail` (Apple's
    /// error code, say) is logged, not answered.
    #[error("{message}")]
    AppleExchangeFailed {
        message: &'static str,
        detail: Option<String>,
    },

    #[error("an `Authorization: Bearer` access token is required")]
    MissingAccessToken,
    #[error("the access token is invalid or expired")]
    InvalidAccessToken,
    #[error("the session has ended or the account no longer exists")]
    SessionEnded,
    #[error("the refresh token is invalid, expired or its session ended")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; the session has been ended")]
    RefreshTokenReused,

    #[error("the web flow is not configured: set SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL")]
    WebFlowNotConfigured,
    #[error("this sign-in is unknown, expired (10 minutes) or already completed; start again")]
    InvalidState,
    #[error("Apple did not complete the sign-in")]
    AppleAuthorizationFailed,
    #[error("app_redirect_uri is not one of SIWA_APP_REDIRECT_URIS")]
    AppRedirectUriNotAllowed,
    #[error("a native sign-in needs an S256 code_challenge (43 base64url characters)")]
    InvalidCodeChallenge,
    #[error("the code is unknown, expired (60 s) or already used")]
    InvalidExchangeCode,
    #[error("the code verifier does not match the code challenge; the code is spent")]
    CodeVerifierMismatch,
    #[error("the form did not come from this site's page")]
    CsrfTokenInvalid,
    #[error("Apple's form post came from another origin than Apple's")]
    CallbackOriginInvalid,

    #[error("the database could not be reached")]
    DatabaseUnavailable(#[source] sqlx::Error),
    #[error("an internal error occurred")]
    Internal,
}

impl ApiError {
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// The stable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::NotFound => ErrorCode::NotFound,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::RequestTimeout => ErrorCode::RequestTimeout,
            Self::BodyTooLarge => ErrorCode::BodyTooLarge,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Token(e) | Self::Notification(e) => e.error_code(),
            Self::NonceMissing => ErrorCode::NonceMissing,
            Self::NonceReplayed => ErrorCode::NonceReplayed,
            Self::TokenReplayed => ErrorCode::TokenReplayed,
            Self::AuthorizationCodeRejected => ErrorCode::AuthorizationCodeRejected,
            Self::AuthorizationCodeMismatch => ErrorCode::AuthorizationCodeMismatch,
            Self::AppleUnavailable => ErrorCode::AppleUnavailable,
            Self::AppleExchangeFailed { .. } => ErrorCode::AppleExchangeFailed,
            Self::MissingAccessToken => ErrorCode::MissingAccessToken,
            Self::InvalidAccessToken => ErrorCode::InvalidAccessToken,
            Self::SessionEnded => ErrorCode::SessionEnded,
            Self::InvalidRefreshToken => ErrorCode::InvalidRefreshToken,
            Self::RefreshTokenReused => ErrorCode::RefreshTokenReused,
            Self::WebFlowNotConfigured => ErrorCode::WebFlowNotConfigured,
            Self::InvalidState => ErrorCode::InvalidState,
            Self::AppleAuthorizationFailed => ErrorCode::AppleAuthorizationFailed,
            Self::AppRedirectUriNotAllowed => ErrorCode::AppRedirectUriNotAllowed,
            Self::InvalidCodeChallenge => ErrorCode::InvalidCodeChallenge,
            Self::InvalidExchangeCode => ErrorCode::InvalidExchangeCode,
            Self::CodeVerifierMismatch => ErrorCode::CodeVerifierMismatch,
            Self::CsrfTokenInvalid => ErrorCode::CsrfTokenInvalid,
            Self::CallbackOriginInvalid => ErrorCode::CallbackOriginInvalid,
            Self::DatabaseUnavailable(_) => ErrorCode::DatabaseUnavailable,
            Self::Internal => ErrorCode::InternalError,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_)
            | Self::AuthorizationCodeRejected
            | Self::InvalidState
            | Self::AppleAuthorizationFailed
            | Self::AppRedirectUriNotAllowed
            | Self::InvalidCodeChallenge
            | Self::InvalidExchangeCode
            | Self::CodeVerifierMismatch => StatusCode::BAD_REQUEST,
            Self::CsrfTokenInvalid | Self::CallbackOriginInvalid => StatusCode::FORBIDDEN,
            Self::WebFlowNotConfigured => StatusCode::NOT_IMPLEMENTED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Token(e) | Self::Notification(e) if e.is_retryable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Notification(_) => StatusCode::BAD_REQUEST,
            Self::NonceMissing
            | Self::NonceReplayed
            | Self::TokenReplayed
            | Self::AuthorizationCodeMismatch
            | Self::MissingAccessToken
            | Self::InvalidAccessToken
            | Self::SessionEnded
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            Self::AppleUnavailable | Self::DatabaseUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::AppleExchangeFailed { .. } => StatusCode::BAD_GATEWAY,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Counts the refusal and logs what an operator must act on. Causes that are the client's
    /// doing are counted only: a log line per bad request is noise an attacker controls.
    fn record(&self) {
        let code = self.code().as_str();
        metrics::counter!("siwa_api_errors_total", "code" => code).increment(1);
        match self {
            Self::Token(_) | Self::Notification(_) => {
                metrics::counter!("siwa_verification_failures_total", "reason" => code)
                    .increment(1);
            }
            // A refusal while the database is known to be down: its watch logged the outage.
            Self::DatabaseUnavailable(error) if crate::store::KnownDown::is(error) => {}
            Self::DatabaseUnavailable(error) => tracing::error!(%error, "database error"),
            Self::AppleExchangeFailed { message, detail } => {
                tracing::error!(message, detail, "Apple code exchange failed");
            }
            Self::RefreshTokenReused => tracing::warn!(
                "a rotated refresh token was presented again; its session was revoked"
            ),
            _ => {}
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(error: VerifyError) -> Self {
        Self::Token(error)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::DatabaseUnavailable(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NonceReplayed => Self::NonceReplayed,
            StoreError::TokenReplayed => Self::TokenReplayed,
            StoreError::Database(e) => Self::DatabaseUnavailable(e),
        }
    }
}

impl ApiError {
    /// Marks `response` as this error's answer, for [`record`] to count and log.
    pub fn attach(self, mut response: Response) -> Response {
        response.extensions_mut().insert(Recorded(Arc::new(self)));
        response
    }
}

/// The error a response answers, in its extensions.
#[derive(Clone)]
struct Recorded(Arc<ApiError>);

/// Counts and logs the error every error response answers: the one place errors are recorded.
pub async fn record(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(Recorded(error)) = response.extensions().get::<Recorded>() {
        error.record();
    }
    response
}

impl IntoResponse for ApiError {
    /// The JSON error; [`record`] counts it.
    fn into_response(self) -> Response {
        let status = self.status();
        let retry_after = match self {
            Self::RateLimited { retry_after_secs } => Some(retry_after_secs.max(1)),
            // The database's watch tries again twice a second.
            Self::DatabaseUnavailable(_) => Some(1),
            _ => None,
        };
        let rate_limited = matches!(self, Self::RateLimited { .. });
        let body = ErrorBody {
            error: self.code(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            let headers = response.headers_mut();
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            if rate_limited {
                // Refused before its body was used: say the connection ends, rather than leave
                // the client with a connection closed under it.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        self.attach(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each cause; a new variant that is not listed here fails to compile the `match`
    /// in `code()` first.
    fn one_of_each() -> Vec<ApiError> {
        vec![
            ApiError::bad_request("x"),
            ApiError::UnsupportedMediaType,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::RequestTimeout,
            ApiError::BodyTooLarge,
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::Token(VerifyError::Expired),
            ApiError::Notification(VerifyError::Expired),
            ApiError::NonceMissing,
            ApiError::NonceReplayed,
            ApiError::TokenReplayed,
            ApiError::AuthorizationCodeRejected,
            ApiError::AuthorizationCodeMismatch,
            ApiError::AppleUnavailable,
            ApiError::AppleExchangeFailed {
                message: "x",
                detail: None,
            },
            ApiError::MissingAccessToken,
            ApiError::InvalidAccessToken,
            ApiError::SessionEnded,
            ApiError::InvalidRefreshToken,
            ApiError::RefreshTokenReused,
            ApiError::WebFlowNotConfigured,
            ApiError::InvalidState,
            ApiError::AppleAuthorizationFailed,
            ApiError::AppRedirectUriNotAllowed,
            ApiError::InvalidCodeChallenge,
            ApiError::InvalidExchangeCode,
            ApiError::CodeVerifierMismatch,
            ApiError::CsrfTokenInvalid,
            ApiError::CallbackOriginInvalid,
            ApiError::DatabaseUnavailable(sqlx::Error::PoolClosed),
            ApiError::Internal,
        ]
    }

    #[test]
    fn every_code_is_answered_by_exactly_one_cause() {
        let mut answered: Vec<ErrorCode> = one_of_each().iter().map(ApiError::code).collect();
        // `VerifyError` has a cause per code of its own.
        answered.extend(VerifyError::ALL_CODES);
        answered.sort_unstable_by_key(|c| c.as_str());
        answered.dedup();
        let mut all = ErrorCode::ALL.to_vec();
        all.sort_unstable_by_key(|c| c.as_str());
        assert_eq!(
            answered, all,
            "a code no cause answers, or a cause without a code"
        );
    }

    #[test]
    fn retryable_refusals_are_503_and_notifications_400() {
        assert_eq!(
            ApiError::Token(VerifyError::KeySetUnavailable).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::Token(VerifyError::Expired).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ApiError::Notification(VerifyError::Expired).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
