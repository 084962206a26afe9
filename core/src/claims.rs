//! The claims of an Apple identity token, typed, with Apple's quirks absorbed.
//!
//! Quirks handled here (docs/apple-protocol.md, F4-F6):
//! - `email_verified` and `is_private_email` arrive as the strings `"true"`/`"false"` or as
//!   booleans; `is_private_email` may be absent when false. Both forms are accepted, absent is
//!   false.
//! - `real_user_status` is 0/1/2; a fraud hint, never a reason to refuse.
//! - `auth_time`, `c_hash`, `at_hash`, `org_id` are seen in real tokens though not documented, and
//!   unknown claims are tolerated.
//! - The user's name is never in the token.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::VerifyError;
use crate::jws::CompactJws;

/// Apple's hint about whether the user is a real person (serialized as Apple's integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RealUserStatus {
    /// 0: the platform cannot tell (older OS, web).
    Unsupported,
    /// 1: the system could not decide; common, not a reason to refuse.
    Unknown,
    /// 2: very likely a real person.
    LikelyReal,
}

impl Serialize for RealUserStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.as_i64())
    }
}

impl RealUserStatus {
    /// Reads Apple's value; one Apple might add later reads as "unknown".
    pub fn from_i64(value: i64) -> Self {
        match value {
            0 => Self::Unsupported,
            2 => Self::LikelyReal,
            _ => Self::Unknown,
        }
    }

    /// Apple's value: 0, 1 or 2.
    pub fn as_i64(self) -> i64 {
        match self {
            Self::Unsupported => 0,
            Self::Unknown => 1,
            Self::LikelyReal => 2,
        }
    }
}

impl<'de> Deserialize<'de> for RealUserStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A value Apple might add later is read as "unknown" rather than refusing the token:
        // the claim is only ever a hint.
        Ok(IntOrString::deserialize(d)?
            .as_i64()
            .map_or(Self::Unknown, Self::from_i64))
    }
}

/// The verified claims of an Apple identity token (docs/apple-protocol.md, F4).
///
/// Serializes in Apple's form (absent options and `false` flags left out), which is how
/// `mock-apple` mints tokens. `Debug` leaves out the email and nonce so that claims can be logged
/// by mistake without leaking personal data.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IdentityClaims {
    /// The issuer: `https://appleid.apple.com`.
    pub iss: String,
    /// The client id the token was minted for: a bundle ID (apps) or a Services ID (web).
    pub aud: String,
    /// Apple's stable user identifier, scoped to the developer team: the account key.
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The hashed nonce (lowercase hex SHA-256 of the client's raw nonce), when one was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Whether the platform could carry a nonce; absent in tokens before about May 2020.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce_supported: Option<bool>,
    /// Possibly a private relay address; may be empty for managed Apple IDs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Apple vouches for the email (always, in practice, when there is one).
    #[serde(skip_serializing_if = "is_false")]
    pub email_verified: bool,
    /// The email is a private relay address; Apple leaves the claim out when false (F5).
    #[serde(skip_serializing_if = "is_false")]
    pub is_private_email: bool,
    /// A fraud hint, never a reason to refuse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_user_status: Option<RealUserStatus>,
    /// The user's `sub` under the previous team, for up to 60 days after an app transfer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_sub: Option<String>,
    /// When the user authenticated (undocumented; seen in real tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// Hash of the authorization code (tokens from the app or the web flow).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    /// Hash of the access token (tokens from `/auth/token`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The organisation of a managed Apple ID (undocumented; seen in real tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl fmt::Debug for IdentityClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityClaims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("sub", &self.sub)
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .field("nonce", &self.nonce.as_ref().map(|_| "<redacted>"))
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field("email_verified", &self.email_verified)
            .field("is_private_email", &self.is_private_email)
            .field("real_user_status", &self.real_user_status)
            .field("transfer_sub", &self.transfer_sub)
            .finish_non_exhaustive()
    }
}

/// The payload as it arrives: every claim optional, so that a missing one is reported by name.
#[derive(Deserialize)]
pub(crate) struct RawClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    nonce: Option<String>,
    #[serde(default, deserialize_with = "flexible_bool_opt")]
    nonce_supported: Option<bool>,
    email: Option<String>,
    #[serde(default, deserialize_with = "flexible_bool_opt")]
    email_verified: Option<bool>,
    #[serde(default, deserialize_with = "flexible_bool_opt")]
    is_private_email: Option<bool>,
    #[serde(default)]
    real_user_status: Option<RealUserStatus>,
    transfer_sub: Option<String>,
    auth_time: Option<i64>,
    c_hash: Option<String>,
    at_hash: Option<String>,
    org_id: Option<String>,
}

/// `aud` may be a string or an array in JWTs in general. Apple always sends one string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(#[allow(dead_code)] Vec<serde::de::IgnoredAny>),
}

impl RawClaims {
    /// Checks that the claims every Apple token has are present, and types them.
    pub(crate) fn into_claims(self) -> Result<IdentityClaims, VerifyError> {
        let iss = self.iss.ok_or(VerifyError::MissingClaim("iss"))?;
        let aud = match self.aud.ok_or(VerifyError::MissingClaim("aud"))? {
            Audience::One(aud) => aud,
            // Apple mints single-audience tokens. A token for several audiences was meant for
            // someone else too, so it is not accepted even when ours is among them.
            Audience::Many(_) => return Err(VerifyError::WrongAudience),
        };
        let sub = self
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(VerifyError::MissingClaim("sub"))?;
        let iat = self.iat.ok_or(VerifyError::MissingClaim("iat"))?;
        let exp = self.exp.ok_or(VerifyError::MissingClaim("exp"))?;
        Ok(IdentityClaims {
            iss,
            aud,
            sub,
            iat,
            exp,
            nonce: self.nonce,
            nonce_supported: self.nonce_supported,
            // Apple's claim, or the address itself when the claim is absent (either relay
            // domain: `relay`).
            is_private_email: self.is_private_email.unwrap_or_else(|| {
                self.email
                    .as_deref()
                    .is_some_and(crate::relay::is_relay_address)
            }),
            email: self.email,
            email_verified: self.email_verified.unwrap_or(false),
            real_user_status: self.real_user_status,
            transfer_sub: self.transfer_sub,
            auth_time: self.auth_time,
            c_hash: self.c_hash,
            at_hash: self.at_hash,
            org_id: self.org_id,
        })
    }
}

/// A token's claims read **without verifying anything**: not the signature, not the issuer,
/// not the audience, not the expiry.
///
/// For a client that wants to read the token it has just received from Apple (to show the
/// email, say). Never base an authorization decision on it: use [`crate::Verifier`].
#[derive(Debug, Clone)]
pub struct UnverifiedIdentityToken {
    /// The `kid` of the header, when present.
    pub key_id: Option<String>,
    /// The claims, as the token states them.
    pub claims: IdentityClaims,
}

/// Reads a token's claims **without verifying it**. See [`UnverifiedIdentityToken`].
pub fn decode_unverified(token: &str) -> Result<UnverifiedIdentityToken, VerifyError> {
    let jws = CompactJws::parse(token)?;
    let raw: RawClaims = jws.claims()?;
    Ok(UnverifiedIdentityToken {
        key_id: jws.header.kid,
        claims: raw.into_claims()?,
    })
}

/// A token's header and claims exactly as sent, **verifying nothing** and requiring no claim:
/// for tools that show a token to the developer who has it (`siwa-server doctor token`),
/// string booleans and unknown claims included.
#[derive(Debug, Clone)]
pub struct InspectedToken {
    /// The header's `alg`.
    pub algorithm: Option<String>,
    /// The header's `kid`.
    pub key_id: Option<String>,
    /// The payload, as JSON.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Splits and decodes a token **without verifying it**. See [`InspectedToken`].
pub fn inspect_unverified(token: &str) -> Result<InspectedToken, VerifyError> {
    let jws = CompactJws::parse(token)?;
    Ok(InspectedToken {
        claims: jws.claims()?,
        algorithm: jws.header.alg,
        key_id: jws.header.kid,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Str(s) => s.parse().ok(),
        }
    }
}

/// Accepts `true`, `false`, `"true"` and `"false"`; Apple has sent both forms over the years.
pub(crate) fn flexible_bool_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrString {
        Bool(bool),
        Str(String),
    }
    match Option::<BoolOrString>::deserialize(d)? {
        None => Ok(None),
        Some(BoolOrString::Bool(b)) => Ok(Some(b)),
        Some(BoolOrString::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(BoolOrString::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(BoolOrString::Str(_)) => Err(serde::de::Error::custom(
            "expected a boolean or \"true\"/\"false\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<IdentityClaims, VerifyError> {
        serde_json::from_str::<RawClaims>(json)
            .map_err(|_| VerifyError::Malformed("test"))?
            .into_claims()
    }

    const BASE: &str =
        r#""iss":"https://appleid.apple.com","aud":"app","sub":"001","iat":1,"exp":2"#;

    #[test]
    fn string_booleans_are_read_as_booleans() {
        let c = parse(&format!(
            r#"{{{BASE},"email_verified":"true","is_private_email":"false"}}"#
        ))
        .unwrap();
        assert!(c.email_verified);
        assert!(!c.is_private_email);
    }

    #[test]
    fn real_booleans_are_read_as_booleans() {
        let c = parse(&format!(
            r#"{{{BASE},"email_verified":false,"is_private_email":true}}"#
        ))
        .unwrap();
        assert!(!c.email_verified);
        assert!(c.is_private_email);
    }

    #[test]
    fn an_address_on_either_relay_domain_is_private_without_the_claim() {
        for domain in ["privaterelay.appleid.com", "private.icloud.com"] {
            let c = parse(&format!(r#"{{{BASE},"email":"x1y2@{domain}"}}"#)).unwrap();
            assert!(c.is_private_email, "{domain}");
        }
        let c = parse(&format!(r#"{{{BASE},"email":"jane@icloud.com"}}"#)).unwrap();
        assert!(!c.is_private_email);
    }

    #[test]
    fn absent_flags_are_false() {
        let c = parse(&format!("{{{BASE}}}")).unwrap();
        assert!(!c.email_verified);
        assert!(!c.is_private_email);
        assert_eq!(c.nonce_supported, None);
    }

    #[test]
    fn a_flag_that_is_neither_boolean_nor_boolean_string_is_malformed() {
        assert!(parse(&format!(r#"{{{BASE},"email_verified":"yes"}}"#)).is_err());
    }

    #[test]
    fn real_user_status_maps_each_value_and_tolerates_new_ones() {
        for (value, expected) in [
            ("0", RealUserStatus::Unsupported),
            ("1", RealUserStatus::Unknown),
            ("2", RealUserStatus::LikelyReal),
            ("\"2\"", RealUserStatus::LikelyReal),
            ("7", RealUserStatus::Unknown),
        ] {
            let c = parse(&format!(r#"{{{BASE},"real_user_status":{value}}}"#)).unwrap();
            assert_eq!(c.real_user_status, Some(expected), "value {value}");
        }
    }

    #[test]
    fn undocumented_and_unknown_claims_are_tolerated() {
        let c = parse(&format!(
            r#"{{{BASE},"auth_time":5,"c_hash":"x","org_id":"o","something_new":{{"a":[1]}}}}"#
        ))
        .unwrap();
        assert_eq!(c.auth_time, Some(5));
        assert_eq!(c.org_id.as_deref(), Some("o"));
    }

    #[test]
    fn debug_output_never_shows_email_or_nonce() {
        let c = parse(&format!(
            r#"{{{BASE},"email":"jane@example.com","nonce":"abc123"}}"#
        ))
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("jane@example.com"));
        assert!(!shown.contains("abc123"));
    }

    #[test]
    fn a_multi_audience_token_is_refused() {
        let json = r#"{"iss":"i","aud":["app","other"],"sub":"s","iat":1,"exp":2}"#;
        assert_eq!(parse(json), Err(VerifyError::WrongAudience));
    }

    #[test]
    fn an_empty_sub_counts_as_missing() {
        let json = r#"{"iss":"i","aud":"app","sub":"","iat":1,"exp":2}"#;
        assert_eq!(parse(json), Err(VerifyError::MissingClaim("sub")));
    }
}
