//! # siwa-core
//!
//! Everything this project knows about Sign in with Apple, in one place: the identity token and
//! its quirks ([`claims`]), strict verification ([`verifier`]) against Apple's cached key set
//! ([`key_set`]), nonces ([`nonce`]) and the endpoints and constants of Apple's protocol
//! ([`apple`]). The server, the mock of Apple and the FFI bindings all build on it; none of them
//! re-derives a fact that lives here.
//!
//! This crate knows nothing of HTTP servers or FFI. Its only network access is the HTTPS fetch of
//! Apple's JWKS.
//!
//! The facts and pitfalls it pins down are listed in `shared/apple-protocol.md`; comments refer
//! to it as "the protocol notes".

pub mod apple;
pub mod claims;
pub mod clock;
pub mod error;
pub mod jwks;
mod jws;
pub mod key_set;
pub mod nonce;
pub mod verifier;

pub use claims::{IdentityClaims, RealUserStatus, UnverifiedIdentityToken, decode_unverified};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::VerifyError;
pub use jws::MAX_TOKEN_BYTES;
pub use key_set::{KeySet, KeySetOptions};
pub use nonce::{HashedNonce, RawNonce};
pub use verifier::{ConfigError, Verifier, VerifierConfig};
