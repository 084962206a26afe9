//! The control API under `/mock/`: the same operations as the library's [`Mock`] methods, in
//! JSON, so tests in any language (and `curl`) can drive the mock.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::directory::NewUser;
use crate::faults::{Endpoint, Fault};
use crate::identity::IdentityTokenRequest;
use crate::keys::KeyError;
use crate::mock::{Mock, MockError, NotificationRequest};

pub fn routes() -> Router<Arc<Mock>> {
    Router::new()
        .route("/identity-token", post(identity_token))
        .route("/keys", get(list_keys).post(add_key))
        .route("/keys/{kid}", delete(retire_key))
        .route("/faults", delete(clear_all_faults))
        .route("/faults/{endpoint}", put(set_fault).delete(clear_fault))
        .route("/counters", get(counters).delete(reset_counters))
        .route("/developer-keys", post(register_developer_key))
        .route("/developer-keys/generate", post(generate_developer_key))
        .route("/client-secret", post(client_secret))
        .route("/users", get(list_users).post(add_user))
        .route("/notifications", post(send_notification))
        .route("/clock", post(advance_clock))
        .route("/clients/{client_id}/team", put(assign_team))
        .route("/transfers", post(transfer_client))
        .route("/reset", post(reset))
}

/// A control error: `{"error": code, "message": text}`.
struct ControlError(StatusCode, &'static str, String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response()
    }
}

impl From<MockError> for ControlError {
    fn from(error: MockError) -> Self {
        let (status, code) = match &error {
            MockError::Keys(KeyError::NotFound(_)) => (StatusCode::NOT_FOUND, "unknown_key"),
            MockError::Keys(KeyError::LastKey) => (StatusCode::CONFLICT, "last_key"),
            MockError::Keys(_) => (StatusCode::INTERNAL_SERVER_ERROR, "key_storage"),
            MockError::Directory(_) => (StatusCode::CONFLICT, "user_exists"),
            MockError::UnknownUser => (StatusCode::NOT_FOUND, "unknown_user"),
            MockError::DeveloperKey(_) => (StatusCode::BAD_REQUEST, "invalid_developer_key"),
            MockError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            MockError::Delivery(_) => (StatusCode::BAD_GATEWAY, "delivery_failed"),
        };
        Self(status, code, error.to_string())
    }
}

/// A JSON body that may be empty (then it is `T::default()`), so `curl -X POST` suffices.
fn json_or_default<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ControlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))
}

fn endpoint(name: &str) -> Result<Endpoint, ControlError> {
    Endpoint::ALL
        .into_iter()
        .find(|e| e.name() == name)
        .ok_or_else(|| {
            ControlError(
                StatusCode::NOT_FOUND,
                "unknown_endpoint",
                "endpoints are keys, discovery, token, revoke, authorize".into(),
            )
        })
}

async fn identity_token(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let request: IdentityTokenRequest = json_or_default(&body)?;
    Ok(Json(mock.mint_identity_token(request)?).into_response())
}

async fn list_keys(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.keys()).into_response()
}

async fn add_key(State(mock): State<Arc<Mock>>) -> Result<Response, ControlError> {
    // RSA key generation takes a moment: keep it off the async workers.
    let kid = tokio::task::spawn_blocking(move || mock.add_key())
        .await
        .map_err(|e| {
            ControlError(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
        })??;
    Ok((StatusCode::CREATED, Json(json!({"kid": kid}))).into_response())
}

async fn retire_key(
    State(mock): State<Arc<Mock>>,
    Path(kid): Path<String>,
) -> Result<StatusCode, ControlError> {
    mock.retire_key(&kid)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_fault(
    State(mock): State<Arc<Mock>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let endpoint = endpoint(&name)?;
    let fault: Fault = json_or_default(&body)?;
    mock.set_fault(endpoint, fault);
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_fault(
    State(mock): State<Arc<Mock>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ControlError> {
    mock.clear_faults(Some(endpoint(&name)?));
    Ok(StatusCode::NO_CONTENT)
}

async fn clear_all_faults(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.clear_faults(None);
    StatusCode::NO_CONTENT
}

async fn counters(State(mock): State<Arc<Mock>>) -> Response {
    let counts: serde_json::Map<String, serde_json::Value> = mock
        .request_counts()
        .into_iter()
        .map(|(e, n)| (e.name().to_owned(), json!(n)))
        .collect();
    Json(counts).into_response()
}

async fn reset_counters(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.reset_request_counts();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeveloperKeyRegistration {
    team_id: String,
    key_id: String,
    public_key_pem: String,
    /// The client ids the key is enabled for; any when absent.
    client_ids: Option<Vec<String>>,
}

async fn register_developer_key(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let r: DeveloperKeyRegistration = serde_json::from_slice(&body)
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    mock.register_developer_key(&r.team_id, &r.key_id, &r.public_key_pem)?;
    if let Some(clients) = &r.client_ids {
        mock.enable_developer_key_for(&r.key_id, clients)?;
    }
    Ok(StatusCode::CREATED)
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeveloperKeyRequest {
    team_id: Option<String>,
    key_id: Option<String>,
    /// The client ids the key is enabled for; any when absent.
    client_ids: Option<Vec<String>>,
}

async fn generate_developer_key(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let r: DeveloperKeyRequest = json_or_default(&body)?;
    let key = mock.generate_developer_key(r.team_id.as_deref(), r.key_id.as_deref())?;
    if let Some(clients) = &r.client_ids {
        mock.enable_developer_key_for(&key.key_id, clients)?;
    }
    Ok((StatusCode::CREATED, Json(key)).into_response())
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientSecretRequest {
    key_id: Option<String>,
    client_id: Option<String>,
    lifetime_secs: Option<u64>,
}

async fn client_secret(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let r: ClientSecretRequest = json_or_default(&body)?;
    let secret =
        mock.client_secret(r.key_id.as_deref(), r.client_id.as_deref(), r.lifetime_secs)?;
    Ok(Json(json!({"clientSecret": secret})).into_response())
}

async fn list_users(State(mock): State<Arc<Mock>>) -> Response {
    Json(mock.users()).into_response()
}

async fn add_user(State(mock): State<Arc<Mock>>, body: Bytes) -> Result<Response, ControlError> {
    let user: NewUser = json_or_default(&body)?;
    Ok((StatusCode::CREATED, Json(mock.add_user(user)?)).into_response())
}

async fn send_notification(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let request: NotificationRequest = serde_json::from_slice(&body)
        .map_err(|e| ControlError(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    Ok(Json(mock.send_notification(request).await?).into_response())
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockAdvance {
    advance_secs: i64,
}

async fn advance_clock(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let r: ClockAdvance = json_or_default(&body)?;
    Ok(Json(json!({"now": mock.advance_clock(r.advance_secs)})).into_response())
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TeamAssignment {
    team_id: String,
}

/// `PUT /mock/clients/{client_id}/team {"teamId"}`: the team that owns the client id (its
/// users keep their directory `sub` under it).
async fn assign_team(
    State(mock): State<Arc<Mock>>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ControlError> {
    let r: TeamAssignment = json_or_default(&body)?;
    mock.assign_client_team(&client_id, &r.team_id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TransferRequest {
    client_id: String,
    to_team: String,
}

/// `POST /mock/transfers {"clientId", "toTeam"}`: App Store Connect completes the app's
/// transfer now (the mock's clock); the 60 days start.
async fn transfer_client(
    State(mock): State<Arc<Mock>>,
    body: Bytes,
) -> Result<Response, ControlError> {
    let r: TransferRequest = json_or_default(&body)?;
    let at = mock.transfer_client(&r.client_id, &r.to_team)?;
    Ok(Json(json!({"transferredAt": at})).into_response())
}

async fn reset(State(mock): State<Arc<Mock>>) -> StatusCode {
    mock.reset();
    StatusCode::NO_CONTENT
}
