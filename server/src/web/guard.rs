//! Where a browser's request came from: the checks that keep another site from acting in a
//! user's name (CSRF) or from completing a sign-in as Apple (a forged callback).

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use subtle::ConstantTimeEq;

use super::WebFlow;

siwa_core::protocol_word! {
    /// Why a callback's `Origin` was refused, as the metric and the log count it.
    RefusedOrigin, "refused origin" {
        /// `Origin: null`: a sandboxed page, or a page served with `Referrer-Policy:
        /// no-referrer`. Should Apple's consent page ever be served that way, every real
        /// sign-in would land here, so the operator is told
        /// (`siwa_callback_origins_refused_total{origin="null"}`).
        Null => "null",
        /// Any other origin than Apple's: a forged form post.
        Other => "other",
    }
}

/// Whether a callback may be Apple's: a browser names the page that posted, and only Apple's
/// may (`null`, from a sandboxed or privacy-stripped page, is not Apple's either). A request
/// without `Origin` is let through: the `state` and the binding cookie still decide.
pub fn posted_by_apple(web: &WebFlow, headers: &HeaderMap) -> Result<(), RefusedOrigin> {
    match headers.get(ORIGIN).map(|o| o.as_bytes()) {
        None => Ok(()),
        Some(origin) if origin == web.apple_origin.as_bytes() => Ok(()),
        Some(b"null") => Err(RefusedOrigin::Null),
        Some(_) => Err(RefusedOrigin::Other),
    }
}

/// The header a web app's own requests to the cookie routes carry (`X-Siwa-Request: 1`). A
/// form or a plain link on another page cannot send it, and a script of another origin can
/// only after a preflight that the CORS policy answers for `SIWA_WEB_ORIGINS` alone.
pub const WEB_APP_HEADER: &str = "x-siwa-request";

/// Whether a request to a cookie route that acts (an access token, a sign-out) comes from a
/// web app's own script: its `Origin` is one of `SIWA_WEB_ORIGINS` and it carries
/// [`WEB_APP_HEADER`]. The cookie alone proves nothing: a sibling subdomain's page is
/// same-site, so its requests carry the cookie too.
pub fn sent_by_web_app(web: &WebFlow, headers: &HeaderMap) -> bool {
    let listed = headers
        .get(ORIGIN)
        .is_some_and(|origin| web.allows_origin(origin.as_bytes()));
    listed && headers.contains_key(WEB_APP_HEADER)
}

/// Counts a refused callback origin, and says so in the log at most once a minute per kind:
/// a forger can send many, and one line is enough to tell the operator where to look.
pub fn record_refused_origin(refused: RefusedOrigin) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST_LOGGED: [AtomicI64; 2] = [AtomicI64::new(i64::MIN), AtomicI64::new(i64::MIN)];
    metrics::counter!("siwa_callback_origins_refused_total", "origin" => refused.as_str())
        .increment(1);
    // Seconds on the process's monotonic clock: a throttle, not a time of day.
    static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let now = STARTED
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs() as i64;
    let last = &LAST_LOGGED[refused as usize];
    let previous = last.load(Ordering::Relaxed);
    if now.saturating_sub(previous) >= 60
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            origin = refused.as_str(),
            "a form post to the web callback came from another origin than Apple's and was refused (callback_origin_invalid); siwa_callback_origins_refused_total counts them"
        );
    }
}

/// Whether a form may be the page's own: the browser does not call it cross-site
/// (`Sec-Fetch-Site`) nor from another origin (`Origin`), when it says. The page's
/// `no-referrer` policy makes browsers send `Origin: null` with its own forms, so only another
/// origin is refused on that header. The CSRF token is checked besides.
pub fn posted_by_the_page(web: &WebFlow, headers: &HeaderMap) -> bool {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| !matches!(v.as_bytes(), b"same-origin" | b"none"));
    let other_origin = headers
        .get(ORIGIN)
        .is_some_and(|v| v.as_bytes() != b"null" && v.as_bytes() != web.origin.as_bytes());
    !cross_site && !other_origin
}

/// The CSRF token of the page's forms: derived from the session cookie's secret, so only a
/// page that can read the session (ours, rendered for it) can put it in a form.
pub fn csrf_token(session_secret: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"siwa-web-csrf\0")
        .chain_update(session_secret.as_bytes())
        .finalize();
    hex::encode(&digest[..16])
}

/// Compares a posted CSRF token with the expected one, in constant time.
pub fn csrf_matches(session_secret: &str, posted: &str) -> bool {
    csrf_token(session_secret)
        .as_bytes()
        .ct_eq(posted.as_bytes())
        .into()
}
