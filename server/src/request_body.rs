//! Request bodies, read whole before any handler or limiter runs: at most 32 KiB is kept.
//!
//! A larger body is drained, up to 64 MiB, before the 413 is sent, as nginx's lingering close
//! does: a client that writes its whole body before reading (Python's `urllib`, for one) gets
//! the answer instead of a connection reset when the server closes on unread data. The request
//! timeout bounds the time a slow client can spend being drained.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::ApiError;

/// Identity tokens are at most 8 KiB; nothing the API takes is larger than that and a name.
pub const LIMIT_BYTES: usize = 32 * 1024;
/// How much of a body over the limit is read and dropped before answering.
const DRAIN_BYTES: u64 = 64 * 1024 * 1024;

pub async fn read_whole(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_BYTES) {
        return too_large();
    }
    let (parts, mut body) = request.into_parts();
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return ApiError::bad_request("the request body could not be read").into_response();
        };
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > DRAIN_BYTES {
                break;
            }
            if seen <= LIMIT_BYTES as u64 {
                kept.extend_from_slice(&data);
            }
        }
    }
    if seen > LIMIT_BYTES as u64 {
        return too_large();
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(kept))))
        .await
}

/// The 413, telling the client the connection ends with it.
fn too_large() -> Response {
    let mut response = ApiError::BodyTooLarge.into_response();
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}
