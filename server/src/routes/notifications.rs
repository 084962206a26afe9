//! Apple's server-to-server notifications.

use std::sync::Arc;

use super::JsonBody;
use crate::api::{NotificationRequest, NotificationResponse};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;

/// Verifies the payload with Apple's keys (audience: a configured client id), then applies it
/// once per `jti`. 200 tells Apple not to retry; 400 means the payload is invalid.
#[utoipa::path(post, path = "/v1/apple/notifications", tag = "apple", request_body = NotificationRequest,
    responses((status = 200, body = NotificationResponse), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<NotificationRequest>,
) -> Result<Json<NotificationResponse>, ApiError> {
    let status = state.accounts.apply_notification(&request.payload).await?;
    Ok(Json(NotificationResponse { status }))
}
