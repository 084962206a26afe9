//! The signed-in user: read the account, delete it (with Apple token revocation, which App
//! Store review requires, guideline 5.1.1(v)).

use std::sync::Arc;

use super::Authenticated;
use crate::api::{DeletionResponse, UserView};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;

#[utoipa::path(get, path = "/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(
    State(state): State<Arc<AppState>>,
    auth: Authenticated,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .accounts
        .user_in_session(&auth.user_id, &auth.session_id)
        .await?;
    Ok(Json(user))
}

/// Deletes the account and all its data, and revokes Apple's token. If Apple cannot be
/// reached, the data is deleted all the same and the revocation is retried from a durable queue.
#[utoipa::path(delete, path = "/v1/me", tag = "account", security(("bearer" = [])),
    responses((status = 200, body = DeletionResponse), (status = 401, body = ErrorBody)))]
pub async fn delete_me(
    State(state): State<Arc<AppState>>,
    auth: Authenticated,
) -> Result<Json<DeletionResponse>, ApiError> {
    let apple_revocation = state
        .accounts
        .delete_in_session(&auth.user_id, &auth.session_id)
        .await?;
    Ok(Json(DeletionResponse {
        deleted: true,
        apple_revocation,
    }))
}
