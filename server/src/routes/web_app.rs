//! What a web app (one of `SIWA_WEB_ORIGINS`, on the server's site) calls from its pages'
//! scripts over the session cookie: the signed-in user, an access token and the sign-out. The
//! refresh token never reaches the page (a token-mediating backend,
//! draft-ietf-oauth-browser-based-apps); CORS answers the listed origins alone (`app`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::web::{configured, signed_in};
use crate::api::{UserView, WebTokenResponse};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::web::respond::with_cookie;
use crate::web::{WebFlow, guard};

/// A web app's signed-in user, from the session cookie: the API's user JSON, or 401
/// `not_signed_in` (and the cookie, if any, removed). Readable by `SIWA_WEB_ORIGINS` alone
/// (CORS).
#[utoipa::path(get, path = "/v1/web/session", tag = "web apps",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn web_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<UserView>, Response> {
    let web = configured(&state).map_err(IntoResponse::into_response)?;
    match signed_in(&state, web, &headers).await {
        Ok(Some(page)) => Ok(Json(page.user)),
        Ok(None) => Err(signed_out(web, &headers)),
        Err(error) => Err(error.into_response()),
    }
}

/// A short-lived access token for a web app's page, from its session cookie: the refresh
/// token never reaches the page's scripts. Only a listed origin's script may ask
/// (`sent_by_web_app`); rate-limited per client.
#[utoipa::path(post, path = "/v1/web/token", tag = "web apps",
    params(("X-Siwa-Request" = String, Header, description = "any value: what a form on another site cannot send")),
    responses((status = 200, body = WebTokenResponse), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn web_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<WebTokenResponse>, Response> {
    let web = configured(&state).map_err(IntoResponse::into_response)?;
    if !guard::sent_by_web_app(web, &headers) {
        return Err(ApiError::OriginNotAllowed.into_response());
    }
    match signed_in(&state, web, &headers).await {
        Ok(Some(page)) => Ok(Json(
            state.accounts.web_token(&page.user_id, &page.session_id),
        )),
        Ok(None) => Err(signed_out(web, &headers)),
        Err(error) => Err(error.into_response()),
    }
}

/// A web app's sign-out: ends the session of the cookie, if any, and removes the cookie.
/// Only a listed origin's script may ask, as for the token.
#[utoipa::path(delete, path = "/v1/web/session", tag = "web apps",
    params(("X-Siwa-Request" = String, Header, description = "any value: what a form on another site cannot send")),
    responses((status = 204, description = "signed out"), (status = 403, body = ErrorBody),
              (status = 501, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn end_web_session(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let web = configured(&state)?;
    if !guard::sent_by_web_app(web, &headers) {
        return Err(ApiError::OriginNotAllowed);
    }
    if let Some(page) = signed_in(&state, web, &headers).await? {
        state.accounts.end_session(&page.session_id).await?;
    }
    let done = StatusCode::NO_CONTENT.into_response();
    Ok(with_cookie(done, &web.cleared_cookie()))
}

/// 401 `not_signed_in`, removing a session cookie that no longer signs anyone in.
fn signed_out(web: &WebFlow, headers: &HeaderMap) -> Response {
    let answer = ApiError::NotSignedIn.into_response();
    if web.session_from(headers).is_some() {
        with_cookie(answer, &web.cleared_cookie())
    } else {
        answer
    }
}
