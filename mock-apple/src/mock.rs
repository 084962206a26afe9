//! The mock's state and every operation on it. The HTTP routes (Apple's and the control API)
//! and the library handle all call these methods, so the two faces cannot drift apart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use siwa_core::apple_side::{
    IDENTITY_TOKEN_ALGORITHM, JwkSet, NotificationClaims, RegisteredDeveloperKey, TokenRequest,
    is_apple_id, verify_client_secret,
};
use siwa_core::{
    Clock, DeveloperKey, EventType, GrantType, NotificationBody, NotificationEvent, OAuthError,
    OAuthErrorCode, RawNonce, ResponseMode, ResponseType, Scope, TokenResponse,
};

use crate::clock::MockClock;
use crate::directory::{Directory, DirectoryError, Identity, NewUser, TestUser};
use crate::faults::{Endpoint, Fault, Faults};
use crate::grants::{ACCESS_TOKEN_LIFETIME_SECS, Grants};
use crate::identity::{
    self, BooleanForm, IdentityTokenRequest, MintedIdentityToken, TokenAlgorithm,
};
use crate::keys::{KeyError, SigningKey, SigningKeys};
use crate::random;

/// How a mock is set up.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The `iss` of tokens and discovery. Default: Apple's.
    pub issuer: String,
    /// The address the mock is reached at, when it differs from the one it listens on.
    pub base_url: Option<String>,
    /// Where signing keys are kept across restarts; none keeps them in memory.
    pub key_dir: Option<PathBuf>,
    /// How many keys to publish at first.
    pub initial_keys: usize,
    /// The client id of tokens minted without one.
    pub default_client_id: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            issuer: siwa_core::ISSUER.into(),
            base_url: None,
            key_dir: None,
            initial_keys: 2,
            default_client_id: "com.example.app".into(),
        }
    }
}

/// Why a control operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("no test user has that sub")]
    UnknownUser,
    #[error("invalid developer key: {0}")]
    DeveloperKey(&'static str),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the notification could not be delivered: {0}")]
    Delivery(String),
}

/// A developer key the mock made, with its private half (the `.p8`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedDeveloperKey {
    pub team_id: String,
    pub key_id: String,
    pub private_key_pem: String,
}

/// A notification to sign and deliver.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationRequest {
    /// Where to POST it.
    pub url: String,
    /// `email-disabled`, `email-enabled`, `consent-revoked`, `account-delete` or
    /// `account-deleted` (or anything else, to test unknown types).
    #[serde(rename = "type")]
    pub kind: String,
    /// Default: the default test user.
    pub sub: Option<String>,
    /// The `aud`. Default: the default client id.
    pub client_id: Option<String>,
    /// For email events. Default: the user's relay address.
    pub email: Option<String>,
    pub is_private_email: Option<bool>,
    /// Default: a fresh random one. Set it to test deduplication.
    pub jti: Option<String>,
    /// When the user acted, in milliseconds since the epoch. Default: now. An earlier time
    /// stands for a notification Apple delivers late (it retries until it gets a 200).
    pub event_time: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentNotification {
    pub jti: String,
    /// The receiver's HTTP status.
    pub status: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub kid: String,
    pub published: bool,
    pub signing: bool,
}

/// The outcome of a completed authorization on the consent page.
pub(crate) struct Authorized {
    pub code: String,
    pub id_token: String,
    /// The user's first authorization of this client: the only time Apple sends the name.
    pub first: bool,
    /// The address the app sees (the relay address when hidden).
    pub email: Option<String>,
}

struct State {
    keys: SigningKeys,
    directory: Directory,
    grants: Grants,
    faults: Faults,
    developer_keys: HashMap<String, RegisteredDeveloperKey>,
    /// The private halves of the developer keys the mock generated, newest last, so that
    /// `curl` users can have client secrets made for them.
    generated_keys: Vec<DeveloperKey>,
}

/// A running fake of Apple's Sign in with Apple service.
pub struct Mock {
    issuer: String,
    base_url: String,
    default_client_id: String,
    clock: MockClock,
    state: Mutex<State>,
    http: reqwest::Client,
}

fn oauth_error(code: OAuthErrorCode, description: Option<&str>) -> OAuthError {
    OAuthError {
        error: code,
        error_description: description.map(Into::into),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

impl Mock {
    /// Sets the mock up; generating keys takes a moment, so call it off the async runtime.
    pub fn new(config: MockConfig, base_url: String) -> Result<Self, KeyError> {
        let keys = SigningKeys::load_or_generate(config.key_dir.as_deref(), config.initial_keys)?;
        let state = State {
            keys,
            directory: Directory::default(),
            grants: Grants::default(),
            faults: Faults::default(),
            developer_keys: HashMap::new(),
            generated_keys: Vec::new(),
        };
        Ok(Self {
            issuer: config.issuer,
            base_url: config
                .base_url
                .unwrap_or(base_url)
                .trim_end_matches('/')
                .to_owned(),
            default_client_id: config.default_client_id,
            clock: MockClock::default(),
            state: Mutex::new(state),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("the HTTP client's fixed configuration is valid"),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn default_client_id(&self) -> &str {
        &self.default_client_id
    }

    /// Apple's endpoints, at the mock.
    pub fn endpoints(&self) -> siwa_core::Endpoints {
        siwa_core::Endpoints::new(self.base_url.clone())
    }

    pub fn jwks_url(&self) -> String {
        self.endpoints().keys()
    }

    /// The mock's time, seconds since the epoch.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    // --- Apple's endpoints ---------------------------------------------------------------

    pub fn jwks(&self) -> JwkSet {
        self.state().keys.jwks()
    }

    pub fn discovery(&self) -> Value {
        let e = self.endpoints();
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": e.authorize(),
            "token_endpoint": e.token(),
            "revocation_endpoint": e.revoke(),
            "jwks_uri": e.keys(),
            "response_types_supported": [ResponseType::Code],
            "response_modes_supported": ResponseMode::ALL,
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [IDENTITY_TOKEN_ALGORITHM],
            "scopes_supported": [Scope::OpenId, Scope::Email, Scope::Name],
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "is_private_email",
                                 "iss", "nonce", "nonce_supported", "real_user_status", "sub",
                                 "transfer_sub"],
        })
    }

    /// `POST /auth/token`.
    pub fn token(&self, request: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        let now = self.now();
        let mut state = self.state();
        let client_id = authenticated_client(&state, request, now)?;
        let grant_type = request
            .grant_type()
            .map_err(|_| oauth_error(OAuthErrorCode::UnsupportedGrantType, None))?;
        let (identity, nonce, with_refresh) = match grant_type {
            Some(GrantType::AuthorizationCode) => {
                let code = required(&request.code, "code")?;
                let grant = state
                    .grants
                    .redeem_code(code, client_id, non_empty(&request.redirect_uri), now)
                    .map_err(|e| oauth_error(e.code, Some(&e.description)))?;
                (grant.identity, grant.nonce, true)
            }
            Some(GrantType::RefreshToken) => {
                let token = required(&request.refresh_token, "refresh_token")?;
                let identity = state
                    .grants
                    .use_refresh_token(token, client_id)
                    .map_err(|e| oauth_error(e.code, Some(&e.description)))?;
                (identity, None, false)
            }
            None => {
                return Err(oauth_error(
                    OAuthErrorCode::InvalidRequest,
                    Some("grant_type is missing"),
                ));
            }
        };
        let issued = state
            .grants
            .issue_tokens(client_id, &identity, with_refresh);
        let mut claims = identity::apple_claims(
            &self.issuer,
            client_id,
            &identity,
            nonce.as_deref(),
            now,
            identity::DEFAULT_LIFETIME_SECS,
            BooleanForm::Boolean,
        );
        claims.insert(
            "at_hash".into(),
            json!(identity::code_hash(&issued.access_token)),
        );
        if !with_refresh {
            // Recorded: a refresh grant's id_token has neither (docs/apple-protocol.md, F10).
            claims.remove("auth_time");
            claims.remove("nonce_supported");
        }
        let id_token = sign_rs256(&state.keys, &claims);
        Ok(TokenResponse {
            access_token: issued.access_token,
            token_type: "Bearer".into(),
            expires_in: ACCESS_TOKEN_LIFETIME_SECS,
            refresh_token: issued.refresh_token,
            id_token,
        })
    }

    /// `POST /auth/revoke`: succeeds for unknown tokens too, as Apple does.
    pub fn revoke(&self, request: &TokenRequest) -> Result<(), OAuthError> {
        let now = self.now();
        let mut state = self.state();
        let client_id = authenticated_client(&state, request, now)?;
        let token = required(&request.token, "token")?;
        if request.token_type_hint().is_err() {
            return Err(oauth_error(
                OAuthErrorCode::InvalidRequest,
                Some("token_type_hint must be refresh_token or access_token"),
            ));
        }
        // Revoking any token ends the user's whole authorization of the app (F11): every
        // other refresh token of it (another device's sign-in) stops working too, and the user
        // sees the name and email sheet again next time.
        if let Some(sub) = state.grants.revoke(token, client_id) {
            state.grants.revoke_user(&sub, Some(client_id));
            state.directory.forget_authorization(&sub, client_id);
        }
        Ok(())
    }

    /// Counts a request to an Apple endpoint; returns the fault to apply, if any.
    pub fn on_request(&self, endpoint: Endpoint) -> Option<Fault> {
        self.state().faults.on_request(endpoint)
    }

    // --- The web flow (used by the consent page) -----------------------------------------

    pub(crate) fn user_for_consent(&self, sub: Option<&str>) -> Option<TestUser> {
        let state = self.state();
        match sub {
            Some(sub) => state.directory.get(sub).cloned(),
            None => state.directory.default_user().cloned(),
        }
    }

    pub(crate) fn has_authorized(&self, sub: &str, client_id: &str) -> bool {
        self.state()
            .directory
            .authorization(sub, client_id)
            .is_some()
    }

    /// Completes an authorization: records the user's choice on the first one, and issues a
    /// code bound to the client and redirect URI, and an identity token.
    pub(crate) fn authorize(
        &self,
        user: &TestUser,
        client_id: &str,
        redirect_uri: &str,
        wants_email: bool,
        hide_email: bool,
        nonce: Option<&str>,
    ) -> Authorized {
        let now = self.now();
        let mut state = self.state();
        let stored = state.directory.authorization(&user.sub, client_id);
        let first = stored.is_none();
        let hide_email = stored.map_or(hide_email, |a| a.hide_email);
        if first {
            let choice = crate::directory::Authorization { hide_email };
            state.directory.authorize(&user.sub, client_id, choice);
        }
        let mut identity = state.directory.identity(user, client_id, hide_email);
        if !wants_email {
            identity.email = None;
            identity.is_private_email = false;
        }
        let code = state.grants.issue_code(
            client_id,
            Some(redirect_uri),
            identity.clone(),
            nonce.map(Into::into),
            now,
        );
        let mut claims = identity::apple_claims(
            &self.issuer,
            client_id,
            &identity,
            nonce,
            now,
            identity::DEFAULT_LIFETIME_SECS,
            BooleanForm::Boolean,
        );
        claims.insert("c_hash".into(), json!(identity::code_hash(&code)));
        let id_token = sign_rs256(&state.keys, &claims);
        Authorized {
            code,
            id_token,
            first,
            email: identity.email,
        }
    }

    // --- The control API -----------------------------------------------------------------

    /// A token with any claims, and an authorization code for the same user and client.
    pub fn mint_identity_token(
        &self,
        request: IdentityTokenRequest,
    ) -> Result<MintedIdentityToken, MockError> {
        let now = self.now();
        let mut state = self.state();
        let client_id = request
            .client_id
            .clone()
            .unwrap_or_else(|| self.default_client_id.clone());
        // What the app's credential would hold beyond the token: the name and email, on the
        // user's first authorization of the client only (docs/apple-protocol.md, F6, F14).
        let directory_user = match &request.sub {
            Some(sub) => state.directory.get(sub),
            None => state.directory.default_user(),
        }
        .cloned();
        let first_authorization = directory_user.as_ref().is_some_and(|user| {
            let first = state
                .directory
                .authorization(&user.sub, &client_id)
                .is_none();
            if first {
                let choice = crate::directory::Authorization {
                    hide_email: request.hide_email,
                };
                state.directory.authorize(&user.sub, &client_id, choice);
            }
            first
        });
        let identity = match &request.sub {
            Some(sub) => match state.directory.get(sub) {
                Some(user) => state
                    .directory
                    .identity(user, &client_id, request.hide_email),
                None => Identity {
                    sub: sub.clone(),
                    email: None,
                    is_private_email: false,
                    real_user_status: 2,
                },
            },
            None => {
                let user = state
                    .directory
                    .default_user()
                    .ok_or(MockError::UnknownUser)?;
                state
                    .directory
                    .identity(user, &client_id, request.hide_email)
            }
        };
        let nonce = match (&request.nonce, &request.raw_nonce) {
            (Some(_), Some(_)) => {
                return Err(MockError::InvalidRequest(
                    "give nonce or rawNonce, not both".into(),
                ));
            }
            (Some(nonce), None) => Some(nonce.clone()),
            (None, Some(raw)) => Some(RawNonce::new(raw.clone()).hashed().as_str().to_owned()),
            (None, None) => None,
        };
        let iat = request.issued_at.unwrap_or(now);
        let lifetime = request
            .lifetime_secs
            .unwrap_or(identity::DEFAULT_LIFETIME_SECS);
        let code = state
            .grants
            .issue_code(&client_id, None, identity.clone(), nonce.clone(), now);
        let mut claims = identity::apple_claims(
            &self.issuer,
            &client_id,
            &identity,
            nonce.as_deref(),
            iat,
            lifetime,
            request.booleans_as,
        );
        claims.insert("c_hash".into(), json!(identity::code_hash(&code)));
        identity::apply_overrides(&mut claims, &request.top_level_claims);
        identity::apply_overrides(&mut claims, &request.claims);

        let key = match request.kid.as_deref().and_then(|kid| state.keys.get(kid)) {
            Some(key) => key,
            None => state.keys.active(),
        };
        let kid = request.kid.clone().unwrap_or_else(|| key.kid.clone());
        let mut header = identity::header(&kid, request.alg);
        identity::apply_overrides(&mut header, &request.header);
        let identity_token = identity::sign(&header, &claims, key, request.alg);
        let shared = directory_user.filter(|_| first_authorization);
        Ok(MintedIdentityToken {
            identity_token,
            authorization_code: code,
            first_authorization,
            given_name: shared.as_ref().map(|u| u.given_name.clone()),
            family_name: shared.as_ref().map(|u| u.family_name.clone()),
            email: shared.and(identity.email.clone()),
            sub: identity.sub,
            kid,
        })
    }

    /// Publishes a new key, which becomes the signing key. Returns its `kid`.
    pub fn add_key(&self) -> Result<String, MockError> {
        let key = SigningKey::generate()?;
        Ok(self.state().keys.add(key)?)
    }

    /// Takes a key out of the JWKS (it can still sign tokens minted with its `kid`).
    pub fn retire_key(&self, kid: &str) -> Result<(), MockError> {
        Ok(self.state().keys.retire(kid)?)
    }

    pub fn keys(&self) -> Vec<KeyInfo> {
        let state = self.state();
        let signing = state.keys.active().kid.clone();
        state
            .keys
            .all()
            .iter()
            .map(|k| KeyInfo {
                kid: k.kid.clone(),
                published: !k.retired,
                signing: k.kid == signing,
            })
            .collect()
    }

    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.state().faults.set(endpoint, fault);
    }

    /// Clears the fault of one endpoint, or of all.
    pub fn clear_faults(&self, endpoint: Option<Endpoint>) {
        self.state().faults.clear(endpoint);
    }

    /// Requests received by an Apple endpoint since start or the last reset.
    pub fn request_count(&self, endpoint: Endpoint) -> u64 {
        self.state().faults.count(endpoint)
    }

    pub fn request_counts(&self) -> HashMap<Endpoint, u64> {
        self.state().faults.counters()
    }

    pub fn reset_request_counts(&self) {
        self.state().faults.reset_counters();
    }

    /// Registers the public half of a developer key, as the developer portal does.
    pub fn register_developer_key(
        &self,
        team_id: &str,
        key_id: &str,
        public_key_pem: &str,
    ) -> Result<(), MockError> {
        if !is_apple_id(team_id) {
            return Err(MockError::DeveloperKey(
                "a Team ID is 10 upper-case letters and digits",
            ));
        }
        if !is_apple_id(key_id) {
            return Err(MockError::DeveloperKey(
                "a Key ID is 10 upper-case letters and digits",
            ));
        }
        let key = RegisteredDeveloperKey::from_public_pem(team_id, key_id, public_key_pem)
            .map_err(|_| MockError::DeveloperKey("the public key is not a P-256 PEM"))?;
        self.state().developer_keys.insert(key_id.to_owned(), key);
        Ok(())
    }

    /// Makes and registers a developer key, and hands out its `.p8`, as the portal does once.
    pub fn generate_developer_key(
        &self,
        team_id: Option<&str>,
        key_id: Option<&str>,
    ) -> Result<GeneratedDeveloperKey, MockError> {
        let pair = rcgen::KeyPair::generate()
            .map_err(|_| MockError::DeveloperKey("generating a P-256 key failed"))?;
        let team_id =
            team_id.map_or_else(|| random::alphanumeric(10).to_uppercase(), str::to_owned);
        let key_id = key_id.map_or_else(|| random::alphanumeric(10).to_uppercase(), str::to_owned);
        let private_key_pem = pair.serialize_pem();
        let key = DeveloperKey::from_p8_pem(&team_id, &key_id, &private_key_pem)
            .map_err(|e| MockError::DeveloperKey(e.code()))?;
        self.register_developer_key(&team_id, &key_id, &pair.public_key_pem())?;
        self.state().generated_keys.push(key);
        Ok(GeneratedDeveloperKey {
            team_id,
            key_id,
            private_key_pem,
        })
    }

    /// A client secret made with a developer key the mock generated (by default the newest),
    /// for clients that cannot sign ES256 themselves, such as `curl`. Lifetime default 5 min.
    pub fn client_secret(
        &self,
        key_id: Option<&str>,
        client_id: Option<&str>,
        lifetime_secs: Option<u64>,
    ) -> Result<String, MockError> {
        let state = self.state();
        let key = match key_id {
            Some(kid) => state.generated_keys.iter().find(|k| k.key_id() == kid),
            None => state.generated_keys.last(),
        };
        let key = key.ok_or(MockError::DeveloperKey(
            "no generated developer key has that key id: generate one first",
        ))?;
        let client_id = client_id.unwrap_or(&self.default_client_id);
        let lifetime = Duration::from_secs(lifetime_secs.unwrap_or(300));
        key.mint(client_id, self.now(), lifetime)
            .map(|secret| secret.expose().to_owned())
            .map_err(|e| MockError::DeveloperKey(e.code()))
    }

    pub fn users(&self) -> Vec<TestUser> {
        self.state().directory.users().to_vec()
    }

    pub fn add_user(&self, user: NewUser) -> Result<TestUser, MockError> {
        Ok(self.state().directory.add(user)?)
    }

    /// Moves the mock's clock forward (codes expire after five minutes).
    pub fn advance_clock(&self, secs: i64) -> i64 {
        self.clock.advance(secs);
        self.now()
    }

    /// Forgets users, grants, developer keys, faults and counters, and resets the clock.
    /// Signing keys stay: verifiers may have cached them.
    pub fn reset(&self) {
        let mut state = self.state();
        state.directory = Directory::default();
        state.grants = Grants::default();
        state.faults = Faults::default();
        state.developer_keys.clear();
        state.generated_keys.clear();
        self.clock.reset();
    }

    /// Signs a server-to-server notification in Apple's format and POSTs it to `request.url`.
    /// Like the user action it reports, `consent-revoked` ends the user's grants for the
    /// client and `account-delete(d)` removes the user.
    pub async fn send_notification(
        &self,
        request: NotificationRequest,
    ) -> Result<SentNotification, MockError> {
        let url = url::Url::parse(&request.url)
            .map_err(|_| MockError::InvalidRequest("url is not an absolute URL".into()))?;
        if request.kind.is_empty() {
            return Err(MockError::InvalidRequest("type is missing".into()));
        }
        let now = self.now();
        let client_id = request
            .client_id
            .unwrap_or_else(|| self.default_client_id.clone());
        let jti = request.jti.unwrap_or_else(random::token);
        let payload = {
            let mut state = self.state();
            let sub = match request.sub {
                Some(sub) => sub,
                None => state
                    .directory
                    .default_user()
                    .ok_or(MockError::UnknownUser)?
                    .sub
                    .clone(),
            };
            let kind = EventType::parse(&request.kind);
            let is_email_event = matches!(kind, EventType::EmailDisabled | EventType::EmailEnabled);
            let email = request.email.or_else(|| {
                is_email_event.then(|| crate::directory::relay_email(&sub, &client_id))
            });
            let is_private_email = request.is_private_email.or(is_email_event.then_some(true));
            match kind {
                EventType::ConsentRevoked => {
                    state.grants.revoke_user(&sub, Some(&client_id));
                    state.directory.forget_authorization(&sub, &client_id);
                }
                EventType::AccountDeleted => {
                    state.grants.revoke_user(&sub, None);
                    state.directory.remove(&sub);
                }
                _ => {}
            }
            let event = NotificationEvent {
                // Keep the caller's spelling (`account-delete` or `account-deleted`).
                kind: EventType::Other(request.kind.clone()),
                sub,
                event_time: request.event_time.unwrap_or(now * 1000),
                email,
                is_private_email,
            };
            let claims = NotificationClaims::apple(&self.issuer, &client_id, now, &jti, &event);
            let Value::Object(claims) = serde_json::to_value(claims).expect("claims serialize")
            else {
                unreachable!("claims serialize as an object")
            };
            sign_rs256(&state.keys, &claims)
        };
        let response = self
            .http
            .post(url)
            .json(&NotificationBody { payload })
            .send()
            .await
            .map_err(|e| {
                MockError::Delivery(if e.is_timeout() {
                    "timed out".into()
                } else {
                    "connection failed".into()
                })
            })?;
        Ok(SentNotification {
            jti,
            status: response.status().as_u16(),
        })
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    non_empty(value).ok_or_else(|| {
        oauth_error(
            OAuthErrorCode::InvalidRequest,
            Some(&format!("{name} is missing")),
        )
    })
}

/// The request's `client_id`, once its client secret has been checked.
fn authenticated_client<'r>(
    state: &State,
    request: &'r TokenRequest,
    now: i64,
) -> Result<&'r str, OAuthError> {
    let client_id = required(&request.client_id, "client_id")?;
    authenticate(state, client_id, non_empty(&request.client_secret), now)?;
    Ok(client_id)
}

/// Checks the client secret as Apple does; every failure is `invalid_client`.
fn authenticate(
    state: &State,
    client_id: &str,
    secret: Option<&str>,
    now: i64,
) -> Result<(), OAuthError> {
    let refused = || oauth_error(OAuthErrorCode::InvalidClient, None);
    let secret = secret.ok_or_else(refused)?;
    verify_client_secret(secret, client_id, now, |kid| state.developer_keys.get(kid))
        .map(|_| ())
        .map_err(|e| {
            tracing::info!(reason = e.code(), "client secret refused");
            refused()
        })
}

fn sign_rs256(keys: &SigningKeys, claims: &Map<String, Value>) -> String {
    let key = keys.active();
    identity::sign(
        &identity::header(&key.kid, TokenAlgorithm::RS256),
        claims,
        key,
        TokenAlgorithm::RS256,
    )
}
