//! What the consent page does: find the user, and complete an authorization as Apple does
//! (the user's choices kept from the first one, a code bound to the client and redirect URI).

use serde_json::json;

use crate::directory::TestUser;
use crate::identity::{self, BooleanForm};

use super::{Mock, sign_rs256};

/// The outcome of a completed authorization on the consent page.
pub(crate) struct Authorized {
    pub code: String,
    pub id_token: String,
    /// The user's first authorization of this client: the only time Apple sends the name.
    pub first: bool,
    /// The address the app sees (the relay address when hidden).
    pub email: Option<String>,
}

impl Mock {
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
        let mut identity = state.identity_for(user, client_id, hide_email, now);
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
}
