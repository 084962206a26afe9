//! The app's side: signing in with Apple against a siwa server, and keeping the session.
//!
//! The flow, for an app (docs/apple-protocol.md, F7, F14):
//! 1. [`Client::start_sign_in`] makes a [`SignInAttempt`]: a fresh raw nonce, kept here in
//!    memory, and its hash, which the app gives Apple (`ASAuthorizationAppleIDRequest.nonce`).
//! 2. Apple answers the app with a credential; [`Client::complete_sign_in`] takes it as an
//!    [`AppleCredential`], checks it locally before any network call (the token decodes, its
//!    `nonce` is the attempt's hash, its `sub` is the credential's user), then sends the token,
//!    the authorization code, the raw nonce and the name to the server's `POST /v1/auth/apple`.
//! 3. The server answers with the user and a session. The session is saved through the app's
//!    [`SessionStore`] (the Keychain on iOS) and its access token is refreshed shortly before it
//!    expires; concurrent callers share one refresh.
//!
//! Nothing but the session is stored. The raw nonce never leaves memory except towards the
//! server, and no error or log line carries a token, a nonce or an email.

mod backend;
mod browser;
mod credential;
mod error;
mod session;
mod store;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::api::{ErrorCode, ErrorMeaning};
use crate::clock::{Clock, SystemClock};
use crate::nonce::RawNonce;

use backend::Backend;
use browser::BrowserAttempt;
use session::Session;

pub use credential::{AppleCredential, SignInAttempt};
pub use error::ClientError;
pub use session::User;
pub use store::{FileSessionStore, InMemorySessionStore, SessionStore, StoreError};

/// How a [`Client`] talks to its server.
#[derive(Clone)]
pub struct ClientConfig {
    /// The siwa server, e.g. `https://api.example.com`; its routes are under `/v1`.
    pub server_url: String,
    /// Time limit of one request to the server, connection included. Default 15 s.
    pub timeout: Duration,
    /// How long before its expiry an access token is refreshed, at most: a quarter of the
    /// token's lifetime when that is shorter, so that a short-lived token (a minute, say) is
    /// not refreshed the moment it arrives. Default 60 s.
    pub refresh_margin: Duration,
    /// The time source. Default: the system clock.
    pub clock: Arc<dyn Clock>,
}

impl ClientConfig {
    /// The defaults, for the server at `server_url`.
    pub fn new(server_url: impl Into<String>) -> Self {
        Self {
            server_url: server_url.into(),
            timeout: Duration::from_secs(15),
            refresh_margin: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Attempts whose raw nonce is kept at once: enough for a user who opens and cancels Apple's
/// sheet a few times, small enough that nothing accumulates.
const MAX_PENDING_ATTEMPTS: usize = 8;

/// A signed-in user's session with a siwa server, and the sign-in that starts it.
///
/// Every method may be called from several tasks at once.
pub struct Client {
    backend: Backend,
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    refresh_margin: i64,
    /// The session in memory, mirrored by the store: both change together under this lock
    /// (the store is synchronous). Never held across an `.await`.
    session: Mutex<Option<Session>>,
    /// Held while a refresh is in flight, so that concurrent callers share it.
    refresh_gate: tokio::sync::Mutex<()>,
    /// Raw nonces of the attempts started and not yet completed, oldest first.
    attempts: Mutex<VecDeque<RawNonce>>,
    /// The browser sign-in in progress, if any: starting another replaces it.
    browser_attempt: Mutex<Option<BrowserAttempt>>,
    /// The name of a credential whose sign-in failed, with its user: Apple gives the name
    /// once, so a retry with a new credential of the same user (which has none) sends it.
    /// Memory only; forgotten once a sign-in succeeds.
    unsent_name: Mutex<Option<UnsentName>>,
}

impl Client {
    /// A client for `config.server_url`, restoring the session `store` holds, if any.
    ///
    /// A stored session that cannot be read (written by an incompatible version, say) is
    /// discarded: the user signs in again.
    pub fn new(config: ClientConfig, store: Arc<dyn SessionStore>) -> Result<Self, ClientError> {
        let backend = Backend::new(&config.server_url, config.timeout)?;
        let session = match store.load()? {
            None => None,
            Some(stored) => match Session::from_stored(&stored) {
                Some(session) => Some(session),
                None => {
                    tracing::warn!("the stored session could not be read; it was discarded");
                    store.clear()?;
                    None
                }
            },
        };
        Ok(Self {
            backend,
            store,
            clock: config.clock,
            refresh_margin: i64::try_from(config.refresh_margin.as_secs()).unwrap_or(i64::MAX),
            session: Mutex::new(session),
            refresh_gate: tokio::sync::Mutex::new(()),
            attempts: Mutex::new(VecDeque::new()),
            browser_attempt: Mutex::new(None),
            unsent_name: Mutex::new(None),
        })
    }

    /// Starts a sign-in: give [`SignInAttempt::hashed_nonce`] to Apple's request, then pass the
    /// attempt and Apple's credential to [`Client::complete_sign_in`].
    pub fn start_sign_in(&self) -> SignInAttempt {
        let raw = RawNonce::generate();
        let attempt = SignInAttempt::new(&raw.hashed());
        let mut attempts = lock(&self.attempts);
        if attempts.len() == MAX_PENDING_ATTEMPTS {
            attempts.pop_front();
        }
        attempts.push_back(raw);
        attempt
    }

    /// Completes a sign-in with what Apple gave the app, and returns the signed-in user.
    ///
    /// The credential is checked before any network call; a mismatch is
    /// [`ClientError::NonceMismatch`] or [`ClientError::UserMismatch`]. An attempt can be
    /// completed again after a passing failure (network, server fault), and not after anything
    /// else: the server has spent or refused its nonce.
    pub async fn complete_sign_in(
        &self,
        attempt: &SignInAttempt,
        credential: &AppleCredential,
    ) -> Result<User, ClientError> {
        let raw = lock(&self.attempts)
            .iter()
            .find(|raw| attempt.is_for(raw))
            .cloned()
            .ok_or(ClientError::UnknownAttempt)?;
        credential.check(&raw)?;
        let credential = self.with_unsent_name(credential);
        let answer = self.backend.sign_in(&credential, &raw).await;
        {
            let mut unsent = lock(&self.unsent_name);
            match &answer {
                Ok(_) => *unsent = None,
                Err(_) if credential.full_name().is_some() => {
                    *unsent = Some(UnsentName {
                        user: credential.user.clone(),
                        given_name: credential.given_name.clone(),
                        family_name: credential.family_name.clone(),
                    });
                }
                Err(_) => {}
            }
        }
        if !matches!(&answer, Err(e) if e.is_transient()) {
            // The server has seen (and so spent) the nonce, or refused it for good.
            lock(&self.attempts).retain(|raw| !attempt.is_for(raw));
        }
        // A retry after a lost answer finds the credential spent (the first request signed
        // in): the app starts a new sign-in, as for any spent attempt.
        let answer = answer.map_err(|e| match e.server_code() {
            Some(ErrorCode::TokenReplayed | ErrorCode::NonceReplayed) => {
                ClientError::UnknownAttempt
            }
            _ => e,
        });
        let session = Session::started(answer?, &credential.user, self.clock.now());
        self.adopt(session).await
    }

    /// `credential`, with the name of a failed sign-in of the same user when it has none.
    fn with_unsent_name(&self, credential: &AppleCredential) -> AppleCredential {
        let mut credential = credential.clone();
        if credential.full_name().is_none()
            && let Some(unsent) = lock(&self.unsent_name)
                .as_ref()
                .filter(|u| u.user == credential.user)
        {
            credential.given_name = unsent.given_name.clone();
            credential.family_name = unsent.family_name.clone();
        }
        credential
    }

    /// Starts a sign-in through the browser, for an app that cannot show Apple's sheet
    /// (Android, Windows): returns the URL to open (the server's `GET /v1/web/sign-in`). The
    /// browser comes back to `app_redirect_uri` (one of the server's `SIWA_APP_REDIRECT_URIS`);
    /// pass that URL to [`Client::complete_browser_sign_in`]. The PKCE verifier stays in this
    /// client's memory; starting again replaces the attempt.
    ///
    /// The server is asked first whether it takes `app_redirect_uri`: one it does not list
    /// fails here with its code (`app_redirect_uri_not_allowed`), before any browser opens,
    /// rather than on a page the app never hears from.
    pub async fn start_browser_sign_in(
        &self,
        app_redirect_uri: &str,
    ) -> Result<String, ClientError> {
        let (attempt, url) = BrowserAttempt::start(self.backend.base(), app_redirect_uri)?;
        self.backend.check_app_redirect(app_redirect_uri).await?;
        *lock(&self.browser_attempt) = Some(attempt);
        Ok(url)
    }

    /// Completes a browser sign-in from the URL the browser came back to: trades its one-time
    /// code and the attempt's verifier for a session (`POST /v1/auth/exchange`). A cancel at
    /// Apple is [`ClientError::Cancelled`]. A URL that is not the attempt's callback is
    /// [`ClientError::UnknownAttempt`] and leaves the attempt; otherwise the attempt is spent
    /// unless the failure was passing.
    pub async fn complete_browser_sign_in(&self, callback_url: &str) -> Result<User, ClientError> {
        let (code, verifier) = {
            let attempt = lock(&self.browser_attempt);
            let attempt = attempt.as_ref().ok_or(ClientError::UnknownAttempt)?;
            (attempt.code_from(callback_url), attempt.verifier.clone())
        };
        let answer = match code {
            Ok(code) => self.backend.exchange(&code, &verifier).await,
            // Not the attempt's callback (another link the app was opened with): the attempt
            // stays for the real one.
            Err(ClientError::UnknownAttempt) => return Err(ClientError::UnknownAttempt),
            Err(error) => Err(error),
        };
        if !matches!(&answer, Err(e) if e.is_transient()) {
            lock(&self.browser_attempt).take();
        }
        let signed_in = answer?;
        let apple_user_id = signed_in.user.apple_user_id.clone();
        let session = Session::started(signed_in, &apple_user_id, self.clock.now());
        self.adopt(session).await
    }

    /// The signed-in user, as last known; `None` when signed out.
    pub fn current_user(&self) -> Option<User> {
        lock(&self.session).as_ref().map(|s| s.user.clone())
    }

    /// Apple's identifier of the signed-in user, for `getCredentialState(forUserID:)` at launch.
    pub fn apple_user_id(&self) -> Option<String> {
        lock(&self.session)
            .as_ref()
            .map(|s| s.apple_user_id.clone())
    }

    /// An access token for the server, refreshed first when it expires within the margin.
    ///
    /// When a refresh fails for a passing reason (network, server fault) and the token has not
    /// expired yet, the token is returned all the same.
    pub async fn access_token(&self) -> Result<String, ClientError> {
        let session = self.current_session()?;
        if !session.needs_refresh(self.clock.now(), self.refresh_margin) {
            return Ok(session.access_token);
        }
        match self.refresh(&session).await {
            Ok(fresh) => Ok(fresh.access_token),
            Err(e) if e.is_transient() && !session.has_expired(self.clock.now()) => {
                Ok(session.access_token)
            }
            Err(e) => Err(e),
        }
    }

    /// Refreshes the session now, whatever the access token's expiry (after the app comes back
    /// to the foreground, say). Concurrent calls share one refresh.
    pub async fn refresh_session(&self) -> Result<(), ClientError> {
        let session = self.current_session()?;
        self.refresh(&session).await.map(drop)
    }

    /// Reads the user from the server (`GET /v1/me`) and keeps it as the current user.
    pub async fn refresh_user(&self) -> Result<User, ClientError> {
        let (session, user) = self
            .authorized(|token| async move { self.backend.me(&token).await })
            .await?;
        let mut guard = lock(&self.session);
        if let Some(current) = guard.as_ref().filter(|s| s.is_same(&session)) {
            let updated = current.with_user(user.clone());
            self.write(&mut guard, Some(updated))?;
        }
        Ok(user)
    }

    /// Signs out: ends the session at the server (`POST /v1/auth/logout`) and forgets it here.
    /// The local session is forgotten even when the server cannot be reached.
    pub async fn sign_out(&self) -> Result<(), ClientError> {
        let Some(session) = lock(&self.session).clone() else {
            return Ok(());
        };
        if let Err(error) = self.backend.logout(&session.refresh_token).await {
            // The server's session expires by itself; the user asked to be signed out here.
            tracing::info!(
                code = error.code(),
                "the server did not confirm the sign-out"
            );
        }
        self.write(&mut lock(&self.session), None)
    }

    /// Deletes the account at the server (`DELETE /v1/me`), which also revokes Apple's tokens,
    /// then forgets the session. On failure the account and the session are kept.
    pub async fn delete_account(&self) -> Result<(), ClientError> {
        self.authorized(|token| async move { self.backend.delete_me(&token).await })
            .await?;
        self.write(&mut lock(&self.session), None)
    }

    /// The app learned from Apple that the user revoked its access
    /// (`getCredentialState` said revoked or not found): signs out locally.
    pub fn credential_revoked(&self) -> Result<(), ClientError> {
        self.write(&mut lock(&self.session), None)
    }

    fn current_session(&self) -> Result<Session, ClientError> {
        lock(&self.session).clone().ok_or(ClientError::NotSignedIn)
    }

    /// Refreshes `seen`, unless another caller did while this one waited at the gate.
    async fn refresh(&self, seen: &Session) -> Result<Session, ClientError> {
        let _gate = self.refresh_gate.lock().await;
        let current = self.current_session()?;
        if !current.is_same(seen) {
            return Ok(current);
        }
        let answer = self.backend.refresh(&current.refresh_token).await;
        let tokens = self.settle(&current, answer)?;
        let fresh = current.refreshed(tokens, self.clock.now());
        let mut guard = lock(&self.session);
        match guard.as_ref() {
            Some(s) if s.is_same(&current) => self.write(&mut guard, Some(fresh.clone()))?,
            // A sign-in or a sign-out while the refresh was in flight wins over it.
            Some(newer) => return Ok(newer.clone()),
            None => return Err(ClientError::NotSignedIn),
        }
        Ok(fresh)
    }

    /// Calls the server with an access token; after an `invalid_access_token` answer (the
    /// server's clock, or its key, disagrees with ours), refreshes once and tries again.
    /// Returns the session the answer was given in, and the answer.
    async fn authorized<T, F, Fut>(&self, call: F) -> Result<(Session, T), ClientError>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let token = self.access_token().await?;
        let session = self.current_session()?;
        match self.settle(&session, call(token).await) {
            Err(e)
                if e.server_code().map(ErrorCode::meaning)
                    == Some(ErrorMeaning::RefreshSession) =>
            {
                let fresh = self.refresh(&session).await?;
                let answer = call(fresh.access_token.clone()).await;
                let answer = self.settle(&fresh, answer)?;
                Ok((fresh, answer))
            }
            other => other.map(|answer| (session, answer)),
        }
    }

    /// An answer that says `session` is over ends it here too, unless a newer session has
    /// replaced it meanwhile.
    fn settle<T>(
        &self,
        session: &Session,
        answer: Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        match answer {
            Err(e) if e.ends_session() => {
                let mut guard = lock(&self.session);
                if guard.as_ref().is_some_and(|s| s.is_same(session))
                    && let Err(storage) = self.write(&mut guard, None)
                {
                    tracing::warn!(
                        code = storage.code(),
                        "the ended session could not be cleared"
                    );
                }
                Err(ClientError::SessionExpired)
            }
            other => other,
        }
    }

    /// Sets the session in memory and in the store while `guard` holds the session lock, so
    /// that the two never disagree about which session is the newest. Memory is updated even
    /// when the store fails: the running app goes on with the server's current tokens.
    /// Keeps a new sign-in's session: stored first, then current. A session the store cannot
    /// keep is undone rather than kept in memory only (the next launch would find no one
    /// signed in): it is ended at the server (best effort), whoever was signed in before
    /// stays, and the sign-in fails with `Storage`.
    async fn adopt(&self, session: Session) -> Result<User, ClientError> {
        let saved = {
            let mut guard = lock(&self.session);
            let saved = self.store.save(&session.to_stored());
            if saved.is_ok() {
                *guard = Some(session.clone());
            }
            saved
        };
        if let Err(error) = saved {
            if let Err(logout) = self.backend.logout(&session.refresh_token).await {
                tracing::warn!(
                    code = logout.code(),
                    "a sign-in that could not be stored could not be ended at the server"
                );
            }
            return Err(error.into());
        }
        Ok(session.user)
    }

    fn write(
        &self,
        guard: &mut MutexGuard<'_, Option<Session>>,
        session: Option<Session>,
    ) -> Result<(), ClientError> {
        let stored = session.as_ref().map(Session::to_stored);
        **guard = session;
        match stored {
            Some(stored) => self.store.save(&stored)?,
            None => self.store.clear()?,
        }
        Ok(())
    }
}

/// The name of a failed sign-in's credential, and whose it is.
struct UnsentName {
    user: String,
    given_name: Option<String>,
    family_name: Option<String>,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (each critical
/// section is a single assignment or read).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
