//! Identity tokens: as Apple mints them, and with any claim, header or signature overridden for
//! attack tests.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use siwa_core::{IdentityClaims, RealUserStatus};

use crate::directory::Identity;
use crate::keys::SigningKey;

/// How long Apple's identity tokens live: a day since September 2020 (600 s before;
/// docs/apple-protocol.md, F4).
pub const DEFAULT_LIFETIME_SECS: i64 = 86_400;

/// A request for a token with overrides. Every field is optional: an empty request mints the
/// token Apple would send for the default user and client. Any key of the body that is not one
/// of these fields is a claim to set (`{"aud": "...", "email": "..."}`), as `claims` does.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityTokenRequest {
    /// The audience, and the client the authorization code is bound to.
    pub client_id: Option<String>,
    /// The user; a `sub` unknown to the directory is used as is, without email.
    pub sub: Option<String>,
    /// Use the user's private relay address.
    #[serde(default)]
    pub hide_email: bool,
    /// The `nonce` claim as is (clients put the SHA-256 hex of their raw nonce there).
    pub nonce: Option<String>,
    /// A raw nonce: the mock puts its SHA-256 hex in the `nonce` claim, as a client would.
    pub raw_nonce: Option<String>,
    /// Claims to set; `null` removes a claim.
    #[serde(default)]
    pub claims: Map<String, Value>,
    /// The body's other keys: claims to set too (`claims` wins where both name one).
    #[serde(flatten)]
    pub top_level_claims: Map<String, Value>,
    /// Header fields to set; `null` removes one.
    #[serde(default)]
    pub header: Map<String, Value>,
    /// The `kid` to sign with; a kid the mock does not have is put in the header as is, and the
    /// token signed with the active key.
    pub kid: Option<String>,
    /// How to sign.
    #[serde(default)]
    pub alg: TokenAlgorithm,
    /// How to send `email_verified`, `is_private_email` and `nonce_supported`.
    #[serde(default)]
    pub booleans_as: BooleanForm,
    /// `exp - iat`, seconds.
    pub lifetime_secs: Option<i64>,
    /// `iat`, seconds since the epoch.
    pub issued_at: Option<i64>,
}

/// Signature forms, the genuine one and the classic attacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// Apple's: RSA PKCS#1 v1.5 with SHA-256.
    #[default]
    RS256,
    RS384,
    RS512,
    PS256,
    /// HMAC keyed with the signing key's public PEM: the algorithm-confusion attack.
    #[serde(rename = "HS256-public-key")]
    Hs256PublicKey,
    /// `alg: none` and an empty signature.
    #[serde(rename = "none")]
    None,
}

impl TokenAlgorithm {
    fn header_name(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::Hs256PublicKey => "HS256",
            Self::None => "none",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BooleanForm {
    /// `true` / `false`.
    #[default]
    Boolean,
    /// `"true"` / `"false"`, as Apple sent them for years.
    String,
}

impl BooleanForm {
    fn value(self, b: bool) -> Value {
        match self {
            Self::Boolean => json!(b),
            Self::String => json!(b.to_string()),
        }
    }
}

/// What `POST /mock/identity-token` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MintedIdentityToken {
    pub identity_token: String,
    /// Exchangeable at `/auth/token` by the token's client, for the token's user.
    pub authorization_code: String,
    pub sub: String,
    pub kid: String,
    /// The user authorizes the client for the first time (or again after a revocation): the
    /// only time Apple's credential carries the name and email.
    pub first_authorization: bool,
    /// `fullName.givenName` of the credential: on the first authorization only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// `fullName.familyName` of the credential: on the first authorization only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// `email` of the credential: on the first authorization only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The claims Apple puts in an identity token: core's [`IdentityClaims`], serialized in Apple's
/// form, with the flags in the form asked for.
pub fn apple_claims(
    issuer: &str,
    client_id: &str,
    identity: &Identity,
    nonce: Option<&str>,
    iat: i64,
    lifetime: i64,
    booleans: BooleanForm,
) -> Map<String, Value> {
    let claims = IdentityClaims {
        iss: issuer.into(),
        aud: client_id.into(),
        sub: identity.sub.clone(),
        iat,
        exp: iat + lifetime,
        nonce: nonce.map(Into::into),
        nonce_supported: Some(true),
        email: identity.email.clone(),
        email_verified: identity.email.is_some(),
        is_private_email: identity.email.is_some() && identity.is_private_email,
        real_user_status: Some(RealUserStatus::from_i64(identity.real_user_status.into())),
        transfer_sub: identity.transfer_sub.clone(),
        auth_time: Some(iat),
        c_hash: None,
        at_hash: None,
        org_id: None,
    };
    let Value::Object(mut claims) = serde_json::to_value(claims).expect("claims serialize") else {
        unreachable!("claims serialize as an object")
    };
    for flag in ["email_verified", "is_private_email", "nonce_supported"] {
        if let Some(Value::Bool(b)) = claims.get(flag) {
            let value = booleans.value(*b);
            claims.insert(flag.into(), value);
        }
    }
    claims
}

/// `c_hash`: the left half of SHA-256 of the code, base64url (OpenID Connect).
pub fn code_hash(code: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(code.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// Applies overrides: each key is set, or removed when its value is `null`.
pub fn apply_overrides(target: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (key, value) in overrides {
        if value.is_null() {
            target.remove(key);
        } else {
            target.insert(key.clone(), value.clone());
        }
    }
}

/// Signs `claims` as a compact JWS with `key`, in any of the forms above.
pub fn sign(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &SigningKey,
    alg: TokenAlgorithm,
) -> String {
    use base64::Engine;
    let b64 = |v: &Map<String, Value>| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(v).expect("JSON maps serialize"))
    };
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let sign_with = |encoding: &EncodingKey, alg| {
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), encoding, alg)
            .expect("signing with a valid key does not fail")
    };
    let signature = match alg {
        TokenAlgorithm::RS256 => sign_with(&key.encoding, Algorithm::RS256),
        TokenAlgorithm::RS384 => sign_with(&key.encoding, Algorithm::RS384),
        TokenAlgorithm::RS512 => sign_with(&key.encoding, Algorithm::RS512),
        TokenAlgorithm::PS256 => sign_with(&key.encoding, Algorithm::PS256),
        TokenAlgorithm::Hs256PublicKey => sign_with(
            &EncodingKey::from_secret(key.public_pem.as_bytes()),
            Algorithm::HS256,
        ),
        TokenAlgorithm::None => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// The header of a token signed with `kid` under `alg`.
pub fn header(kid: &str, alg: TokenAlgorithm) -> Map<String, Value> {
    let mut header = Map::new();
    header.insert("kid".into(), json!(kid));
    header.insert("alg".into(), json!(alg.header_name()));
    header
}
