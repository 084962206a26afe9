//! The control API's operations: tokens with any claims, signing keys, faults, counters,
//! developer keys, test users, the clock and reset.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use siwa_core::apple_side::{RegisteredDeveloperKey, is_apple_id};
use siwa_core::{DeveloperKey, RawNonce};

use crate::directory::{Directory, Identity, NewUser, TestUser};
use crate::faults::{Endpoint, Fault, Faults};
use crate::grants::Grants;
use crate::identity::{self, IdentityTokenRequest, MintedIdentityToken};
use crate::keys::SigningKey;
use crate::random;

use super::{GeneratedDeveloperKey, KeyInfo, Mock, MockError};

impl Mock {
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
                Some(user) => state.identity_for(user, &client_id, request.hide_email, now),
                None => Identity {
                    sub: sub.clone(),
                    email: None,
                    is_private_email: false,
                    real_user_status: 2,
                    transfer_sub: None,
                },
            },
            None => {
                let user = state
                    .directory
                    .default_user()
                    .ok_or(MockError::UnknownUser)?;
                state.identity_for(user, &client_id, request.hide_email, now)
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
        let mut state = self.state();
        state.developer_keys.insert(key_id.to_owned(), key);
        state.key_clients.remove(key_id);
        Ok(())
    }

    /// Enables a registered developer key for these client ids only (its primary App ID and the
    /// identifiers grouped with it), as the portal's Sign in with Apple configuration does; a
    /// client secret for any other client id is then `invalid_client`. Without this call a key
    /// serves every client id.
    pub fn enable_developer_key_for(
        &self,
        key_id: &str,
        client_ids: &[String],
    ) -> Result<(), MockError> {
        let mut state = self.state();
        if !state.developer_keys.contains_key(key_id) {
            return Err(MockError::DeveloperKey("no developer key has that key id"));
        }
        if client_ids.is_empty() {
            return Err(MockError::DeveloperKey(
                "a key is enabled for at least its primary App ID",
            ));
        }
        state
            .key_clients
            .insert(key_id.to_owned(), client_ids.to_vec());
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

    /// Gives `client_id` to `team_id` (its first owner: no transfer).
    pub fn assign_client_team(&self, client_id: &str, team_id: &str) -> Result<(), MockError> {
        if !is_apple_id(team_id) {
            return Err(MockError::InvalidRequest(
                "a Team ID is 10 upper-case letters and digits".into(),
            ));
        }
        self.state().teams.assign(client_id, team_id);
        Ok(())
    }

    /// Completes the transfer of `client_id` to `to_team` now; returns when (the mock's clock).
    pub fn transfer_client(&self, client_id: &str, to_team: &str) -> Result<i64, MockError> {
        if !is_apple_id(to_team) {
            return Err(MockError::InvalidRequest(
                "a Team ID is 10 upper-case letters and digits".into(),
            ));
        }
        let now = self.now();
        self.state()
            .teams
            .transfer(client_id, to_team, now)
            .map_err(|e| MockError::InvalidRequest(e.to_string()))?;
        Ok(now)
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
        state.key_clients.clear();
        state.generated_keys.clear();
        state.teams = crate::teams::Teams::default();
        self.clock.reset();
    }
}
