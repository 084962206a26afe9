//! Sessions of our own: a refresh token per session, rotated on every use; a rotated token that
//! comes back ends its session (it may have been stolen).

use std::collections::{HashMap, HashSet};

use sqlx::{Any, Transaction};

use super::{Store, placeholders};
use crate::sealing::{Purpose, Sealer};
use crate::tokens;

#[derive(Clone)]
pub struct NewSession {
    pub id: String,
    pub refresh_token: String,
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
    ///
    /// The usual case (an unused token of a live session) is written by the group-commit writer
    /// with the other rotations and sign-ins waiting: see [`rotate_batch`]. A token already used
    /// is judged in a transaction of its own ([`Store::rotate_alone`]).
    pub async fn rotate_refresh_token(
        &self,
        token: &str,
        now: i64,
        grace_secs: i64,
    ) -> Result<Rotation, sqlx::Error> {
        let claim = Claim::new(token, now, grace_secs, &self.sealer);
        let successor = claim.successor.clone();
        Ok(match self.group_commit.rotate(claim).await? {
            Batched::Rotated {
                user_id,
                session_id,
            } => Rotation::Rotated {
                user_id,
                session_id,
                refresh_token: successor,
            },
            Batched::Invalid => Rotation::Invalid,
            Batched::Reused => Rotation::Reused,
            // The batch's successor was never written: a new one.
            Batched::Alone => {
                let claim = Claim::new(token, now, grace_secs, &self.sealer);
                self.rotate_alone(claim, grace_secs).await?
            }
        })
    }

    /// [`Store::rotate_refresh_token`] in a transaction of its own: for a token already used
    /// (within the grace, or a reuse), and for a batch that failed.
    async fn rotate_alone(&self, claim: Claim, grace_secs: i64) -> Result<Rotation, sqlx::Error> {
        let now = claim.now;
        let mut tx = self.pool()?.begin().await?;
        // Claim the token first (a write): of two concurrent uses, exactly one wins. Its
        // successor is kept with the claim, sealed, for a retry within the grace.
        let claimed = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1, successor = $2 \
             WHERE token_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(&claim.sealed_successor)
        .bind(&claim.token_hash)
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
        .bind(&claim.token_hash)
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
            // Dropped: the claim is rolled back.
            return Ok(Rotation::Invalid);
        }
        insert_refresh_tokens(&mut tx, &[(&claim.successor_hash, &session_id, now)]).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated {
            user_id,
            session_id,
            refresh_token: claim.successor,
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
        .execute(self.pool()?)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Ends one session (a logout with an access token).
    pub async fn end_session(&self, session_id: &str, now: i64) -> Result<bool, sqlx::Error> {
        let result = sqlx::query("UPDATE sessions SET revoked_at = $1, revoked_reason = 'logout' WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(self.pool()?)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

pub async fn create_session(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    now: i64,
    ttl: i64,
) -> Result<NewSession, sqlx::Error> {
    let id = tokens::new_ordered_id();
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
    Ok(NewSession { id, refresh_token })
}

/// A session of the web page: no refresh token, a secret of its own for the cookie (stored
/// hashed), which no API route accepts. Returns the secret.
pub async fn create_web_session(
    tx: &mut Transaction<'_, Any>,
    user_id: &str,
    now: i64,
    ttl: i64,
) -> Result<String, sqlx::Error> {
    let secret = tokens::new_token();
    sqlx::query(
        "INSERT INTO sessions (id, user_id, created_at, expires_at, web_secret_hash) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(tokens::new_ordered_id())
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
    insert_refresh_tokens(tx, &[(&tokens::token_hash(&token), session_id, now)]).await?;
    Ok(token)
}

/// Inserts refresh tokens, each `(hash, session id, made at)`, in one statement.
pub(super) async fn insert_refresh_tokens(
    tx: &mut Transaction<'_, Any>,
    rows: &[(&str, &str, i64)],
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES {}",
        placeholders(rows.len(), 3)
    );
    let mut query = sqlx::query(&sql);
    for &(hash, session_id, made_at) in rows {
        query = query.bind(hash).bind(session_id).bind(made_at);
    }
    query.execute(&mut **tx).await.map(|_| ())
}

/// A refresh token presented, with the successor it gets if it is rotated (made before the
/// claim, so that the claim keeps it for a retry within the grace).
pub(super) struct Claim {
    token_hash: String,
    now: i64,
    successor: String,
    successor_hash: String,
    /// The successor, sealed; none without a grace.
    sealed_successor: Option<String>,
}

impl Claim {
    fn new(token: &str, now: i64, grace_secs: i64, sealer: &Sealer) -> Self {
        let successor = tokens::new_token();
        Self {
            token_hash: tokens::token_hash(token),
            now,
            successor_hash: tokens::token_hash(&successor),
            sealed_successor: (grace_secs > 0)
                .then(|| sealer.seal(Purpose::RefreshSuccessor, &successor)),
            successor,
        }
    }
}

/// What the group-commit writer made of a claim.
pub(super) enum Batched {
    Rotated {
        user_id: String,
        session_id: String,
    },
    Invalid,
    Reused,
    /// To be judged in a transaction of its own, after the batch's commit: a token already
    /// used while its session lives (a retry within the grace, or a reuse to punish), a token
    /// claimed twice in one batch, or a batch that failed.
    Alone,
}

/// Rotates a batch of claims in `tx` in at most four statements, whatever its size: claim the
/// unused tokens, read their sessions, insert the successors of the live ones, and give back
/// the claims of ended sessions (as a rolled-back transaction would: an ended session's token
/// stays invalid, not "reused").
pub(super) async fn rotate_batch(
    tx: &mut Transaction<'_, Any>,
    claims: &[&Claim],
) -> Result<Vec<Batched>, sqlx::Error> {
    let mut outcomes: Vec<Batched> = claims.iter().map(|_| Batched::Alone).collect();
    if tx.backend_name() == "PostgreSQL" {
        // The batch's statements planned for the table as it is. After five runs of a prepared
        // statement PostgreSQL may keep one generic plan for it: made while the table was small,
        // a sequential scan, which stays until the table is next analyzed (the lookup took
        // 100-160 ms a batch once the table had grown for a minute; p99 90-150 ms, not 15).
        // For this transaction only: planning every statement costs the sign-ins 5-12%.
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut **tx)
            .await?;
    }
    // The first claim of each token; a later one is judged after the commit, alone.
    let mut seen = HashSet::new();
    let first: Vec<bool> = claims
        .iter()
        .map(|c| seen.insert(c.token_hash.as_str()))
        .collect();
    let firsts: Vec<&Claim> = claims
        .iter()
        .zip(&first)
        .filter_map(|(claim, &first)| first.then_some(*claim))
        .collect();
    let hashes = (0..firsts.len())
        .map(|r| format!("${}", 3 * r + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let cases = |value: usize, cast: &str| {
        (0..firsts.len())
            .map(|r| {
                format!(
                    "WHEN ${} THEN CAST(${} AS {cast})",
                    3 * r + 1,
                    3 * r + value
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sql = format!(
        "UPDATE refresh_tokens SET used_at = CASE token_hash {} END, \
         successor = CASE token_hash {} END \
         WHERE used_at IS NULL AND token_hash IN ({hashes}) RETURNING token_hash",
        cases(2, "BIGINT"),
        cases(3, "TEXT"),
    );
    let mut query = sqlx::query_as::<_, (String,)>(&sql);
    for claim in &firsts {
        query = query
            .bind(&claim.token_hash)
            .bind(claim.now)
            .bind(&claim.sealed_successor);
    }
    let claimed: HashSet<String> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(hash,)| hash)
        .collect();
    let sql = format!(
        "SELECT t.token_hash, s.id, s.user_id, s.revoked_at, s.expires_at FROM refresh_tokens t \
         JOIN sessions s ON s.id = t.session_id WHERE t.token_hash IN ({})",
        placeholders(firsts.len(), 1)
    );
    let mut query = sqlx::query_as::<_, (String, String, String, Option<i64>, i64)>(&sql);
    for claim in &firsts {
        query = query.bind(&claim.token_hash);
    }
    let sessions: HashMap<String, (String, String, Option<i64>, i64)> = query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(hash, id, user_id, revoked_at, expires_at)| {
            (hash, (id, user_id, revoked_at, expires_at))
        })
        .collect();
    let mut successors = Vec::new();
    let mut given_back = Vec::new();
    for ((claim, outcome), _) in claims
        .iter()
        .zip(&mut outcomes)
        .zip(&first)
        .filter(|(_, first)| **first)
    {
        let Some((session_id, user_id, revoked_at, expires_at)) = sessions.get(&claim.token_hash)
        else {
            *outcome = Batched::Invalid;
            continue;
        };
        let live = revoked_at.is_none() && *expires_at > claim.now;
        *outcome = match (claimed.contains(&claim.token_hash), live) {
            (true, true) => {
                successors.push((
                    claim.successor_hash.as_str(),
                    session_id.as_str(),
                    claim.now,
                ));
                Batched::Rotated {
                    user_id: user_id.clone(),
                    session_id: session_id.clone(),
                }
            }
            (true, false) => {
                given_back.push(claim.token_hash.as_str());
                Batched::Invalid
            }
            // A used token of a revoked session: ended already, nothing to write.
            (false, _) if revoked_at.is_some() => Batched::Reused,
            (false, _) => Batched::Alone,
        };
    }
    if !successors.is_empty() {
        insert_refresh_tokens(tx, &successors).await?;
    }
    if !given_back.is_empty() {
        let sql = format!(
            "UPDATE refresh_tokens SET used_at = NULL, successor = NULL WHERE token_hash IN ({})",
            placeholders(given_back.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for hash in given_back {
            query = query.bind(hash);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(outcomes)
}

/// Rows a statement of a sweep writes at most.
const SWEEP_CHUNK: i64 = 1000;

/// Runs `sql` (its `$1` is `before`, its `$2` the chunk's size) until it writes less than a
/// chunk: many rows, in statements that each hold SQLite's write lock (which the sign-ins and
/// refreshes wait on) briefly. Says how many rows it wrote.
async fn sweep(pool: &sqlx::AnyPool, sql: &str, before: i64) -> Result<u64, sqlx::Error> {
    let mut written = 0;
    loop {
        let done = sqlx::query(sql)
            .bind(before)
            .bind(SWEEP_CHUNK)
            .execute(pool)
            .await?
            .rows_affected();
        written += done;
        if done < SWEEP_CHUNK as u64 {
            return Ok(written);
        }
    }
}

/// Forgets the successors of tokens rotated before `before` (the reuse grace is over: a retry
/// would be a reuse), found through their index. Says how many were cleared.
pub(super) async fn forget_successors(
    pool: &sqlx::AnyPool,
    before: i64,
) -> Result<u64, sqlx::Error> {
    sweep(
        pool,
        "UPDATE refresh_tokens SET successor = NULL WHERE token_hash IN \
         (SELECT token_hash FROM refresh_tokens WHERE successor IS NOT NULL AND used_at < $1 \
          LIMIT $2)",
        before,
    )
    .await
}

/// Forgets the sessions that expired before `before`, with their refresh tokens, which no
/// longer open anything (a live session keeps every token it rotated: one coming back is a
/// reuse). The tokens go first: a sweep stopped between the two leaves sessions without tokens,
/// which the next one forgets. Says how many sessions went.
pub(super) async fn forget_ended_sessions(
    pool: &sqlx::AnyPool,
    before: i64,
) -> Result<u64, sqlx::Error> {
    sweep(
        pool,
        "DELETE FROM refresh_tokens WHERE token_hash IN \
         (SELECT t.token_hash FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id \
          WHERE s.expires_at < $1 LIMIT $2)",
        before,
    )
    .await?;
    sweep(
        pool,
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE expires_at < $1 LIMIT $2)",
        before,
    )
    .await
}

siwa_core::protocol_word! {
    /// Why a session ended, as `sessions.revoked_reason` keeps it.
    RevocationReason, "session revocation reason" {
        /// A rotated refresh token came back after its grace.
        RefreshTokenReused => "refresh_token_reused",
        /// Apple's `consent-revoked` notification.
        ConsentRevoked => "consent_revoked",
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite database holding one user, `u`; `remove` deletes it.
    async fn sqlite_with_user(name: &str) -> (sqlx::AnyPool, std::path::PathBuf) {
        let file = std::env::temp_dir().join(format!("siwa-{name}-{}.db", tokens::new_id()));
        let pool = crate::db::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO users (id, apple_sub, client_id, created_at, last_sign_in_at) \
             VALUES ('u', 'sub', 'com.example.app', 0, 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        (pool, file)
    }

    async fn remove(pool: sqlx::AnyPool, file: std::path::PathBuf) {
        pool.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
        }
    }

    /// More successors to forget than one statement clears: all past the grace are forgotten,
    /// none within it.
    #[tokio::test]
    async fn the_sweep_forgets_every_successor_past_the_grace_and_no_other() {
        let (pool, file) = sqlite_with_user("sweep").await;
        let plant = [
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ('s', 'u', 0, 2)",
            // 2,500 tokens rotated at 1..=2500, each with its successor kept; 10 unused.
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2510) \
             INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at, successor) \
             SELECT 'h' || i, 's', 0, CASE WHEN i <= 2500 THEN i END, \
                    CASE WHEN i <= 2500 THEN 'sealed' END FROM n",
        ];
        for sql in plant {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let cleared = forget_successors(&pool, 2201).await.unwrap();
        assert_eq!(cleared, 2200);
        let (kept, oldest): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), MIN(used_at) FROM refresh_tokens WHERE successor IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (kept, oldest),
            (300, 2201),
            "those within the grace are kept"
        );
        assert_eq!(forget_successors(&pool, 2201).await.unwrap(), 0);
        remove(pool, file).await;
    }

    /// Sessions that expired before the cut-off go with all their tokens, more than one
    /// statement's worth; a session that expired later and a live one keep theirs.
    #[tokio::test]
    async fn ended_sessions_are_forgotten_with_their_tokens() {
        let (pool, file) = sqlite_with_user("ended").await;
        let plant = [
            "INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES \
             ('old', 'u', 0, 100, NULL), ('old-revoked', 'u', 0, 200, 50), \
             ('recent', 'u', 0, 1000, NULL), ('live', 'u', 0, 2000000000, NULL)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2500) \
             INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) \
             SELECT 'old' || i, CASE WHEN i % 2 = 0 THEN 'old' ELSE 'old-revoked' END, 0, i FROM n",
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES \
             ('r1', 'recent', 0), ('r2', 'recent', 0), ('l1', 'live', 0)",
        ];
        for sql in plant {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        assert_eq!(forget_ended_sessions(&pool, 500).await.unwrap(), 2);
        let sessions: Vec<(String,)> = sqlx::query_as("SELECT id FROM sessions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(sessions, [("live".to_owned(),), ("recent".to_owned(),)]);
        let tokens: Vec<(String,)> =
            sqlx::query_as("SELECT token_hash FROM refresh_tokens ORDER BY token_hash")
                .fetch_all(&pool)
                .await
                .unwrap();
        let tokens: Vec<&str> = tokens.iter().map(|(t,)| t.as_str()).collect();
        assert_eq!(tokens, ["l1", "r1", "r2"]);
        assert_eq!(forget_ended_sessions(&pool, 500).await.unwrap(), 0);
        remove(pool, file).await;
    }

    /// A batch's lookup is planned for the table as it is: after many batches on a small table
    /// (where PostgreSQL would settle on a generic plan, a sequential scan) and the table grown
    /// tenfold, the same prepared statement reads the tokens through their index.
    #[tokio::test]
    async fn a_batch_is_planned_for_the_table_as_it_is_on_postgres() {
        use sqlx::Connection;
        let Some(url) = crate::db::fresh_test_postgres().await else {
            return;
        };
        let pool = crate::db::connect(&url).await.unwrap();
        let plant = [
            "INSERT INTO users (id, apple_sub, client_id, created_at, last_sign_in_at) \
             VALUES ('u', 'sub', 'com.example.app', 0, 0)",
            "INSERT INTO sessions (id, user_id, created_at, expires_at) \
             VALUES ('s', 'u', 0, 1800000000)",
        ];
        for sql in plant {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let sealer = Sealer::from_keys(&Sealer::generate_key()).unwrap();
        // As many tokens as the batches that got the sequential scan under load, each rotated
        // by every batch, as a burst of refreshes does.
        const BATCH: usize = 30;
        let mut presented: Vec<String> = (0..BATCH).map(|i| format!("first-{i}")).collect();
        for token in &presented {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, 's', 0)",
            )
            .bind(tokens::token_hash(token))
            .execute(&pool)
            .await
            .unwrap();
        }
        let mut conn = pool.acquire().await.unwrap();
        async fn rotate<'c>(
            presented: &mut Vec<String>,
            conn: &'c mut sqlx::AnyConnection,
            sealer: &Sealer,
        ) -> Transaction<'c, Any> {
            let claims: Vec<Claim> = presented
                .iter()
                .map(|t| Claim::new(t, 1_700_000_000, 10, sealer))
                .collect();
            let mut tx = conn.begin().await.unwrap();
            let outcomes = rotate_batch(&mut tx, &claims.iter().collect::<Vec<_>>())
                .await
                .unwrap();
            assert!(
                outcomes
                    .iter()
                    .all(|o| matches!(o, Batched::Rotated { .. }))
            );
            *presented = claims.into_iter().map(|c| c.successor).collect();
            tx
        }
        for _ in 0..10 {
            rotate(&mut presented, &mut conn, &sealer)
                .await
                .commit()
                .await
                .unwrap();
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, created_at) \
             SELECT 'grown' || i, 's', 0 FROM generate_series(1, 30000) AS i",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
        let mut tx = rotate(&mut presented, &mut conn, &sealer).await;
        // The plan the batch's lookup gets now, read in its transaction.
        let (name,): (String,) = sqlx::query_as(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE 'SELECT t.token_hash%'",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let hashes = vec!["'a'"; BATCH].join(", ");
        let plan: Vec<(String,)> = sqlx::query_as(&format!("EXPLAIN EXECUTE {name}({hashes})"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(line,)| line).collect();
        let plan = plan.join("\n");
        tx.commit().await.unwrap();
        assert!(
            plan.contains("refresh_tokens_pkey") && !plan.contains("Seq Scan on refresh_tokens"),
            "{plan}"
        );
        drop(conn);
        pool.close().await;
    }

    /// One batch holding every kind of claim: each gets what a transaction of its own would
    /// have given it, and only the live token is spent.
    #[tokio::test]
    async fn a_batch_answers_each_claim_as_it_would_alone() {
        let (pool, file) = sqlite_with_user("rb").await;
        let now = 1_700_000_000;
        let plant = [
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES \
             ('live', 'u', 0, 1800000000), ('ended', 'u', 0, 1800000000), \
             ('expired', 'u', 0, 1600000000), ('revoked', 'u', 0, 1800000000)",
            "UPDATE sessions SET revoked_at = 1 WHERE id IN ('ended', 'revoked')",
        ];
        for sql in plant {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let mut tx = pool.begin().await.unwrap();
        let token = |name: &str, session: &str, used: bool| {
            let hash = tokens::token_hash(name);
            (hash, session.to_owned(), used.then_some(now - 5))
        };
        let planted = [
            token("fresh", "live", false),
            token("of-an-ended-session", "ended", false),
            token("of-an-expired-session", "expired", false),
            token("used", "live", true),
            token("used-of-a-revoked-session", "revoked", true),
        ];
        for (hash, session, used_at) in &planted {
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, used_at) VALUES ($1, $2, 0, $3)")
                .bind(hash)
                .bind(session)
                .bind(*used_at)
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        let sealer = Sealer::from_keys(&Sealer::generate_key()).unwrap();
        let presented = [
            "fresh",
            "never-issued",
            "of-an-ended-session",
            "of-an-expired-session",
            "used",
            "used-of-a-revoked-session",
            "fresh",
        ];
        let claims: Vec<Claim> = presented
            .iter()
            .map(|t| Claim::new(t, now, 10, &sealer))
            .collect();
        let outcomes = rotate_batch(&mut tx, &claims.iter().collect::<Vec<_>>())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let described: Vec<String> = outcomes
            .iter()
            .map(|o| match o {
                Batched::Rotated {
                    user_id,
                    session_id,
                } => format!("rotated {user_id} {session_id}"),
                Batched::Invalid => "invalid".into(),
                Batched::Reused => "reused".into(),
                Batched::Alone => "alone".into(),
            })
            .collect();
        assert_eq!(
            described,
            [
                "rotated u live",
                "invalid",
                "invalid",
                "invalid",
                // Within the grace or a reuse: judged alone, after the commit.
                "alone",
                "reused",
                // The same token again in the batch: judged alone, after the first's commit.
                "alone",
            ]
        );
        let rows: Vec<(String, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT token_hash, used_at, successor FROM refresh_tokens ORDER BY created_at, token_hash",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let row = |name: &str| {
            rows.iter()
                .find(|(hash, _, _)| *hash == tokens::token_hash(name))
                .unwrap()
        };
        // The fresh token is spent, its successor kept sealed for a retry and inserted unused.
        let (_, used_at, sealed) = row("fresh");
        assert_eq!(*used_at, Some(now));
        let successor = sealer
            .open(Purpose::RefreshSuccessor, sealed.as_deref().unwrap())
            .unwrap();
        assert_eq!(successor, claims[0].successor);
        assert_eq!(row(&successor).1, None);
        // Ended sessions' tokens are given back, as a rolled-back claim would be.
        for name in ["of-an-ended-session", "of-an-expired-session"] {
            assert_eq!(
                (row(name).1, row(name).2.as_deref()),
                (None, None),
                "{name}"
            );
        }
        assert_eq!(rows.len(), planted.len() + 1, "one successor, no other row");
        remove(pool, file).await;
    }
}
