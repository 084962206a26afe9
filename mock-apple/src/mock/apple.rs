//! Apple's endpoints: discovery, `/auth/token` and `/auth/revoke`, answered and refused as
//! Apple does, and the faults injected into them.

use serde_json::{Value, json};
use siwa_core::apple_side::{
    IDENTITY_TOKEN_ALGORITHM, JwkSet, TokenRequest, is_apple_id, verify_client_secret,
};
use siwa_core::{
    ClientCredentials, GrantType, OAuthError, OAuthErrorCode, ResponseMode, ResponseType, Scope,
    TokenResponse, TokenScope, UserMigrationRequest,
};

use crate::faults::{Endpoint, Fault};
use crate::grants::ACCESS_TOKEN_LIFETIME_SECS;
use crate::identity::{self, BooleanForm};
use crate::teams::{self, MIGRATION_TOKEN_LIFETIME_SECS, MigrationGrant, Refusal};

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
            // Answered by `migration_token`, whose answer has no identity token.
            Some(GrantType::ClientCredentials) => {
                return Err(oauth_error(OAuthErrorCode::UnsupportedGrantType, None));
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

    /// `POST /auth/token` with `grant_type=client_credentials&scope=user.migration`: an access
    /// token for the migration endpoint, for the team that owns the client id, or the team that
    /// transferred it during the 60 days after (TN3159). The first team to ask owns a client
    /// id no team has claimed.
    pub fn migration_token(&self, request: &TokenRequest) -> Result<ClientCredentials, OAuthError> {
        let now = self.now();
        let mut state = self.state();
        let client_id = required(&request.client_id, "client_id")?;
        let team = authenticate(&state, client_id, non_empty(&request.client_secret), now)?;
        if request.scope() != Ok(Some(TokenScope::UserMigration)) {
            return Err(oauth_error(
                OAuthErrorCode::InvalidScope,
                Some("scope must be user.migration"),
            ));
        }
        let admitted = state.teams.claim(client_id, &team).admits(&team, now);
        admitted.map_err(|refusal| refused_for(refusal, "the client id is another team's"))?;
        let access_token = crate::random::token();
        let grant = MigrationGrant {
            team,
            client_id: client_id.to_owned(),
            expires_at: now + MIGRATION_TOKEN_LIFETIME_SECS,
        };
        state.teams.grant(access_token.clone(), grant);
        Ok(ClientCredentials {
            access_token,
            token_type: siwa_core::api::TokenType::Bearer.to_string(),
            expires_in: MIGRATION_TOKEN_LIFETIME_SECS as u64,
        })
    }

    /// `POST /auth/usermigrationinfo`, with the migration `access_token`: the sending team's
    /// `sub` and `target` give the user's transfer identifier; the recipient's `transfer_sub`
    /// gives the user under its team (`sub`, `email`, `is_private_email`).
    pub fn user_migration_info(
        &self,
        access_token: Option<&str>,
        request: &UserMigrationRequest,
    ) -> Result<Value, OAuthError> {
        let now = self.now();
        let state = self.state();
        let client_id = required(&request.client_id, "client_id")?;
        let team = authenticate(&state, client_id, non_empty(&request.client_secret), now)?;
        let invalid_client = |why: &str| oauth_error(OAuthErrorCode::InvalidClient, Some(why));
        let grant = access_token
            .and_then(|token| state.teams.granted(token, now))
            .ok_or_else(|| invalid_client("no live user.migration access token"))?;
        if grant.team != team || grant.client_id != client_id {
            return Err(invalid_client(
                "the access token is another team's or another client's",
            ));
        }
        let client = state
            .teams
            .client(client_id)
            .ok_or_else(|| invalid_client("the client id belongs to no team"))?;
        let invalid_request = |why: &str| oauth_error(OAuthErrorCode::InvalidRequest, Some(why));
        let users = state.directory.users();
        match (
            non_empty(&request.sub),
            non_empty(&request.target),
            non_empty(&request.transfer_sub),
        ) {
            (Some(sub), Some(target), None) => {
                client
                    .admits(&team, now)
                    .map_err(|refusal| refused_for(refusal, "the client id is another team's"))?;
                if !is_apple_id(target) || target == team {
                    return Err(invalid_request("target must be the recipient team's ID"));
                }
                let user = users
                    .iter()
                    .find(|u| teams::team_sub(&u.sub, &client.original, &team) == sub)
                    .ok_or_else(|| invalid_request("no user of this team has that sub"))?;
                Ok(json!({"transfer_sub": teams::transfer_sub(&user.sub, target)}))
            }
            (None, None, Some(transfer_sub)) => {
                if client.current != team || client.transfer.is_none() {
                    return Err(invalid_client("the app was not transferred to this team"));
                }
                if !client.in_window(now) {
                    return Err(refused_for(Refusal::PeriodOver, ""));
                }
                let user = users
                    .iter()
                    .find(|u| teams::transfer_sub(&u.sub, &team) == transfer_sub)
                    .ok_or_else(|| invalid_request("no user has that transfer identifier"))?;
                let authorization = state.directory.authorization(&user.sub, client_id);
                let hidden = authorization.is_some_and(|a| a.hide_email);
                let identity = state.identity_for(user, client_id, hidden, now);
                let email = authorization.and(identity.email);
                Ok(json!({
                    "sub": identity.sub,
                    "email": email,
                    "is_private_email": email.is_some() && identity.is_private_email,
                }))
            }
            _ => Err(invalid_request("give sub and target, or transfer_sub")),
        }
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

/// A team the migration endpoint does not answer for a client id: another team's is
/// `invalid_client` (saying `why`); after the 60 days of a transfer, `invalid_grant`.
fn refused_for(refusal: Refusal, why: &str) -> OAuthError {
    match refusal {
        Refusal::OtherTeam => oauth_error(OAuthErrorCode::InvalidClient, Some(why)),
        Refusal::PeriodOver => oauth_error(
            OAuthErrorCode::InvalidGrant,
            Some("the 60-day transfer period is over"),
        ),
    }
}

/// Checks the client secret as Apple does; every failure is `invalid_client`. Returns the team
/// of the key that signed it.
fn authenticate(
    state: &State,
    client_id: &str,
    secret: Option<&str>,
    now: i64,
) -> Result<String, OAuthError> {
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
        _ => Ok(state
            .developer_keys
            .get(&key_id)
            .map(|key| key.team_id.clone())
            .unwrap_or_default()),
    }
}
