//! Sessions of our own: a refresh token per session, rotated on every use; a rotated token that
//! comes back ends its session (it may have been stolen).

use sqlx::{Any, Transaction};

use super::Store;
use crate::sealing::Purpose;
use crate::tokens;

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
    /// Presents a refresh token: rotates it, or detects its reuse and revokes the family. The
    /// same token presented again within `grace_secs` of its rotation (a lost answer, two
    /// processes sharing one stored session) gets the same successor, as long as that one is
    /// unused; after it, the reuse ends the session.
    pub async fn rotate_refresh_token(
        &self,
        token: &str,
        now: i64,
        grace_secs: i64,
    ) -> Result<Rotation, sqlx::Error> {
        let hash = tokens::token_hash(token);
        let mut tx = self.pool.begin().await?;
        // Claim the token first (a write): of two concurrent uses, exactly one wins.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        type Row = (
            String,
            String,
            Option<i64>,
            i64,
            Option<i64>,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT s.id, s.user_id, s.revoked_at, s.expires_at, t.used_at, t.successor \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((session_id, user_id, revoked_at, expires_at, used_at, successor)) = row else {
            return Ok(Rotation::Invalid);
        };
        let live = revoked_at.is_none() && expires_at > now;
        if claimed.rows_affected() == 0 {
            let in_grace = used_at.is_some_and(|at| now - at <= grace_secs);
            if live
                && in_grace
                && let Some(sealed) = successor
            {
                let successor = self
                    .sealer
                    .open(Purpose::RefreshSuccessor, &sealed)
                    .map_err(|e| super::keys::unopenable("a refresh token's successor", &e))?;
                let unused: Option<(String,)> = sqlx::query_as(
                    "SELECT token_hash FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NULL",
                )
                .bind(tokens::token_hash(&successor))
                .fetch_optional(&mut *tx)
                .await?;
                if unused.is_some() {
                    return Ok(Rotation::Rotated {
                        user_id,
                        session_id,
                        refresh_token: successor,
                    });
                }
            }
            // A rotated token came back: whoever holds the family may be an attacker.
            if revoked_at.is_none() {
                revoke_sessions(
                    &mut tx,
                    Sessions::One(&session_id),
                    RevocationReason::RefreshTokenReused,
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(Rotation::Reused);
        }
        if !live {
            return Ok(Rotation::Invalid);
        }
        let refresh_token = insert_refresh_token(&mut tx, &session_id, now).await?;
        if grace_secs > 0 {
            sqlx::query("UPDATE refresh_tokens SET successor = $1 WHERE token_hash = $2")
                .bind(self.sealer.seal(Purpose::RefreshSuccessor, &refresh_token))
                .bind(&hash)
                .execute(&mut *tx)
                .await?;
        }
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
        .bind(tokens::token_hash(refresh_token))
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
    let id = tokens::new_id();
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

/// A session of the web page: no refresh token, a secret of its own for the cookie (stored
/// hashed), which no API route accepts. Returns the secret.
pub(super) async fn create_web_session(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    now: i64,
    ttl: i64,
) -> Result<String, sqlx::Error> {
    let secret = tokens::new_token();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, web_secret_hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tokens::new_id())
    .bind(user_id)
    .bind(now)
    .bind(now + ttl)
    .bind(tokens::token_hash(&secret))
    .execute(&mut **tx)
    .await?;
    Ok(secret)
}

async fn insert_refresh_token(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    now: i64,
) -> Result<String, sqlx::Error> {
    let token = tokens::new_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)",
    )
    .bind(tokens::token_hash(&token))
    .bind(session_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// Why a session ended, as `sessions.revoked_reason` keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RevocationReason {
    /// A rotated refresh token came back after its grace.
    RefreshTokenReused,
    /// Apple's `consent-revoked` notification.
    ConsentRevoked,
}

impl RevocationReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::ConsentRevoked => "consent_revoked",
        }
    }
}

/// Which sessions to end.
pub(super) enum Sessions<'a> {
    One(&'a str),
    /// A user's sessions made at or before a time (Unix seconds): those an event at that time
    /// (Apple's `consent-revoked`) concerns, not the sign-ins that came after it.
    OfUserMadeBy(&'a str, i64),
}

pub(super) async fn revoke_sessions(
    tx: &mut Transaction<'_, Any>,
    which: Sessions<'_>,
    reason: RevocationReason,
    now: i64,
) -> Result<(), sqlx::Error> {
    let (condition, user_or_session, cutoff) = match which {
        Sessions::One(id) => ("id = $3", id, None),
        Sessions::OfUserMadeBy(user_id, cutoff) => {
            ("user_id = $3 AND created_at <= $4", user_id, Some(cutoff))
        }
    };
    let sql = format!(
        "UPDATE sessions SET revoked_at = $1, revoked_reason = $2 WHERE revoked_at IS NULL AND {condition}"
    );
    let mut query = sqlx::query(&sql)
        .bind(now)
        .bind(reason.as_str())
        .bind(user_or_session);
    if let Some(cutoff) = cutoff {
        query = query.bind(cutoff);
    }
    query.execute(&mut **tx).await.map(|_| ())
}
