//! Sessions of our own: a short-lived access token (an ES256 JWT signed by the server's key,
//! published at `/.well-known/jwks.json` so other services can verify it) and an opaque
//! refresh token, stored only as a hash and rotated on each use (see `store::sessions`).

use axum::http::HeaderMap;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::store::Store;
use crate::tokens;

/// The `iss` and `aud` of our access tokens.
pub const ISSUER: &str = "siwa-server";
pub const AUDIENCE: &str = "siwa";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user's internal id (not Apple's `sub`).
    pub sub: String,
    /// The session id.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    #[error("the stored server key is not a P-256 key: {0}")]
    BadKey(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub struct SessionKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwks: serde_json::Value,
    validation: Validation,
    ttl_secs: i64,
}

impl SessionKeys {
    /// The key shared by all instances through the database, made on first start.
    pub async fn load(store: &Store, ttl_secs: i64, now: i64) -> Result<Self, SessionKeyError> {
        let (kid, pem) = store
            .server_key(
                || {
                    let pair = rcgen::KeyPair::generate().expect("P-256 key generation");
                    (tokens::new_id(), pair.serialize_pem())
                },
                now,
            )
            .await?;
        let bad = |e: &dyn std::fmt::Display| SessionKeyError::BadKey(e.to_string());
        let encoding = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| bad(&e))?;
        let public_pem = rcgen::KeyPair::from_pem(&pem)
            .map_err(|e| bad(&e))?
            .public_key_pem();
        let decoding = DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(|e| bad(&e))?;
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|e| bad(&e))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwks: serde_json::json!({ "keys": [jwk] }),
            validation,
            ttl_secs,
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// An access token for a user in a session.
    pub fn issue(&self, user_id: &str, session_id: &str, now: i64) -> String {
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.into(),
            sid: session_id.into(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .expect("signing with a valid key does not fail")
    }

    /// Checks an access token's signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }

    /// The public key set to publish.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 7235 2.1).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            authorization.parse().unwrap(),
        );
        h
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc "] {
            assert_eq!(bearer_token(&headers(value)), Some("abc"), "{value}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc"] {
            assert_eq!(bearer_token(&headers(value)), None, "{value}");
        }
    }
}
