//! The HTTP routes, one module per feature, and the extractors they share.

pub mod account;
pub mod auth;
pub mod notifications;
pub mod ops;
pub mod web;
pub mod web_app;

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{SessionId, UserId};

/// A JSON body whose every rejection is an API error: 400 for a bad or ill-typed body, 415
/// without a JSON content type. (Size is `request_body`'s: a body over the limit never gets here.)
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            // serde's own message would quote the offending value, which may be a token.
            Err(JsonRejection::JsonDataError(_)) => Err(ApiError::bad_request(
                "the body is JSON but a required field is missing or has the wrong type",
            )),
            Err(_) => Err(ApiError::bad_request("the body is not valid JSON")),
        }
    }
}

/// The session of a valid bearer access token.
pub struct Authenticated {
    pub user_id: UserId,
    pub session_id: SessionId,
}

impl FromRequestParts<Arc<AppState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token =
            crate::sessions::bearer_token(&parts.headers).ok_or(ApiError::MissingAccessToken)?;
        let claims = state
            .accounts
            .sessions()
            .verify(token)
            .ok_or(ApiError::InvalidAccessToken)?;
        Ok(Self {
            user_id: UserId::new(claims.sub),
            session_id: SessionId::new(claims.sid),
        })
    }
}
