//! Why a client operation failed. Like [`crate::VerifyError`], every variant has a stable code
//! and no variant carries a token, a nonce or an email: messages are fixed texts, or the
//! server's own fixed texts.

use crate::api::{ErrorCode, ErrorMeaning};
use crate::error::VerifyError;

use super::store::StoreError;

/// Why a client operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server URL is not an absolute `http` or `https` URL.
    #[error("the server URL is not an absolute http(s) URL")]
    InvalidServerUrl,
    /// The server URL is plain `http` to another machine: tokens would cross the network in
    /// clear. `http` is for loopback addresses (a development server) only.
    #[error("the server URL must be https (plain http is for loopback addresses only)")]
    InsecureServerUrl,
    /// The identity token is not one Apple could have minted (it does not decode).
    #[error("the identity token is not valid: {0}")]
    InvalidIdentityToken(VerifyError),
    /// The identity token's nonce is not the hash of the attempt's nonce: the credential
    /// answers another request.
    #[error("the identity token was not issued for this sign-in attempt")]
    NonceMismatch,
    /// The identity token's `sub` is not the credential's user.
    #[error("the identity token belongs to another user than the credential")]
    UserMismatch,
    /// The attempt was not started by this client, or was already completed.
    #[error("the sign-in attempt is unknown or already completed; start a new one")]
    UnknownAttempt,
    /// No one is signed in.
    #[error("no one is signed in")]
    NotSignedIn,
    /// The server ended the session (signed out elsewhere, refresh token reused, account
    /// deleted); it has been forgotten here too.
    #[error("the session has ended; sign in again")]
    SessionExpired,
    /// The server refused the request.
    #[error("the server refused the request ({code}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's stable error code, e.g. `wrong_audience`.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The server could not be reached or did not answer in time.
    #[error("the server could not be reached: {0}")]
    Network(&'static str),
    /// The server answered something that is not its API.
    #[error("the server's answer was not understood (HTTP {0})")]
    UnexpectedResponse(u16),
    /// The session store failed.
    #[error("the session store failed: {0}")]
    Storage(String),
    /// The app redirect URI of a browser sign-in is not an absolute URL.
    #[error("the app redirect URI is not an absolute URL")]
    InvalidRedirectUri,
    /// The user cancelled the browser sign-in at Apple.
    #[error("the user cancelled the sign-in")]
    Cancelled,
    /// The browser came back with the server's error code instead of a code (`invalid_state`,
    /// say: the sign-in took over ten minutes).
    #[error("the browser sign-in failed ({0})")]
    BrowserSignInFailed(String),
}

impl ClientError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            Self::InvalidServerUrl => "invalid_server_url",
            Self::InsecureServerUrl => "insecure_server_url",
            Self::InvalidIdentityToken(_) => "invalid_identity_token",
            // The same refusal as the server's, made before the credential is sent.
            Self::NonceMismatch => ErrorCode::NonceMismatch.as_str(),
            Self::UserMismatch => "user_mismatch",
            Self::UnknownAttempt => "unknown_attempt",
            Self::NotSignedIn => "not_signed_in",
            Self::SessionExpired => "session_expired",
            Self::Server { code, .. } => code.as_str(),
            Self::Network(_) => "network",
            Self::UnexpectedResponse(_) => "unexpected_response",
            Self::Storage(_) => "storage",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::Cancelled => "cancelled",
            Self::BrowserSignInFailed(code) => code,
        }
    }

    /// The server's error code, when the server refused the request.
    pub fn server_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the same request may succeed later: the network failed or the server had a
    /// fault of its own (5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) => true,
            Self::Server { status, .. } | Self::UnexpectedResponse(status) => *status >= 500,
            _ => false,
        }
    }

    /// Whether the caller should try again later: the network failed, or the server (or Apple
    /// behind it) is unavailable for now, whether it said so in an answer or in the URL a
    /// browser sign-in came back to (`apple_unavailable`, `database_unavailable`, ...).
    pub fn retry_later(&self) -> bool {
        let code = match self {
            Self::Server { code, .. } => Some(*code),
            Self::BrowserSignInFailed(code) => code.parse::<ErrorCode>().ok(),
            _ => None,
        };
        self.is_transient() || code.is_some_and(|code| code.meaning() == ErrorMeaning::RetryLater)
    }

    /// Whether the server said the session is over.
    pub(super) fn ends_session(&self) -> bool {
        self.server_code()
            .is_some_and(|code| code.meaning() == ErrorMeaning::SignInAgain)
    }
}

impl From<StoreError> for ClientError {
    fn from(error: StoreError) -> Self {
        Self::Storage(error.0)
    }
}
