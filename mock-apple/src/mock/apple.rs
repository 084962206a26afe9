//! Apple's endpoints: discovery, `/auth/token` and `/auth/revoke`, answered and refused as
//! Apple does, and the faults injected into them.

use serde_json::{Value, json};
use siwa_core::apple_side::{IDENTITY_TOKEN_ALGORITHM, JwkSet, TokenRequest, verify_client_secret};
use siwa_core::{
    GrantType, OAuthError, OAuthErrorCode, ResponseMode, ResponseType, Scope, TokenResponse,
};

use crate::faults::{Endpoint, Fault};
use crate::grants::ACCESS_TOKEN_LIFETIME_SECS;
use crate::identity::{self, BooleanForm};

use super::{Mock, State, sign_rs256};

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
            token_type: siwa_core::api::TokenType::Bearer.to_string(),
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
    let mut key_id = String::new();
    verify_client_secret(secret, client_id, now, |kid| {
        key_id = kid.to_owned();
        state.developer_keys.get(kid)
    })
    .map_err(|e| {
        tracing::info!(reason = e.code(), "client secret refused");
        refused()
    })?;
    // A client id the key is not enabled for (a Services ID not grouped with the key's primary
    // App ID, say) is `invalid_client` too (TN3107; docs/apple-protocol.md, F9).
    match state.key_clients.get(&key_id) {
        Some(clients) if !clients.iter().any(|c| c == client_id) => {
            tracing::info!("client id not enabled for this developer key");
            Err(refused())
        }
        _ => Ok(()),
    }
}
