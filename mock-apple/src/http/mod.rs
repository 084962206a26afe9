//! The mock's HTTP face: Apple's endpoints at Apple's paths, the consent page, and the control
//! API under `/mock/`. Every request is logged in one line, without query strings or bodies
//! (they carry codes, tokens and nonces).

mod apple;
mod consent;
mod control;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::faults::Endpoint;
use crate::mock::Mock;

pub fn router(mock: Arc<Mock>) -> Router {
    Router::new()
        .merge(apple::routes())
        .merge(consent::routes())
        .nest("/mock", control::routes())
        .layer(middleware::from_fn_with_state(mock.clone(), apply_faults))
        .layer(middleware::from_fn(log_request))
        .with_state(mock)
}

/// Counts requests to Apple's endpoints and applies the injected fault, if any.
async fn apply_faults(State(mock): State<Arc<Mock>>, request: Request, next: Next) -> Response {
    let Some(endpoint) = Endpoint::from_path(request.uri().path()) else {
        return next.run(request).await;
    };
    let Some(fault) = mock.on_request(endpoint) else {
        return next.run(request).await;
    };
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    if fault.status.is_none() && !fault.malformed_body {
        return next.run(request).await;
    }
    let status = fault
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let body = if fault.malformed_body {
        "{\"keys\": [{\"kty\": tru"
    } else {
        "{\"error\":\"server_error\"}"
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        "{method} {path} -> {} ({:.1} ms)",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}
