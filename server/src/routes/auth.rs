//! Sign-in (seed-compatible and `/v1`), refresh and logout.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, http::HeaderMap};
use siwa_core::RawNonce;

use super::JsonBody;
use crate::accounts::{Flow, SignIn};
use crate::api::*;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::tokens::{RefreshToken, SessionId};

/// The seed's route: verify the token, sign the user in, answer what the seed's client reads.
#[utoipa::path(post, path = "/auth/apple", tag = "sign-in", request_body = CompatSignInRequest,
    responses((status = 200, body = CompatSignInResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn compat_sign_in(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<CompatSignInRequest>,
) -> Result<Json<CompatSignInResponse>, ApiError> {
    let (claims, is_new_user) = state
        .accounts
        .sign_in_compat(&request.identity_token)
        .await?;
    Ok(Json(CompatSignInResponse {
        success: true,
        user: CompatUser {
            id: claims.sub,
            email: claims.email,
            email_verified: claims.email_verified,
        },
        is_new_user,
    }))
}

/// Signs in with Apple: verifies the identity token (and nonce), exchanges the authorization
/// code, creates or updates the user, and starts a session.
#[utoipa::path(post, path = "/v1/auth/apple", tag = "sign-in", request_body = SignInRequest,
    responses((status = 200, body = SignInResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn sign_in(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<SignInRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    let raw_nonce = match request.raw_nonce {
        Some(raw) if raw.is_empty() => return Err(ApiError::bad_request("rawNonce is empty")),
        raw => raw.map(RawNonce::new),
    };
    let name = request.full_name.as_ref();
    let request = SignIn {
        flow: Flow::App,
        identity_token: &request.identity_token,
        authorization_code: request.authorization_code.as_deref(),
        raw_nonce,
        given_name: name.and_then(|n| n.given_name.as_deref()),
        family_name: name.and_then(|n| n.family_name.as_deref()),
    };
    Ok(Json(state.accounts.sign_in(request).await?))
}

/// Trades a refresh token for a new access token and a new refresh token. Presenting a
/// refresh token twice ends the whole session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "sessions", request_body = RefreshRequest,
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<RefreshRequest>,
) -> Result<Json<SessionView>, ApiError> {
    let token = RefreshToken::new(request.refresh_token);
    Ok(Json(state.accounts.refresh(&token).await?))
}

/// Ends a session: the refresh token's if one is given, otherwise the bearer token's.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "sessions", request_body = LogoutRequest,
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<StatusCode, ApiError> {
    // The body is optional: a bearer token alone is enough.
    let request: LogoutRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LogoutRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|_| ApiError::bad_request("the body is not a logout request"))?
    };
    if let Some(token) = request.refresh_token {
        state.accounts.sign_out(&RefreshToken::new(token)).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let claims = crate::sessions::bearer_token(&headers)
        .and_then(|t| state.accounts.sessions().verify(t))
        .ok_or(ApiError::MissingAccessToken)?;
    state
        .accounts
        .end_session(&SessionId::new(claims.sid))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
