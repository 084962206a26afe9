//! The compact JWS form (`header.payload.signature`), split and decoded strictly.
//!
//! Written here instead of left to `jsonwebtoken` so that each way a token can be malformed gets
//! its own error, and so that an `alg` jsonwebtoken does not know (such as `none`) is reported as
//! an unsupported algorithm rather than as bad JSON. Signature checks stay in `jsonwebtoken`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::VerifyError;

/// Tokens larger than this are refused before any parsing. Apple's tokens are about 1 KiB.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The header fields that matter to verification.
#[derive(Debug, Deserialize)]
pub(crate) struct JoseHeader {
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    // Headers by which a token names its own key. Apple never sends them; a verifier that
    // honoured them would let anyone sign with a key of their own (CVE-2018-0114 and kin).
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
    // A critical extension we cannot understand must make the token invalid (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

impl JoseHeader {
    /// The name of the first header that would name a key or extension we must not honour.
    pub fn forbidden_field(&self) -> Option<&'static str> {
        [
            (self.jwk.is_some(), "jwk"),
            (self.jku.is_some(), "jku"),
            (self.x5u.is_some(), "x5u"),
            (self.x5c.is_some(), "x5c"),
            (self.crit.is_some(), "crit"),
        ]
        .into_iter()
        .find_map(|(present, name)| present.then_some(name))
    }
}

/// A compact JWS split into its parts; nothing verified yet.
pub(crate) struct CompactJws<'a> {
    pub header: JoseHeader,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub payload: &'a str,
    pub signature: &'a str,
}

impl<'a> CompactJws<'a> {
    pub fn parse(token: &'a str) -> Result<Self, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(VerifyError::TooLarge);
        }
        // No trimming: the token is verified exactly as sent.
        if token.trim().is_empty() {
            return Err(VerifyError::Malformed("empty token"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed("a JWS has exactly three segments"));
        };
        if header.is_empty() || payload.is_empty() || signature.is_empty() {
            return Err(VerifyError::Malformed("empty segment"));
        }
        let header: JoseHeader = decode_json_segment(
            header,
            "header is not base64url",
            "header is not a JSON object of the expected shape",
        )?;
        let signing_input = &token[..token.len() - signature.len() - 1];
        Ok(Self {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, VerifyError> {
        decode_json_segment(
            self.payload,
            "payload is not base64url",
            "payload is not a JSON object of the expected shape",
        )
    }
}

fn decode_json_segment<T: DeserializeOwned>(
    segment: &str,
    not_base64: &'static str,
    not_json: &'static str,
) -> Result<T, VerifyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| VerifyError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed(not_json))
}
