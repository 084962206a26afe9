//! Why a token was refused.
//!
//! Every variant has a stable machine-readable [`code`](VerifyError::code) that the HTTP server
//! and the FFI layer pass on unchanged, so clients can branch on it. Messages are fixed texts:
//! no variant carries a token, an email, a nonce or any other value taken from the input, so an
//! error can be logged or returned as it is.

use crate::api::ErrorCode;

/// The reason an identity token (or a notification payload) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is larger than the accepted maximum.
    #[error("the token is larger than the accepted maximum")]
    TooLarge,
    /// The token is not a well-formed JWS; the text says which part.
    #[error("the token is not a well-formed JWS: {0}")]
    Malformed(&'static str),
    /// The token's algorithm is not RS256.
    #[error("the token's algorithm is not RS256")]
    UnsupportedAlgorithm,
    /// The token's header names its own key (`jwk`, `jku`, `x5u`, `x5c`) or a critical extension (P13).
    #[error("the token's header names its own key ({0}); keys are only taken from Apple's key set")]
    ForbiddenHeader(&'static str),
    /// No key in Apple's key set has the token's key id.
    #[error("no key in Apple's key set has the token's key id")]
    UnknownKey,
    /// Apple's key set could not be fetched and no cached key matches.
    #[error("Apple's key set could not be fetched and no cached key matches")]
    KeySetUnavailable,
    /// The token's signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The token's issuer is not an accepted one.
    #[error("the token's issuer is not an accepted one")]
    WrongIssuer,
    /// The token's audience is not an accepted client id.
    #[error("the token's audience is not an accepted client id")]
    WrongAudience,
    /// The token lacks a required claim (named).
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token was issued in the future.
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// The token's lifetime (exp - iat) is longer than accepted.
    #[error("the token's lifetime (exp - iat) is longer than accepted")]
    LifetimeTooLong,
    /// The token was issued longer ago than accepted.
    #[error("the token was issued longer ago than accepted")]
    TooOld,
    /// The token's nonce does not match the nonce of the request.
    #[error("the token's nonce does not match the nonce of the request")]
    NonceMismatch,
    /// The request has a nonce but the token carries none.
    #[error("the request has a nonce but the token carries none")]
    NonceMissing,
}

impl VerifyError {
    /// The stable code the server answers and the FFI passes on.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::TooLarge => ErrorCode::TokenTooLarge,
            Self::Malformed(_) => ErrorCode::TokenMalformed,
            Self::UnsupportedAlgorithm => ErrorCode::UnsupportedAlgorithm,
            Self::ForbiddenHeader(_) => ErrorCode::ForbiddenHeader,
            Self::UnknownKey => ErrorCode::UnknownKey,
            Self::KeySetUnavailable => ErrorCode::KeySetUnavailable,
            Self::BadSignature => ErrorCode::BadSignature,
            Self::WrongIssuer => ErrorCode::WrongIssuer,
            Self::WrongAudience => ErrorCode::WrongAudience,
            Self::MissingClaim(_) => ErrorCode::MissingClaim,
            Self::Expired => ErrorCode::TokenExpired,
            Self::IssuedInFuture => ErrorCode::IssuedInFuture,
            Self::LifetimeTooLong => ErrorCode::LifetimeTooLong,
            Self::TooOld => ErrorCode::TokenTooOld,
            Self::NonceMismatch => ErrorCode::NonceMismatch,
            Self::NonceMissing => ErrorCode::NonceMissing,
        }
    }

    /// The code as it is spelled. Never changes once released.
    pub fn code(&self) -> &'static str {
        self.error_code().as_str()
    }

    /// Whether the same token may verify later: only when Apple's key set could not be reached.
    /// Every other refusal is final for that token.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::KeySetUnavailable)
    }

    /// Every code, for documentation, metrics labels and the tests that pin them.
    pub const ALL_CODES: &'static [ErrorCode] = &[
        ErrorCode::TokenTooLarge,
        ErrorCode::TokenMalformed,
        ErrorCode::UnsupportedAlgorithm,
        ErrorCode::ForbiddenHeader,
        ErrorCode::UnknownKey,
        ErrorCode::KeySetUnavailable,
        ErrorCode::BadSignature,
        ErrorCode::WrongIssuer,
        ErrorCode::WrongAudience,
        ErrorCode::MissingClaim,
        ErrorCode::TokenExpired,
        ErrorCode::IssuedInFuture,
        ErrorCode::LifetimeTooLong,
        ErrorCode::TokenTooOld,
        ErrorCode::NonceMismatch,
        ErrorCode::NonceMissing,
    ];
}
