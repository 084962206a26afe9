//! # siwa-core
//!
//! Everything this project knows about Sign in with Apple, in one place: the identity token and
//! its quirks ([`claims`]), strict verification ([`verifier`]) against Apple's cached key set
//! ([`key_set`]), nonces ([`nonce`]), client secrets ([`client_secret`]), Apple's token and
//! revocation endpoints ([`token_endpoint`]), server-to-server notifications ([`notification`])
//! and the endpoints and constants of Apple's protocol ([`apple`]). The server, the mock of Apple and the FFI bindings all build on it; none of them
//! re-derives a fact that lives here.
//!
//! This crate knows nothing of HTTP servers or FFI. Its network access is that of a client of
//! Apple: the JWKS fetch and the token and revocation endpoints.
//!
//! The facts and pitfalls it pins down are listed in `shared/apple-protocol.md`; comments refer
//! to it as "the protocol notes".

pub mod apple;
pub mod claims;
pub mod client_secret;
pub mod clock;
pub mod error;
pub mod jwks;
mod jws;
pub mod key_set;
pub mod nonce;
pub mod notification;
pub mod token_endpoint;
pub mod verifier;

pub use claims::{IdentityClaims, RealUserStatus, UnverifiedIdentityToken, decode_unverified};
pub use client_secret::{
    ClientSecret, ClientSecretError, DeveloperKey, RegisteredDeveloperKey, verify_client_secret,
};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::VerifyError;
pub use jws::MAX_TOKEN_BYTES;
pub use key_set::{KeySet, KeySetOptions};
pub use nonce::{HashedNonce, RawNonce};
pub use notification::{EventType, Notification, NotificationEvent};
pub use token_endpoint::{
    AppleApiError, AppleClient, OAuthError, OAuthErrorCode, TokenResponse, TokenTypeHint,
};
pub use verifier::{ConfigError, Verifier, VerifierConfig};
