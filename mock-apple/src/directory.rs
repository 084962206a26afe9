//! The test user directory: who can sign in, and which apps each has authorized.
//!
//! Apple shows the name and email sheet, and sends the user's name, only on the first
//! authorization of a user for an app; later sign-ins reuse the choice made then. Revoking the
//! app's tokens (or the user revoking consent) resets that, so the sheet shows again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::random;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestUser {
    pub sub: String,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    /// 0 unsupported, 1 unknown, 2 likely real.
    pub real_user_status: u8,
    /// The domain of this user's private relay addresses ([`RELAY_DOMAINS`]).
    pub relay_domain: String,
}

/// A user to add; missing fields are made up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub sub: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub real_user_status: Option<u8>,
    /// `privaterelay.appleid.com` (the default) or `private.icloud.com`, on which Apple
    /// issues new relay addresses since June 2026.
    pub relay_domain: Option<String>,
}

/// What a user agreed to share with an app at its first authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    pub hide_email: bool,
}

/// The user as an identity token describes them to one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: Option<String>,
    pub is_private_email: bool,
    pub real_user_status: u8,
    /// The transfer identifier, for 60 days after the app moved to another team (`teams`).
    pub transfer_sub: Option<String>,
}

/// Apple's relay domains: the first is where addresses have always been, the second where
/// Apple issues new ones since June 2026.
pub const RELAY_DOMAINS: [&str; 2] = ["privaterelay.appleid.com", "private.icloud.com"];

/// The private relay address of a user for an app, on the first relay domain: stable, and
/// different for every app. (Apple scopes it to the developer team; the mock, which knows no
/// teams, to the client id.)
pub fn relay_email(sub: &str, client_id: &str) -> String {
    relay_email_on(sub, client_id, RELAY_DOMAINS[0])
}

/// The private relay address of a user for an app on `domain`.
pub fn relay_email_on(sub: &str, client_id: &str, domain: &str) -> String {
    let digest = Sha256::digest(format!("{sub}\n{client_id}").as_bytes());
    format!("{}@{domain}", &hex::encode(digest)[..10])
}

#[derive(Debug)]
pub struct Directory {
    users: Vec<TestUser>,
    authorizations: HashMap<(String, String), Authorization>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("a user with that sub or email already exists")]
    Exists,
    #[error("real_user_status is 0, 1 or 2")]
    BadRealUserStatus,
    #[error("relayDomain is privaterelay.appleid.com or private.icloud.com")]
    BadRelayDomain,
}

impl Default for Directory {
    fn default() -> Self {
        let jane = TestUser {
            sub: "001234.0123456789abcdef0123456789abcdef.1234".into(),
            email: "jane.appleseed@example.com".into(),
            given_name: "Jane".into(),
            family_name: "Appleseed".into(),
            real_user_status: 2,
            relay_domain: RELAY_DOMAINS[0].into(),
        };
        Self {
            users: vec![jane],
            authorizations: HashMap::new(),
        }
    }
}

impl Directory {
    pub fn users(&self) -> &[TestUser] {
        &self.users
    }

    /// The user signing in when nobody is named: the first one.
    pub fn default_user(&self) -> Option<&TestUser> {
        self.users.first()
    }

    pub fn get(&self, sub: &str) -> Option<&TestUser> {
        self.users.iter().find(|u| u.sub == sub)
    }

    pub fn find_by_email(&self, email: &str) -> Option<&TestUser> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    pub fn add(&mut self, new: NewUser) -> Result<TestUser, DirectoryError> {
        let status = new.real_user_status.unwrap_or(2);
        if status > 2 {
            return Err(DirectoryError::BadRealUserStatus);
        }
        let relay_domain = new
            .relay_domain
            .unwrap_or_else(|| RELAY_DOMAINS[0].to_owned());
        if !RELAY_DOMAINS.contains(&relay_domain.as_str()) {
            return Err(DirectoryError::BadRelayDomain);
        }
        let sub = new
            .sub
            .filter(|s| !s.is_empty())
            .unwrap_or_else(random::apple_sub);
        let email = new
            .email
            .unwrap_or_else(|| format!("user.{}@example.com", random::hex::<4>()));
        if self.get(&sub).is_some() || self.find_by_email(&email).is_some() {
            return Err(DirectoryError::Exists);
        }
        let user = TestUser {
            sub,
            email,
            given_name: new.given_name.unwrap_or_else(|| "Test".into()),
            family_name: new.family_name.unwrap_or_else(|| "User".into()),
            real_user_status: status,
            relay_domain,
        };
        self.users.push(user.clone());
        Ok(user)
    }

    pub fn remove(&mut self, sub: &str) {
        self.users.retain(|u| u.sub != sub);
        self.authorizations.retain(|(s, _), _| s != sub);
    }

    pub fn authorization(&self, sub: &str, client_id: &str) -> Option<Authorization> {
        self.authorizations
            .get(&(sub.to_owned(), client_id.to_owned()))
            .copied()
    }

    pub fn authorize(&mut self, sub: &str, client_id: &str, authorization: Authorization) {
        self.authorizations
            .insert((sub.to_owned(), client_id.to_owned()), authorization);
    }

    pub fn forget_authorization(&mut self, sub: &str, client_id: &str) {
        self.authorizations
            .remove(&(sub.to_owned(), client_id.to_owned()));
    }

    /// How the user appears to `client_id`, given whether they hid their email.
    pub fn identity(&self, user: &TestUser, client_id: &str, hide_email: bool) -> Identity {
        let email = if hide_email {
            relay_email_on(&user.sub, client_id, &user.relay_domain)
        } else {
            user.email.clone()
        };
        Identity {
            sub: user.sub.clone(),
            email: Some(email),
            is_private_email: hide_email,
            real_user_status: user.real_user_status,
            transfer_sub: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_address_is_on_the_users_relay_domain() {
        let mut directory = Directory::default();
        for domain in RELAY_DOMAINS {
            let user = directory
                .add(NewUser {
                    relay_domain: Some(domain.into()),
                    ..Default::default()
                })
                .unwrap();
            let hidden = directory.identity(&user, "com.example.app", true);
            assert!(hidden.is_private_email);
            assert!(hidden.email.unwrap().ends_with(&format!("@{domain}")));
            let shared = directory.identity(&user, "com.example.app", false);
            assert_eq!(shared.email.as_deref(), Some(user.email.as_str()));
        }
        let refused = directory.add(NewUser {
            relay_domain: Some("icloud.com".into()),
            ..Default::default()
        });
        assert!(matches!(refused, Err(DirectoryError::BadRelayDomain)));
    }
}
