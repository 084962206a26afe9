//! The web flow's configuration: `SIWA_APPLE_SERVICES_ID`, `SIWA_PUBLIC_URL`,
//! `SIWA_APP_REDIRECT_URIS` and `SIWA_WEB_ORIGINS`.

/// As configured; the flow runs only when both the Services ID and the public URL are set.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// The Services ID registered at Apple for the web (not the app's bundle ID).
    pub services_id: Option<String>,
    /// Where browsers reach this server, e.g. `https://auth.example.com`; Apple posts to
    /// `{public_url}/v1/web/callback`, which must be registered with the Services ID.
    pub public_url: Option<url::Url>,
    /// The app URLs (custom schemes or universal links) a native app may be sent back to,
    /// compared exactly.
    pub app_redirect_uris: Vec<String>,
    /// The origins of the web apps (single-page apps on the server's site) that sign in
    /// through the server and use its cookie routes (`SIWA_WEB_ORIGINS`), as browsers write an
    /// `Origin` header: `https://app.example.com`.
    pub web_origins: Vec<String>,
    /// The name of the app people sign in to, shown on the page (`SIWA_APP_NAME`); the public
    /// URL's host without it.
    pub app_name: Option<String>,
    /// The app's icon on the page (`SIWA_APP_ICON_URL`): a URL on the public URL's origin, as
    /// the page's policy loads images from nowhere else.
    pub app_icon_url: Option<String>,
}

/// The variable a missing or malformed setting is read from, and why.
pub type Invalid = (&'static str, String);

impl WebConfig {
    /// Reads the three variables from `get` (values already trimmed, empty as none).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, Invalid> {
        let public_url = match get("SIWA_PUBLIC_URL") {
            None => None,
            Some(value) => Some(public_url(&value).map_err(|why| ("SIWA_PUBLIC_URL", why))?),
        };
        let app_redirect_uris = super::comma_separated(get("SIWA_APP_REDIRECT_URIS"));
        for uri in &app_redirect_uris {
            if url::Url::parse(uri).is_err() {
                return Err((
                    "SIWA_APP_REDIRECT_URIS",
                    format!("`{uri}` is not an absolute URL (such as myapp://signed-in)"),
                ));
            }
        }
        let web_origins = super::comma_separated(get("SIWA_WEB_ORIGINS"))
            .iter()
            .map(|origin| web_origin(origin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|why| ("SIWA_WEB_ORIGINS", why))?;
        let app_name = match get("SIWA_APP_NAME") {
            Some(name) if name.chars().count() > 60 || name.chars().any(char::is_control) => {
                return Err((
                    "SIWA_APP_NAME",
                    "at most 60 characters, none of them control characters".into(),
                ));
            }
            name => name,
        };
        let app_icon_url = match get("SIWA_APP_ICON_URL") {
            None => None,
            Some(value) => Some(
                same_origin_url(&value, public_url.as_ref())
                    .map_err(|why| ("SIWA_APP_ICON_URL", why))?,
            ),
        };
        Ok(Self {
            services_id: get("SIWA_APPLE_SERVICES_ID"),
            public_url,
            app_redirect_uris,
            web_origins,
            app_name,
            app_icon_url,
        })
    }

    /// The name the page gives the app: `SIWA_APP_NAME`, or the public URL's host.
    pub fn app_name(&self) -> String {
        self.app_name
            .clone()
            .or_else(|| {
                self.public_url
                    .as_ref()
                    .and_then(|u| u.host_str().map(str::to_owned))
            })
            .unwrap_or_else(|| "this site".into())
    }

    /// The app redirect URIs with a custom scheme (`myapp://...`): any app on the device can
    /// register the same scheme and receive the code (RFC 8252, 8.1). PKCE keeps the code
    /// useless to it, but start-up warns all the same.
    pub fn custom_scheme_redirects(&self) -> impl Iterator<Item = &str> {
        self.app_redirect_uris
            .iter()
            .map(String::as_str)
            .filter(|uri| {
                url::Url::parse(uri).is_ok_and(|u| !matches!(u.scheme(), "http" | "https"))
            })
    }

    /// Whether the public URL is https: cookies are then `Secure` and answers carry HSTS.
    pub fn is_https(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }

    /// What is missing for the flow to run, as start-up says it; `None` when it runs.
    pub fn missing(&self) -> Option<&'static str> {
        match (&self.services_id, &self.public_url) {
            (Some(_), Some(_)) => None,
            (None, None) => Some("SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL"),
            (None, Some(_)) => Some("SIWA_APPLE_SERVICES_ID"),
            (Some(_), None) => Some("SIWA_PUBLIC_URL"),
        }
    }

    pub fn flow_parts(&self) -> Option<(&str, &url::Url)> {
        Some((self.services_id.as_deref()?, self.public_url.as_ref()?))
    }
}

/// A URL on the public URL's origin: a path (`/assets/icon.png`), or an absolute URL of that
/// origin, returned as given.
fn same_origin_url(value: &str, public_url: Option<&url::Url>) -> Result<String, String> {
    let Some(public_url) = public_url else {
        return Err("needs SIWA_PUBLIC_URL, whose origin it must be on".into());
    };
    let resolved = public_url
        .join(value)
        .map_err(|_| format!("`{value}` is not a URL"))?;
    if resolved.origin() != public_url.origin() {
        return Err(format!(
            "must be on {} (the page loads images from its own origin only)",
            public_url.origin().ascii_serialization()
        ));
    }
    Ok(value.to_owned())
}

/// A web app's origin, as a browser's `Origin` header writes it: an http(s) scheme, a host
/// and a port other than the scheme's, nothing else (a trailing slash is taken).
fn web_origin(value: &str) -> Result<String, String> {
    let not_an_origin = || format!("`{value}` is not an origin such as https://app.example.com");
    let url = url::Url::parse(value).map_err(|_| not_an_origin())?;
    let bare = url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
        return Err(not_an_origin());
    }
    let origin = url.origin().ascii_serialization();
    // What is listed is compared as a browser sends it: `HTTPS://App.example.com:443` would
    // never match, so it is refused rather than normalised in silence.
    if value.trim_end_matches('/') != origin {
        return Err(format!("`{value}` should be written `{origin}`"));
    }
    Ok(origin)
}

/// An absolute http(s) URL with no query or fragment; a trailing slash is dropped.
fn public_url(value: &str) -> Result<url::Url, String> {
    let mut url =
        url::Url::parse(value).map_err(|_| format!("`{value}` is not an absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http(s) URL such as https://auth.example.com".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must have no query string or fragment".into());
    }
    let trimmed = url.path().trim_end_matches('/').to_owned();
    url.set_path(&trimmed);
    Ok(url)
}

/// The callback Apple posts to, under the public URL.
pub fn callback_url(public_url: &url::Url) -> String {
    format!(
        "{}/v1/web/callback",
        public_url.as_str().trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<WebConfig, Invalid> {
        WebConfig::read(crate::config::lookup_in(vars))
    }

    #[test]
    fn the_flow_needs_both_variables_and_says_which_is_missing() {
        assert_eq!(
            read(&[]).unwrap().missing(),
            Some("SIWA_APPLE_SERVICES_ID and SIWA_PUBLIC_URL")
        );
        assert_eq!(
            read(&[("SIWA_APPLE_SERVICES_ID", "com.example.web")])
                .unwrap()
                .missing(),
            Some("SIWA_PUBLIC_URL")
        );
        let both = read(&[
            ("SIWA_APPLE_SERVICES_ID", "com.example.web"),
            ("SIWA_PUBLIC_URL", "https://auth.example.com/"),
        ])
        .unwrap();
        assert_eq!(both.missing(), None);
        assert_eq!(
            callback_url(both.public_url.as_ref().unwrap()),
            "https://auth.example.com/v1/web/callback"
        );
    }

    #[test]
    fn the_app_name_and_icon_are_checked() {
        let named = read(&[
            ("SIWA_PUBLIC_URL", "https://auth.example.com"),
            ("SIWA_APP_NAME", "Acme Notes"),
            ("SIWA_APP_ICON_URL", "/assets/icon.png"),
        ])
        .unwrap();
        assert_eq!(named.app_name(), "Acme Notes");
        assert_eq!(named.app_icon_url.as_deref(), Some("/assets/icon.png"));
        let unnamed = read(&[("SIWA_PUBLIC_URL", "https://auth.example.com")]).unwrap();
        assert_eq!(unnamed.app_name(), "auth.example.com");
        for icon in ["https://evil.example/icon.png", "//evil.example/icon.png"] {
            assert_eq!(
                read(&[
                    ("SIWA_PUBLIC_URL", "https://auth.example.com"),
                    ("SIWA_APP_ICON_URL", icon),
                ])
                .unwrap_err()
                .0,
                "SIWA_APP_ICON_URL",
                "{icon}"
            );
        }
        assert_eq!(
            read(&[("SIWA_APP_NAME", "a\u{7}b")]).unwrap_err().0,
            "SIWA_APP_NAME"
        );
    }

    #[test]
    fn web_origins_are_origins_as_browsers_write_them() {
        let read_origins = |value| read(&[("SIWA_WEB_ORIGINS", value)]).map(|c| c.web_origins);
        assert_eq!(
            read_origins("https://app.example.com, http://localhost:5173/").unwrap(),
            ["https://app.example.com", "http://localhost:5173"]
        );
        for wrong in [
            "app.example.com",
            "https://app.example.com/app",
            "https://app.example.com?x",
            "https://user@app.example.com",
            "https://App.example.com",
            "https://app.example.com:443",
            "ftp://app.example.com",
            "null",
        ] {
            assert_eq!(
                read_origins(wrong).unwrap_err().0,
                "SIWA_WEB_ORIGINS",
                "{wrong}"
            );
        }
    }

    #[test]
    fn malformed_urls_name_their_variable() {
        assert_eq!(
            read(&[("SIWA_PUBLIC_URL", "auth.example.com")])
                .unwrap_err()
                .0,
            "SIWA_PUBLIC_URL"
        );
        assert_eq!(
            read(&[("SIWA_PUBLIC_URL", "ftp://x")]).unwrap_err().0,
            "SIWA_PUBLIC_URL"
        );
        assert_eq!(
            read(&[("SIWA_APP_REDIRECT_URIS", "myapp://ok, not a url")])
                .unwrap_err()
                .0,
            "SIWA_APP_REDIRECT_URIS"
        );
        assert_eq!(
            read(&[(
                "SIWA_APP_REDIRECT_URIS",
                "myapp://signed-in, https://app.example.com/cb"
            )])
            .unwrap()
            .app_redirect_uris
            .len(),
            2
        );
    }
}
