//! The web flow's short-lived rows: browsers sent to Apple (found again by their `state`),
//! sign-ins Apple's form post completed that wait for their browser (by a one-time handle), and
//! the one-time codes native apps trade for a session. All are single use: taken with a
//! `DELETE ... RETURNING`, so of two concurrent uses exactly one gets the row.

use siwa_core::{CodeVerifier, RawNonce};
use sqlx::{Any, Transaction};
use subtle::ConstantTimeEq;

use super::sessions::{NewSession, create_session, create_web_session};
use super::{Store, User};
use crate::tokens;

/// A native app that opened the browser: where it is sent back, and the PKCE challenge its
/// one-time code is bound to. Stored as two columns, both set or both null.
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

/// A browser on its way to Apple.
pub struct WebSignIn {
    /// The raw nonce whose hash Apple puts in the identity token.
    pub nonce: RawNonce,
    /// Set when a native app opened the browser.
    pub app: Option<NativeApp>,
    /// The hash of the binding cookie set on the browser that started it. `None` only for a
    /// sign-in started before bindings existed, which cannot complete.
    pub binding_hash: Option<String>,
}

/// A sign-in Apple's form post completed, to be finished in the browser that started it.
pub struct WebCompletion<'a> {
    pub binding_hash: &'a str,
    pub user_id: &'a str,
    pub is_new_user: bool,
    pub app: Option<&'a NativeApp>,
}

/// The outcome of finishing a sign-in in its browser.
pub enum Completion {
    /// The page's sign-in: a new web session, whose secret goes in the cookie.
    Page { session_secret: String },
    /// A native app's: it is sent back to its URL with a one-time code.
    App {
        app_redirect_uri: String,
        code: String,
    },
    /// Unknown, used, expired, its user deleted meanwhile, or not this browser's (the
    /// binding cookie is missing or another's). The handle is spent all the same.
    Refused,
}

/// The outcome of trading a one-time code.
pub enum Exchange {
    SignedIn {
        user: Box<User>,
        is_new_user: bool,
        session: NewSession,
    },
    /// Unknown, used, expired, or its user deleted meanwhile.
    InvalidCode,
    /// The verifier does not answer the code's challenge. The code is spent all the same.
    WrongVerifier,
}

impl Store {
    /// Records a sign-in started in a browser; its `state` is the key, stored hashed.
    pub async fn start_web_sign_in(
        &self,
        state: &str,
        sign_in: &WebSignIn,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        let (app_redirect_uri, code_challenge) = NativeApp::columns(sign_in.app.as_ref());
        sqlx::query("INSERT INTO web_sign_ins (state_hash, nonce, app_redirect_uri, code_challenge, binding_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(tokens::token_hash(state))
            .bind(sign_in.nonce.expose())
            .bind(app_redirect_uri)
            .bind(code_challenge)
            .bind(&sign_in.binding_hash)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool()?)
            .await
            .map(drop)
    }

    /// Takes the sign-in of `state`, once: `None` if unknown, already taken or expired.
    pub async fn take_web_sign_in(
        &self,
        state: &str,
        now: i64,
    ) -> Result<Option<WebSignIn>, sqlx::Error> {
        type Row = (String, Option<String>, Option<String>, Option<String>, i64);
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM web_sign_ins WHERE state_hash = $1 \
             RETURNING nonce, app_redirect_uri, code_challenge, binding_hash, expires_at",
        )
        .bind(tokens::token_hash(state))
        .fetch_all(self.pool()?)
        .await?
        .pop();
        Ok(row.filter(|(.., expires_at)| *expires_at > now).map(
            |(nonce, app_redirect_uri, code_challenge, binding_hash, _)| WebSignIn {
                nonce: RawNonce::new(nonce),
                app: NativeApp::from_columns(app_redirect_uri, code_challenge),
                binding_hash,
            },
        ))
    }

    /// Keeps what Apple's form post signed in, for its browser to finish; returns the one-time
    /// handle (stored hashed).
    pub async fn record_web_completion(
        &self,
        completion: &WebCompletion<'_>,
        now: i64,
        expires_at: i64,
    ) -> Result<String, sqlx::Error> {
        let handle = tokens::new_token();
        let (app_redirect_uri, code_challenge) = NativeApp::columns(completion.app);
        sqlx::query("INSERT INTO web_completions (handle_hash, binding_hash, user_id, is_new_user, app_redirect_uri, code_challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(tokens::token_hash(&handle))
            .bind(completion.binding_hash)
            .bind(completion.user_id)
            .bind(i64::from(completion.is_new_user))
            .bind(app_redirect_uri)
            .bind(code_challenge)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool()?)
            .await?;
        Ok(handle)
    }

    /// Finishes a sign-in in the browser holding `binding` (the binding cookie's value), once:
    /// a web session for the page, or a one-time code for a native app.
    pub async fn complete_web_sign_in(
        &self,
        handle: &str,
        binding: Option<&str>,
        now: i64,
        session_ttl_secs: i64,
    ) -> Result<Completion, sqlx::Error> {
        type Row = (String, String, i64, Option<String>, Option<String>, i64);
        let mut tx = self.pool()?.begin().await?;
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM web_completions WHERE handle_hash = $1 RETURNING binding_hash, user_id, \
             is_new_user, app_redirect_uri, code_challenge, expires_at",
        )
        .bind(tokens::token_hash(handle))
        .fetch_all(&mut *tx)
        .await?
        .pop();
        let Some((binding_hash, user_id, is_new_user, app_redirect_uri, challenge, expires_at)) =
            row
        else {
            return Ok(Completion::Refused);
        };
        let bound = binding.is_some_and(|binding| {
            bool::from(
                tokens::token_hash(binding)
                    .as_bytes()
                    .ct_eq(binding_hash.as_bytes()),
            )
        });
        let user_exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
            .bind(&user_id)
            .fetch_optional(&mut *tx)
            .await?;
        if !bound || expires_at <= now || user_exists.is_none() {
            tx.commit().await?;
            return Ok(Completion::Refused);
        }
        let completion = match NativeApp::from_columns(app_redirect_uri, challenge) {
            Some(app) => {
                let new_code = NewExchangeCode {
                    user_id: &user_id,
                    is_new_user: is_new_user != 0,
                    code_challenge: &app.code_challenge,
                    now,
                    expires_at: now + crate::web::EXCHANGE_CODE_TTL_SECS,
                };
                let code = insert_exchange_code(&mut tx, &new_code).await?;
                Completion::App {
                    app_redirect_uri: app.redirect_uri,
                    code,
                }
            }
            None => {
                let session_secret =
                    create_web_session(&mut tx, &user_id, now, session_ttl_secs).await?;
                Completion::Page { session_secret }
            }
        };
        tx.commit().await?;
        Ok(completion)
    }

    /// Issues a one-time code for a user signed in through the browser by a native app.
    pub async fn issue_exchange_code(
        &self,
        new_code: &NewExchangeCode<'_>,
    ) -> Result<String, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        let code = insert_exchange_code(&mut tx, new_code).await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Trades a one-time code and its PKCE verifier for a new session, once. A second use of a
    /// code is refused and ends nothing: the session made by the first use lives on.
    pub async fn redeem_exchange_code(
        &self,
        code: &str,
        verifier: &CodeVerifier,
        now: i64,
        session_ttl_secs: i64,
    ) -> Result<Exchange, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "DELETE FROM web_exchange_codes WHERE code_hash = $1 \
             RETURNING code_challenge, user_id, is_new_user, expires_at",
        )
        .bind(tokens::token_hash(code))
        .fetch_all(&mut *tx)
        .await?
        .pop();
        let Some((challenge, user_id, is_new_user, expires_at)) = row else {
            return Ok(Exchange::InvalidCode);
        };
        if expires_at <= now {
            tx.commit().await?;
            return Ok(Exchange::InvalidCode);
        }
        if !verifier.answers(&challenge) {
            // Spent: a code whose verifier was guessed at is not left for more guesses.
            tx.commit().await?;
            return Ok(Exchange::WrongVerifier);
        }
        let sql = format!(
            "SELECT {} FROM users WHERE id = $1",
            super::users::USER_COLUMNS
        );
        let Some(user) = sqlx::query_as::<_, User>(&sql)
            .bind(&user_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.commit().await?;
            return Ok(Exchange::InvalidCode);
        };
        let session = create_session(&mut tx, &user_id, now, session_ttl_secs).await?;
        tx.commit().await?;
        Ok(Exchange::SignedIn {
            user: Box::new(user),
            is_new_user: is_new_user != 0,
            session,
        })
    }

    /// The user and session of the page's cookie (a web session's secret), if the session is
    /// live. A refresh token is not a web session's secret, nor the reverse.
    pub async fn web_session(
        &self,
        secret: &str,
        now: i64,
    ) -> Result<Option<(User, String)>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT user_id, id FROM sessions WHERE web_secret_hash = $1 \
             AND revoked_at IS NULL AND expires_at > $2",
        )
        .bind(tokens::token_hash(secret))
        .bind(now)
        .fetch_optional(self.pool()?)
        .await?;
        let Some((user_id, session_id)) = row else {
            return Ok(None);
        };
        Ok(self
            .user_in_session(&user_id, &session_id, now)
            .await?
            .map(|user| (user, session_id)))
    }
}

/// A native app's one-time code to issue: bound to its user and its PKCE challenge.
pub struct NewExchangeCode<'a> {
    pub user_id: &'a str,
    pub is_new_user: bool,
    pub code_challenge: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

async fn insert_exchange_code(
    tx: &mut Transaction<'_, Any>,
    new_code: &NewExchangeCode<'_>,
) -> Result<String, sqlx::Error> {
    let NewExchangeCode {
        user_id,
        is_new_user,
        code_challenge,
        now,
        expires_at,
    } = *new_code;
    let code = tokens::new_token();
    sqlx::query("INSERT INTO web_exchange_codes (code_hash, code_challenge, user_id, is_new_user, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(tokens::token_hash(&code))
        .bind(code_challenge)
        .bind(user_id)
        .bind(i64::from(is_new_user))
        .bind(now)
        .bind(expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(code)
}
