//! Every query the server makes, in portable SQL (`$n` placeholders, `ON CONFLICT`,
//! `RETURNING`: understood by SQLite 3.35+ and PostgreSQL alike).
//!
//! Operations that must not be left half-done (a sign-in, a deletion, a notification) run in
//! one transaction, whose first statement writes: SQLite then takes its write lock at once and
//! concurrent writers wait (busy timeout) instead of failing on a stale read snapshot.

use siwa_core::{EventType, IdentityClaims, NotificationEvent, TokenTypeHint};

use crate::sealing::{Purpose, SealError, Sealer};
use sqlx::{Any, AnyPool, Transaction};

use std::sync::LazyLock;

use crate::db::Backend;
use crate::group_commit::GroupCommit;
use crate::secrets;

/// A user as stored. No `Debug`: it holds an email address.
#[derive(Clone, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub apple_sub: String,
    pub email: Option<String>,
    pub email_verified: i64,
    pub is_private_email: i64,
    pub email_forwarding_disabled: i64,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub real_user_status: Option<i64>,
    pub client_id: String,
    pub created_at: i64,
    pub last_sign_in_at: i64,
    pub sign_in_count: i64,
}

const USER_COLUMNS: &str = "id, apple_sub, email, email_verified, is_private_email, \
    email_forwarding_disabled, given_name, family_name, real_user_status, client_id, \
    created_at, last_sign_in_at, sign_in_count";

/// What a successful sign-in writes.
pub struct SignInRecord<'a> {
    pub claims: &'a IdentityClaims,
    /// The token's `nonce` claim, when the request carried a nonce; single-use.
    pub nonce_hash: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    /// Apple's refresh token from the code exchange.
    pub apple_refresh_token: Option<&'a str>,
    /// Create a session of our own, living this many seconds.
    pub session_ttl_secs: Option<i64>,
    pub now: i64,
}

pub struct NewSession {
    pub id: String,
    pub refresh_token: String,
    pub expires_at: i64,
}

pub struct SignedIn {
    pub user: User,
    pub is_new_user: bool,
    pub session: Option<NewSession>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the nonce was used before")]
    NonceReplayed,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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

/// A revocation waiting to be confirmed by Apple.
#[derive(Clone, sqlx::FromRow)]
pub struct PendingRevocation {
    pub id: String,
    pub client_id: String,
    pub token: String,
    #[sqlx(try_from = "String")]
    pub token_type_hint: TokenTypeHint,
    pub attempts: i64,
}

/// What a notification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationOutcome {
    Applied,
    /// Its `jti` was handled before (Apple retries).
    Duplicate,
    /// No user has its `sub`, or its type is not acted on.
    Ignored,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Seals Apple's refresh tokens and the server's signing key (`crate::sealing`).
    sealer: Sealer,
    /// SQLite only: one writer commits concurrent single-statement sign-ins together.
    group_commit: Option<GroupCommit>,
}

impl Store {
    /// Must be called within the Tokio runtime (the SQLite writer is a task).
    pub fn new(pool: AnyPool, backend: Backend, sealer: Sealer) -> Self {
        let group_commit = (backend == Backend::Sqlite).then(|| {
            tokio::spawn(crate::db::checkpoint_wal(pool.clone()));
            GroupCommit::start(pool.clone())
        });
        Self {
            pool,
            sealer,
            group_commit,
        }
    }

    /// Whether the database takes a committed write: what every sign-in needs.
    pub async fn accepts_writes(&self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE readiness SET checked_at = $1 WHERE id = 1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether a nonce was used already (a cheap early refusal; the insert in
    /// [`Store::sign_in`] is the authoritative check).
    pub async fn nonce_used(&self, nonce_hash: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT nonce_hash FROM used_nonces WHERE nonce_hash = $1")
                .bind(nonce_hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Signs a user in: the nonce, the user, Apple's refresh token and a new session, all or
    /// nothing. Concurrent first sign-ins of one `sub` make exactly one user.
    pub async fn sign_in(&self, record: SignInRecord<'_>) -> Result<SignedIn, StoreError> {
        let single_statement = record.nonce_hash.is_none()
            && record.claims.transfer_sub.is_none()
            && record.apple_refresh_token.is_none()
            && record.session_ttl_secs.is_none();
        if single_statement {
            // Nothing to keep together: no transaction of its own (the hot path of the
            // seed-compatible route). On SQLite the group-commit writer batches it with others.
            let upsert = UserUpsert::from_record(&record);
            let user = match &self.group_commit {
                Some(writer) => writer.upsert(upsert).await?,
                None => upsert_user(&mut *self.pool.acquire().await?, &upsert).await?,
            };
            let is_new_user = user.sign_in_count == 1;
            return Ok(SignedIn {
                user,
                is_new_user,
                session: None,
            });
        }
        let mut tx = self.pool.begin().await?;
        let now = record.now;
        if let Some(nonce_hash) = record.nonce_hash {
            let inserted = sqlx::query("INSERT INTO used_nonces (nonce_hash, expires_at) VALUES ($1, $2) ON CONFLICT (nonce_hash) DO NOTHING")
                .bind(nonce_hash)
                // Kept until a token carrying it would have expired anyway.
                .bind(record.claims.exp.max(now) + 24 * 3600)
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::NonceReplayed);
            }
        }
        let claims = record.claims;
        if let Some(previous) = claims.transfer_sub.as_deref().filter(|p| *p != claims.sub) {
            // After an app transfer, the user's account moves to the new team's `sub`.
            sqlx::query("UPDATE users SET apple_sub = $1 WHERE apple_sub = $2 AND NOT EXISTS (SELECT 1 FROM users WHERE apple_sub = $1)")
                .bind(&claims.sub)
                .bind(previous)
                .execute(&mut *tx)
                .await?;
        }
        let user = upsert_user(&mut tx, &UserUpsert::from_record(&record)).await?;
        if let Some(token) = record.apple_refresh_token {
            // The grant this one replaces is revoked, not forgotten: every Apple refresh token
            // obtained is either stored or queued for revocation.
            let replaced: Option<(String, String)> = sqlx::query_as(
                "DELETE FROM apple_tokens WHERE user_id = $1 RETURNING client_id, refresh_token",
            )
            .bind(&user.id)
            .fetch_optional(&mut *tx)
            .await?;
            let replaced = match replaced {
                Some((client_id, sealed)) => Some((client_id, self.open_apple_token(&sealed)?)),
                None => None,
            };
            sqlx::query(
                "INSERT INTO apple_tokens (user_id, client_id, refresh_token, created_at, last_validated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(&user.id)
            .bind(&claims.aud)
            .bind(self.sealer.seal(Purpose::AppleToken, token))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if let Some((client_id, old)) = replaced.filter(|(_, old)| old != token) {
                queue_revocation(&mut tx, &self.sealer, client_id, old, now).await?;
            }
        }
        let session = match record.session_ttl_secs {
            Some(ttl) => Some(create_session(&mut tx, &user.id, now, ttl).await?),
            None => None,
        };
        tx.commit().await?;
        let is_new_user = user.sign_in_count == 1;
        Ok(SignedIn {
            user,
            is_new_user,
            session,
        })
    }

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

    /// The user behind a session, if the session is still live.
    pub async fn user_in_session(
        &self,
        user_id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<Option<User>, sqlx::Error> {
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1 AND EXISTS (SELECT 1 FROM sessions \
             WHERE id = $2 AND user_id = $1 AND revoked_at IS NULL AND expires_at > $3)"
        );
        sqlx::query_as(&sql)
            .bind(user_id)
            .bind(session_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Deletes a user and everything of theirs; Apple's refresh token, if any, goes into the
    /// revocation queue in the same transaction, so it is never lost.
    pub async fn delete_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Option<PendingRevocation>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Lock the user's row first, as a sign-in does (it upserts `users`, then writes
        // `apple_tokens`): one lock order, so deletion and sign-in never deadlock on PostgreSQL.
        sqlx::query("UPDATE users SET sign_in_count = sign_in_count WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let token: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM apple_tokens WHERE user_id = $1 RETURNING client_id, refresh_token",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let pending = match token {
            Some((client_id, sealed)) => {
                let token = self.open_apple_token(&sealed)?;
                Some(queue_revocation(&mut tx, &self.sealer, client_id, token, now).await?)
            }
            None => None,
        };
        delete_user_rows(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(pending)
    }

    /// Queues an Apple refresh token that nothing keeps any more (a grant obtained for a
    /// sign-in that then failed), for the revocation worker.
    pub async fn queue_apple_revocation(
        &self,
        client_id: &str,
        token: &str,
        now: i64,
    ) -> Result<PendingRevocation, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let pending =
            queue_revocation(&mut tx, &self.sealer, client_id.into(), token.into(), now).await?;
        tx.commit().await?;
        Ok(pending)
    }

    pub async fn due_revocations(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<PendingRevocation>, sqlx::Error> {
        let due: Vec<PendingRevocation> = sqlx::query_as("SELECT id, client_id, token, token_type_hint, attempts FROM apple_revocations WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $2")
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(due
            .into_iter()
            .filter_map(|mut pending| match self.open_apple_token(&pending.token) {
                Ok(token) => {
                    pending.token = token;
                    Some(pending)
                }
                Err(error) => {
                    tracing::error!(%error, "a queued revocation cannot be opened; it stays queued");
                    None
                }
            })
            .collect())
    }

    pub async fn revocation_done(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM apple_revocations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Takes the lease on a due revocation: it is not due for anyone else until `lease_until`.
    /// Of several instances claiming one row, exactly one gets it; an instance that dies
    /// holding it only delays the row until the lease runs out.
    pub async fn claim_revocation(
        &self,
        id: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool, sqlx::Error> {
        let claimed = sqlx::query(
            "UPDATE apple_revocations SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at <= $3",
        )
        .bind(lease_until)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    pub async fn revocation_failed(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE apple_revocations SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3")
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn pending_revocations(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM apple_revocations")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Applies a verified notification once per `jti`.
    pub async fn apply_notification(
        &self,
        jti: &str,
        event: &NotificationEvent,
        now: i64,
    ) -> Result<NotificationOutcome, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let first = sqlx::query("INSERT INTO notifications_seen (jti, event_type, received_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(event.kind.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        if first.rows_affected() == 0 {
            return Ok(NotificationOutcome::Duplicate);
        }
        let user: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE apple_sub = $1")
            .bind(&event.sub)
            .fetch_optional(&mut *tx)
            .await?;
        let outcome = match (user, &event.kind) {
            (None, _) | (_, EventType::Other(_)) => NotificationOutcome::Ignored,
            (Some((user_id,)), kind) => {
                match kind {
                    EventType::EmailDisabled | EventType::EmailEnabled => {
                        let disabled = i64::from(*kind == EventType::EmailDisabled);
                        sqlx::query(
                            "UPDATE users SET email_forwarding_disabled = $1 WHERE id = $2",
                        )
                        .bind(disabled)
                        .bind(&user_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    EventType::ConsentRevoked => {
                        // Apple has revoked its tokens already; ours end too.
                        revoke_sessions(
                            &mut tx,
                            Sessions::OfUser(&user_id),
                            "consent_revoked",
                            now,
                        )
                        .await?;
                        sqlx::query("DELETE FROM apple_tokens WHERE user_id = $1")
                            .bind(&user_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    EventType::AccountDeleted => delete_user_rows(&mut tx, &user_id).await?,
                    EventType::Other(_) => unreachable!("matched above"),
                }
                NotificationOutcome::Applied
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    /// Forgets nonces past their time and notifications older than 30 days.
    pub async fn purge_expired(&self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM used_nonces WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM notifications_seen WHERE received_at < $1")
            .bind(now - 30 * 24 * 3600)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The server's signing key: the newest stored one, or `generate()`'s, stored for every
    /// instance to share. Of two instances starting together, both end up with the same key.
    pub async fn server_key(
        &self,
        generate: impl FnOnce() -> (String, String),
        now: i64,
    ) -> Result<(String, String), sqlx::Error> {
        const NEWEST: &str =
            "SELECT kid, private_key_pem FROM server_keys ORDER BY created_at DESC, kid LIMIT 1";
        let open = |(kid, sealed): (String, String)| {
            let pem = self
                .sealer
                .open(Purpose::ServerKey, &sealed)
                .map_err(|e| unopenable("the server's signing key", &e))?;
            Ok((kid, pem))
        };
        if let Some(key) = sqlx::query_as(NEWEST).fetch_optional(&self.pool).await? {
            return open(key);
        }
        let (kid, pem) = generate();
        sqlx::query("INSERT INTO server_keys (kid, private_key_pem, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
            .bind(&kid)
            .bind(self.sealer.seal(Purpose::ServerKey, &pem))
            .bind(now)
            .execute(&self.pool)
            .await?;
        open(sqlx::query_as(NEWEST).fetch_one(&self.pool).await?)
    }

    fn open_apple_token(&self, sealed: &str) -> Result<String, sqlx::Error> {
        self.sealer
            .open(Purpose::AppleToken, sealed)
            .map_err(|e| unopenable("an Apple refresh token", &e))
    }

    /// Seals what is stored in clear (rows from before sealing) and reseals what an older key
    /// sealed (after a rotation), so that an old key can be dropped from the list once every
    /// instance has started with the new one. Each row is replaced only if unchanged meanwhile,
    /// so instances starting together do not undo each other.
    pub async fn seal_secrets_at_rest(&self) -> Result<(), sqlx::Error> {
        const COLUMNS: [(&str, &str, &str, Purpose); 3] = [
            ("server_keys", "kid", "private_key_pem", Purpose::ServerKey),
            (
                "apple_tokens",
                "user_id",
                "refresh_token",
                Purpose::AppleToken,
            ),
            ("apple_revocations", "id", "token", Purpose::AppleToken),
        ];
        let newest_prefix = self.sealer.newest_prefix();
        let mut resealed = 0;
        for (table, key, column, purpose) in COLUMNS {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT {key}, {column} FROM {table} WHERE {column} NOT LIKE $1"
            ))
            .bind(format!("{newest_prefix}%"))
            .fetch_all(&self.pool)
            .await?;
            for (id, stored) in rows {
                let plaintext = if Sealer::is_sealed(&stored) {
                    self.sealer
                        .open(purpose, &stored)
                        .map_err(|e| unopenable("a stored secret", &e))?
                } else {
                    stored.clone()
                };
                sqlx::query(&format!(
                    "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3"
                ))
                .bind(self.sealer.seal(purpose, &plaintext))
                .bind(&id)
                .bind(&stored)
                .execute(&self.pool)
                .await?;
                resealed += 1;
            }
        }
        if resealed > 0 {
            tracing::info!(
                rows = resealed,
                "sealed secrets stored in clear or with an older key"
            );
        }
        Ok(())
    }
}

/// The values of a user upsert, owned so the write can be handed to the group-commit writer.
pub struct UserUpsert {
    id: String,
    apple_sub: String,
    email: Option<String>,
    email_verified: i64,
    is_private_email: i64,
    given_name: Option<String>,
    family_name: Option<String>,
    real_user_status: Option<i64>,
    client_id: String,
    now: i64,
}

impl UserUpsert {
    fn from_record(record: &SignInRecord<'_>) -> Self {
        let non_empty = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let c = record.claims;
        Self {
            id: secrets::new_id(),
            apple_sub: c.sub.clone(),
            email: non_empty(c.email.as_deref()),
            email_verified: i64::from(c.email_verified),
            is_private_email: i64::from(c.is_private_email),
            given_name: non_empty(record.given_name),
            family_name: non_empty(record.family_name),
            real_user_status: c.real_user_status.map(|s| s.as_i64()),
            client_id: c.aud.clone(),
            now: record.now,
        }
    }
}

/// Creates or updates the user of a sign-in. A name arrives only on the first authorization:
/// it is never overwritten with nothing. Email and its flags come with every token that has the
/// email scope.
static UPSERT_USER: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO users (id, apple_sub, email, email_verified, is_private_email, given_name, \
         family_name, real_user_status, client_id, created_at, last_sign_in_at, sign_in_count) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, 1) \
         ON CONFLICT (apple_sub) DO UPDATE SET \
         email = COALESCE(excluded.email, users.email), \
         email_verified = CASE WHEN excluded.email IS NULL THEN users.email_verified ELSE excluded.email_verified END, \
         is_private_email = CASE WHEN excluded.email IS NULL THEN users.is_private_email ELSE excluded.is_private_email END, \
         given_name = COALESCE(excluded.given_name, users.given_name), \
         family_name = COALESCE(excluded.family_name, users.family_name), \
         real_user_status = COALESCE(excluded.real_user_status, users.real_user_status), \
         client_id = excluded.client_id, \
         last_sign_in_at = excluded.last_sign_in_at, \
         sign_in_count = users.sign_in_count + 1 \
         RETURNING {USER_COLUMNS}"
    )
});

pub async fn upsert_user(
    conn: &mut sqlx::AnyConnection,
    u: &UserUpsert,
) -> Result<User, sqlx::Error> {
    sqlx::query_as(&UPSERT_USER)
        .bind(&u.id)
        .bind(&u.apple_sub)
        .bind(&u.email)
        .bind(u.email_verified)
        .bind(u.is_private_email)
        .bind(&u.given_name)
        .bind(&u.family_name)
        .bind(u.real_user_status)
        .bind(&u.client_id)
        .bind(u.now)
        // `fetch_all`, not `fetch_one`: SQLite commits an autocommitted statement with
        // RETURNING only when it steps to its end, and a statement reset after its first row
        // commits at the reset, whose failure (a full disk) would go unreported: a user
        // answered 200 and never saved.
        .fetch_all(conn)
        .await?
        .pop()
        .ok_or(sqlx::Error::RowNotFound)
}

async fn create_session(
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
enum Sessions<'a> {
    One(&'a str),
    OfUser(&'a str),
}

async fn revoke_sessions(
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

/// A stored secret that the configured keys cannot open: the operator dropped the key that
/// sealed it.
fn unopenable(what: &str, error: &SealError) -> sqlx::Error {
    sqlx::Error::Decode(
        format!(
            "{what} cannot be opened ({error}): SIWA_ENCRYPTION_KEY (or the key file) must list \
             the key it was sealed with"
        )
        .into(),
    )
}

/// Puts an Apple refresh token in the revocation queue, due now, sealed.
async fn queue_revocation(
    tx: &mut Transaction<'_, Any>,
    sealer: &Sealer,
    client_id: String,
    token: String,
    now: i64,
) -> Result<PendingRevocation, sqlx::Error> {
    let pending = PendingRevocation {
        id: secrets::new_id(),
        client_id,
        token,
        token_type_hint: TokenTypeHint::RefreshToken,
        attempts: 0,
    };
    sqlx::query("INSERT INTO apple_revocations (id, client_id, token, token_type_hint, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, 0, $5, $5)")
        .bind(&pending.id)
        .bind(&pending.client_id)
        .bind(sealer.seal(Purpose::AppleToken, &pending.token))
        .bind(pending.token_type_hint.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(pending)
}

/// Deletes a user's rows, children first and explicitly, so that deletion does not depend on
/// SQLite's per-connection `foreign_keys` pragma having been applied.
async fn delete_user_rows(tx: &mut Transaction<'_, Any>, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM apple_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
