//! Sessions of our own: a refresh token per session, rotated on every use; a rotated token that
//! comes back ends its session (it may have been stolen).

use sqlx::{Any, Transaction};

use super::Store;
use crate::secrets;

#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub refresh_token: String,
    pub expires_at: i64,
}

/// The outcome of presenting a refresh token.
pub enum Rotation {
    Rotated {
        user_id: String,
        session_id: String,
        refresh_token: String,
    },
    /// No such token, or its session ended or expired.
    Invalid,
    /// An already-rotated token came back: the session family was revoked.
    Reused,
}

impl Store {
    /// Presents a refresh token: rotates it, or detects its reuse and revokes the family.
    pub async fn rotate_refresh_token(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Rotation, sqlx::Error> {
        let hash = secrets::token_hash(token);
        let mut tx = self.pool.begin().await?;
        // Claim the token first (a write): of two concurrent uses, exactly one wins.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        let row: Option<(String, String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT s.id, s.user_id, s.revoked_at, s.expires_at FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, user_id, revoked_at, expires_at)) = row else {
            return Ok(Rotation::Invalid);
        };
        if claimed.rows_affected() == 0 {
            // A rotated token came back: whoever holds the family may be an attacker.
            if revoked_at.is_none() {
                revoke_sessions(
                    &mut tx,
                    Sessions::One(&session_id),
                    "refresh_token_reused",
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        if revoked_at.is_some() || expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        let refresh_token = insert_refresh_token(&mut tx, &session_id, now).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            user_id,
            session_id,
            refresh_token,
        })
    }

    /// Ends the session a refresh token belongs to. Unknown tokens are ignored.
    pub async fn logout(&self, refresh_token: &str, now: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query(
            "UPDATE sessions SET revoked_at = $1, revoked_reason = 'logout' WHERE revoked_at IS NULL \
             AND id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $2)",
        )
        .bind(now)
        .bind(secrets::token_hash(refresh_token))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Ends one session (a logout with an access token).
    pub async fn end_session(&self, session_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("UPDATE sessions SET revoked_at = $1, revoked_reason = 'logout' WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

pub(super) async fn create_session(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    now: i64,
    ttl: i64,
) -> Result<NewSession, sqlx::Error> {
    let id = secrets::new_id();
    let expires_at = now + ttl;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    let refresh_token = insert_refresh_token(tx, &id, now).await?;
    Ok(NewSession {
        id,
        refresh_token,
        expires_at,
    })
}

async fn insert_refresh_token(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let token = secrets::new_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(secrets::token_hash(&token))
    .bind(session_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// Which sessions to end.
pub(super) enum Sessions<'a> {
    One(&'a str),
    OfUser(&'a str),
}

pub(super) async fn revoke_sessions(
    tx: &mut Transaction<'_, Any>,
    which: Sessions<'_>,
    reason: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (sql, value) = match which {
        Sessions::One(id) => (
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL",
            id,
        ),
        Sessions::OfUser(user_id) => (
            "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE user_id = $3 AND revoked_at IS NULL",
            user_id,
        ),
    };
    sqlx::query(sql)
        .bind(now)
        .bind(reason)
        .bind(value)
        .execute(&mut **tx)
        .await
        .map(|_| ())
}
