//! Apple's JSON endpoints: keys, discovery, token, revoke.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use siwa_core::apple_side::TokenRequest;
use siwa_core::apple_side::{DISCOVERY_PATH, KEYS_PATH, REVOKE_PATH, TOKEN_PATH};
use siwa_core::{OAuthError, OAuthErrorCode};

use crate::mock::Mock;

pub fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route(KEYS_PATH, get(keys))
        .route(DISCOVERY_PATH, get(discovery))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
}

async fn keys(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.jwks()).into_response()
}

async fn discovery(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.discovery()).into_response()
}

/// Apple answers every OAuth error with HTTP 400.
fn oauth_failure(error: OAuthError) -> Response {
    (StatusCode::BAD_REQUEST, Json(error)).into_response()
}

fn not_a_form() -> OAuthError {
    OAuthError {
        error: OAuthErrorCode::InvalidRequest,
        error_description: Some("the body must be application/x-www-form-urlencoded".into()),
    }
}

async fn token(
    State(mock): State<Arc<Mock>>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return oauth_failure(not_a_form());
    };
    match mock.token(&request) {
        Ok(tokens) => Json(tokens).into_response(),
        Err(error) => oauth_failure(error),
    }
}

async fn revoke(
    State(mock): State<Arc<Mock>>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return oauth_failure(not_a_form());
    };
    match mock.revoke(&request) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => oauth_failure(error),
    }
}
