//! The client secret: how a developer authenticates to Apple's `/auth/token` and `/auth/revoke`.
//!
//! It is an ES256 JWT signed with the developer's `.p8` key (PKCS#8, P-256): header `kid` = the
//! 10-character key ID; claims `iss` = the 10-character Team ID, `iat`, `exp` at most six months
//! ahead, `aud` = `https://appleid.apple.com`, `sub` = the client id of the request. The
//! signature is JOSE's raw `R||S` (64 bytes), not DER (docs/apple-protocol.md, P1). Minting
//! short-lived secrets and caching them means the "secret expired after six months" outage never
//! happens.
//!
//! Both sides live here: [`DeveloperKey::mint`] for the server, [`verify_client_secret`] for
//! `mock-apple`, which checks secrets as Apple does.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::apple::{CLIENT_SECRET_AUDIENCE, CLIENT_SECRET_MAX_LIFETIME_SECS};
use crate::jws::CompactJws;

/// The claims of a client secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSecretClaims {
    /// The Team ID.
    pub iss: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at: at most six months after `iat`.
    pub exp: i64,
    /// Always `https://appleid.apple.com`.
    pub aud: String,
    /// The client id (bundle ID or Services ID) the secret authenticates.
    pub sub: String,
}

/// Why a client secret could not be made or was refused. Apple answers all refusals with
/// `invalid_client`; the variants say which check failed, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientSecretError {
    /// A Team ID is 10 upper-case letters and digits.
    #[error("a Team ID is 10 upper-case letters and digits")]
    InvalidTeamId,
    /// A Key ID is 10 upper-case letters and digits.
    #[error("a Key ID is 10 upper-case letters and digits")]
    InvalidKeyId,
    /// The private key is not a PKCS#8 P-256 key (.p8).
    #[error("the private key is not a PKCS#8 P-256 key (.p8)")]
    InvalidPrivateKey,
    /// The public key is not a P-256 public key.
    #[error("the public key is not a P-256 public key")]
    InvalidPublicKey,
    /// The requested lifetime exceeds Apple's six-month maximum.
    #[error("the requested lifetime exceeds Apple's six-month maximum")]
    LifetimeTooLong,
    /// Signing the client secret failed.
    #[error("signing the client secret failed")]
    Signing,
    /// The client secret is not a well-formed JWT.
    #[error("the client secret is not a well-formed JWT")]
    Malformed,
    /// The client secret is not signed with ES256.
    #[error("the client secret is not signed with ES256")]
    WrongAlgorithm,
    /// No developer key is registered under the client secret's key id.
    #[error("no developer key is registered under the client secret's key id")]
    UnknownKey,
    /// The client secret's signature does not verify (a DER signature never does).
    #[error("the client secret's signature does not verify (a DER signature never does)")]
    BadSignature,
    /// The client secret's issuer is not the key's Team ID.
    #[error("the client secret's issuer is not the key's Team ID")]
    WrongTeam,
    /// The client secret's audience is not https://appleid.apple.com.
    #[error("the client secret's audience is not https://appleid.apple.com")]
    WrongAudience,
    /// The client secret's subject is not the request's client_id.
    #[error("the client secret's subject is not the request's client_id")]
    WrongSubject,
    /// The client secret has expired.
    #[error("the client secret has expired")]
    Expired,
    /// The client secret was issued in the future.
    #[error("the client secret was issued in the future")]
    IssuedInFuture,
}

impl ClientSecretError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTeamId => "invalid_team_id",
            Self::InvalidKeyId => "invalid_key_id",
            Self::InvalidPrivateKey => "invalid_private_key",
            Self::InvalidPublicKey => "invalid_public_key",
            Self::LifetimeTooLong => "client_secret_lifetime_too_long",
            Self::Signing => "client_secret_signing_failed",
            Self::Malformed => "client_secret_malformed",
            Self::WrongAlgorithm => "client_secret_wrong_algorithm",
            Self::UnknownKey => "client_secret_unknown_key",
            Self::BadSignature => "client_secret_bad_signature",
            Self::WrongTeam => "client_secret_wrong_team",
            Self::WrongAudience => "client_secret_wrong_audience",
            Self::WrongSubject => "client_secret_wrong_subject",
            Self::Expired => "client_secret_expired",
            Self::IssuedInFuture => "client_secret_issued_in_future",
        }
    }
}

/// Team IDs and Key IDs are 10 characters, upper-case letters and digits.
pub fn is_apple_id(value: &str) -> bool {
    value.len() == 10
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// A minted client secret. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret {
    value: String,
    /// When it stops being accepted (seconds since the epoch).
    pub expires_at: i64,
}

impl ClientSecret {
    /// The secret, for the `client_secret` form field. Never log it.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientSecret(<redacted>, expires_at: {})",
            self.expires_at
        )
    }
}

/// A developer's Sign in with Apple private key (the `.p8`), with its Team ID and Key ID.
#[derive(Clone)]
pub struct DeveloperKey {
    team_id: String,
    key_id: String,
    key: EncodingKey,
}

impl fmt::Debug for DeveloperKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeveloperKey")
            .field("team_id", &self.team_id)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl DeveloperKey {
    /// Reads the `.p8` PEM Apple lets a developer download once.
    pub fn from_p8_pem(
        team_id: &str,
        key_id: &str,
        p8_pem: &str,
    ) -> Result<Self, ClientSecretError> {
        if !is_apple_id(team_id) {
            return Err(ClientSecretError::InvalidTeamId);
        }
        if !is_apple_id(key_id) {
            return Err(ClientSecretError::InvalidKeyId);
        }
        let key = EncodingKey::from_ec_pem(p8_pem.as_bytes())
            .map_err(|_| ClientSecretError::InvalidPrivateKey)?;
        let developer_key = Self {
            team_id: team_id.into(),
            key_id: key_id.into(),
            key,
        };
        // A key of the wrong curve parses but cannot sign ES256: find out now, not at sign-in.
        developer_key
            .mint("probe", 0, Duration::from_secs(60))
            .map_err(|e| match e {
                ClientSecretError::Signing => ClientSecretError::InvalidPrivateKey,
                other => other,
            })?;
        Ok(developer_key)
    }

    /// The 10-character Team ID.
    pub fn team_id(&self) -> &str {
        &self.team_id
    }

    /// The 10-character Key ID.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A client secret for `client_id`, issued at `now` and valid for `lifetime`.
    pub fn mint(
        &self,
        client_id: &str,
        now: i64,
        lifetime: Duration,
    ) -> Result<ClientSecret, ClientSecretError> {
        if lifetime.as_secs() > CLIENT_SECRET_MAX_LIFETIME_SECS {
            return Err(ClientSecretError::LifetimeTooLong);
        }
        let claims = ClientSecretClaims {
            iss: self.team_id.clone(),
            iat: now,
            exp: now + lifetime.as_secs() as i64,
            aud: CLIENT_SECRET_AUDIENCE.into(),
            sub: client_id.into(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = None;
        // jsonwebtoken signs ES256 in JOSE's fixed-size R||S form, which is what Apple wants.
        let value = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|_| ClientSecretError::Signing)?;
        Ok(ClientSecret {
            value,
            expires_at: claims.exp,
        })
    }
}

/// A developer key as Apple knows it: the public half, registered under a Key ID for a team.
#[derive(Clone)]
pub struct RegisteredDeveloperKey {
    /// The team the key belongs to.
    pub team_id: String,
    /// The Key ID secrets name in their `kid`.
    pub key_id: String,
    key: DecodingKey,
}

impl RegisteredDeveloperKey {
    /// Registers the public half of a `.p8` (SPKI PEM) under `key_id` for `team_id`.
    pub fn from_public_pem(
        team_id: &str,
        key_id: &str,
        public_pem: &str,
    ) -> Result<Self, ClientSecretError> {
        let key = DecodingKey::from_ec_pem(public_pem.as_bytes())
            .map_err(|_| ClientSecretError::InvalidPublicKey)?;
        Ok(Self {
            team_id: team_id.into(),
            key_id: key_id.into(),
            key,
        })
    }
}

/// Leeway on a client secret's `iat` for the clocks of developers' servers.
const CLIENT_SECRET_LEEWAY_SECS: i64 = 60;

/// Checks a client secret as Apple's token endpoint does, for a request made with `client_id`.
/// `find_key` looks a registered developer key up by the secret's `kid`.
pub fn verify_client_secret<'k>(
    secret: &str,
    client_id: &str,
    now: i64,
    find_key: impl FnOnce(&str) -> Option<&'k RegisteredDeveloperKey>,
) -> Result<ClientSecretClaims, ClientSecretError> {
    let jws = CompactJws::parse(secret).map_err(|_| ClientSecretError::Malformed)?;
    if jws.header.alg.as_deref() != Some("ES256") {
        return Err(ClientSecretError::WrongAlgorithm);
    }
    let kid = jws
        .header
        .kid
        .as_deref()
        .ok_or(ClientSecretError::UnknownKey)?;
    let key = find_key(kid).ok_or(ClientSecretError::UnknownKey)?;
    let valid = jsonwebtoken::crypto::verify(
        jws.signature,
        jws.signing_input.as_bytes(),
        &key.key,
        Algorithm::ES256,
    )
    .unwrap_or(false);
    if !valid {
        return Err(ClientSecretError::BadSignature);
    }
    let claims: ClientSecretClaims = jws.claims().map_err(|_| ClientSecretError::Malformed)?;
    if claims.iss != key.team_id {
        return Err(ClientSecretError::WrongTeam);
    }
    if claims.aud != CLIENT_SECRET_AUDIENCE {
        return Err(ClientSecretError::WrongAudience);
    }
    if claims.sub != client_id {
        return Err(ClientSecretError::WrongSubject);
    }
    if claims.exp <= now {
        return Err(ClientSecretError::Expired);
    }
    if claims.iat > now + CLIENT_SECRET_LEEWAY_SECS {
        return Err(ClientSecretError::IssuedInFuture);
    }
    if claims.exp - claims.iat > CLIENT_SECRET_MAX_LIFETIME_SECS as i64 {
        return Err(ClientSecretError::LifetimeTooLong);
    }
    Ok(claims)
}
