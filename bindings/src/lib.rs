//! # siwa-ffi
//!
//! The Swift face of `siwa-core`'s client, through UniFFI: thin wrappers and nothing else. The
//! logic (nonces, the credential checks, the session and its refresh) lives in
//! `siwa_core::client`; this crate turns its types into records, objects and one small error
//! whose variants tell the app what to do.
//!
//! Every async export runs on UniFFI's tokio strategy (`async_runtime = "tokio"`), which the
//! HTTP client needs. The session store is a synchronous foreign trait: the app implements it
//! (the Keychain, in `SiwaKit`), and async foreign traits do not compile in Swift 6 mode with
//! UniFFI 0.32.
//!
//! The `///` comments here become the Swift documentation of `SiwaKit`.

use std::sync::Arc;

use siwa_core::client as core;

uniffi::setup_scaffolding!();

/// Why a `SiwaClient` call failed, as what the app should do about it. Never carries a token,
/// a nonce or an email.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SiwaError {
    /// The user cancelled (Apple's sheet closed, or Cancel at Apple in the browser): nothing to
    /// report, let them try again when they like.
    #[error("the user cancelled the sign-in")]
    Cancelled,
    /// Apple's credential does not belong to this sign-in, or the attempt is unknown: start a
    /// new sign-in.
    #[error("the credential is not valid for this sign-in; start a new one")]
    InvalidCredential,
    /// The identity token's nonce is not this attempt's: start a new sign-in.
    #[error("the credential was issued for another sign-in attempt")]
    NonceMismatch,
    /// The server could not be reached or did not answer in time: retry later.
    #[error("the server could not be reached")]
    Network,
    /// The server refused the request for good: the user or the app must act (`code` is its
    /// stable error code; sending the same request again fails again).
    #[error("the server refused the request ({code}): {detail}")]
    Server {
        /// The server's stable code, e.g. `wrong_audience`, `nonce_replayed`.
        code: String,
        /// The server's explanation, for logs.
        detail: String,
    },
    /// The server, its database or Apple is unavailable for now (a 5xx, a 503): retry later.
    #[error("the server is unavailable ({code}); try again later")]
    Unavailable {
        /// The server's stable code (`apple_unavailable`, `database_unavailable`, ...), or
        /// `unexpected_response` when something in front of it answered.
        code: String,
    },
    /// No session, or the server ended it: show the sign-in screen.
    #[error("the session has ended; sign in again")]
    SessionExpired,
    /// The session store failed (the Keychain, say).
    #[error("the session store failed")]
    Storage,
    /// The client was configured wrongly (a server URL that is not https, a redirect URI that
    /// is not a URL, say): a bug to fix.
    #[error("invalid configuration: {reason}")]
    InvalidConfiguration {
        /// What is wrong.
        reason: String,
    },
    /// The browser came back with an error instead of a sign-in (`invalid_state`: it took over
    /// ten minutes, say): start again.
    #[error("the browser sign-in failed ({code})")]
    BrowserSignInFailed {
        /// The error the browser brought back.
        code: String,
    },
}

impl From<core::ClientError> for SiwaError {
    fn from(error: core::ClientError) -> Self {
        use core::ClientError as E;
        // A browser sign-in that came back with `apple_unavailable` is as passing as an answer
        // that said so.
        if error.retry_later() && !matches!(error, E::Network(_)) {
            return Self::Unavailable {
                code: error.code().to_owned(),
            };
        }
        match error {
            E::InvalidServerUrl | E::InsecureServerUrl | E::InvalidRedirectUri => {
                Self::InvalidConfiguration {
                    reason: error.to_string(),
                }
            }
            E::InvalidIdentityToken(_) | E::UserMismatch | E::UnknownAttempt => {
                Self::InvalidCredential
            }
            E::NonceMismatch => Self::NonceMismatch,
            E::NotSignedIn | E::SessionExpired => Self::SessionExpired,
            E::Server { code, message, .. } => Self::Server {
                code: code.as_str().to_owned(),
                detail: message,
            },
            E::Network(_) => Self::Network,
            E::Storage(_) => Self::Storage,
            E::Cancelled => Self::Cancelled,
            E::BrowserSignInFailed(code) => Self::BrowserSignInFailed { code },
            other => Self::Server {
                code: other.code().to_owned(),
                detail: other.to_string(),
            },
        }
    }
}

/// What an error thrown by the app's `SessionStore` becomes.
impl From<uniffi::UnexpectedUniFFICallbackError> for SiwaError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Storage
    }
}

/// Keeps the session between launches: implement it over the Keychain (`SiwaKit` has
/// `KeychainSessionStore`), or use `inMemorySessionStore()` / `fileSessionStore(path:)`.
///
/// The value is one opaque string; store it as it is. Called from any thread.
#[uniffi::export(with_foreign)]
pub trait SessionStore: Send + Sync {
    /// The stored session, or nil when there is none.
    fn load(&self) -> Result<Option<String>, SiwaError>;
    /// Replaces the stored session.
    fn save(&self, session: String) -> Result<(), SiwaError>;
    /// Removes the stored session; removing none is not an error.
    fn clear(&self) -> Result<(), SiwaError>;
}

/// The app's store, as the core sees it.
struct AppStore(Arc<dyn SessionStore>);

impl core::SessionStore for AppStore {
    fn load(&self) -> Result<Option<String>, core::StoreError> {
        self.0.load().map_err(store_error)
    }
    fn save(&self, session: &str) -> Result<(), core::StoreError> {
        self.0.save(session.to_owned()).map_err(store_error)
    }
    fn clear(&self) -> Result<(), core::StoreError> {
        self.0.clear().map_err(store_error)
    }
}

fn store_error(error: SiwaError) -> core::StoreError {
    core::StoreError(format!("the app's session store failed: {error}"))
}

fn from_store_error(_: core::StoreError) -> SiwaError {
    SiwaError::Storage
}

/// A Rust store, as the app sees a `SessionStore`.
struct RustStore<S>(S);

impl<S: core::SessionStore> SessionStore for RustStore<S> {
    fn load(&self) -> Result<Option<String>, SiwaError> {
        self.0.load().map_err(from_store_error)
    }
    fn save(&self, session: String) -> Result<(), SiwaError> {
        self.0.save(&session).map_err(from_store_error)
    }
    fn clear(&self) -> Result<(), SiwaError> {
        self.0.clear().map_err(from_store_error)
    }
}

/// A `SessionStore` that lives as long as the process: for tests and previews.
#[uniffi::export]
pub fn in_memory_session_store() -> Arc<dyn SessionStore> {
    Arc::new(RustStore(core::InMemorySessionStore::default()))
}

/// A `SessionStore` in one file at `path` (its folder must exist), readable by its owner only
/// and replaced atomically: for command-line and desktop apps, and tests that restart the
/// client.
#[uniffi::export]
pub fn file_session_store(path: String) -> Arc<dyn SessionStore> {
    Arc::new(RustStore(core::FileSessionStore::new(path)))
}

/// A sign-in in progress. Give `hashedNonce` to Apple's request
/// (`ASAuthorizationAppleIDRequest.nonce`); the raw nonce never leaves the client.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SignInAttempt {
    /// Lowercase hex SHA-256 of the attempt's raw nonce.
    pub hashed_nonce: String,
}

/// What `ASAuthorizationAppleIDCredential` holds, with its data fields as UTF-8 strings.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct AppleCredential {
    /// `identityToken`.
    pub identity_token: String,
    /// `authorizationCode`; lets the server revoke the account's tokens on deletion.
    #[uniffi(default = None)]
    pub authorization_code: Option<String>,
    /// `user`: Apple's identifier of the user.
    pub user: String,
    /// `fullName?.givenName`: only on the first authorization of the app.
    #[uniffi(default = None)]
    pub given_name: Option<String>,
    /// `fullName?.familyName`: only on the first authorization.
    #[uniffi(default = None)]
    pub family_name: Option<String>,
    /// `email`: only on the first authorization.
    #[uniffi(default = None)]
    pub email: Option<String>,
}

impl From<AppleCredential> for core::AppleCredential {
    fn from(c: AppleCredential) -> Self {
        Self {
            identity_token: c.identity_token,
            authorization_code: c.authorization_code,
            user: c.user,
            given_name: c.given_name,
            family_name: c.family_name,
            email: c.email,
        }
    }
}

/// The signed-in user, as the server knows it.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct SiwaUser {
    /// The server's id for the user.
    pub id: String,
    /// The email Apple gave, possibly a private relay address.
    pub email: Option<String>,
    /// Apple vouches for the email.
    pub email_verified: bool,
    /// The email is a private relay address.
    pub is_private_email: bool,
    /// Kept by the server from the first authorization.
    pub given_name: Option<String>,
    /// Kept by the server from the first authorization.
    pub family_name: Option<String>,
}

impl From<core::User> for SiwaUser {
    fn from(u: core::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            email_verified: u.email_verified,
            is_private_email: u.is_private_email,
            given_name: u.given_name,
            family_name: u.family_name,
        }
    }
}

/// Sign in with Apple against a siwa server, and the session that follows: refreshed by
/// itself, kept in the app's `SessionStore`, ended by `signOut()`, `deleteAccount()` or
/// `credentialRevoked()`. Safe to share between tasks.
#[derive(uniffi::Object)]
pub struct SiwaClient {
    client: core::Client,
}

#[uniffi::export(async_runtime = "tokio")]
impl SiwaClient {
    /// A client of the siwa server at `server_url` (e.g. `https://api.example.com`), restoring
    /// the session `store` holds.
    #[uniffi::constructor]
    pub fn new(server_url: String, store: Arc<dyn SessionStore>) -> Result<Arc<Self>, SiwaError> {
        let config = core::ClientConfig::new(server_url);
        let client = core::Client::new(config, Arc::new(AppStore(store)))?;
        Ok(Arc::new(Self { client }))
    }

    /// Starts a sign-in: put `attempt.hashedNonce` in Apple's request, then pass the attempt
    /// and Apple's credential to `completeSignIn`.
    pub fn start_sign_in(&self) -> SignInAttempt {
        SignInAttempt {
            hashed_nonce: self.client.start_sign_in().hashed_nonce().to_owned(),
        }
    }

    /// Checks Apple's credential against the attempt (before any network call), signs in at
    /// the server, keeps the session, and returns the user.
    pub async fn complete_sign_in(
        &self,
        attempt: SignInAttempt,
        credential: AppleCredential,
    ) -> Result<SiwaUser, SiwaError> {
        let attempt = core::SignInAttempt::from_hashed_nonce(attempt.hashed_nonce);
        let credential = core::AppleCredential::from(credential);
        Ok(self
            .client
            .complete_sign_in(&attempt, &credential)
            .await?
            .into())
    }

    /// The signed-in user as last known, or nil when signed out.
    pub fn current_user(&self) -> Option<SiwaUser> {
        self.client.current_user().map(Into::into)
    }

    /// Starts a sign-in through the browser, for apps without Apple's sheet (Android, desktop
    /// JVM apps, macOS apps without the entitlement): returns the URL to open (the server's
    /// `GET /v1/web/sign-in`). The browser comes back to `app_redirect_uri` (one of the
    /// server's `SIWA_APP_REDIRECT_URIS`); pass that URL to `completeBrowserSignIn`. Starting
    /// again replaces the attempt. The server is asked first: a redirect URI it does not list
    /// throws `Server` with `app_redirect_uri_not_allowed` before any browser opens.
    pub async fn start_browser_sign_in(
        &self,
        app_redirect_uri: String,
    ) -> Result<String, SiwaError> {
        Ok(self.client.start_browser_sign_in(&app_redirect_uri).await?)
    }

    /// Completes a browser sign-in from the URL the browser came back to: trades its one-time
    /// code for a session, keeps it, and returns the user. A cancel at Apple is `Cancelled`;
    /// any other error the URL carries is `BrowserSignInFailed`. A URL that is not the
    /// attempt's callback is `InvalidCredential` and leaves the attempt in place.
    pub async fn complete_browser_sign_in(
        &self,
        callback_url: String,
    ) -> Result<SiwaUser, SiwaError> {
        Ok(self
            .client
            .complete_browser_sign_in(&callback_url)
            .await?
            .into())
    }

    /// Apple's identifier of the signed-in user (the credential's `user`), for
    /// `ASAuthorizationAppleIDProvider.getCredentialState(forUserID:)` at launch; nil when
    /// signed out.
    pub fn apple_user_id(&self) -> Option<String> {
        self.client.apple_user_id()
    }

    /// An access token for the server (`Authorization: Bearer`), refreshed first when it is
    /// about to expire. Concurrent calls share one refresh.
    pub async fn access_token(&self) -> Result<String, SiwaError> {
        Ok(self.client.access_token().await?)
    }

    /// Refreshes the session now, whatever the access token's expiry.
    pub async fn refresh_session(&self) -> Result<(), SiwaError> {
        Ok(self.client.refresh_session().await?)
    }

    /// Reads the user from the server and keeps it as the current user.
    pub async fn refresh_user(&self) -> Result<SiwaUser, SiwaError> {
        Ok(self.client.refresh_user().await?.into())
    }

    /// Signs out at the server and here; here even when the server cannot be reached.
    pub async fn sign_out(&self) -> Result<(), SiwaError> {
        Ok(self.client.sign_out().await?)
    }

    /// Deletes the account at the server (which revokes Apple's tokens, as App Store review
    /// requires), then signs out. On failure the account and the session are kept.
    pub async fn delete_account(&self) -> Result<(), SiwaError> {
        Ok(self.client.delete_account().await?)
    }

    /// Apple says the user revoked the app's access (`getCredentialState` answered `.revoked`
    /// or `.notFound`): signs out here. The session is forgotten in memory even if the store
    /// fails to clear.
    pub fn credential_revoked(&self) {
        // Not thrown: the user is signed out in memory whatever the store says, and a session
        // the store failed to clear is refused by the server once Apple's revocation reaches it.
        let _ = self.client.credential_revoked();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Retry later" means the same in every flow: Apple or the database down reaches a
    /// browser sign-in's URL as a code, and the app hears `Unavailable`, as from an answer.
    #[test]
    fn a_browser_sign_in_that_came_back_unavailable_is_unavailable() {
        for code in [
            "apple_unavailable",
            "database_unavailable",
            "internal_error",
        ] {
            let error = SiwaError::from(core::ClientError::BrowserSignInFailed(code.into()));
            assert_eq!(error, SiwaError::Unavailable { code: code.into() });
        }
        for code in ["invalid_state", "apple_authorization_failed", "not_a_code"] {
            let error = SiwaError::from(core::ClientError::BrowserSignInFailed(code.into()));
            assert_eq!(error, SiwaError::BrowserSignInFailed { code: code.into() });
        }
    }
}
