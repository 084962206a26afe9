//! Users: the sign-in that creates or updates one (with its nonce, Apple grant and session in
//! one transaction), reading one in a live session, and deleting one with everything of theirs.

use std::collections::HashMap;
use std::sync::LazyLock;

use siwa_core::IdentityClaims;
use sqlx::{Any, Transaction};

use super::event::{DeletionReason, WebhookEvent, WebhookEventType};
use super::events::micros_now;
use super::pending_names::take_kept_names;
use super::recorded_sign_ins::{Grouped, RecordedSignIn, nonce_kept_until, token_kept_until};
use super::revocations::queue_revocation;
use super::sessions::{NewSession, create_session};
use super::{PendingRevocation, Store, StoreError, placeholders};
use crate::sealing::Purpose;
use crate::tokens;

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

pub(super) const USER_COLUMNS: &str = "id, apple_sub, email, email_verified, is_private_email, \
    email_forwarding_disabled, given_name, family_name, real_user_status, client_id, \
    created_at, last_sign_in_at, sign_in_count";

/// What a successful sign-in writes.
pub struct SignInRecord<'a> {
    pub claims: &'a IdentityClaims,
    /// The token's `nonce` claim, when the request carried a nonce; single-use.
    pub nonce_hash: Option<&'a str>,
    /// The identity token's hash, when it may open a session once only.
    pub identity_token_hash: Option<&'a str>,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    /// Apple's refresh token from the code exchange.
    pub apple_refresh_token: Option<&'a str>,
    /// Whether a user this sign-in makes takes the name kept from a failed first sign-in
    /// (`pending_names`), in the same transaction: `accounts` asks when it brings no name.
    pub take_kept_name: bool,
    pub now: i64,
}

impl<'a> SignInRecord<'a> {
    /// A sign-in that records the user only: no nonce, no token kept, no name, no grant.
    pub fn user_only(claims: &'a IdentityClaims, now: i64) -> Self {
        Self {
            claims,
            nonce_hash: None,
            identity_token_hash: None,
            given_name: None,
            family_name: None,
            apple_refresh_token: None,
            take_kept_name: false,
            now,
        }
    }
}

/// What a replayed sign-in reuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Nonce,
    IdentityToken,
}

pub struct SignedIn {
    pub user: User,
    pub is_new_user: bool,
    /// The session made with the user, when one was asked for.
    pub session: Option<NewSession>,
}

impl Store {
    /// Whether a sign-in would be a replay: its nonce or its identity token used before (a
    /// cheap early refusal, before Apple is called, in one round trip; the inserts in
    /// [`Store::sign_in`] are the authoritative checks).
    pub async fn replayed(
        &self,
        nonce_hash: Option<&str>,
        token_hash: &str,
    ) -> Result<Option<Replay>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT 'nonce' FROM used_nonces WHERE nonce_hash = $1 \
             UNION ALL SELECT 'token' FROM used_identity_tokens WHERE token_hash = $2",
        )
        .bind(nonce_hash.unwrap_or_default())
        .bind(token_hash)
        .fetch_all(self.pool()?)
        .await?;
        // The nonce's refusal first: it is the one an app that sends nonces knows.
        let seen = |what: &str| rows.iter().any(|(w,)| w == what);
        Ok(if nonce_hash.is_some() && seen("nonce") {
            Some(Replay::Nonce)
        } else if seen("token") {
            Some(Replay::IdentityToken)
        } else {
            None
        })
    }

    /// Signs a user in: the nonce, the user, Apple's refresh token and a new session, all or
    /// nothing. Concurrent first sign-ins of one `sub` make exactly one user.
    pub async fn sign_in(
        &self,
        record: SignInRecord<'_>,
        session_ttl_secs: Option<i64>,
    ) -> Result<SignedIn, StoreError> {
        let single_statement = record.nonce_hash.is_none()
            && record.identity_token_hash.is_none()
            && record.claims.transfer_sub.is_none()
            && record.apple_refresh_token.is_none();
        if single_statement && session_ttl_secs.is_none() {
            // Nothing to keep together: no transaction of its own (the hot path of the
            // seed-compatible route). The group-commit writer batches it with others, and with
            // webhooks on writes a new user's `user.created` in the batch's transaction.
            let (user, is_new_user) = self
                .group_commit
                .upsert(UserUpsert::from_record(&record))
                .await?;
            return Ok(SignedIn {
                user,
                is_new_user,
                session: None,
            });
        }
        if RecordedSignIn::groups(&record) {
            // The apps' route and the web flow's callback: the writer writes the nonce, the
            // token, the user and the session with the others queued, in one commit.
            match self
                .group_commit
                .sign_in(RecordedSignIn::new(&record, session_ttl_secs))
                .await?
            {
                Grouped::SignedIn { user, session } => {
                    let is_new_user = user.sign_in_count == 1;
                    return Ok(SignedIn {
                        user: *user,
                        is_new_user,
                        session,
                    });
                }
                Grouped::NonceReplayed => return Err(StoreError::NonceReplayed),
                Grouped::TokenReplayed => return Err(StoreError::TokenReplayed),
                // Its group failed: in a transaction of its own, below.
                Grouped::Alone => {}
            }
        }
        let mut tx = self.pool()?.begin().await?;
        let now = record.now;
        if let Some(nonce_hash) = record.nonce_hash {
            let inserted = sqlx::query("INSERT INTO used_nonces (nonce_hash, expires_at) VALUES ($1, $2) ON CONFLICT (nonce_hash) DO NOTHING")
                .bind(nonce_hash)
                .bind(nonce_kept_until(&record))
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::NonceReplayed);
            }
        }
        if let Some(token_hash) = record.identity_token_hash {
            let inserted = sqlx::query("INSERT INTO used_identity_tokens (token_hash, expires_at) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING")
                .bind(token_hash)
                .bind(token_kept_until(&record))
                .execute(&mut *tx)
                .await?;
            if inserted.rows_affected() == 0 {
                return Err(StoreError::TokenReplayed);
            }
        }
        let claims = record.claims;
        let mut recorded = false;
        if let Some(transfer_sub) = claims.transfer_sub.as_deref() {
            // After an app transfer, `transfer_sub` is the transfer identifier that `transfer
            // prepare` kept for the account (F16): the account moves to the new team's `sub`,
            // once, whether or not `transfer complete` has run.
            let prepared: Option<(String, String)> = sqlx::query_as(
                "SELECT u.id, u.apple_sub FROM user_transfers t JOIN users u ON u.id = t.user_id \
                 WHERE t.transfer_sub = $1",
            )
            .bind(transfer_sub)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((user_id, previous)) = prepared.filter(|(_, sub)| *sub != claims.sub) {
                let moved = sqlx::query("UPDATE users SET apple_sub = $1 WHERE id = $2 AND NOT EXISTS (SELECT 1 FROM users WHERE apple_sub = $1)")
                    .bind(&claims.sub)
                    .bind(&user_id)
                    .execute(&mut *tx)
                    .await?;
                if moved.rows_affected() == 1 {
                    sqlx::query("UPDATE user_transfers SET completed_at = $1, failure = NULL WHERE user_id = $2")
                        .bind(now)
                        .bind(&user_id)
                        .execute(&mut *tx)
                        .await?;
                    let event = WebhookEvent::transferred(&user_id, &previous, &claims.sub);
                    recorded |= self.record_event(&mut tx, event, now).await?;
                }
            }
        }
        let mut user = upsert_user(&mut tx, &UserUpsert::from_record(&record)).await?;
        if user.sign_in_count == 1 && record.take_kept_name {
            take_kept_names(&mut tx, &self.sealer, &mut [&mut user], now).await?;
        }
        if user.sign_in_count == 1 {
            let event = WebhookEvent::created(&user.id, &user.apple_sub);
            recorded |= self.record_event(&mut tx, event, now).await?;
        }
        if let Some(token) = record.apple_refresh_token {
            // The newest grant of this client id is the one kept. The one it replaces is not
            // revoked: it belongs to the same authorization (another device, an earlier
            // sign-in), and revoking it would end that whole authorization, every device's
            // sign-in with it (docs/apple-protocol.md, F11). Deletion revokes the kept one.
            sqlx::query(
                "INSERT INTO apple_tokens (user_id, client_id, refresh_token, created_at, last_validated_at) \
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (user_id, client_id) DO UPDATE SET \
                 refresh_token = excluded.refresh_token, created_at = excluded.created_at, \
                 last_validated_at = excluded.last_validated_at",
            )
            .bind(&user.id)
            .bind(&claims.aud)
            .bind(self.sealer.seal(Purpose::AppleToken, token))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let session = match session_ttl_secs {
            Some(ttl) => Some(create_session(&mut tx, &user.id, now, ttl).await?),
            None => None,
        };
        tx.commit().await?;
        self.events_committed(recorded);
        let is_new_user = user.sign_in_count == 1;
        Ok(SignedIn {
            user,
            is_new_user,
            session,
        })
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
            .fetch_optional(self.pool()?)
            .await
    }

    pub async fn count_users(&self) -> Result<i64, sqlx::Error> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(self.pool()?)
            .await?;
        Ok(n)
    }

    /// Deletes a user and everything of theirs; Apple's refresh tokens (one per client id) go
    /// into the revocation queue in the same transaction, so none is lost.
    pub async fn delete_user(
        &self,
        user_id: &str,
        now: i64,
    ) -> Result<Vec<PendingRevocation>, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        // Lock the user's row first, as a sign-in does (it upserts `users`, then writes
        // `apple_tokens`): one lock order, so deletion and sign-in never deadlock on PostgreSQL.
        let locked: Vec<(String,)> = sqlx::query_as(
            "UPDATE users SET sign_in_count = sign_in_count WHERE id = $1 RETURNING apple_sub",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        // One grant per client id (the app, the web flow): each is revoked.
        let grants: Vec<(String, String)> = sqlx::query_as(
            "DELETE FROM apple_tokens WHERE user_id = $1 RETURNING client_id, refresh_token",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut pending = Vec::with_capacity(grants.len());
        for (client_id, sealed) in grants {
            let token = self.open_apple_token(&sealed)?;
            pending.push(queue_revocation(&mut tx, &self.sealer, client_id, token, now).await?);
        }
        delete_user_rows(&mut tx, user_id).await?;
        let mut recorded = false;
        if let Some((apple_sub,)) = locked.first() {
            let event = WebhookEvent::deleted(user_id, apple_sub, DeletionReason::App);
            recorded = self.record_event(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        self.events_committed(recorded);
        Ok(pending)
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
    /// When the sign-in happened.
    pub(super) fn now(&self) -> i64 {
        self.now
    }

    /// Apple's id of the user: the row's key.
    pub(super) fn apple_sub(&self) -> &str {
        &self.apple_sub
    }

    pub(super) fn from_record(record: &SignInRecord<'_>) -> Self {
        let non_empty = |s: Option<&str>| {
            s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let c = record.claims;
        Self {
            id: tokens::new_ordered_id(),
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

/// A returning user's sign-in that writes nothing else (the seed's route) and brings nothing new
/// is recorded (`last_sign_in_at`, `sign_in_count`) at most once in this many seconds:
/// `last_sign_in_at` is the last sign-in to within a minute, and `sign_in_count` counts the
/// recorded ones. A sign-in that starts a session is always recorded, with it.
pub const SIGN_IN_RECORDED_EVERY_SECS: i64 = 60;

/// The stored rows of these users, those that exist, in no given order.
pub async fn read_users(
    conn: &mut sqlx::AnyConnection,
    apple_subs: &[&str],
) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM users WHERE apple_sub IN ({})",
        placeholders(apple_subs.len(), 1)
    );
    let mut query = sqlx::query_as(&sql);
    for sub in apple_subs {
        query = query.bind(*sub);
    }
    query.fetch_all(conn).await
}

/// Creates or updates the user of a sign-in. A name arrives only on the first authorization:
/// it is never overwritten with nothing. Email and its flags come with every token that has the
/// email scope.
const UPSERT_USERS_CONFLICT: &str = "ON CONFLICT (apple_sub) DO UPDATE SET \
     email = COALESCE(excluded.email, users.email), \
     email_verified = CASE WHEN excluded.email IS NULL THEN users.email_verified ELSE excluded.email_verified END, \
     is_private_email = CASE WHEN excluded.email IS NULL THEN users.is_private_email ELSE excluded.is_private_email END, \
     given_name = COALESCE(excluded.given_name, users.given_name), \
     family_name = COALESCE(excluded.family_name, users.family_name), \
     real_user_status = COALESCE(excluded.real_user_status, users.real_user_status), \
     client_id = excluded.client_id, \
     last_sign_in_at = excluded.last_sign_in_at, \
     sign_in_count = users.sign_in_count + 1";

/// The condition under which a returning user's row is written by a sign-in that writes nothing
/// else (`WriteWhen::SomethingNew`): it brings something new (what the update would change), or
/// the last recorded sign-in is [`SIGN_IN_RECORDED_EVERY_SECS`] old or more (the number follows).
/// A value the sign-in lacks (no email scope, no name) is nothing new.
const BRINGS_SOMETHING_NEW: &str = "WHERE \
     (excluded.email IS NOT NULL AND (users.email IS NULL OR excluded.email <> users.email \
        OR excluded.email_verified <> users.email_verified \
        OR excluded.is_private_email <> users.is_private_email)) \
     OR (excluded.given_name IS NOT NULL \
        AND (users.given_name IS NULL OR excluded.given_name <> users.given_name)) \
     OR (excluded.family_name IS NOT NULL \
        AND (users.family_name IS NULL OR excluded.family_name <> users.family_name)) \
     OR (excluded.real_user_status IS NOT NULL \
        AND (users.real_user_status IS NULL OR excluded.real_user_status <> users.real_user_status)) \
     OR excluded.client_id <> users.client_id \
     OR excluded.last_sign_in_at - users.last_sign_in_at >= ";

/// Which returning users' rows an upsert writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteWhen {
    /// Every row: a sign-in that writes more (a session, a nonce) is always recorded with it.
    Always,
    /// A returning user's only when the sign-in brings something new, or a minute has passed
    /// since the last recorded one ([`SIGN_IN_RECORDED_EVERY_SECS`]): the seed's route. The
    /// others are answered from the row as it is, with no write to wait for.
    SomethingNew,
}

/// Bound values per row of the upsert.
const UPSERT_PARAMS: usize = 10;

/// The upsert of `rows` users in one statement (one round trip, whatever the batch's size).
fn upsert_users_sql(rows: usize, when: WriteWhen) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let p = |n: usize| format!("${}", r * UPSERT_PARAMS + n);
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 1)",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(10),
                p(10)
            )
        })
        .collect();
    format!(
        "INSERT INTO users (id, apple_sub, email, email_verified, is_private_email, given_name, \
         family_name, real_user_status, client_id, created_at, last_sign_in_at, sign_in_count) \
         VALUES {} {UPSERT_USERS_CONFLICT} {} RETURNING {USER_COLUMNS}",
        values.join(", "),
        match when {
            WriteWhen::Always => std::borrow::Cow::Borrowed(""),
            WriteWhen::SomethingNew =>
                format!("{BRINGS_SOMETHING_NEW}{SIGN_IN_RECORDED_EVERY_SECS}").into(),
        }
    )
}

static UPSERT_USER: LazyLock<String> = LazyLock::new(|| upsert_users_sql(1, WriteWhen::Always));

pub async fn upsert_user(
    conn: &mut sqlx::AnyConnection,
    u: &UserUpsert,
) -> Result<User, sqlx::Error> {
    let mut users = upsert_users(conn, &[u], WriteWhen::Always).await?;
    users.pop().ok_or(sqlx::Error::RowNotFound)
}

type UsersQuery<'q> = sqlx::query::QueryAs<'q, Any, User, sqlx::any::AnyArguments<'q>>;

/// Binds the upsert's values, `UPSERT_PARAMS` per user, in the order of `upsert_users_sql`.
fn bind_upserts<'q>(mut query: UsersQuery<'q>, upserts: &[&'q UserUpsert]) -> UsersQuery<'q> {
    for u in upserts {
        query = query
            .bind(&u.id)
            .bind(&u.apple_sub)
            .bind(&u.email)
            .bind(u.email_verified)
            .bind(u.is_private_email)
            .bind(&u.given_name)
            .bind(&u.family_name)
            .bind(u.real_user_status)
            .bind(&u.client_id)
            .bind(u.now);
    }
    query
}

/// Upserts several users in one statement; the rows it wrote, in no given order (with
/// `WriteWhen::Always`, every one). No two may share an `apple_sub`: one statement cannot update
/// a row twice (PostgreSQL refuses it).
pub async fn upsert_users(
    conn: &mut sqlx::AnyConnection,
    upserts: &[&UserUpsert],
    when: WriteWhen,
) -> Result<Vec<User>, sqlx::Error> {
    // A single row's statement is made once; a batch's, per batch (its size varies).
    let sql: std::borrow::Cow<'_, str> = match (upserts.len(), when) {
        (1, WriteWhen::Always) => UPSERT_USER.as_str().into(),
        (n, when) => upsert_users_sql(n, when).into(),
    };
    let query = bind_upserts(sqlx::query_as(&sql), upserts);
    // `fetch_all`, not `fetch_one`: SQLite commits an autocommitted statement with RETURNING
    // only when it steps to its end, and a statement reset after its first row commits at the
    // reset, whose failure (a full disk) would go unreported: a user answered 200 and never
    // saved.
    let users: Vec<User> = query.fetch_all(conn).await?;
    check_written(&users, upserts, when)?;
    Ok(users)
}

/// Every row was written, when each had to be.
fn check_written(
    users: &[User],
    upserts: &[&UserUpsert],
    when: WriteWhen,
) -> Result<(), sqlx::Error> {
    let expected = match when {
        WriteWhen::Always => users.len() == upserts.len(),
        WriteWhen::SomethingNew => users.len() <= upserts.len(),
    };
    if expected {
        Ok(())
    } else {
        Err(sqlx::Error::RowNotFound)
    }
}

/// Each user of `upserts` by `apple_sub`, and whether this write wrote it: those of `written`,
/// then the others read as they are (a returning user's sign-in that brought nothing new).
pub async fn with_unwritten(
    conn: &mut sqlx::AnyConnection,
    upserts: &[&UserUpsert],
    written: Vec<User>,
) -> Result<HashMap<String, (User, bool)>, sqlx::Error> {
    let mut users: HashMap<String, (User, bool)> = written
        .into_iter()
        .map(|user| (user.apple_sub.clone(), (user, true)))
        .collect();
    let unwritten: Vec<&str> = upserts
        .iter()
        .map(|u| u.apple_sub())
        .filter(|sub| !users.contains_key(*sub))
        .collect();
    if !unwritten.is_empty() {
        for user in read_users(conn, &unwritten).await? {
            users.insert(user.apple_sub.clone(), (user, false));
        }
    }
    if users.len() != upserts.len() {
        return Err(sqlx::Error::RowNotFound);
    }
    Ok(users)
}

/// PostgreSQL, webhooks on: [`upsert_users`] and, in the same statement, `user.created` for each
/// user it created, so the event commits exactly with the user without a transaction around
/// them (BEGIN and COMMIT are two round trips more per batch, which the writer waits on). A user
/// is new when its row carries the id this upsert proposed and was signed in once. The event is
/// made by the statement, for the new users only: most sign-ins are a returning user's, and
/// making an event for each in advance, in case it was new, cost a tenth of the server's time.
/// The users come back in no given order.
pub async fn upsert_users_recording_created(
    conn: &mut sqlx::AnyConnection,
    upserts: &[&UserUpsert],
    when: WriteWhen,
) -> Result<Vec<User>, sqlx::Error> {
    let proposed_ids: Vec<String> = (0..upserts.len())
        .map(|r| format!("${}", r * UPSERT_PARAMS + 1))
        .collect();
    let micros = upserts.len() * UPSERT_PARAMS + 1;
    let sql = format!(
        "WITH up AS ({}) \
         , created AS (INSERT INTO webhook_events (id, event_type, payload, status, attempts, \
         next_attempt_at, created_at, created_at_us) \
         SELECT {CREATED_EVENT_ID}, '{created}', {CREATED_PAYLOAD}, 'pending', 0, up.created_at, \
         up.created_at, ${micros} \
         FROM up WHERE up.sign_in_count = 1 AND up.id IN ({})) \
         SELECT {USER_COLUMNS} FROM up",
        upsert_users_sql(upserts.len(), when),
        proposed_ids.join(", "),
        created = WebhookEventType::Created.as_str(),
    );
    let users: Vec<User> = bind_upserts(sqlx::query_as(&sql), upserts)
        .bind(micros_now())
        // `fetch_all`: see `upsert_users`.
        .fetch_all(conn)
        .await?;
    check_written(&users, upserts, when)?;
    Ok(users)
}

/// A new event's id made by PostgreSQL in the form of `event::new_event_id`: `msg_` and 16
/// bytes (a random UUID's) in unpadded base64url.
const CREATED_EVENT_ID: &str =
    "'msg_' || rtrim(translate(encode(uuid_send(gen_random_uuid()), 'base64'), '+/', '-_'), '=')";

/// `WebhookEvent::created(up.id, up.apple_sub).payload(up.created_at)`, made by PostgreSQL
/// (the same JSON value; a test holds the two together): `timestamp` in RFC 3339, UTC, seconds.
const CREATED_PAYLOAD: &str = "json_build_object('type', 'user.created', \
    'timestamp', to_char(to_timestamp(up.created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    'data', json_build_object('userId', up.id, 'appleSub', up.apple_sub))::text";

/// Deletes a user's rows, children first and explicitly, so that deletion does not depend on
/// SQLite's per-connection `foreign_keys` pragma having been applied.
pub(super) async fn delete_user_rows(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for table in ["web_exchange_codes", "web_completions"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
    }
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn upsert(sub: &str, now: i64) -> UserUpsert {
        UserUpsert {
            id: tokens::new_id(),
            apple_sub: sub.to_owned(),
            email: None,
            email_verified: 0,
            is_private_email: 0,
            given_name: None,
            family_name: None,
            real_user_status: None,
            client_id: "com.example.app".to_owned(),
            now,
        }
    }

    /// A sign-in is written when it brings what the upsert would change, or when the last
    /// recorded sign-in is a minute old; a value it lacks (no email scope, no name) is nothing
    /// new. Each case on a user of its own, stored as `stored` makes it.
    #[tokio::test]
    async fn a_sign_in_is_written_when_it_brings_something_new_or_a_minute_has_passed() {
        let file = std::env::temp_dir().join(format!("siwa-new-{}.db", tokens::new_id()));
        let pool = crate::db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        type Change<'a> = (&'a str, bool, &'a dyn Fn(&mut UserUpsert));
        let cases: [Change; 14] = [
            ("the same claims within the minute", false, &|_| {}),
            ("no email scope keeps the stored one", false, &|u| {
                u.email = None
            }),
            ("the same name", false, &|u| {
                u.given_name = Some("Jane".into())
            }),
            ("the same status", false, &|u| u.real_user_status = Some(2)),
            ("a clock behind the row's", false, &|u| {
                u.now = 1_699_999_000
            }),
            ("email", true, &|u| u.email = Some("b@example.com".into())),
            ("email_verified", true, &|u| u.email_verified = 0),
            ("is_private_email", true, &|u| u.is_private_email = 1),
            ("given_name", true, &|u| u.given_name = Some("J".into())),
            ("family_name", true, &|u| u.family_name = Some("A".into())),
            ("real_user_status", true, &|u| u.real_user_status = Some(1)),
            ("client_id", true, &|u| {
                u.client_id = "com.example.web".into()
            }),
            ("a minute later", true, &|u| u.now = 1_700_000_060),
            ("an hour later, no email", true, &|u| {
                u.now = 1_700_003_600;
                u.email = None;
            }),
        ];
        for (i, (what, written, change)) in cases.into_iter().enumerate() {
            let sub = format!("001.case{i}.1");
            let mut first = upsert(&sub, 1_700_000_000);
            first.email = Some("a@example.com".into());
            first.email_verified = 1;
            first.given_name = Some("Jane".into());
            first.family_name = Some("Appleseed".into());
            first.real_user_status = Some(2);
            upsert_users(&mut conn, &[&first], WriteWhen::Always)
                .await
                .unwrap();
            let mut again = upsert(&sub, 1_700_000_059);
            again.email = Some("a@example.com".into());
            again.email_verified = 1;
            change(&mut again);
            let rows = upsert_users(&mut conn, &[&again], WriteWhen::SomethingNew)
                .await
                .unwrap();
            assert_eq!(rows.len() == 1, written, "{what}");
            let users = with_unwritten(&mut conn, &[&again], rows).await.unwrap();
            let (user, was_written) = &users[&sub];
            assert_eq!(*was_written, written, "{what}");
            assert_eq!(user.sign_in_count, if written { 2 } else { 1 }, "{what}");
        }
        drop(conn);
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }

    /// PostgreSQL makes `user.created` in the upsert's statement for the users it created, and
    /// for no other: each the JSON value `WebhookEvent::created` would be, with an id of the form
    /// `new_event_id` makes, due at once.
    #[tokio::test]
    async fn the_upsert_makes_the_events_of_its_new_users_as_the_server_would_on_postgres() {
        let Some(url) = crate::db::fresh_test_postgres().await else {
            return;
        };
        let pool = crate::db::connect(&url).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        upsert_users(
            &mut conn,
            &[&upsert("001.returning.1", 1_700_000_000)],
            WriteWhen::Always,
        )
        .await
        .unwrap();
        // A `sub` no real one looks like, to see it escaped as JSON.
        let batch = [
            upsert("001.\"new\\\".1", 1_700_000_123),
            upsert("001.returning.1", 1_700_000_124),
            upsert("001.new.2", 1_700_086_399),
        ];
        let users = upsert_users_recording_created(
            &mut conn,
            &batch.iter().collect::<Vec<_>>(),
            WriteWhen::Always,
        )
        .await
        .unwrap();
        let new: Vec<&User> = users.iter().filter(|u| u.sign_in_count == 1).collect();
        assert_eq!(new.len(), 2);
        let events: Vec<(String, String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, event_type, payload, status, next_attempt_at, created_at \
             FROM webhook_events",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        assert_eq!(
            events.len(),
            2,
            "one event per new user, none for the returning one"
        );
        for user in new {
            let (id, kind, payload, status, due, created) = events
                .iter()
                .find(|e| e.2.contains(&user.id))
                .expect("an event names each new user");
            let payload: Value = serde_json::from_str(payload).unwrap();
            let expected: Value = serde_json::from_str(
                &WebhookEvent::created(&user.id, &user.apple_sub).payload(user.created_at),
            )
            .unwrap();
            assert_eq!(payload, expected);
            assert_eq!(kind, "user.created");
            assert_eq!(status, "pending");
            assert_eq!((*due, *created), (user.created_at, user.created_at));
            let random = id.strip_prefix("msg_").expect("msg_ and an id");
            assert_eq!(
                random.len(),
                crate::store::new_event_id().len() - "msg_".len()
            );
            assert!(
                random
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{id} is unpadded base64url"
            );
        }
        assert_ne!(events[0].0, events[1].0);
        drop(conn);
        pool.close().await;
    }
}
