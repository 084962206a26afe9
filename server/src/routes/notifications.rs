//! Apple's server-to-server notifications.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use siwa_core::{Clock, SystemClock};

use super::JsonBody;
use crate::api::{NotificationRequest, NotificationResponse, NotificationStatus};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::store::NotificationOutcome;

/// Verifies the payload with Apple's keys (audience: a configured client id), then applies it
/// once per `jti`. 200 tells Apple not to retry; 400 means the payload is invalid.
#[utoipa::path(post, path = "/v1/apple/notifications", tag = "apple", request_body = NotificationRequest,
    responses((status = 200, body = NotificationResponse), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<NotificationRequest>,
) -> Result<Json<NotificationResponse>, ApiError> {
    let notification = state
        .verifier
        .verify_notification(&request.payload)
        .await
        .map_err(ApiError::Notification)?;
    let outcome = state
        .store
        .apply_notification(&notification.jti, &notification.event, SystemClock.now())
        .await?;
    let status = match outcome {
        NotificationOutcome::Applied => NotificationStatus::Applied,
        NotificationOutcome::Duplicate => NotificationStatus::Duplicate,
        NotificationOutcome::Ignored => NotificationStatus::Ignored,
    };
    metrics::counter!("siwa_notifications_total", "type" => notification.event.kind.as_str().to_owned(), "status" => status.as_str()).increment(1);
    tracing::info!(
        event = notification.event.kind.as_str(),
        status = status.as_str(),
        "Apple notification"
    );
    Ok(Json(NotificationResponse { status }))
}
