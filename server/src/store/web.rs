//! The web flow's short-lived rows: browsers sent to Apple (found again by their `state`),
//! sign-ins Apple's form post completed that wait for their browser (by a one-time handle), and
//! the one-time codes native apps trade for a session. All are single use: taken with a
//! `DELETE ... RETURNING`, so of two concurrent uses exactly one gets the row; a row past its
//! time is taken and spent like the others, but not returned. What a row means, and what a
//! completion makes, is `accounts::browser`'s.

use sqlx::{Any, Transaction};

use super::{Store, User};
use crate::tokens;

/// A browser on its way to Apple, as started.
pub struct WebSignIn<'a> {
    /// The raw nonce whose hash Apple puts in the identity token.
    pub nonce: &'a str,
    /// Where a native app is sent back, and its PKCE challenge: both or neither.
    pub app_redirect_uri: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    /// The hash of the binding cookie set on the browser that started it.
    pub binding_hash: &'a str,
    /// A web app's page to come back to, and whether the sign-in runs in a popup.
    pub return_to: Option<&'a str>,
    pub popup: bool,
}

/// A browser's sign-in, as taken back by its `state`.
pub struct WebSignInRow {
    pub nonce: String,
    pub app_redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    /// `None` only for a sign-in started before bindings existed.
    pub binding_hash: Option<String>,
    pub return_to: Option<String>,
    pub popup: bool,
}

/// A sign-in Apple's form post completed, to be finished in the browser that started it.
pub struct WebCompletion<'a> {
    pub binding_hash: &'a str,
    pub user_id: &'a str,
    pub is_new_user: bool,
    pub app_redirect_uri: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub return_to: Option<&'a str>,
    pub popup: bool,
}

/// A completion, as taken back by its handle.
pub struct WebCompletionRow {
    pub binding_hash: String,
    pub user_id: String,
    pub is_new_user: bool,
    pub app_redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub return_to: Option<String>,
    pub popup: bool,
}

/// A native app's one-time code to issue: bound to its user and its PKCE challenge.
pub struct NewExchangeCode<'a> {
    pub user_id: &'a str,
    pub is_new_user: bool,
    pub code_challenge: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// A one-time code, as taken back.
pub struct ExchangeCodeRow {
    pub code_challenge: String,
    pub user_id: String,
    pub is_new_user: bool,
}

impl Store {
    /// Records a sign-in started in a browser; its `state` is the key, stored hashed.
    pub async fn start_web_sign_in(
        &self,
        state: &str,
        sign_in: &WebSignIn<'_>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO web_sign_ins (state_hash, nonce, app_redirect_uri, code_challenge, binding_hash, return_to, popup, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(tokens::token_hash(state))
            .bind(sign_in.nonce)
            .bind(sign_in.app_redirect_uri)
            .bind(sign_in.code_challenge)
            .bind(sign_in.binding_hash)
            .bind(sign_in.return_to)
            .bind(i64::from(sign_in.popup))
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
    ) -> Result<Option<WebSignInRow>, sqlx::Error> {
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            i64,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "DELETE FROM web_sign_ins WHERE state_hash = $1 RETURNING nonce, app_redirect_uri, \
             code_challenge, binding_hash, return_to, popup, expires_at",
        )
        .bind(tokens::token_hash(state))
        .fetch_all(self.pool()?)
        .await?
        .pop();
        Ok(row.filter(|(.., expires_at)| *expires_at > now).map(
            |(nonce, app_redirect_uri, code_challenge, binding_hash, return_to, popup, _)| {
                WebSignInRow {
                    nonce,
                    app_redirect_uri,
                    code_challenge,
                    binding_hash,
                    return_to,
                    popup: popup != 0,
                }
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
        sqlx::query("INSERT INTO web_completions (handle_hash, binding_hash, user_id, is_new_user, app_redirect_uri, code_challenge, return_to, popup, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(tokens::token_hash(&handle))
            .bind(completion.binding_hash)
            .bind(completion.user_id)
            .bind(i64::from(completion.is_new_user))
            .bind(completion.app_redirect_uri)
            .bind(completion.code_challenge)
            .bind(completion.return_to)
            .bind(i64::from(completion.popup))
            .bind(now)
            .bind(expires_at)
            .execute(self.pool()?)
            .await?;
        Ok(handle)
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

/// Takes the completion of `handle`, once, in `tx`: `None` if unknown, taken or expired.
pub async fn take_web_completion(
    tx: &mut Transaction<'_, Any>,
    handle: &str,
    now: i64,
) -> Result<Option<WebCompletionRow>, sqlx::Error> {
    type Row = (
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "DELETE FROM web_completions WHERE handle_hash = $1 RETURNING binding_hash, user_id, \
         is_new_user, app_redirect_uri, code_challenge, return_to, popup, expires_at",
    )
    .bind(tokens::token_hash(handle))
    .fetch_all(&mut **tx)
    .await?
    .pop();
    Ok(row.filter(|row| row.7 > now).map(
        |(
            binding_hash,
            user_id,
            is_new_user,
            app_redirect_uri,
            code_challenge,
            return_to,
            popup,
            _,
        )| {
            WebCompletionRow {
                binding_hash,
                user_id,
                is_new_user: is_new_user != 0,
                app_redirect_uri,
                code_challenge,
                return_to,
                popup: popup != 0,
            }
        },
    ))
}

/// Takes the one-time code `code`, once, in `tx`: `None` if unknown, used or expired.
pub async fn take_exchange_code(
    tx: &mut Transaction<'_, Any>,
    code: &str,
    now: i64,
) -> Result<Option<ExchangeCodeRow>, sqlx::Error> {
    let row: Option<(String, String, i64, i64)> = sqlx::query_as(
        "DELETE FROM web_exchange_codes WHERE code_hash = $1 \
         RETURNING code_challenge, user_id, is_new_user, expires_at",
    )
    .bind(tokens::token_hash(code))
    .fetch_all(&mut **tx)
    .await?
    .pop();
    Ok(row
        .filter(|row| row.3 > now)
        .map(
            |(code_challenge, user_id, is_new_user, _)| ExchangeCodeRow {
                code_challenge,
                user_id,
                is_new_user: is_new_user != 0,
            },
        ))
}

/// The user `user_id`, in `tx`, if they still exist.
pub async fn user_by_id(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<Option<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM users WHERE id = $1",
        super::users::USER_COLUMNS
    );
    sqlx::query_as::<_, User>(&sql)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await
}

/// Inserts a one-time code in `tx`; returns the code (stored hashed).
pub async fn insert_exchange_code(
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
