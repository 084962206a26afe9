//! Where a browser's request came from: the checks that keep another site from acting in a
//! user's name (CSRF) or from completing a sign-in as Apple (a forged callback).

use axum::http::HeaderMap;
use axum::http::header::ORIGIN;
use subtle::ConstantTimeEq;

use super::WebFlow;

/// Whether a callback may be Apple's: a browser names the page that posted, and only Apple's
/// may (`null`, from a sandboxed or privacy-stripped page, is not Apple's either). A request
/// without `Origin` is let through: the `state` and the binding cookie still decide.
pub fn posted_by_apple(web: &WebFlow, headers: &HeaderMap) -> bool {
    headers
        .get(ORIGIN)
        .is_none_or(|origin| origin.as_bytes() == web.apple_origin.as_bytes())
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
