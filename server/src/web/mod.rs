//! Sign in with Apple on the web (docs/apple-protocol.md, F13, P5, P6), for a web page and for
//! native apps that can only open a browser (Android, Windows).
//!
//! - `GET /v1/web/sign-in` records a fresh `state` and nonce and sends the browser to Apple.
//! - Apple answers with a cross-site form post to `POST /v1/web/callback`. Cookies set with
//!   `SameSite=Lax` or `Strict` are not sent with it (P5), so the `state` is looked up in the
//!   database instead: single use, ten minutes. The identity token is verified for the
//!   Services ID and the nonce, the code is exchanged with the Services ID and the same
//!   redirect URI, and the user is signed in by the code path of `POST /v1/auth/apple`.
//! - The web page gets a session cookie; a native app is sent back to its URL with a one-time
//!   code (60 s, PKCE-bound) that it trades at `POST /v1/auth/exchange`.

pub mod banner;
pub mod config;
pub mod guard;
pub mod page;
pub mod respond;

use siwa_core::{KeySet, Verifier, VerifierConfig};

pub use config::WebConfig;

/// How long a browser may take at Apple's consent page.
pub const STATE_TTL_SECS: i64 = 600;
/// How long a native app's one-time code lives.
pub const EXCHANGE_CODE_TTL_SECS: i64 = 60;
/// How long a sign-in Apple's form post completed waits for its browser's redirect.
pub const COMPLETION_TTL_SECS: i64 = 60;

/// The web flow, when configured.
pub struct WebFlow {
    pub services_id: String,
    /// `{SIWA_PUBLIC_URL}/v1/web/callback`.
    pub callback_url: String,
    /// The public URL's origin, which the page's own forms come from.
    pub origin: String,
    /// Verifies identity tokens for the Services ID only: a web token is not an app token.
    pub verifier: Verifier,
    pub app_redirect_uris: Vec<String>,
    /// Whether the public URL is https: the cookie is then `Secure` and `__Host-` prefixed.
    pub secure: bool,
    /// The origin of Apple's consent page (`SIWA_APPLE_BASE_URL`'s): the only one a callback
    /// may come from.
    pub apple_origin: String,
}

impl WebFlow {
    /// The flow of `config`, verifying with `keys` (shared with the app verifier); `None` when
    /// the Services ID or the public URL is missing.
    pub fn new(
        config: &WebConfig,
        keys: KeySet,
        issuers: &[String],
        apple_base_url: &str,
    ) -> Result<Option<Self>, siwa_core::ConfigError> {
        let Some((services_id, public_url)) = config.flow_parts() else {
            return Ok(None);
        };
        let mut verifier_config = VerifierConfig::new([services_id]);
        verifier_config.issuers = issuers.to_vec();
        Ok(Some(Self {
            services_id: services_id.to_owned(),
            callback_url: Self::callback_url(public_url),
            origin: public_url.origin().ascii_serialization(),
            verifier: Verifier::new(verifier_config, keys)?,
            app_redirect_uris: config.app_redirect_uris.clone(),
            secure: public_url.scheme() == "https",
            apple_origin: url::Url::parse(apple_base_url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
        }))
    }

    /// The session cookie's name: `__Host-` prefixed on https, so that no subdomain and no
    /// plain-http page can set or shadow it.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-siwa_session"
        } else {
            "siwa_session"
        }
    }

    /// The binding cookie's name (`__Host-` prefixed on https, as the session's).
    pub fn binding_cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-siwa_binding"
        } else {
            "siwa_binding"
        }
    }

    /// The `Set-Cookie` value that holds a web session's secret for `max_age_secs`.
    ///
    /// `SameSite=Lax`: the cookie is set by the answer to a top-level navigation and sent with
    /// the page's own requests, while cross-site POSTs (CSRF) never carry it. `HttpOnly`: no
    /// script reads it.
    pub fn session_cookie(&self, secret: &str, max_age_secs: i64) -> String {
        self.cookie(self.cookie_name(), secret, "/", max_age_secs)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn cleared_cookie(&self) -> String {
        self.session_cookie("", 0)
    }

    /// The `Set-Cookie` value of the binding cookie (login CSRF): set by the start, it ties
    /// the sign-in to this browser until the completion reads it. `SameSite=Lax`: Apple's
    /// cross-site form post does not carry it, but the top-level GET to the completion that
    /// our answer to that post redirects to does. Its path is the flow's; on https the
    /// `__Host-` prefix requires `/` (RFC 6265bis), and the prefix matters more: it keeps a
    /// subdomain from planting an attacker's binding.
    pub fn binding_cookie(&self, binding: &str, max_age_secs: i64) -> String {
        let path = if self.secure { "/" } else { "/v1/web" };
        self.cookie(self.binding_cookie_name(), binding, path, max_age_secs)
    }

    /// The `Set-Cookie` value that removes the binding cookie.
    pub fn cleared_binding_cookie(&self) -> String {
        self.binding_cookie("", 0)
    }

    fn cookie(&self, name: &'static str, value: &str, path: &'static str, max_age: i64) -> String {
        cookie::Cookie::build((name, value.to_owned()))
            .path(path)
            .http_only(true)
            .secure(self.secure)
            .same_site(cookie::SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age))
            .build()
            .to_string()
    }

    /// The session cookie's value in a request's `Cookie` headers.
    pub fn session_from(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        cookie_value(headers, self.cookie_name())
    }

    /// The binding cookie's value in a request's `Cookie` headers.
    pub fn binding_from(&self, headers: &axum::http::HeaderMap) -> Option<String> {
        cookie_value(headers, self.binding_cookie_name())
    }

    /// Whether `app_redirect_uri` is one of `SIWA_APP_REDIRECT_URIS`: exactly, or, for an
    /// entry on a loopback IP literal, on any port.
    pub fn allows_app_redirect(&self, app_redirect_uri: &str) -> bool {
        self.app_redirect_uris
            .iter()
            .any(|allowed| allowed == app_redirect_uri || loopback_match(allowed, app_redirect_uri))
    }
}

/// Whether `requested` is the loopback redirect `allowed` on another port. A desktop app
/// listens on whatever port the system gives it, so the port of a loopback IP literal is not
/// compared (RFC 8252, 7.3); everything else is. `localhost` is no loopback literal here: a
/// name can be made to resolve elsewhere (RFC 8252, 8.3).
fn loopback_match(allowed: &str, requested: &str) -> bool {
    let (Ok(allowed), Ok(requested)) = (url::Url::parse(allowed), url::Url::parse(requested))
    else {
        return false;
    };
    let loopback_literal = match allowed.host() {
        Some(url::Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(url::Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        _ => false,
    };
    loopback_literal
        && allowed.scheme() == "http"
        && requested.scheme() == "http"
        && requested.host() == allowed.host()
        && requested.path() == allowed.path()
        && requested.query() == allowed.query()
        && requested.fragment().is_none()
        && requested.username().is_empty()
        && requested.password().is_none()
}

fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::loopback_match;

    #[test]
    fn loopback_literals_match_on_any_port_and_nothing_else_does() {
        let v4 = "http://127.0.0.1/callback";
        let v6 = "http://[::1]/callback";
        for (allowed, requested) in [
            (v4, "http://127.0.0.1:49152/callback"),
            (v4, "http://127.0.0.1/callback"),
            (v6, "http://[::1]:8080/callback"),
            (
                "http://127.0.0.1:1234/callback",
                "http://127.0.0.1:5678/callback",
            ),
        ] {
            assert!(loopback_match(allowed, requested), "{requested}");
        }
        for (allowed, requested) in [
            (v4, "http://127.0.0.1:49152/other"),
            (v4, "http://127.0.0.1:49152/callback?x=1"),
            (v4, "https://127.0.0.1:49152/callback"),
            (v4, "http://[::1]:49152/callback"),
            (v4, "http://127.0.0.2:49152/callback"),
            (v4, "http://user@127.0.0.1:49152/callback"),
            (v4, "http://127.0.0.1:49152/callback#f"),
            (
                "http://localhost/callback",
                "http://localhost:49152/callback",
            ),
            (
                "https://app.example.com/cb",
                "https://app.example.com:444/cb",
            ),
            (
                "com.example.app://signed-in",
                "com.example.app://signed-in:1",
            ),
        ] {
            assert!(!loopback_match(allowed, requested), "{allowed} {requested}");
        }
    }
}
