//! Fault injection and request counters, per Apple endpoint.
//!
//! Tests use the counters to assert "exactly one JWKS fetch", and faults to make an endpoint
//! slow, failing or garbled for the next N requests or until cleared.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The Apple endpoints the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Endpoint {
    /// `GET /auth/keys`
    Keys,
    /// `GET /.well-known/openid-configuration`
    Discovery,
    /// `POST /auth/token`
    Token,
    /// `POST /auth/revoke`
    Revoke,
    /// `GET|POST /auth/authorize`
    Authorize,
    /// `POST /auth/usermigrationinfo`
    UserMigrationInfo,
}

impl Endpoint {
    pub const ALL: [Endpoint; 6] = [
        Self::Keys,
        Self::Discovery,
        Self::Token,
        Self::Revoke,
        Self::Authorize,
        Self::UserMigrationInfo,
    ];

    pub fn from_path(path: &str) -> Option<Self> {
        use siwa_core::apple_side::*;
        match path {
            KEYS_PATH => Some(Self::Keys),
            DISCOVERY_PATH => Some(Self::Discovery),
            TOKEN_PATH => Some(Self::Token),
            REVOKE_PATH => Some(Self::Revoke),
            AUTHORIZE_PATH => Some(Self::Authorize),
            USER_MIGRATION_INFO_PATH => Some(Self::UserMigrationInfo),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Keys => "keys",
            Self::Discovery => "discovery",
            Self::Token => "token",
            Self::Revoke => "revoke",
            Self::Authorize => "authorize",
            Self::UserMigrationInfo => "usermigrationinfo",
        }
    }
}

/// What to do to an endpoint's answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: u64,
    /// Answer with this status instead of the real answer.
    #[serde(default)]
    pub status: Option<u16>,
    /// Answer with a body that is not what the endpoint normally sends.
    #[serde(default)]
    pub malformed_body: bool,
    /// Apply to this many requests, then clear itself; absent: until cleared.
    #[serde(default)]
    pub count: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Faults {
    active: HashMap<Endpoint, Fault>,
    counters: HashMap<Endpoint, u64>,
}

impl Faults {
    pub fn set(&mut self, endpoint: Endpoint, fault: Fault) {
        self.active.insert(endpoint, fault);
    }

    pub fn clear(&mut self, endpoint: Option<Endpoint>) {
        match endpoint {
            Some(endpoint) => {
                self.active.remove(&endpoint);
            }
            None => self.active.clear(),
        }
    }

    /// Counts a request to `endpoint` and returns the fault to apply to it, if any.
    pub fn on_request(&mut self, endpoint: Endpoint) -> Option<Fault> {
        *self.counters.entry(endpoint).or_default() += 1;
        let fault = self.active.get_mut(&endpoint)?;
        let applied = fault.clone();
        match &mut fault.count {
            Some(1) => {
                self.active.remove(&endpoint);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        Some(applied)
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.counters.get(&endpoint).copied().unwrap_or(0)
    }

    pub fn counters(&self) -> HashMap<Endpoint, u64> {
        Endpoint::ALL.iter().map(|e| (*e, self.count(*e))).collect()
    }

    pub fn reset_counters(&mut self) {
        self.counters.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_fault_clears_itself() {
        let mut faults = Faults::default();
        faults.set(
            Endpoint::Keys,
            Fault {
                status: Some(500),
                count: Some(2),
                ..Fault::default()
            },
        );
        assert!(faults.on_request(Endpoint::Keys).is_some());
        assert!(faults.on_request(Endpoint::Keys).is_some());
        assert!(faults.on_request(Endpoint::Keys).is_none());
        assert_eq!(faults.count(Endpoint::Keys), 3);
        assert_eq!(faults.count(Endpoint::Token), 0);
    }

    #[test]
    fn an_uncounted_fault_lasts_until_cleared() {
        let mut faults = Faults::default();
        faults.set(
            Endpoint::Token,
            Fault {
                delay_ms: 5,
                ..Fault::default()
            },
        );
        for _ in 0..10 {
            assert!(faults.on_request(Endpoint::Token).is_some());
        }
        faults.clear(Some(Endpoint::Token));
        assert!(faults.on_request(Endpoint::Token).is_none());
    }
}
