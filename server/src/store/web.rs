//! The web flow's short-lived rows: browsers sent to Apple (found again by their `state`), and
//! the one-time codes native apps trade for a session. Both are single use: taken with a
//! `DELETE ... RETURNING`, so of two concurrent uses exactly one gets the row.

use siwa_core::CodeVerifier;

use super::sessions::{NewSession, create_session};
use super::{Store, User};
use crate::secrets;

/// A browser on its way to Apple.
pub struct WebSignIn {
    /// The raw nonce whose hash Apple puts in the identity token.
    pub nonce: String,
    /// Set when a native app opened the browser: where it is sent back.
    pub app_redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
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
        sqlx::query("INSERT INTO web_sign_ins (state_hash, nonce, app_redirect_uri, code_challenge, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(secrets::token_hash(state))
            .bind(&sign_in.nonce)
            .bind(&sign_in.app_redirect_uri)
            .bind(&sign_in.code_challenge)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map(drop)
    }

    /// Takes the sign-in of `state`, once: `None` if unknown, already taken or expired.
    pub async fn take_web_sign_in(
        &self,
        state: &str,
        now: i64,
    ) -> Result<Option<WebSignIn>, sqlx::Error> {
        let row: Option<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
            "DELETE FROM web_sign_ins WHERE state_hash = $1 \
             RETURNING nonce, app_redirect_uri, code_challenge, expires_at",
        )
        .bind(secrets::token_hash(state))
        .fetch_all(&self.pool)
        .await?
        .pop();
        Ok(row.filter(|(.., expires_at)| *expires_at > now).map(
            |(nonce, app_redirect_uri, code_challenge, _)| WebSignIn {
                nonce,
                app_redirect_uri,
                code_challenge,
            },
        ))
    }

    /// Issues a one-time code for a user signed in through the browser by a native app.
    pub async fn issue_exchange_code(
        &self,
        user_id: &str,
        is_new_user: bool,
        code_challenge: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<String, sqlx::Error> {
        let code = secrets::new_token();
        sqlx::query("INSERT INTO web_exchange_codes (code_hash, code_challenge, user_id, is_new_user, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(secrets::token_hash(&code))
            .bind(code_challenge)
            .bind(user_id)
            .bind(i64::from(is_new_user))
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
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
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, String, i64, i64)> = sqlx::query_as(
            "DELETE FROM web_exchange_codes WHERE code_hash = $1 \
             RETURNING code_challenge, user_id, is_new_user, expires_at",
        )
        .bind(secrets::token_hash(code))
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

    /// The user and session behind a refresh token that is still current (the web page's
    /// cookie holds one), if the session is live.
    pub async fn web_session(
        &self,
        refresh_token: &str,
        now: i64,
    ) -> Result<Option<(User, String)>, sqlx::Error> {
        let row: Option<(String, String)> = sqlx::query_as(
            "SELECT s.user_id, s.id FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND s.revoked_at IS NULL AND s.expires_at > $2",
        )
        .bind(secrets::token_hash(refresh_token))
        .bind(now)
        .fetch_optional(&self.pool)
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
