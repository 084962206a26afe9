//! Signing in through a browser (docs/apple-protocol.md, F13, P5, P6): the web page's, and a
//! native app's that can only open one (Android, Windows). The rules and time limits live
//! here; the browser's HTTP (cookies, where a request came from, the page) is `web`'s.
//!
//! - The start records a fresh `state` and nonce (single use, [`STATE_TTL_SECS`]) and binds the
//!   sign-in to its browser: the binding's hash is kept, the browser holds the binding.
//! - Apple's form post verifies and records the user, but signs no one in: the outcome waits
//!   under a one-time handle ([`COMPLETION_TTL_SECS`]) for the browser holding the binding.
//! - The completion gives the page a web session, or a native app a one-time code
//!   ([`EXCHANGE_CODE_TTL_SECS`], PKCE-bound) that it trades for a session.

use siwa_core::api::{SignInResponse, UserView};
use siwa_core::{
    AuthorizationResponse, AuthorizeError, CodeVerifier, FormPostUser, HashedNonce, RawNonce,
    Verifier,
};
use subtle::ConstantTimeEq;

use super::Accounts;
use super::sign_in::{Flow, SignIn};
use crate::error::ApiError;
use crate::store::{self, NewExchangeCode, WebCompletion, WebSignIn};
use crate::tokens::{self, SessionId, TokenHash, UserId, WebSessionSecret};

/// How long a browser may take at Apple's consent page.
pub const STATE_TTL_SECS: i64 = 600;
/// How long a native app's one-time code lives.
pub const EXCHANGE_CODE_TTL_SECS: i64 = 60;
/// How long a sign-in Apple's form post completed waits for its browser's redirect.
pub const COMPLETION_TTL_SECS: i64 = 60;

/// The web flow, as the accounts use it: its tokens' verifier (the Services ID alone: a web
/// token is not an app token) and the callback its codes are exchanged with.
pub struct BrowserFlow {
    pub verifier: Verifier,
    /// `{SIWA_PUBLIC_URL}/v1/web/callback`.
    pub callback_url: String,
}

/// A native app that opened the browser: where it is sent back, and the PKCE challenge its
/// one-time code is bound to.
#[derive(Clone)]
pub struct NativeApp {
    pub redirect_uri: String,
    pub code_challenge: String,
}

impl NativeApp {
    fn from_columns(redirect_uri: Option<String>, code_challenge: Option<String>) -> Option<Self> {
        Some(Self {
            redirect_uri: redirect_uri?,
            code_challenge: code_challenge?,
        })
    }

    fn columns(app: Option<&Self>) -> (Option<&str>, Option<&str>) {
        app.map(|a| (a.redirect_uri.as_str(), a.code_challenge.as_str()))
            .unzip()
    }
}

/// A web app (on one of `SIWA_WEB_ORIGINS`) that sent the browser to sign in: the page it
/// comes back to, and whether the sign-in runs in a popup, whose last page tells the opener.
#[derive(Clone)]
pub struct WebApp {
    pub return_to: String,
    pub popup: bool,
}

impl WebApp {
    fn from_columns(return_to: Option<String>, popup: bool) -> Option<Self> {
        Some(Self {
            return_to: return_to?,
            popup,
        })
    }

    fn columns(web_app: Option<&Self>) -> (Option<&str>, bool) {
        web_app.map_or((None, false), |w| (Some(w.return_to.as_str()), w.popup))
    }
}

/// A started sign-in: what the browser is sent to Apple with, and the binding it keeps.
pub struct BrowserStart {
    /// Apple's `state`.
    pub state: String,
    /// The nonce's hash, for Apple's request.
    pub hashed_nonce: HashedNonce,
    /// The binding cookie's value, and its hash (which names the cookie).
    pub binding: String,
    pub binding_hash: TokenHash,
}

/// A browser's sign-in, taken back at Apple's form post.
pub struct WebSignInBack {
    pub nonce: RawNonce,
    pub app: Option<NativeApp>,
    pub web_app: Option<WebApp>,
    /// `None` only for a sign-in started before bindings existed, which cannot complete.
    pub binding_hash: Option<TokenHash>,
}

/// What Apple's form post leads to.
pub enum CallbackOutcome {
    /// The user cancelled at Apple: the page's notice, or the native app or the web app sent
    /// back with Apple's error.
    Cancelled {
        app: Option<(NativeApp, String)>,
        web_app: Option<(WebApp, String)>,
    },
    /// Refused: the page shows the error, or the native app or the web app is sent back with
    /// its code.
    Failed {
        app: Option<NativeApp>,
        web_app: Option<WebApp>,
        error: ApiError,
    },
    /// Signed in, waiting for its browser: the one-time handle, and the binding's hash, which
    /// names the browser's cookie.
    Completed {
        handle: String,
        binding_hash: TokenHash,
    },
}

impl CallbackOutcome {
    fn failed(app: Option<NativeApp>, web_app: Option<WebApp>, error: ApiError) -> Self {
        Self::Failed {
            app,
            web_app,
            error,
        }
    }
}

/// The outcome of finishing a sign-in in its browser.
pub enum Completion {
    /// The page's sign-in, or a web app's: a new web session, whose secret goes in the
    /// cookie; the web app's browser is sent back to it.
    Page {
        session_secret: WebSessionSecret,
        web_app: Option<WebApp>,
    },
    /// A native app's: it is sent back to its URL with a one-time code.
    App {
        app_redirect_uri: String,
        code: String,
    },
    /// Unknown, used, expired, its user deleted meanwhile, or not this browser's (the
    /// binding cookie is missing or another's). The handle is spent all the same.
    Refused,
}

impl Accounts {
    /// Starts a browser's sign-in, for the page, a native `app` or a `web_app`.
    pub async fn start_in_browser(
        &self,
        app: Option<&NativeApp>,
        web_app: Option<&WebApp>,
    ) -> Result<BrowserStart, ApiError> {
        let state = tokens::new_token();
        let nonce = RawNonce::generate();
        // Login CSRF: the sign-in completes only in the browser that holds the binding.
        let binding = tokens::new_token();
        let binding_hash = TokenHash::of(&binding);
        let (app_redirect_uri, code_challenge) = NativeApp::columns(app);
        let (return_to, popup) = WebApp::columns(web_app);
        let now = self.now();
        let row = WebSignIn {
            nonce: nonce.expose(),
            app_redirect_uri,
            code_challenge,
            binding_hash: binding_hash.as_str(),
            return_to,
            popup,
        };
        self.store
            .start_web_sign_in(&state, &row, now, now + STATE_TTL_SECS)
            .await?;
        Ok(BrowserStart {
            state,
            hashed_nonce: nonce.hashed(),
            binding,
            binding_hash,
        })
    }

    /// Apple's cross-site form post: the `state` is taken back (single use), the identity
    /// token verified, the code exchanged and the user recorded; but no one is signed in here,
    /// since anyone can make a browser post these fields (login CSRF). The outcome waits under
    /// a one-time handle for the browser that started the sign-in.
    pub async fn receive_callback(&self, form: &AuthorizationResponse) -> CallbackOutcome {
        let cancelled = form.error.as_deref().map(str::parse)
            == Some(Ok(AuthorizeError::UserCancelledAuthorize));
        let Some(state) = form.state.as_deref().filter(|s| !s.is_empty()) else {
            if cancelled {
                return CallbackOutcome::Cancelled {
                    app: None,
                    web_app: None,
                };
            }
            return CallbackOutcome::failed(None, None, ApiError::InvalidState);
        };
        let pending = match self.take_browser_sign_in(state).await {
            Ok(Some(pending)) => pending,
            Ok(None) => return CallbackOutcome::failed(None, None, ApiError::InvalidState),
            Err(error) => return CallbackOutcome::failed(None, None, error),
        };
        let web_app = pending.web_app;
        if let Some(error) = form.error.as_deref() {
            if !cancelled {
                let error = ApiError::AppleAuthorizationFailed;
                return CallbackOutcome::failed(pending.app, web_app, error);
            }
            return CallbackOutcome::Cancelled {
                app: pending.app.map(|app| (app, error.to_owned())),
                web_app: web_app.map(|web_app| (web_app, error.to_owned())),
            };
        }
        let app = pending.app;
        let failed = |app, error| CallbackOutcome::failed(app, web_app.clone(), error);
        // Started before browsers were bound: it cannot be completed safely.
        let Some(binding_hash) = pending.binding_hash else {
            return failed(app, ApiError::InvalidState);
        };
        let (Some(code), Some(id_token)) = (form.code.as_deref(), form.id_token.as_deref()) else {
            let error = ApiError::bad_request("Apple's form post has no code or id_token");
            return failed(app, error);
        };
        // The name comes once, with the first authorization (P6): kept by the sign-in.
        let user_field = form.user.as_deref().and_then(FormPostUser::parse);
        let name = user_field.as_ref().and_then(|u| u.name.as_ref());
        let request = SignIn {
            flow: Flow::Web,
            identity_token: id_token,
            authorization_code: Some(code),
            raw_nonce: Some(pending.nonce),
            given_name: name.and_then(|n| n.first_name.as_deref()),
            family_name: name.and_then(|n| n.last_name.as_deref()),
        };
        match self
            .sign_in_from_browser(request, &binding_hash, app.as_ref(), web_app.as_ref())
            .await
        {
            Ok(handle) => CallbackOutcome::Completed {
                handle,
                binding_hash,
            },
            Err(error) => failed(app, error),
        }
    }

    /// Takes back the sign-in of Apple's `state`, once; `None` if unknown, used or expired.
    async fn take_browser_sign_in(&self, state: &str) -> Result<Option<WebSignInBack>, ApiError> {
        let row = self.store.take_web_sign_in(state, self.now()).await?;
        Ok(row.map(|row| WebSignInBack {
            nonce: RawNonce::new(row.nonce),
            app: NativeApp::from_columns(row.app_redirect_uri, row.code_challenge),
            web_app: WebApp::from_columns(row.return_to, row.popup),
            binding_hash: row.binding_hash.map(TokenHash::new),
        }))
    }

    /// Apple's form post signs a user in, but no one is signed in yet: anyone can make a
    /// browser post these fields (login CSRF). The outcome waits under a one-time handle,
    /// returned, for the browser holding the binding (`binding_hash`) to finish it.
    async fn sign_in_from_browser(
        &self,
        request: SignIn<'_>,
        binding_hash: &TokenHash,
        app: Option<&NativeApp>,
        web_app: Option<&WebApp>,
    ) -> Result<String, ApiError> {
        // No session: the browser that holds the binding gets one at the completion.
        let signed_in = self.sign_in_with(request, None).await?;
        let (app_redirect_uri, code_challenge) = NativeApp::columns(app);
        let (return_to, popup) = WebApp::columns(web_app);
        let completion = WebCompletion {
            binding_hash: binding_hash.as_str(),
            user_id: &signed_in.user.id,
            is_new_user: signed_in.is_new_user,
            app_redirect_uri,
            code_challenge,
            return_to,
            popup,
        };
        let now = self.now();
        Ok(self
            .store
            .record_web_completion(&completion, now, now + COMPLETION_TTL_SECS)
            .await?)
    }

    /// Finishes a sign-in in the browser holding `binding` (the binding cookie's value),
    /// once: a web session for the page, or a one-time code for a native app.
    pub async fn complete_in_browser(
        &self,
        handle: &str,
        binding: Option<&str>,
    ) -> Result<Completion, ApiError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(row) = store::take_web_completion(&mut tx, handle, now).await? else {
            tx.commit().await?;
            return Ok(Completion::Refused);
        };
        let bound = binding.is_some_and(|binding| {
            bool::from(
                tokens::token_hash(binding)
                    .as_bytes()
                    .ct_eq(row.binding_hash.as_bytes()),
            )
        });
        if !bound || store::user_by_id(&mut tx, &row.user_id).await?.is_none() {
            tx.commit().await?;
            return Ok(Completion::Refused);
        }
        let completion = match NativeApp::from_columns(row.app_redirect_uri, row.code_challenge) {
            Some(app) => {
                let new_code = NewExchangeCode {
                    user_id: &row.user_id,
                    is_new_user: row.is_new_user,
                    code_challenge: &app.code_challenge,
                    now,
                    expires_at: now + EXCHANGE_CODE_TTL_SECS,
                };
                let code = store::insert_exchange_code(&mut tx, &new_code).await?;
                Completion::App {
                    app_redirect_uri: app.redirect_uri,
                    code,
                }
            }
            None => {
                let ttl = self.rules.refresh_ttl_secs;
                let session_secret =
                    store::create_web_session(&mut tx, &row.user_id, now, ttl).await?;
                Completion::Page {
                    session_secret: WebSessionSecret::new(session_secret),
                    web_app: WebApp::from_columns(row.return_to, row.popup),
                }
            }
        };
        tx.commit().await?;
        Ok(completion)
    }

    /// Trades a native app's one-time code and PKCE verifier for a session, once. A second
    /// use of a code is refused and ends nothing: the session made by the first use lives on.
    pub async fn redeem_code(
        &self,
        code: &str,
        verifier: &CodeVerifier,
    ) -> Result<SignInResponse, ApiError> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(row) = store::take_exchange_code(&mut tx, code, now).await? else {
            tx.commit().await?;
            return Err(ApiError::InvalidExchangeCode);
        };
        if !verifier.answers(&row.code_challenge) {
            // Spent: a code whose verifier was guessed at is not left for more guesses.
            tx.commit().await?;
            return Err(ApiError::CodeVerifierMismatch);
        }
        let Some(user) = store::user_by_id(&mut tx, &row.user_id).await? else {
            tx.commit().await?;
            return Err(ApiError::InvalidExchangeCode);
        };
        let ttl = self.rules.refresh_ttl_secs;
        let session = store::create_session(&mut tx, &row.user_id, now, ttl).await?;
        tx.commit().await?;
        Ok(self.signed_in_answer(&user, row.is_new_user, session))
    }

    /// The user and session of the page's cookie (a web session's secret), if it is live.
    pub async fn web_session(
        &self,
        secret: &WebSessionSecret,
    ) -> Result<Option<(UserView, UserId, SessionId)>, ApiError> {
        let found = self.store.web_session(secret.as_str(), self.now()).await?;
        Ok(found.map(|(user, session_id)| {
            let id = UserId::new(user.id.clone());
            (UserView::from(&user), id, SessionId::new(session_id))
        }))
    }
}
