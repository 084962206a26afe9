//! Developer teams and app transfers (Apple's "Transferring your apps and users to another
//! team", "Bringing new apps and users into your team", TN3159; docs/apple-protocol.md, F16).
//!
//! A user's `sub` and relay addresses are scoped to a team: when a client id moves to another
//! team, its identity tokens carry the user's `sub` under the new team, a new relay address,
//! and for 60 days `transfer_sub`, the transfer identifier, one per user and recipient team.
//! Both teams may use the migration endpoint during those 60 days: the sending team to get a
//! user's transfer identifier, the recipient to exchange it for the user under its team.
//!
//! A client id belongs to the team that first claims it (a control call, or the first team
//! to ask for a migration token); before any transfer its users keep their directory `sub`.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// How long after a transfer tokens carry `transfer_sub` and the migration endpoint answers.
pub const TRANSFER_WINDOW_SECS: i64 = 60 * 86_400;
/// How long a migration access token (`client_credentials`) lives.
pub const MIGRATION_TOKEN_LIFETIME_SECS: i64 = 3600;

/// Who owns a client id, and its last transfer.
#[derive(Debug, Clone)]
pub struct ClientTeam {
    /// The team before any transfer: its users' `sub` is the directory's.
    pub original: String,
    pub current: String,
    pub transfer: Option<Transfer>,
}

#[derive(Debug, Clone)]
pub struct Transfer {
    pub from: String,
    /// When the transfer completed (the mock's clock).
    pub at: i64,
}

/// A migration access token's grant.
#[derive(Debug, Clone)]
pub struct MigrationGrant {
    pub team: String,
    pub client_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Default)]
pub struct Teams {
    clients: HashMap<String, ClientTeam>,
    grants: HashMap<String, MigrationGrant>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("the client id belongs to no team yet: assign it first")]
    Unassigned,
    #[error("the client id already belongs to that team")]
    SameTeam,
}

/// Why a team may not use the migration endpoint for a client id.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Neither its owner nor the team that transferred it.
    OtherTeam,
    /// The team that transferred it, after the 60 days.
    PeriodOver,
}

impl ClientTeam {
    /// Whether `team` may use the migration endpoint for this client id at `now`: its owner,
    /// or the team it was transferred from during the 60 days after (TN3159).
    pub fn admits(&self, team: &str, now: i64) -> Result<(), Refusal> {
        match &self.transfer {
            _ if self.current == team => Ok(()),
            Some(t) if t.from == team && self.in_window(now) => Ok(()),
            Some(t) if t.from == team => Err(Refusal::PeriodOver),
            _ => Err(Refusal::OtherTeam),
        }
    }

    /// Whether `now` is within the 60 days after the transfer.
    pub fn in_window(&self, now: i64) -> bool {
        self.transfer
            .as_ref()
            .is_some_and(|t| now < t.at + TRANSFER_WINDOW_SECS)
    }
}

impl Teams {
    pub fn client(&self, client_id: &str) -> Option<&ClientTeam> {
        self.clients.get(client_id)
    }

    /// Gives `client_id` to `team` as its first owner (no transfer); a client already
    /// transferred keeps its history.
    pub fn assign(&mut self, client_id: &str, team: &str) {
        let entry = self
            .clients
            .entry(client_id.to_owned())
            .or_insert_with(|| ClientTeam {
                original: team.to_owned(),
                current: team.to_owned(),
                transfer: None,
            });
        if entry.transfer.is_none() {
            entry.original = team.to_owned();
            entry.current = team.to_owned();
        }
    }

    /// The owner of `client_id`, which `team` claims when it has none.
    pub fn claim(&mut self, client_id: &str, team: &str) -> &ClientTeam {
        self.clients
            .entry(client_id.to_owned())
            .or_insert_with(|| ClientTeam {
                original: team.to_owned(),
                current: team.to_owned(),
                transfer: None,
            })
    }

    /// Moves `client_id` to `to` at `now`, as App Store Connect completes a transfer.
    pub fn transfer(&mut self, client_id: &str, to: &str, now: i64) -> Result<(), TransferError> {
        let client = self
            .clients
            .get_mut(client_id)
            .ok_or(TransferError::Unassigned)?;
        if client.current == to {
            return Err(TransferError::SameTeam);
        }
        client.transfer = Some(Transfer {
            from: std::mem::replace(&mut client.current, to.to_owned()),
            at: now,
        });
        Ok(())
    }

    pub fn grant(&mut self, token: String, grant: MigrationGrant) {
        self.grants
            .retain(|_, g| g.expires_at > grant.expires_at - MIGRATION_TOKEN_LIFETIME_SECS);
        self.grants.insert(token, grant);
    }

    /// The grant of a live migration access token.
    pub fn granted(&self, token: &str, now: i64) -> Option<&MigrationGrant> {
        self.grants.get(token).filter(|g| g.expires_at > now)
    }
}

/// A user's `sub` under `team` for a client whose first owner was `original`: the directory's
/// own under the first owner, a stable other one under any other team.
pub fn team_sub(directory_sub: &str, original: &str, team: &str) -> String {
    if team == original {
        return directory_sub.to_owned();
    }
    apple_shaped("sub", directory_sub, team)
}

/// The transfer identifier of a user for the recipient team `to`: one per user and team,
/// whatever app of the sending team.
pub fn transfer_sub(directory_sub: &str, to: &str) -> String {
    apple_shaped("transfer", directory_sub, to)
}

/// An identifier shaped as Apple's (`001234.<32 hex>.1234`), derived from its inputs.
fn apple_shaped(kind: &str, directory_sub: &str, team: &str) -> String {
    let digest = Sha256::digest(format!("{kind}\n{directory_sub}\n{team}").as_bytes());
    let number = |bytes: &[u8]| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    format!(
        "{:06}.{}.{:04}",
        number(&digest[..4]) % 1_000_000,
        hex::encode(&digest[4..20]),
        number(&digest[20..24]) % 10_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_is_the_directorys_under_the_first_team_and_another_under_each_other() {
        let sub = "001234.0123456789abcdef0123456789abcdef.1234";
        assert_eq!(team_sub(sub, "TEAMAAAAAA", "TEAMAAAAAA"), sub);
        let b = team_sub(sub, "TEAMAAAAAA", "TEAMBBBBBB");
        assert_ne!(b, sub);
        assert_eq!(b, team_sub(sub, "TEAMAAAAAA", "TEAMBBBBBB"), "stable");
        assert_eq!(b.len(), sub.len(), "shaped as Apple's: {b}");
        assert_ne!(transfer_sub(sub, "TEAMBBBBBB"), b);
        assert_ne!(
            transfer_sub(sub, "TEAMBBBBBB"),
            transfer_sub(sub, "TEAMCCCCCC")
        );
    }

    #[test]
    fn a_transfer_needs_an_owner_and_another_team_and_opens_a_window() {
        let mut teams = Teams::default();
        assert_eq!(
            teams.transfer("com.example.app", "TEAMBBBBBB", 0),
            Err(TransferError::Unassigned)
        );
        teams.assign("com.example.app", "TEAMAAAAAA");
        assert_eq!(
            teams.transfer("com.example.app", "TEAMAAAAAA", 0),
            Err(TransferError::SameTeam)
        );
        teams
            .transfer("com.example.app", "TEAMBBBBBB", 100)
            .unwrap();
        let client = teams.client("com.example.app").unwrap();
        assert_eq!(client.current, "TEAMBBBBBB");
        assert_eq!(client.original, "TEAMAAAAAA");
        assert!(client.in_window(100 + TRANSFER_WINDOW_SECS - 1));
        assert!(!client.in_window(100 + TRANSFER_WINDOW_SECS));
    }
}
