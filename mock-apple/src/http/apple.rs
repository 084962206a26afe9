//! Apple's JSON endpoints: keys, discovery, token, revoke.

use std::sync::Arc;

use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use siwa_core::apple_side::TokenRequest;
use siwa_core::apple_side::{
    DISCOVERY_PATH, KEYS_PATH, REVOKE_PATH, TOKEN_PATH, USER_MIGRATION_INFO_PATH,
};
use siwa_core::{GrantType, OAuthError, OAuthErrorCode, UserMigrationRequest};

use crate::mock::Mock;

pub fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route(KEYS_PATH, get(keys))
        .route(DISCOVERY_PATH, get(discovery))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .route(USER_MIGRATION_INFO_PATH, post(user_migration_info))
}

async fn keys(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.jwks()).into_response()
}

async fn discovery(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.discovery()).into_response()
}

/// Apple answers every OAuth error with HTTP 400.
fn oauth_failure(error: OAuthError) -> Response {
    token_endpoint_answer(StatusCode::BAD_REQUEST, &error)
}

/// An answer of `/auth/token` with the headers Apple's carry (docs/apple-protocol.md, F9): a
/// JSON body declared as ISO-8859-1, and no caching.
fn token_endpoint_answer(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(body).expect("token endpoint answers serialize");
    let headers = [
        (CONTENT_TYPE, "application/json;charset=ISO-8859-1"),
        (CACHE_CONTROL, "no-store"),
        (PRAGMA, "no-cache"),
    ];
    (status, headers, body).into_response()
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
    if request.grant_type() == Ok(Some(GrantType::ClientCredentials)) {
        return match mock.migration_token(&request) {
            Ok(token) => token_endpoint_answer(StatusCode::OK, &token),
            Err(error) => oauth_failure(error),
        };
    }
    match mock.token(&request) {
        Ok(tokens) => token_endpoint_answer(StatusCode::OK, &tokens),
        Err(error) => oauth_failure(error),
    }
}

async fn user_migration_info(
    State(mock): State<Arc<Mock>>,
    headers: axum::http::HeaderMap,
    form: Result<Form<UserMigrationRequest>, FormRejection>,
) -> Response {
    let Ok(Form(request)) = form else {
        return oauth_failure(not_a_form());
    };
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match mock.user_migration_info(bearer, &request) {
        Ok(answer) => token_endpoint_answer(StatusCode::OK, &answer),
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
