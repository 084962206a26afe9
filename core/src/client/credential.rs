//! A sign-in attempt and the credential Apple gives for it, with the checks an app can make
//! before it sends anything to its server.

use std::fmt;

use crate::claims::decode_unverified;
use crate::nonce::{HashedNonce, RawNonce};

use super::ClientError;

/// A sign-in in progress, known by the hash of its nonce. The raw nonce stays inside the
/// [`super::Client`] that started it, which finds it again by this hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAttempt {
    hashed_nonce: String,
}

impl SignInAttempt {
    pub(super) fn new(hashed_nonce: &HashedNonce) -> Self {
        Self::from_hashed_nonce(hashed_nonce.as_str())
    }

    /// The attempt with this hashed nonce, as [`SignInAttempt::hashed_nonce`] gave it (for a
    /// binding that passes the hash across a language boundary).
    pub fn from_hashed_nonce(hashed_nonce: impl Into<String>) -> Self {
        Self {
            hashed_nonce: hashed_nonce.into(),
        }
    }

    /// Lowercase hex SHA-256 of the raw nonce: the value for
    /// `ASAuthorizationAppleIDRequest.nonce` (or the web flow's `nonce`).
    pub fn hashed_nonce(&self) -> &str {
        &self.hashed_nonce
    }

    /// Whether `raw` is this attempt's nonce.
    pub(super) fn is_for(&self, raw: &RawNonce) -> bool {
        raw.hashed().as_str() == self.hashed_nonce
    }
}

/// What `ASAuthorizationAppleIDCredential` holds (docs/apple-protocol.md, F14).
///
/// `Debug` shows none of it but whether each part is present.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AppleCredential {
    /// `identityToken`, as UTF-8.
    pub identity_token: String,
    /// `authorizationCode`, as UTF-8; the server exchanges it so that it can revoke the
    /// account's tokens when it is deleted.
    pub authorization_code: Option<String>,
    /// `user`: Apple's identifier of the user, the token's `sub`.
    pub user: String,
    /// `fullName.givenName`: only on the user's first authorization of the app (F6).
    pub given_name: Option<String>,
    /// `fullName.familyName`: only on the first authorization.
    pub family_name: Option<String>,
    /// `email`: only on the first authorization; the server reads it from the token.
    pub email: Option<String>,
}

impl AppleCredential {
    /// Checks, without the network, that the token is one Apple minted for this attempt and
    /// this user. The server verifies the signature; this catches a credential that belongs to
    /// another attempt (P4) before a request spends anything.
    pub(super) fn check(&self, raw: &RawNonce) -> Result<(), ClientError> {
        let token =
            decode_unverified(&self.identity_token).map_err(ClientError::InvalidIdentityToken)?;
        let claims = token.claims;
        match claims.nonce.as_deref() {
            Some(nonce) if raw.matches_claim(nonce) => {}
            _ => return Err(ClientError::NonceMismatch),
        }
        if claims.sub != self.user {
            return Err(ClientError::UserMismatch);
        }
        Ok(())
    }

    /// The name parts Apple gave, trimmed; `None` when it gave none (every sign-in after the
    /// first), so that the server keeps the name it has.
    pub(super) fn full_name(&self) -> Option<(Option<&str>, Option<&str>)> {
        let (given, family) = (name_part(&self.given_name), name_part(&self.family_name));
        (given.is_some() || family.is_some()).then_some((given, family))
    }
}

fn name_part(part: &Option<String>) -> Option<&str> {
    part.as_deref().map(str::trim).filter(|p| !p.is_empty())
}

impl fmt::Debug for AppleCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppleCredential")
            .field("has_authorization_code", &self.authorization_code.is_some())
            .field("has_name", &self.full_name().is_some())
            .field("has_email", &self.email.is_some())
            .finish_non_exhaustive()
    }
}
