//! Apple's Sign in with Apple endpoints and fixed values.
//!
//! Endpoints are hard-coded relative to a base URL rather than taken from Apple's discovery
//! document: in June 2025 discovery reported `https://account.apple.com` as issuer while tokens
//! still carried `https://appleid.apple.com`, and libraries that followed it broke
//! (docs/apple-protocol.md, F1, F2, P9). A base URL other than Apple's exists so tests can point
//! at `mock-apple`.

/// The issuer of Apple identity tokens, and the base URL of Apple's service.
pub const ISSUER: &str = "https://appleid.apple.com";

/// The base URL of Apple's Sign in with Apple service.
pub const BASE_URL: &str = ISSUER;

/// The `aud` of a client secret: Apple's issuer, always, whatever base URL is used.
pub const CLIENT_SECRET_AUDIENCE: &str = ISSUER;

/// Path of the JWKS with the keys that sign identity tokens and notifications.
pub const KEYS_PATH: &str = "/auth/keys";
/// Path of the token endpoint (code exchange and refresh).
pub const TOKEN_PATH: &str = "/auth/token";
/// Path of the revocation endpoint.
pub const REVOKE_PATH: &str = "/auth/revoke";
/// Path of the user migration endpoint of an app transfer (TN3159).
pub const USER_MIGRATION_INFO_PATH: &str = "/auth/usermigrationinfo";
/// Path of the web flow's authorization (consent) page.
pub const AUTHORIZE_PATH: &str = "/auth/authorize";
/// Path of the OpenID discovery document (informational only, see module docs).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The longest lifetime (`exp - iat`) Apple accepts for a client secret: six months.
pub const CLIENT_SECRET_MAX_LIFETIME_SECS: u64 = 15_777_000;

/// How long an authorization code can be exchanged.
pub const AUTHORIZATION_CODE_LIFETIME_SECS: u64 = 300;

/// The only signature algorithm Apple uses for identity tokens and notifications.
pub const IDENTITY_TOKEN_ALGORITHM: &str = "RS256";

/// Apple's endpoints under one base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    base_url: String,
}

impl Endpoints {
    /// Endpoints under `base_url` (e.g. `https://appleid.apple.com` or a mock's address).
    pub fn new(base_url: impl Into<String>) -> Self {
        let mut base_url = base_url.into();
        while base_url.ends_with('/') {
            base_url.pop();
        }
        Self { base_url }
    }

    /// Apple's production endpoints.
    pub fn apple() -> Self {
        Self::new(BASE_URL)
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// The JWKS URL.
    pub fn keys(&self) -> String {
        format!("{}{KEYS_PATH}", self.base_url)
    }
    /// The token endpoint (code exchange and refresh).
    pub fn token(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base_url)
    }
    /// The revocation endpoint.
    pub fn revoke(&self) -> String {
        format!("{}{REVOKE_PATH}", self.base_url)
    }
    /// The user migration endpoint of an app transfer.
    pub fn user_migration_info(&self) -> String {
        format!("{}{USER_MIGRATION_INFO_PATH}", self.base_url)
    }
    /// The web flow's consent page.
    pub fn authorize(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.base_url)
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Self::apple()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_sit_under_the_base_url_without_double_slashes() {
        let e = Endpoints::new("http://127.0.0.1:9000/");
        assert_eq!(e.keys(), "http://127.0.0.1:9000/auth/keys");
        assert_eq!(e.token(), "http://127.0.0.1:9000/auth/token");
        assert_eq!(
            Endpoints::apple().revoke(),
            "https://appleid.apple.com/auth/revoke"
        );
    }
}
