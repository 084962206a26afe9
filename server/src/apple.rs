//! The server's side of Apple's token and revocation endpoints: client secrets minted from the
//! developer key, short-lived, cached per client id and renewed before they expire, so the
//! "secret expired after six months" outage cannot happen (docs/apple-protocol.md, P1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use siwa_core::Endpoints;
use siwa_core::{
    AppleApiError, AppleClient, ClientSecret, Clock, DeveloperKey, MigratedUser, TokenResponse,
    TokenTypeHint, TransferIdentifier, UserMigrationRequest,
};

/// A client secret lives an hour and is renewed when less than five minutes are left.
const SECRET_LIFETIME: Duration = Duration::from_secs(3600);
const SECRET_RENEW_BEFORE_SECS: i64 = 300;

pub struct AppleGateway {
    client: AppleClient,
    key: Option<DeveloperKey>,
    secrets: Mutex<HashMap<String, ClientSecret>>,
    /// The server's clock: a secret's `iat` and `exp`.
    clock: Arc<dyn Clock>,
}

/// Apple could not be called: no credentials, or the call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no Apple developer key is configured")]
    NotConfigured,
    #[error("the client secret could not be made: {0}")]
    Secret(#[from] siwa_core::ClientSecretError),
    #[error(transparent)]
    Apple(#[from] AppleApiError),
}

impl AppleGateway {
    pub fn new(
        base_url: &str,
        key: Option<DeveloperKey>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, siwa_core::HttpClientError> {
        Ok(Self {
            client: AppleClient::new(Endpoints::new(base_url), Duration::from_secs(10))?,
            key,
            secrets: Mutex::new(HashMap::new()),
            clock,
        })
    }

    pub fn configured(&self) -> bool {
        self.key.is_some()
    }

    fn secret(&self, client_id: &str) -> Result<ClientSecret, GatewayError> {
        let key = self.key.as_ref().ok_or(GatewayError::NotConfigured)?;
        let now = self.clock.now();
        let mut cache = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(secret) = cache
            .get(client_id)
            .filter(|s| s.expires_at - now > SECRET_RENEW_BEFORE_SECS)
        {
            return Ok(secret.clone());
        }
        let secret = key.mint(client_id, now, SECRET_LIFETIME)?;
        cache.insert(client_id.to_owned(), secret.clone());
        Ok(secret)
    }

    /// Exchanges an authorization code: an app's has no `redirect_uri`, one from the web flow
    /// is exchanged with the redirect URI of its authorization request (F13).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<TokenResponse, GatewayError> {
        let secret = self.secret(client_id)?;
        let result = self
            .client
            .exchange_code(client_id, &secret, code, redirect_uri)
            .await;
        record("token", &result);
        Ok(result?)
    }

    pub async fn revoke(
        &self,
        client_id: &str,
        token: &str,
        hint: TokenTypeHint,
    ) -> Result<(), GatewayError> {
        let secret = self.secret(client_id)?;
        let result = self.client.revoke(client_id, &secret, token, hint).await;
        record("revoke", &result);
        Ok(result?)
    }
}

/// An app transfer's calls (F16), with the configured key's team.
impl AppleGateway {
    /// The team of the configured key: the one Apple answers the migration calls for.
    pub fn team_id(&self) -> Option<&str> {
        self.key.as_ref().map(DeveloperKey::team_id)
    }

    /// An access token for the migration endpoint (`client_credentials`, `user.migration`).
    pub async fn migration_token(&self, client_id: &str) -> Result<String, GatewayError> {
        let secret = self.secret(client_id)?;
        let result = self.client.migration_token(client_id, &secret).await;
        record("token", &result);
        Ok(result?.access_token)
    }

    /// The sending team: the transfer identifier of the user `sub` for the team `target`.
    pub async fn transfer_identifier(
        &self,
        client_id: &str,
        access_token: &str,
        sub: &str,
        target: &str,
    ) -> Result<String, GatewayError> {
        let request = UserMigrationRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(self.secret(client_id)?.expose().into()),
            sub: Some(sub.into()),
            target: Some(target.into()),
            ..UserMigrationRequest::default()
        };
        let result = self
            .client
            .user_migration_info::<TransferIdentifier>(access_token, &request)
            .await;
        record("usermigrationinfo", &result);
        Ok(result?.transfer_sub)
    }

    /// The recipient team: the user of a transfer identifier, under this team.
    pub async fn migrated_user(
        &self,
        client_id: &str,
        access_token: &str,
        transfer_sub: &str,
    ) -> Result<MigratedUser, GatewayError> {
        let request = UserMigrationRequest {
            client_id: Some(client_id.into()),
            client_secret: Some(self.secret(client_id)?.expose().into()),
            transfer_sub: Some(transfer_sub.into()),
            ..UserMigrationRequest::default()
        };
        let result = self
            .client
            .user_migration_info::<MigratedUser>(access_token, &request)
            .await;
        record("usermigrationinfo", &result);
        Ok(result?)
    }
}

fn record<T>(endpoint: &'static str, result: &Result<T, AppleApiError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(AppleApiError::Rejected(_)) => "rejected",
        Err(AppleApiError::Unavailable(_)) => "unavailable",
        Err(AppleApiError::UnexpectedResponse(_)) => "unexpected_response",
    };
    metrics::counter!("siwa_apple_calls_total", "endpoint" => endpoint, "outcome" => outcome)
        .increment(1);
}
