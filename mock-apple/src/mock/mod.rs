//! The mock's state and every operation on it. The HTTP routes (Apple's and the control API)
//! and the library handle all call these methods, so the two faces cannot drift apart. One
//! file per audience: Apple's endpoints (`apple`), the consent page (`consent`), the control
//! API (`control`), the notification sender (`notifications`).

mod apple;
mod consent;
mod control;
mod notifications;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use siwa_core::apple_side::RegisteredDeveloperKey;
use siwa_core::{Clock, DeveloperKey};

use crate::clock::MockClock;
use crate::directory::{Directory, DirectoryError, Identity, TestUser};
use crate::faults::Faults;
use crate::grants::Grants;
use crate::identity::{self, TokenAlgorithm};
use crate::keys::{KeyError, SigningKeys};
use crate::teams::{self, Teams};

pub use notifications::{NotificationRequest, SentNotification};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub kid: String,
    pub published: bool,
    pub signing: bool,
}

struct State {
    keys: SigningKeys,
    directory: Directory,
    grants: Grants,
    faults: Faults,
    developer_keys: HashMap<String, RegisteredDeveloperKey>,
    /// The client ids a developer key is enabled for, by key id: the key's primary App ID and
    /// the App IDs and Services IDs grouped with it, as the developer portal configures them.
    /// A key without an entry serves any client id of its team.
    key_clients: HashMap<String, Vec<String>>,
    /// The private halves of the developer keys the mock generated, newest last, so that
    /// `curl` users can have client secrets made for them.
    generated_keys: Vec<DeveloperKey>,
    /// Which team owns each client id, its transfers, and migration access tokens.
    teams: Teams,
}

impl State {
    /// How `user` appears to `client_id` at `now`: the directory's identity, scoped to the team
    /// that owns the client (its `sub`, its relay address, and `transfer_sub` for 60 days after
    /// a transfer).
    fn identity_for(
        &self,
        user: &TestUser,
        client_id: &str,
        hide_email: bool,
        now: i64,
    ) -> Identity {
        let mut identity = self.directory.identity(user, client_id, hide_email);
        if let Some(client) = self.teams.client(client_id) {
            identity.sub = teams::team_sub(&user.sub, &client.original, &client.current);
            if identity.is_private_email {
                identity.email = Some(crate::directory::relay_email_on(
                    &identity.sub,
                    client_id,
                    &user.relay_domain,
                ));
            }
            if client.in_window(now) {
                identity.transfer_sub = Some(teams::transfer_sub(&user.sub, &client.current));
            }
        }
        identity
    }
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
            key_clients: HashMap::new(),
            generated_keys: Vec::new(),
            teams: Teams::default(),
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
