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

/// Why a request failed. Most causes are their [`ErrorCode`] alone, with the code's fixed
/// message (`ErrorCode::message`, written once, in `siwa_core::api`); the rest carry what their
/// answer or their log line needs.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A refusal that is its code alone.
    #[error("{}", .0.message())]
    Refused(ErrorCode),
    /// The request is malformed; the text says how (never quoting what was sent).
    #[error("{0}")]
    InvalidRequest(Cow<'static, str>),
    #[error("{}", ErrorCode::RateLimited.message())]
    RateLimited { retry_after_secs: u64 },
    /// An identity token refused (401), or Apple's keys not to be had (503).
    #[error(transparent)]
    Token(VerifyError),
    /// A notification payload refused: 400 tells Apple that retrying will not help.
    #[error(transparent)]
    Notification(VerifyError),
    /// Apple refused our credentials or answered something we cannot use; `detail` (Apple's
    /// error code, say) is logged, not answered.
    #[error("{message}")]
    AppleExchangeFailed {
        message: &'static str,
        detail: Option<String>,
    },
    #[error("{}", ErrorCode::DatabaseUnavailable.message())]
    DatabaseUnavailable(#[source] sqlx::Error),
}

/// The causes that are their code alone, by the name the routes use.
#[allow(non_upper_case_globals)]
impl ApiError {
    pub const UnsupportedMediaType: Self = Self::Refused(ErrorCode::UnsupportedMediaType);
    pub const NotFound: Self = Self::Refused(ErrorCode::NotFound);
    pub const MethodNotAllowed: Self = Self::Refused(ErrorCode::MethodNotAllowed);
    pub const RequestTimeout: Self = Self::Refused(ErrorCode::RequestTimeout);
    pub const BodyTooLarge: Self = Self::Refused(ErrorCode::BodyTooLarge);
    pub const NonceMissing: Self = Self::Refused(ErrorCode::NonceMissing);
    pub const NonceReplayed: Self = Self::Refused(ErrorCode::NonceReplayed);
    pub const TokenReplayed: Self = Self::Refused(ErrorCode::TokenReplayed);
    pub const AuthorizationCodeRejected: Self = Self::Refused(ErrorCode::AuthorizationCodeRejected);
    pub const AuthorizationCodeMismatch: Self = Self::Refused(ErrorCode::AuthorizationCodeMismatch);
    pub const AppleUnavailable: Self = Self::Refused(ErrorCode::AppleUnavailable);
    pub const MissingAccessToken: Self = Self::Refused(ErrorCode::MissingAccessToken);
    pub const InvalidAccessToken: Self = Self::Refused(ErrorCode::InvalidAccessToken);
    pub const SessionEnded: Self = Self::Refused(ErrorCode::SessionEnded);
    pub const InvalidRefreshToken: Self = Self::Refused(ErrorCode::InvalidRefreshToken);
    pub const RefreshTokenReused: Self = Self::Refused(ErrorCode::RefreshTokenReused);
    pub const WebFlowNotConfigured: Self = Self::Refused(ErrorCode::WebFlowNotConfigured);
    pub const InvalidState: Self = Self::Refused(ErrorCode::InvalidState);
    pub const AppleAuthorizationFailed: Self = Self::Refused(ErrorCode::AppleAuthorizationFailed);
    pub const AppRedirectUriNotAllowed: Self = Self::Refused(ErrorCode::AppRedirectUriNotAllowed);
    pub const InvalidCodeChallenge: Self = Self::Refused(ErrorCode::InvalidCodeChallenge);
    pub const InvalidExchangeCode: Self = Self::Refused(ErrorCode::InvalidExchangeCode);
    pub const CodeVerifierMismatch: Self = Self::Refused(ErrorCode::CodeVerifierMismatch);
    pub const CsrfTokenInvalid: Self = Self::Refused(ErrorCode::CsrfTokenInvalid);
    pub const CallbackOriginInvalid: Self = Self::Refused(ErrorCode::CallbackOriginInvalid);
    pub const ReturnToNotAllowed: Self = Self::Refused(ErrorCode::ReturnToNotAllowed);
    pub const OriginNotAllowed: Self = Self::Refused(ErrorCode::OriginNotAllowed);
    pub const NotSignedIn: Self = Self::Refused(ErrorCode::NotSignedIn);
    pub const Internal: Self = Self::Refused(ErrorCode::InternalError);
}

impl ApiError {
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidRequest(message.into())
    }

    /// The stable code clients match on.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Refused(code) => *code,
            Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Token(e) | Self::Notification(e) => e.error_code(),
            Self::AppleExchangeFailed { .. } => ErrorCode::AppleExchangeFailed,
            Self::DatabaseUnavailable(_) => ErrorCode::DatabaseUnavailable,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Token(e) | Self::Notification(e) if e.is_retryable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Notification(_) => StatusCode::BAD_REQUEST,
            _ => status_of(self.code()),
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
            Self::Refused(ErrorCode::RefreshTokenReused) => tracing::warn!(
                "a rotated refresh token was presented again; its session was revoked"
            ),
            _ => {}
        }
    }
}

/// The HTTP status of a code.
fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode as C;
    match code {
        C::InvalidRequest
        | C::AuthorizationCodeRejected
        | C::InvalidState
        | C::AppleAuthorizationFailed
        | C::AppRedirectUriNotAllowed
        | C::ReturnToNotAllowed
        | C::InvalidCodeChallenge
        | C::InvalidExchangeCode
        | C::CodeVerifierMismatch => StatusCode::BAD_REQUEST,
        C::CsrfTokenInvalid | C::CallbackOriginInvalid | C::OriginNotAllowed => {
            StatusCode::FORBIDDEN
        }
        C::WebFlowNotConfigured => StatusCode::NOT_IMPLEMENTED,
        C::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        C::NotFound => StatusCode::NOT_FOUND,
        C::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        C::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        C::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        C::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        C::AppleUnavailable | C::DatabaseUnavailable | C::KeySetUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        C::AppleExchangeFailed => StatusCode::BAD_GATEWAY,
        C::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        // The rest are refusals of the caller's credentials: tokens, nonces, sessions.
        _ => StatusCode::UNAUTHORIZED,
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
            ApiError::ReturnToNotAllowed,
            ApiError::OriginNotAllowed,
            ApiError::NotSignedIn,
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
