//! What every response of the API carries, applied once around the whole router: so that the
//! answers made by axum and tower themselves (405, 408, 413 before a handler runs) keep the API's
//! promises too.
//!
//! - Every error is the JSON error `{"error", "message"}`, whoever made it.
//! - `Cache-Control: no-store`: answers hold tokens or personal data, and no cache should keep
//!   them. Routes meant to be cached (the key set) set their own.
//! - `X-Content-Type-Options: nosniff`.
//! - A 401 says how to authenticate (`WWW-Authenticate: Bearer`, RFC 6750).

use axum::extract::Request;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use siwa_core::api::TokenType;

use crate::error::ApiError;

pub async fn policy(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        // The API's errors are JSON; the web page's are pages (`routes::web`).
        let is_ours = response.headers().get(CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
        if !is_ours {
            let kept = response.headers().clone();
            response = error_for(status).into_response();
            carry_over(&kept, response.headers_mut());
        }
    }
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if status == StatusCode::UNAUTHORIZED && !headers.contains_key(WWW_AUTHENTICATE) {
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(TokenType::Bearer.as_str()),
        );
    }
    response
}

/// The JSON error for an answer that axum or tower made without a body of ours.
fn error_for(status: StatusCode) -> ApiError {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::NOT_FOUND => ApiError::NotFound,
        s if s.is_server_error() => ApiError::Internal,
        _ => ApiError::bad_request("the request was refused"),
    }
}

/// Headers of the replaced answer that still apply (`Allow` of a 405, `Retry-After`).
fn carry_over(from: &HeaderMap, to: &mut HeaderMap) {
    for name in [axum::http::header::ALLOW, axum::http::header::RETRY_AFTER] {
        if let Some(value) = from.get(&name) {
            to.insert(name, value.clone());
        }
    }
}
