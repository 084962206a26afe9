//! Signing a user in, for every route that does: verify the identity token, check the nonce,
//! exchange the authorization code, then write the user in one transaction, with a session when
//! the route starts one (the app's; the browser's gets its own at the completion, the seed's
//! route none). Nothing is written before Apple has answered, so a failed exchange leaves no
//! half-made account.

use siwa_core::api::SignInResponse;
use siwa_core::{AppleApiError, IdentityClaims, OAuthErrorCode, RawNonce};

use super::Accounts;
use crate::apple::GatewayError;
use crate::error::ApiError;
use crate::store::{PendingName, Replay, SignInRecord, SignedIn};

/// A sign-in as a route received it.
pub struct SignIn<'a> {
    pub flow: Flow,
    pub identity_token: &'a str,
    pub authorization_code: Option<&'a str>,
    /// The raw nonce whose hash the token should carry: the app's, or the one the web flow
    /// kept for its `state`.
    pub raw_nonce: Option<RawNonce>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
}

/// Where the identity token and code come from: it decides the verifier (which audiences) and
/// how the code is exchanged ([`Accounts::verifier_for`], [`Accounts::redirect_uri_for`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// From an app: the token's audience is a bundle ID of `SIWA_APPLE_CLIENT_IDS`.
    App,
    /// From Apple's form post to our callback: the audience is the Services ID, and the code is
    /// exchanged with the callback as redirect URI (docs/apple-protocol.md, F13, P2).
    Web,
}

impl Accounts {
    /// Signs in from an app (`POST /v1/auth/apple`): the user and a new session.
    pub async fn sign_in(&self, request: SignIn<'_>) -> Result<SignInResponse, ApiError> {
        let ttl = Some(self.rules.refresh_ttl_secs);
        let signed_in = self.sign_in_with(request, ttl).await?;
        let session = signed_in.session.ok_or(ApiError::Internal)?;
        Ok(self.signed_in_answer(&signed_in.user, signed_in.is_new_user, session))
    }

    /// Signs a user in: verifies the identity token and its nonce, refuses a replay, exchanges
    /// the authorization code, then writes the user in one transaction, with a session of
    /// `session_ttl_secs` when given.
    pub(super) async fn sign_in_with(
        &self,
        request: SignIn<'_>,
        session_ttl_secs: Option<i64>,
    ) -> Result<SignedIn, ApiError> {
        let given_name = name_part("givenName", request.given_name)?;
        let family_name = name_part("familyName", request.family_name)?;
        let verifier = self.verifier_for(request.flow)?;
        let nonce = request.raw_nonce.as_ref();
        let claims = verifier.verify(request.identity_token, nonce).await?;
        // A token that carries a nonce is single-use only if its raw nonce comes with it: without
        // this, replaying it without `rawNonce` would sign in again (docs/apple-protocol.md, P4).
        if nonce.is_none() && claims.nonce.is_some() {
            return Err(ApiError::NonceMissing);
        }
        let nonce_hash = nonce.and(claims.nonce.as_deref());
        // Each identity token opens at most one session, nonce or not: a token without a nonce
        // that leaked (a request log, analytics) would otherwise mint sessions until it expires.
        let token_hash = crate::tokens::token_hash(request.identity_token);
        // A replay is refused before Apple is asked to exchange its code. Without an exchange
        // the write's own records refuse it, so the read would be one round trip for nothing.
        let exchanges =
            request.authorization_code.is_some_and(|c| !c.is_empty()) && self.apple.configured();
        if exchanges {
            match self.store.replayed(nonce_hash, &token_hash).await? {
                Some(Replay::Nonce) => return Err(ApiError::NonceReplayed),
                Some(Replay::IdentityToken) => return Err(ApiError::TokenReplayed),
                None => {}
            }
        }
        let name = PendingName {
            given_name: given_name.map(str::to_owned),
            family_name: family_name.map(str::to_owned),
        };
        let verified = Verified {
            claims: &claims,
            nonce_hash,
            token_hash: &token_hash,
            authorization_code: request.authorization_code,
            flow: request.flow,
            verifier,
        };
        match self.write_verified(verified, &name, session_ttl_secs).await {
            Ok(signed_in) => Ok(signed_in),
            Err(error) => {
                self.keep_name_through(&claims.sub, &name, &error).await;
                Err(error)
            }
        }
    }

    /// Exchanges the code and writes the user; a new user without a name of their own gets the
    /// one kept from a failed first sign-in, in the same transaction.
    async fn write_verified(
        &self,
        verified: Verified<'_>,
        name: &PendingName,
        session_ttl_secs: Option<i64>,
    ) -> Result<SignedIn, ApiError> {
        let Verified {
            claims,
            nonce_hash,
            token_hash,
            authorization_code,
            flow,
            verifier,
        } = verified;
        let apple_refresh_token = match authorization_code.filter(|c| !c.is_empty()) {
            Some(code) if self.apple.configured() => {
                let redirect_uri = self.redirect_uri_for(flow);
                Some(self.exchange(verifier, claims, code, redirect_uri).await?)
            }
            Some(_) => {
                tracing::debug!("authorization code ignored: no Apple credentials configured");
                None
            }
            None => None,
        };
        let record = SignInRecord {
            claims,
            nonce_hash,
            // A token whose nonce is recorded cannot sign in again: its nonce is refused, and
            // it is refused without its raw nonce (`nonce_missing`). Only a token without a
            // nonce needs a record of its own (a row less, under a random key, per sign-in).
            identity_token_hash: nonce_hash.is_none().then_some(token_hash),
            given_name: name.given_name.as_deref(),
            family_name: name.family_name.as_deref(),
            apple_refresh_token: apple_refresh_token.as_deref(),
            // A user made by a sign-in with no name takes one kept from a failed first
            // sign-in (Apple sends it once).
            take_kept_name: name.given_name.is_none() && name.family_name.is_none(),
            now: self.now(),
        };
        // A grant obtained for a sign-in that then fails (its nonce spent meanwhile by a concurrent
        // request, the database refusing the write) is dropped, not revoked: it is a token of the
        // user's one authorization of the app, and revoking it would end every device's sign-in
        // (docs/apple-protocol.md, F11). Only account deletion revokes.
        self.record_sign_in(record, session_ttl_secs).await
    }

    /// Keeps the name of a sign-in that failed after its identity token was verified for a passing
    /// reason (Apple, the database), for the user's next one: Apple sends it once. A refusal of
    /// the request itself keeps nothing: it would fail again, and a replay's name is not the
    /// user's first authorization's (a sign-in that lost a race to its twin left the name with
    /// the twin).
    async fn keep_name_through(&self, apple_sub: &str, name: &PendingName, error: &ApiError) {
        if name.given_name.is_none() && name.family_name.is_none() {
            return;
        }
        if error.code().meaning() != siwa_core::api::ErrorMeaning::RetryLater {
            return;
        }
        if let Err(kept) = self
            .store
            .keep_pending_name(apple_sub, name, self.now())
            .await
            // While the database is known to be down, its watch has said so.
            && !crate::store::KnownDown::is(&kept)
        {
            // Never the name itself: only that it could not be kept.
            tracing::warn!(error = %kept, "the name of a failed first sign-in could not be kept");
        }
    }

    /// Writes a sign-in and counts it, for every route.
    async fn record_sign_in(
        &self,
        record: SignInRecord<'_>,
        session_ttl_secs: Option<i64>,
    ) -> Result<SignedIn, ApiError> {
        let signed_in = self.store.sign_in(record, session_ttl_secs).await?;
        let new_user = if signed_in.is_new_user {
            "true"
        } else {
            "false"
        };
        metrics::counter!("siwa_sign_ins_total", "new_user" => new_user).increment(1);
        Ok(signed_in)
    }

    /// Exchanges the code for Apple's refresh token, with the token's audience as client id (an
    /// app's code is exchanged with its bundle ID: pitfall 2), and checks that the code belongs to
    /// the same user as the identity token.
    async fn exchange(
        &self,
        verifier: &siwa_core::Verifier,
        claims: &IdentityClaims,
        code: &str,
        redirect_uri: Option<&str>,
    ) -> Result<String, ApiError> {
        let tokens = self
            .apple
            .exchange_code(&claims.aud, code, redirect_uri)
            .await
            .map_err(|e| match e {
                GatewayError::Apple(AppleApiError::Rejected(r))
                    if r.error == OAuthErrorCode::InvalidGrant =>
                {
                    ApiError::AuthorizationCodeRejected
                }
                GatewayError::Apple(AppleApiError::Unavailable(_)) => ApiError::AppleUnavailable,
                other => ApiError::AppleExchangeFailed {
                    message: "Apple refused the server's credentials or answered unexpectedly",
                    detail: Some(other.to_string()),
                },
            })?;
        // This token comes straight from Apple over TLS, which OpenID Connect accepts in place of
        // its signature (docs/apple-protocol.md, F10). Checking the signature would tie a spent
        // code to the key set: a key rotation inside a refetch cooldown would refuse it.
        let from_code = siwa_core::decode_unverified(&tokens.id_token)
            .map_err(|_| unexpected_answer("Apple's id_token could not be read"))?
            .claims;
        verifier.check_issuer_and_audience(&from_code.iss, &from_code.aud)?;
        if from_code.aud != claims.aud {
            return Err(siwa_core::VerifyError::WrongAudience.into());
        }
        if from_code.sub != claims.sub {
            return Err(ApiError::AuthorizationCodeMismatch);
        }
        tokens
            .refresh_token
            .ok_or_else(|| unexpected_answer("Apple's answer had no refresh token"))
    }

    /// The seed's sign-in: the same verification and user record, for the seed's profile only
    /// (its clients have no use for a session). As the seed did, it takes a token more than once.
    pub async fn sign_in_compat(
        &self,
        identity_token: &str,
    ) -> Result<(IdentityClaims, bool), ApiError> {
        let claims = self
            .verifier_for(Flow::App)?
            .verify(identity_token, None)
            .await?;
        let record = SignInRecord::user_only(&claims, self.now());
        let signed_in = self.record_sign_in(record, None).await?;
        Ok((claims, signed_in.is_new_user))
    }
}

/// A sign-in whose identity token was verified and is no replay.
struct Verified<'a> {
    claims: &'a IdentityClaims,
    nonce_hash: Option<&'a str>,
    token_hash: &'a str,
    authorization_code: Option<&'a str>,
    flow: Flow,
    verifier: &'a siwa_core::Verifier,
}

/// The longest name part kept, in characters: Apple's own fields are far shorter.
const MAX_NAME_CHARS: usize = 100;

/// A part of the name as given by the app: trimmed, empty as none, and refused when it holds
/// control characters (PostgreSQL cannot store NUL) or is longer than any real name.
fn name_part<'a>(field: &str, part: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    let Some(part) = part.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if part.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "fullName.{field} contains control characters"
        )));
    }
    if part.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "fullName.{field} is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(Some(part))
}

fn unexpected_answer(message: &'static str) -> ApiError {
    ApiError::AppleExchangeFailed {
        message,
        detail: None,
    }
}
