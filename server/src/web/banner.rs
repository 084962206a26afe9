//! The message above the page: why a sign-in failed (an [`ErrorCode`]), or what just happened
//! (a [`Notice`]). Both travel in the page's URL (`/?error=`, `/?notice=`), each spelled once.

use siwa_core::api::ErrorCode;

siwa_core::protocol_word! {
    /// What just happened, shown to the person who did it: the word in the page's URL.
    Notice, "notice" {
        SignedOut => "signed_out",
        Deleted => "deleted",
        Cancelled => "cancelled",
    }
}

impl Notice {
    /// Where the browser is sent to read it.
    pub fn location(self) -> String {
        format!("/?notice={}", self.as_str())
    }

    fn text(self) -> &'static str {
        match self {
            Self::SignedOut => "You are signed out.",
            Self::Deleted => {
                "Your account was deleted, and Sign in with Apple was revoked for this site."
            }
            Self::Cancelled => "Sign-in was cancelled.",
        }
    }
}

/// A message above the content.
pub struct Banner {
    pub text: &'static str,
    /// The error's code, shown small beside the text (for support); never free text.
    pub code: Option<ErrorCode>,
    pub is_error: bool,
}

impl Banner {
    pub fn error(code: ErrorCode) -> Self {
        let text = match code {
            ErrorCode::InvalidState => {
                "That sign-in link expired or was already used. Please sign in again."
            }
            ErrorCode::AppleAuthorizationFailed => {
                "Apple could not complete the sign-in. Please try again."
            }
            ErrorCode::AppleUnavailable
            | ErrorCode::KeySetUnavailable
            | ErrorCode::DatabaseUnavailable => {
                "The service is busy right now. Please try again in a moment."
            }
            ErrorCode::CsrfTokenInvalid => {
                "This page was out of date, so nothing was changed. Please try again."
            }
            ErrorCode::CallbackOriginInvalid => {
                "That sign-in did not come from Apple. Please sign in again."
            }
            _ => "The sign-in could not be completed. Please try again.",
        };
        Self {
            text,
            code: Some(code),
            is_error: true,
        }
    }

    pub fn notice(notice: Notice) -> Self {
        Self {
            text: notice.text(),
            code: None,
            is_error: false,
        }
    }

    /// The banner for a `?error=` or `?notice=` of the page's URL. Only a code of ours is
    /// echoed back; an unknown one gets the general text.
    pub fn from_query(error: Option<&str>, notice: Option<&str>) -> Option<Self> {
        if let Some(word) = error {
            return Some(match word.parse() {
                Ok(code) => Self::error(code),
                Err(_) => Self {
                    code: None,
                    ..Self::error(ErrorCode::InternalError)
                },
            });
        }
        notice.and_then(|n| n.parse().ok()).map(Self::notice)
    }
}
