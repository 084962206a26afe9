//! The web flow (docs/apple-protocol.md, F13, P5, P6): the authorization request a browser is
//! sent to, the `user` field of Apple's form post, and PKCE (RFC 7636), with which an app that
//! can only open a browser proves that the one-time code it is handed back is its own.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::apple::Endpoints;
use crate::authorize::{ResponseMode, WEB_RESPONSE_TYPE, WEB_SCOPE};
use crate::nonce::HashedNonce;
use crate::word::join;

/// The request that sends a browser to Apple's consent page: the Services ID, our callback,
/// `response_type=code id_token`, `response_mode=form_post` (required whenever a scope is asked
/// for), `scope=name email`, the state and the hashed nonce.
#[derive(Clone)]
pub struct AuthorizationRequest<'a> {
    /// The Services ID (not the app's bundle ID).
    pub client_id: &'a str,
    /// The callback Apple posts to; the code is later exchanged with this same URI.
    pub redirect_uri: &'a str,
    /// Opaque, single-use; binds Apple's answer to this request.
    pub state: &'a str,
    /// The nonce Apple puts into the identity token, hashed (F7).
    pub nonce: &'a HashedNonce,
}

impl AuthorizationRequest<'_> {
    /// The URL of Apple's consent page with this request, under `endpoints`.
    pub fn url(&self, endpoints: &Endpoints) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", self.client_id)
            .append_pair("redirect_uri", self.redirect_uri)
            .append_pair("response_type", &join(WEB_RESPONSE_TYPE))
            .append_pair("response_mode", ResponseMode::FormPost.as_str())
            .append_pair("scope", &join(WEB_SCOPE))
            .append_pair("state", self.state)
            .append_pair("nonce", self.nonce.as_str())
            .finish();
        format!("{}?{query}", endpoints.authorize())
    }
}

/// What Apple hands the redirect URI after its consent page (a form post, or the query or
/// fragment of a redirect): the code and identity token, or an `error`
/// ([`AuthorizeError`](crate::AuthorizeError)), with the request's `state`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct AuthorizationResponse {
    /// The request's `state`, as sent.
    pub state: Option<String>,
    /// The authorization code (five minutes, single use).
    pub code: Option<String>,
    /// The identity token, when `response_type` asked for one.
    pub id_token: Option<String>,
    /// [`FormPostUser`]'s JSON, on the user's first authorization only.
    pub user: Option<String>,
    /// Why there is no code.
    pub error: Option<String>,
}

/// The `user` field of Apple's form post: a JSON string, sent on the user's first
/// authorization of the Services ID only (F6), so the name must be kept then (P6).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormPostUser {
    /// The name as the user gave it, if the `name` scope was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<FormPostName>,
    /// The email shared (or the relay address), if the `email` scope was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The name inside [`FormPostUser`].
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormPostName {
    /// The given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// The family name.
    #[serde(default)]
    pub last_name: Option<String>,
}

impl FormPostUser {
    /// Reads the field's JSON; `None` when it is not the shape Apple sends.
    pub fn parse(field: &str) -> Option<Self> {
        serde_json::from_str(field).ok()
    }

    /// The field's JSON, as Apple's form post carries it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("the user field always serializes")
    }
}

impl fmt::Debug for FormPostUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FormPostUser")
            .field("has_name", &self.name.is_some())
            .field("has_email", &self.email.is_some())
            .finish()
    }
}

/// A PKCE code verifier (RFC 7636 4.1): 32 random bytes, base64url, 43 characters. It stays
/// with the app; only its [`challenge`](CodeVerifier::challenge) is sent at the start.
#[derive(Clone)]
pub struct CodeVerifier(String);

impl CodeVerifier {
    /// A fresh verifier from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source is available");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A verifier as the app sent it back.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The S256 challenge: base64url(SHA-256(verifier)).
    pub fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Whether this verifier answers `challenge` (compared in constant time).
    pub fn answers(&self, challenge: &str) -> bool {
        self.challenge()
            .as_bytes()
            .ct_eq(challenge.as_bytes())
            .into()
    }

    /// The verifier, to send to the server when the code is traded.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `value` has the form RFC 7636 allows for a verifier (43 to 128 characters of
    /// `[A-Za-z0-9-._~]`).
    pub fn is_well_formed(value: &str) -> bool {
        (43..=128).contains(&value.len()) && value.bytes().all(is_unreserved)
    }
}

impl fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeVerifier(<redacted>)")
    }
}

/// Whether `value` has the form of an S256 challenge: 43 base64url characters.
pub fn is_s256_challenge(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nonce::RawNonce;

    #[test]
    fn the_authorization_url_carries_what_apple_requires() {
        let nonce = RawNonce::new("n").hashed();
        let url = AuthorizationRequest {
            client_id: "com.example.web",
            redirect_uri: "https://example.com/v1/web/callback",
            state: "s t",
            nonce: &nonce,
        }
        .url(&Endpoints::apple());
        assert!(url.starts_with("https://appleid.apple.com/auth/authorize?"));
        let parsed = url::Url::parse(&url).unwrap();
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("client_id"), Some("com.example.web"));
        assert_eq!(
            get("redirect_uri"),
            Some("https://example.com/v1/web/callback")
        );
        assert_eq!(get("response_type"), Some("code id_token"));
        assert_eq!(get("response_mode"), Some("form_post"));
        assert_eq!(get("scope"), Some("name email"));
        assert_eq!(get("state"), Some("s t"));
        assert_eq!(get("nonce"), Some(nonce.as_str()));
    }

    #[test]
    fn the_user_field_is_read_as_apple_sends_it() {
        let user = FormPostUser::parse(
            r#"{"name":{"firstName":"Jane","lastName":"Appleseed"},"email":"x@privaterelay.appleid.com"}"#,
        )
        .unwrap();
        let name = user.name.as_ref().unwrap();
        assert_eq!(name.first_name.as_deref(), Some("Jane"));
        assert_eq!(name.last_name.as_deref(), Some("Appleseed"));
        assert_eq!(user.email.as_deref(), Some("x@privaterelay.appleid.com"));
        assert!(!format!("{user:?}").contains("Jane"));
        assert!(
            FormPostUser::parse(r#"{"email":"a@b.c"}"#)
                .unwrap()
                .name
                .is_none()
        );
        assert!(FormPostUser::parse("not json").is_none());
    }

    /// RFC 7636, appendix B.
    #[test]
    fn the_s256_challenge_is_the_rfcs() {
        let verifier = CodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            verifier.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(verifier.answers("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!verifier.answers("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    }

    #[test]
    fn generated_verifiers_are_well_formed_and_distinct() {
        let a = CodeVerifier::generate();
        let b = CodeVerifier::generate();
        assert!(CodeVerifier::is_well_formed(a.expose()));
        assert_ne!(a.expose(), b.expose());
        assert!(is_s256_challenge(&a.challenge()));
        assert!(!CodeVerifier::is_well_formed("short"));
        assert!(!is_s256_challenge(
            "has a space and is not forty three chars"
        ));
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
