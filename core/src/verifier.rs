//! Strict verification of Apple identity tokens.
//!
//! A token is accepted only when every one of these holds, checked in this order so that each
//! refusal names its first reason:
//! 1. it is at most 8 KiB and a well-formed compact JWS;
//! 2. its header says `alg: RS256` and names its key by `kid` alone (no `jwk`, `jku`, `x5u`,
//!    `x5c` or `crit`);
//! 3. the key with that `kid` is in Apple's key set and the signature verifies with it;
//! 4. `iss`, `aud`, `sub`, `iat` and `exp` are present, `iss` and `aud` are accepted ones;
//! 5. it has not expired, was not issued in the future, lives no longer than the maximum
//!    lifetime and is no older than the maximum age, all with a small leeway for clock skew
//!    (docs/apple-protocol.md, P10);
//! 6. when the caller has a raw nonce, the token's `nonce` is its lowercase hex SHA-256
//!    (compared in constant time), and a token without `nonce` is refused (pitfall 4).
//!
//! The same verifier checks server-to-server notification payloads ([`Verifier::verify_jws`]),
//! which Apple signs with the same keys.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;

use crate::apple;
use crate::claims::{IdentityClaims, RawClaims};
use crate::clock::{Clock, SystemClock};
use crate::error::VerifyError;
use crate::jws::CompactJws;
use crate::key_set::KeySet;
use crate::nonce::RawNonce;
use crate::notification::{Notification, NotificationClaims};

/// What a token must satisfy.
#[derive(Clone)]
pub struct VerifierConfig {
    /// Accepted `iss` values. Default: only `https://appleid.apple.com`.
    pub issuers: Vec<String>,
    /// Accepted `aud` values: the app's bundle IDs and Services IDs. Must not be empty.
    pub audiences: Vec<String>,
    /// Tolerated clock skew on `exp`, `iat` and age. Default 60 s.
    pub leeway: Duration,
    /// Longest accepted `exp - iat`. Default 24 h (the longest Apple has been seen to use).
    pub max_lifetime: Duration,
    /// Longest accepted time since `iat`. Default 24 h.
    pub max_age: Duration,
    /// Accept a token without `nonce` when the caller has one, if and only if the token says
    /// `nonce_supported: false` (older Apple platforms that cannot carry a nonce). Default false.
    pub allow_nonce_unsupported: bool,
    /// The time source. Default: the system clock.
    pub clock: Arc<dyn Clock>,
}

impl VerifierConfig {
    /// The strict defaults, accepting tokens for these client ids.
    pub fn new<S: Into<String>>(audiences: impl IntoIterator<Item = S>) -> Self {
        Self {
            issuers: vec![apple::ISSUER.to_owned()],
            audiences: audiences.into_iter().map(Into::into).collect(),
            leeway: Duration::from_secs(60),
            max_lifetime: Duration::from_secs(24 * 3600),
            max_age: Duration::from_secs(24 * 3600),
            allow_nonce_unsupported: false,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The configuration was refused when the verifier was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// At least one accepted audience (bundle ID or Services ID) is required.
    #[error("at least one accepted audience (bundle ID or Services ID) is required")]
    NoAudience,
    /// At least one accepted issuer is required.
    #[error("at least one accepted issuer is required")]
    NoIssuer,
}

/// Verifies identity tokens against a configuration and Apple's key set. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    config: Arc<VerifierConfig>,
    keys: KeySet,
}

impl Verifier {
    /// A verifier of tokens that satisfy `config`, signed by a key of `keys`.
    pub fn new(config: VerifierConfig, keys: KeySet) -> Result<Self, ConfigError> {
        if config.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err(ConfigError::NoAudience);
        }
        if config.issuers.iter().all(|i| i.trim().is_empty()) {
            return Err(ConfigError::NoIssuer);
        }
        Ok(Self {
            config: Arc::new(config),
            keys,
        })
    }

    /// What tokens must satisfy.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Apple's key set this verifier uses.
    pub fn key_set(&self) -> &KeySet {
        &self.keys
    }

    /// Verifies an identity token. With `nonce`, the token must carry its hash.
    pub async fn verify(
        &self,
        token: &str,
        nonce: Option<&RawNonce>,
    ) -> Result<IdentityClaims, VerifyError> {
        let raw: RawClaims = self.verify_jws(token).await?;
        let claims = raw.into_claims()?;
        self.check_issuer_and_audience(&claims.iss, &claims.aud)?;
        self.check_times(claims.iat, claims.exp)?;
        if let Some(nonce) = nonce {
            check_nonce(&claims, nonce, self.config.allow_nonce_unsupported)?;
        }
        Ok(claims)
    }

    /// Checks a compact JWS's size, form, algorithm, header and signature against Apple's key
    /// set, and returns its payload typed as `T`. Checks no claim: callers do.
    pub async fn verify_jws<T: DeserializeOwned>(&self, token: &str) -> Result<T, VerifyError> {
        let jws = CompactJws::parse(token)?;
        if jws.header.alg.as_deref() != Some(apple::IDENTITY_TOKEN_ALGORITHM) {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        if let Some(field) = jws.header.forbidden_field() {
            return Err(VerifyError::ForbiddenHeader(field));
        }
        let kid = jws.header.kid.as_deref().filter(|k| !k.is_empty());
        let kid = kid.ok_or(VerifyError::Malformed("the header has no key id"))?;
        let key = self.keys.key(kid).await?;
        let valid = jsonwebtoken::crypto::verify(
            jws.signature,
            jws.signing_input.as_bytes(),
            &key,
            Algorithm::RS256,
        )
        .unwrap_or(false);
        if !valid {
            return Err(VerifyError::BadSignature);
        }
        jws.claims()
    }

    /// Verifies a server-to-server notification payload (the `payload` field of Apple's POST):
    /// signature by Apple's keys, issuer, audience (a configured client id), times, a `jti`,
    /// and an `events` claim that decodes to an event.
    pub async fn verify_notification(&self, payload: &str) -> Result<Notification, VerifyError> {
        let raw: NotificationClaims = self.verify_jws(payload).await?;
        let iss = raw.iss.as_deref().ok_or(VerifyError::MissingClaim("iss"))?;
        let aud = raw.aud.as_deref().ok_or(VerifyError::MissingClaim("aud"))?;
        let iat = raw.iat.ok_or(VerifyError::MissingClaim("iat"))?;
        let exp = raw.exp.ok_or(VerifyError::MissingClaim("exp"))?;
        self.check_issuer_and_audience(iss, aud)?;
        self.check_times(iat, exp)?;
        let jti = raw
            .jti
            .as_deref()
            .filter(|j| !j.is_empty())
            .ok_or(VerifyError::MissingClaim("jti"))?;
        let event = raw.event()?;
        Ok(Notification {
            jti: jti.to_owned(),
            aud: aud.to_owned(),
            iat,
            event,
        })
    }

    /// `iss` is one of the accepted issuers and `aud` one of the accepted client ids.
    pub fn check_issuer_and_audience(&self, iss: &str, aud: &str) -> Result<(), VerifyError> {
        if !self.config.issuers.iter().any(|i| i == iss) {
            return Err(VerifyError::WrongIssuer);
        }
        if !self.config.audiences.iter().any(|a| a == aud) {
            return Err(VerifyError::WrongAudience);
        }
        Ok(())
    }

    /// `exp`, `iat`, lifetime and age hold against the configured clock, with leeway.
    pub fn check_times(&self, iat: i64, exp: i64) -> Result<(), VerifyError> {
        let now = self.config.clock.now();
        let leeway = secs(self.config.leeway);
        if exp < iat {
            return Err(VerifyError::Malformed("exp is before iat"));
        }
        if now > exp.saturating_add(leeway) {
            return Err(VerifyError::Expired);
        }
        if iat > now.saturating_add(leeway) {
            return Err(VerifyError::IssuedInFuture);
        }
        if exp - iat > secs(self.config.max_lifetime) {
            return Err(VerifyError::LifetimeTooLong);
        }
        if now.saturating_sub(iat) > secs(self.config.max_age).saturating_add(leeway) {
            return Err(VerifyError::TooOld);
        }
        Ok(())
    }
}

fn check_nonce(
    claims: &IdentityClaims,
    nonce: &RawNonce,
    allow_nonce_unsupported: bool,
) -> Result<(), VerifyError> {
    match &claims.nonce {
        Some(claim) if nonce.matches_claim(claim) => Ok(()),
        Some(_) => Err(VerifyError::NonceMismatch),
        // Only a token that says the platform could not carry a nonce may skip the check, and
        // only when the caller's policy allows it; a silent skip is pitfall 4.
        None if allow_nonce_unsupported && claims.nonce_supported == Some(false) => Ok(()),
        None => Err(VerifyError::NonceMissing),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
