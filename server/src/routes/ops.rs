//! Health, readiness, metrics, the access-token key set and the OpenAPI document.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;

use crate::state::AppState;

/// 200 once the server accepts requests.
pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 when a sign-in could succeed: the database takes a committed write (and, on SQLite,
/// its file is still the one written to) and Apple's keys are known or can be fetched. 503
/// otherwise, with the failing check named. The database's state is its watch's (`store::health`),
/// so a probe anyone can call never waits for the database nor drives its write rate.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let database = state
        .accounts
        .database_health()
        .map_err(|down| down.as_str());
    let apple_keys = if state.accounts.app_verifier().key_set().usable().await {
        Ok(())
    } else {
        Err("Apple's keys are not known and cannot be fetched")
    };
    let ready = database.is_ok() && apple_keys.is_ok();
    let check = |r: Result<(), &'static str>| r.err().unwrap_or("ok");
    let body = serde_json::json!({
        "ready": ready,
        "checks": {"database": check(database), "appleKeys": check(apple_keys)},
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let stats = state.accounts.app_verifier().key_set().stats();
    metrics::gauge!("siwa_jwks_fetches").set(stats.fetches as f64);
    metrics::gauge!("siwa_jwks_fetch_failures").set(stats.fetch_failures as f64);
    state
        .accounts
        .record_queue_gauges(state.config.webhooks.is_some())
        .await;
    let body = crate::telemetry::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The public key that verifies our access tokens.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(state.accounts.sessions().jwks().clone())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "siwa-server", description = "Sign in with Apple backend"),
    paths(
        crate::routes::auth::compat_sign_in,
        crate::routes::auth::sign_in,
        crate::routes::auth::refresh,
        crate::routes::auth::logout,
        crate::routes::web::exchange,
        crate::routes::web::check_app_redirect,
        crate::routes::web_app::web_session,
        crate::routes::web_app::web_token,
        crate::routes::web_app::end_web_session,
        crate::routes::account::me,
        crate::routes::account::delete_me,
        crate::routes::notifications::receive,
    ),
    modifiers(&BearerAuth, &ErrorMeanings),
)]
pub struct ApiDoc;

/// Each [`ErrorCode`](siwa_core::api::ErrorCode)'s meaning (`ErrorCode::meaning`) as a schema
/// of its own, an enum of the codes that mean it: `FixRequestCode`, `RefreshSessionCode`,
/// `SignInAgainCode`, `RetryLaterCode`. Clients generated from this document (the TypeScript
/// one) read what to do about a code from here, so it is written once, in `siwa_core::api`.
struct ErrorMeanings;

impl utoipa::Modify for ErrorMeanings {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use siwa_core::api::{ErrorCode, ErrorMeaning};
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, meaning, description) in [
            (
                "FixRequestCode",
                ErrorMeaning::FixRequest,
                "Sending the same request again fails again: the app or the user must change it (for a sign-in: start a new one with Apple).",
            ),
            (
                "RefreshSessionCode",
                ErrorMeaning::RefreshSession,
                "The access token is no longer accepted: refresh the session, then send again.",
            ),
            (
                "SignInAgainCode",
                ErrorMeaning::SignInAgain,
                "The session is over for good: sign in again.",
            ),
            (
                "RetryLaterCode",
                ErrorMeaning::RetryLater,
                "The server, its database or Apple is unavailable for now: send again later.",
            ),
        ] {
            let codes = ErrorCode::ALL
                .iter()
                .filter(|code| code.meaning() == meaning)
                .map(|code| code.as_str());
            let schema = ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
                .enum_values(Some(codes))
                .build();
            components.schemas.insert(name.to_owned(), schema.into());
        }
    }
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
