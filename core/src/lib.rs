//! # siwa-core
//!
//! Everything this project knows about Sign in with Apple, in one place. The server, the mock of
//! Apple and the FFI bindings all build on it; none of them re-derives a fact that lives here.
//! The facts, their sources and the pitfalls they avoid are in `docs/apple-protocol.md`; comments
//! cite its sections (F1-F15 for facts, P1-P14 for pitfalls).
//!
//! It serves three audiences, each with its own list of exports:
//! - **the relying party** (a backend that signs users in), at the crate root: strict
//!   [`Verifier`] of identity tokens against Apple's cached [`KeySet`], [`RawNonce`]s,
//!   [`DeveloperKey`] client secrets, Apple's token and revocation endpoints ([`AppleClient`])
//!   and server-to-server [`Notification`]s;
//! - **the app** (a client of such a backend), in [`client`]: a sign-in attempt, completing it
//!   with Apple's credential, and a session that refreshes itself, persisted through a
//!   [`client::SessionStore`];
//! - **Apple's side**, in [`apple_side`]: what only a stand-in for Apple needs (checking client
//!   secrets, registered developer keys, the token request form, building a key set).
//!
//! It knows nothing of HTTP servers or FFI. Everything only a server needs (the key set, the
//! verifier, client secrets, Apple's endpoints, and the `jsonwebtoken` dependency they bring) is
//! behind the default feature `server`, so an app's build can leave it out. The TLS backend of
//! its HTTP client is chosen by the features `rustls` (the default) or `native-tls`.
//!
//! ```no_run
//! # #[cfg(feature = "server")]
//! # async fn sign_in(identity_token: &str, raw_nonce: &str) -> Result<(), Box<dyn std::error::Error>> {
//! use siwa_core::{KeySet, RawNonce, Verifier, VerifierConfig};
//!
//! // Accept tokens minted for the app (bundle ID) and the web flow (Services ID).
//! let config = VerifierConfig::new(["com.example.app", "com.example.web"]);
//! let verifier = Verifier::new(config, KeySet::apple()?)?;
//!
//! let claims = verifier.verify(identity_token, Some(&RawNonce::new(raw_nonce))).await?;
//! println!("signed in: {}", claims.sub);
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

// Without `server`, the paths and limits only Apple's side and the relying party use go unused.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod apple;
mod claims;
mod clock;
mod error;
// The client only decodes tokens; the header checks and the signing input are the verifier's.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
mod jws;
mod nonce;

#[cfg(feature = "server")]
mod client_secret;
#[cfg(feature = "server")]
mod jwks;
#[cfg(feature = "server")]
mod key_set;
#[cfg(feature = "server")]
mod notification;
#[cfg(feature = "server")]
mod token_endpoint;
#[cfg(feature = "server")]
mod verifier;

mod authorize;
pub mod relay;
mod transport;
mod web;
#[doc(hidden)]
pub mod word;

pub mod api;
pub mod client;

// --- The relying party ---------------------------------------------------------------------
pub use apple::{BASE_URL, Endpoints, ISSUER};
pub use authorize::{AuthorizeError, CodeChallengeMethod, ResponseMode, ResponseType, Scope};
pub use claims::{
    IdentityClaims, InspectedToken, RealUserStatus, UnverifiedIdentityToken, decode_unverified,
    inspect_unverified,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::VerifyError;
pub use jws::MAX_TOKEN_BYTES;
pub use nonce::{HashedNonce, RawNonce};
pub use transport::{HttpClientError, transport_reason};
pub use web::{
    AuthorizationRequest, AuthorizationResponse, CodeVerifier, FormPostName, FormPostUser,
    is_s256_challenge,
};
pub use word::{UnknownWord, join as join_words, split as split_words};

#[cfg(feature = "server")]
pub use client_secret::{ClientSecret, ClientSecretError, DeveloperKey};
#[cfg(feature = "server")]
pub use key_set::{KeySet, KeySetOptions, KeySetStats};
#[cfg(feature = "server")]
pub use notification::{EventType, Notification, NotificationBody, NotificationEvent};
#[cfg(feature = "server")]
pub use token_endpoint::{
    AppleApiError, AppleClient, ClientCredentials, GrantType, MigratedUser, OAuthError,
    OAuthErrorCode, TokenResponse, TokenScope, TokenTypeHint, TransferIdentifier,
    UserMigrationRequest,
};
#[cfg(feature = "server")]
pub use verifier::{ConfigError, Verifier, VerifierConfig};

/// What only Apple's side of the protocol needs: `mock-apple` uses it to check what relying
/// parties send, exactly as Apple does, and to mint what Apple would.
#[cfg(feature = "server")]
pub mod apple_side {
    pub use crate::apple::{
        AUTHORIZATION_CODE_LIFETIME_SECS, AUTHORIZE_PATH, CLIENT_SECRET_AUDIENCE,
        CLIENT_SECRET_MAX_LIFETIME_SECS, DISCOVERY_PATH, IDENTITY_TOKEN_ALGORITHM, KEYS_PATH,
        REVOKE_PATH, TOKEN_PATH, USER_MIGRATION_INFO_PATH,
    };
    pub use crate::client_secret::{
        ClientSecretClaims, RegisteredDeveloperKey, is_apple_id, verify_client_secret,
    };
    pub use crate::jwks::{Jwk, JwkSet};
    pub use crate::notification::NotificationClaims;
    pub use crate::token_endpoint::TokenRequest;
}
