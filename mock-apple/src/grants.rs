//! Authorization codes, refresh tokens and access tokens, with Apple's rules: codes are
//! single-use, live five minutes and are bound to the client id (and redirect URI, if the
//! authorization request had one); refresh tokens live until revoked.

use std::collections::HashMap;

use siwa_core::OAuthErrorCode;
use siwa_core::apple_side::AUTHORIZATION_CODE_LIFETIME_SECS;

use crate::directory::Identity;
use crate::random;

/// Apple's description for a code or refresh token that cannot be used (any reason).
pub const EXPIRED_OR_REVOKED: &str = "The code has expired or has been revoked.";

#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub identity: Identity,
    pub nonce: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
struct RefreshGrant {
    client_id: String,
    identity: Identity,
}

#[derive(Debug, Clone)]
struct AccessGrant {
    client_id: String,
    refresh_token: Option<String>,
}

/// Why a grant was refused: Apple's error code and description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantError {
    pub code: OAuthErrorCode,
    pub description: String,
}

impl GrantError {
    fn invalid_grant(description: impl Into<String>) -> Self {
        Self {
            code: OAuthErrorCode::InvalidGrant,
            description: description.into(),
        }
    }
}

/// Tokens issued by one successful grant.
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
}

#[derive(Debug, Default)]
pub struct Grants {
    codes: HashMap<String, CodeGrant>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    access_tokens: HashMap<String, AccessGrant>,
}

/// Access tokens live an hour, as Apple's `expires_in` says.
pub const ACCESS_TOKEN_LIFETIME_SECS: u64 = 3600;

impl Grants {
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: Option<&str>,
        identity: Identity,
        nonce: Option<String>,
        now: i64,
    ) -> String {
        let code = random::authorization_code();
        let grant = CodeGrant {
            client_id: client_id.into(),
            redirect_uri: redirect_uri.map(Into::into),
            identity,
            nonce,
            expires_at: now + AUTHORIZATION_CODE_LIFETIME_SECS as i64,
        };
        self.codes.insert(code.clone(), grant);
        code
    }

    /// Redeems a code for `client_id`; a code is used up by its first successful redemption.
    pub fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        now: i64,
    ) -> Result<CodeGrant, GrantError> {
        let grant = self
            .codes
            .get(code)
            .ok_or_else(|| GrantError::invalid_grant(EXPIRED_OR_REVOKED))?;
        if grant.expires_at <= now {
            self.codes.remove(code);
            return Err(GrantError::invalid_grant(EXPIRED_OR_REVOKED));
        }
        if grant.client_id != client_id {
            // Pitfall 2: an app's code exchanged with the Services ID, or the reverse.
            return Err(GrantError::invalid_grant(format!(
                "client_id mismatch. The code was not issued to {client_id}."
            )));
        }
        if grant.redirect_uri.as_deref() != redirect_uri {
            return Err(GrantError::invalid_grant(
                "redirect_uri mismatch. The redirect_uri must match the one of the authorization request.",
            ));
        }
        Ok(self.codes.remove(code).expect("the code was just found"))
    }

    /// Issues an access token, and a refresh token when `with_refresh` (code exchange only).
    pub fn issue_tokens(
        &mut self,
        client_id: &str,
        identity: &Identity,
        with_refresh: bool,
    ) -> IssuedTokens {
        let refresh_token = with_refresh.then(|| {
            let token = format!("r{}.0.{}", random::hex::<16>(), random::alphanumeric(6));
            let grant = RefreshGrant {
                client_id: client_id.into(),
                identity: identity.clone(),
            };
            self.refresh_tokens.insert(token.clone(), grant);
            token
        });
        let access_token = format!("a{}.0.{}", random::hex::<16>(), random::alphanumeric(6));
        let grant = AccessGrant {
            client_id: client_id.into(),
            refresh_token: refresh_token.clone(),
        };
        self.access_tokens.insert(access_token.clone(), grant);
        IssuedTokens {
            access_token,
            refresh_token,
        }
    }

    /// The identity behind a live refresh token issued to `client_id`.
    pub fn use_refresh_token(&self, token: &str, client_id: &str) -> Result<Identity, GrantError> {
        let grant = self
            .refresh_tokens
            .get(token)
            .ok_or_else(|| GrantError::invalid_grant(EXPIRED_OR_REVOKED))?;
        if grant.client_id != client_id {
            return Err(GrantError::invalid_grant(format!(
                "client_id mismatch. The token was not issued to {client_id}."
            )));
        }
        Ok(grant.identity.clone())
    }

    /// Revokes a refresh or access token of `client_id` and everything issued with it. Returns
    /// the `sub` it belonged to, when it was a live token of that client.
    pub fn revoke(&mut self, token: &str, client_id: &str) -> Option<String> {
        let refresh_token = match self.access_tokens.get(token) {
            Some(access) if access.client_id == client_id => {
                let refresh = access.refresh_token.clone();
                self.access_tokens.remove(token);
                refresh?
            }
            Some(_) => return None,
            None => token.to_owned(),
        };
        let grant = self
            .refresh_tokens
            .get(&refresh_token)
            .filter(|g| g.client_id == client_id)?;
        let sub = grant.identity.sub.clone();
        self.refresh_tokens.remove(&refresh_token);
        self.access_tokens
            .retain(|_, a| a.refresh_token.as_deref() != Some(refresh_token.as_str()));
        Some(sub)
    }

    /// Ends every grant of a user for a client (consent revoked), or for all clients.
    pub fn revoke_user(&mut self, sub: &str, client_id: Option<&str>) {
        let matches = |grant_client: &str, identity: &Identity| {
            identity.sub == sub && client_id.is_none_or(|c| c == grant_client)
        };
        self.codes
            .retain(|_, g| !matches(&g.client_id, &g.identity));
        let revoked: Vec<String> = self
            .refresh_tokens
            .iter()
            .filter(|(_, g)| matches(&g.client_id, &g.identity))
            .map(|(t, _)| t.clone())
            .collect();
        for token in &revoked {
            self.refresh_tokens.remove(token);
        }
        self.access_tokens.retain(|_, a| {
            a.refresh_token
                .as_ref()
                .is_none_or(|r| !revoked.contains(r))
        });
    }
}
