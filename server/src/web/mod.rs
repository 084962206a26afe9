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
pub mod guard;
pub mod page;
pub mod respond;

use crate::config::WebConfig;

/// The web flow, when configured.
pub struct WebFlow {
    pub services_id: String,
    /// `{SIWA_PUBLIC_URL}/v1/web/callback`.
    pub callback_url: String,
    /// The public URL's origin, which the page's own forms come from.
    pub origin: String,
    pub app_redirect_uris: Vec<String>,
    /// `SIWA_WEB_ORIGINS`: the web apps that sign in here and use the cookie routes.
    pub web_origins: Vec<String>,
    /// Whether the public URL is https: the cookie is then `Secure` and `__Host-` prefixed.
    pub secure: bool,
    /// The origin of Apple's consent page (`SIWA_APPLE_BASE_URL`'s): the only one a callback
    /// may come from.
    pub apple_origin: String,
}

impl WebFlow {
    /// The flow of `config`; `None` when the Services ID or the public URL is missing. (Its
    /// tokens' verifier is the accounts': `accounts::BrowserFlow`.)
    pub fn new(config: &WebConfig, apple_base_url: &str) -> Option<Self> {
        let (services_id, public_url) = config.flow_parts()?;
        Some(Self {
            services_id: services_id.to_owned(),
            callback_url: crate::config::web::callback_url(public_url),
            origin: public_url.origin().ascii_serialization(),
            app_redirect_uris: config.app_redirect_uris.clone(),
            web_origins: config.web_origins.clone(),
            secure: public_url.scheme() == "https",
            apple_origin: url::Url::parse(apple_base_url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
        })
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

    /// The `Set-Cookie` value that holds a web session's secret for `max_age_secs`.
    ///
    /// `SameSite=Lax`: the cookie is set by the answer to a top-level navigation and sent with
    /// the page's own requests, while cross-site POSTs (CSRF) never carry it. `HttpOnly`: no
    /// script reads it.
    pub fn session_cookie(&self, secret: &str, max_age_secs: i64) -> String {
        self.cookie(self.cookie_name().into(), secret, "/", max_age_secs)
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn cleared_cookie(&self) -> String {
        self.session_cookie("", 0)
    }

    /// The binding cookie's name for the sign-in bound by `binding_hash` (`__Host-` prefixed
    /// on https, as the session's). Each sign-in has a cookie of its own, named after its
    /// binding ([`binding_tag`]): a second start in the same browser (a page that navigates the
    /// user to the start while they are at Apple) adds a cookie rather than overwriting the
    /// first sign-in's.
    pub fn binding_cookie_name(&self, binding_hash: &str) -> String {
        let prefix = if self.secure { "__Host-" } else { "" };
        format!("{prefix}siwa_binding_{}", binding_tag(binding_hash))
    }

    /// The `Set-Cookie` value of a sign-in's binding cookie (login CSRF): set by the start, it
    /// ties the sign-in to this browser until the completion reads it. `SameSite=Lax`: Apple's
    /// cross-site form post does not carry it, but the top-level GET to the completion that
    /// our answer to that post redirects to does. Its path is the flow's; on https the
    /// `__Host-` prefix requires `/` (RFC 6265bis), and the prefix matters more: it keeps a
    /// subdomain from planting an attacker's binding.
    pub fn binding_cookie(&self, binding_hash: &str, binding: &str, max_age_secs: i64) -> String {
        let path = if self.secure { "/" } else { "/v1/web" };
        let name = self.binding_cookie_name(binding_hash);
        self.cookie(name, binding, path, max_age_secs)
    }

    /// The `Set-Cookie` value that removes the binding cookie named for `tag`.
    pub fn cleared_binding_cookie(&self, tag: &str) -> String {
        self.binding_cookie(tag, "", 0)
    }

    fn cookie(&self, name: String, value: &str, path: &'static str, max_age: i64) -> String {
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

    /// The value of the binding cookie named for `tag` in a request's `Cookie` headers; `None`
    /// when there is none, or more than one: a second cookie of the name (planted by a sibling
    /// host on plain http, whose cookies come first) makes the binding ambiguous.
    pub fn binding_from(&self, headers: &axum::http::HeaderMap, tag: &str) -> Option<String> {
        let name = self.binding_cookie_name(tag);
        let mut values = cookies(headers).filter(|c| c.name() == name);
        let value = values.next()?.value().to_owned();
        (values.next().is_none() && !value.is_empty()).then_some(value)
    }

    /// Whether `app_redirect_uri` is one of `SIWA_APP_REDIRECT_URIS`, compared as strings
    /// (RFC 9700, 4.1.3): no URL parser decides, so none can be fooled (`HTTP://`, `/a/../`,
    /// `127.1`, a trailing dot) and a later change cannot open a parser differential. The one
    /// exception is the port of a loopback IP literal ([`loopback_match`]).
    pub fn allows_app_redirect(&self, app_redirect_uri: &str) -> bool {
        self.app_redirect_uris
            .iter()
            .any(|allowed| allowed == app_redirect_uri || loopback_match(allowed, app_redirect_uri))
    }
}

impl WebFlow {
    /// Whether `origin` (an `Origin` header's value) is one of `SIWA_WEB_ORIGINS`, compared
    /// as a string: the list is written as browsers write the header.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        self.web_origins.iter().any(|o| o.as_bytes() == origin)
    }

    /// A web app's `return_to`, if it is an http(s) URL on one of `SIWA_WEB_ORIGINS` (with no
    /// user info): returned as the URL parser writes it, with its origin.
    pub fn web_app_return(&self, return_to: &str) -> Option<(String, String)> {
        let url = url::Url::parse(return_to).ok()?;
        let origin = url.origin().ascii_serialization();
        let plain = url.username().is_empty() && url.password().is_none();
        (plain && matches!(url.scheme(), "http" | "https") && self.allows_origin(origin.as_bytes()))
            .then(|| (url.into(), origin))
    }
}

/// The loopback IP literals, as an entry spells them: a desktop app listens on whatever port
/// the system gives it, so their port is not compared (RFC 8252, 7.3). `localhost` is not
/// one: a name can be made to resolve elsewhere (RFC 8252, 8.3).
const LOOPBACK_ORIGINS: [&str; 2] = ["http://127.0.0.1", "http://[::1]"];

/// Whether `requested` is the loopback entry `allowed` with another port: the same text
/// with only the `:port` after the host added, changed or removed. The port must be written
/// as a browser writes it (1 to 65535, no leading zero).
fn loopback_match(allowed: &str, requested: &str) -> bool {
    LOOPBACK_ORIGINS.iter().any(|origin| {
        let (Some(allowed), Some(requested)) =
            (allowed.strip_prefix(origin), requested.strip_prefix(origin))
        else {
            return false;
        };
        match (without_port(allowed), without_port(requested)) {
            (Some(allowed), Some(requested)) => allowed.starts_with('/') && allowed == requested,
            _ => false,
        }
    })
}

/// What follows the host, with its `:port` (if any) taken off; `None` when the port is not
/// one a browser would write.
fn without_port(after_host: &str) -> Option<&str> {
    let Some(port_and_rest) = after_host.strip_prefix(':') else {
        return Some(after_host);
    };
    let digits = port_and_rest.bytes().take_while(u8::is_ascii_digit).count();
    let port = &port_and_rest[..digits];
    let canonical = !port.starts_with('0') && port.parse::<u16>().is_ok_and(|p| p > 0);
    canonical.then_some(&port_and_rest[digits..])
}

/// A sign-in's binding, as its cookie's name and the completion's URL carry it: the first 16
/// hex digits of the binding's hash. It names the cookie and proves nothing: the completion
/// compares the whole hash.
pub fn binding_tag(binding_hash: &str) -> &str {
    binding_hash.get(..16).unwrap_or(binding_hash)
}

/// Whether `tag` is one [`binding_tag`] makes, so that no other text reaches a cookie name.
pub fn is_binding_tag(tag: &str) -> bool {
    tag.len() == 16 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn cookies(headers: &axum::http::HeaderMap) -> impl Iterator<Item = cookie::Cookie<'_>> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
}

fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    cookies(headers)
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
            (v4, "http://127.0.0.1:1/callback"),
            (v4, "http://127.0.0.1:65535/callback"),
            (v6, "http://[::1]:8080/callback"),
            (
                "http://127.0.0.1:1234/callback",
                "http://127.0.0.1:5678/callback",
            ),
            (
                "http://127.0.0.1:1234/callback",
                "http://127.0.0.1/callback",
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

    /// What a URL parser would normalise to the entry is refused: only the entry's own text
    /// (and a loopback port) is. RFC 9700, 4.1.3.
    #[test]
    fn redirect_uris_are_matched_as_strings_not_after_normalisation() {
        let v4 = "http://127.0.0.1/callback";
        for requested in [
            "HTTP://127.0.0.1:49152/callback",
            "http://127.0.0.1:49152/a/../callback",
            "http://127.0.0.1:49152/./callback",
            "http://127.1:49152/callback",
            "http://0x7f.1:49152/callback",
            "http://127.0.0.1.:49152/callback",
            "http://127.0.0.1:049152/callback",
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:80:80/callback",
            "http://127.0.0.1:49152/%63allback",
            "http://127.0.0.1:49152/callback/",
            "http://[0:0:0:0:0:0:0:1]:49152/callback",
        ] {
            assert!(!loopback_match(v4, requested), "{requested}");
            assert!(
                !loopback_match("http://[::1]/callback", requested),
                "{requested}"
            );
        }
        assert!(!loopback_match(
            "http://[::1]/callback",
            "http://[0:0:0:0:0:0:0:1]:1/callback"
        ));
    }
}
