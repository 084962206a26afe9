//! The web flow's answers: a page (under the page's policy), a 303 that sets cookies, a
//! redirect back to a native app, and the page's static parts.

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::page;
use crate::api::AppCallback;
use crate::error::ApiError;

/// The page's stylesheet (the policy allows no inline style).
pub async fn stylesheet() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        page::STYLESHEET,
    )
        .into_response()
}

/// The script of a popup sign-in's last page (`page::POPUP_SCRIPT`).
pub async fn popup_script() -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        page::POPUP_SCRIPT,
    )
        .into_response()
}

/// Browsers ask for it on every page load: nothing to show, and no 404 to log each time.
pub async fn favicon() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=86400"),
        )],
    )
        .into_response()
}

pub fn html(status: StatusCode, body: String) -> Response {
    html_under(page::CONTENT_SECURITY_POLICY, status, body)
}

/// A page under `policy`.
pub fn html_under(policy: &'static str, status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy)),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ],
        body,
    )
        .into_response()
}

/// A 303 (the browser follows with a GET), setting `cookies`.
pub fn see_other(location: &str, cookies: &[&str]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(location) {
        headers.insert(LOCATION, location);
    }
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    cookies
        .iter()
        .fold(response, |response, cookie| with_cookie(response, cookie))
}

pub fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(cookie) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

/// Sends the browser back to a web app's page with `siwa_error=<error>` added to its query.
pub fn to_web_app_with_error(return_to: &str, error: &str) -> Response {
    let Ok(mut target) = url::Url::parse(return_to) else {
        return ApiError::Internal.into_response();
    };
    target.query_pairs_mut().append_pair("siwa_error", error);
    see_other(target.as_str(), &[])
}

/// Sends the browser back to a native app's URL, `callback` added to its query.
pub fn to_app(app: &str, callback: &AppCallback) -> Response {
    let Ok(mut target) = url::Url::parse(app) else {
        return ApiError::Internal.into_response();
    };
    let added = serde_urlencoded::to_string(callback).expect("the callback serializes");
    let query = match target.query().filter(|q| !q.is_empty()) {
        Some(own) => format!("{own}&{added}"),
        None => added,
    };
    target.set_query(Some(&query));
    see_other(target.as_str(), &[])
}
