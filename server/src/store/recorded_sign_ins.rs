//! Sign-ins that record more than their user, written by the group-commit writer: the apps'
//! route (`POST /v1/auth/apple`: the nonce and the identity token, single use, the user, a
//! session and its refresh token) and the web flow's callback (the nonce and the token).
//!
//! Why: each such sign-in in a transaction of its own paid a commit, and on SQLite waited for the
//! write lock in SQLite's sleeping busy handler; the writer commits whatever has queued in one
//! transaction of a few statements, whatever its size. What a sign-in needs that the writer
//! cannot do (a transfer's relink, Apple's refresh token to seal) keeps its own transaction.
//!
//! The nonce and the token stay single use within a group: the first sign-in of a group to
//! present one is written; a later one in the same group, or one whose nonce or token is already
//! recorded, is refused, as the transaction of its own would refuse it, and writes nothing.

use std::collections::HashSet;

use sqlx::{Any, Transaction};

use super::placeholders;
use super::sessions::{NewSession, insert_refresh_tokens};
use super::users::{SignInRecord, User, UserUpsert};
use crate::tokens;

/// A sign-in's writes, owned, for the writer.
pub(super) struct RecordedSignIn {
    pub upsert: UserUpsert,
    /// The nonce's hash and until when it is kept.
    nonce: Option<(String, i64)>,
    /// The identity token's hash and until when it is kept.
    token: Option<(String, i64)>,
    /// A new user without a name takes the one kept from a failed first sign-in.
    pub take_kept_name: bool,
    session: Option<PreparedSession>,
}

/// A session made before its write (ids and hashes off the writer's task).
struct PreparedSession {
    id: String,
    refresh_token: String,
    refresh_token_hash: String,
    expires_at: i64,
}

/// What the writer made of a recorded sign-in.
pub(super) enum Grouped {
    SignedIn {
        user: Box<User>,
        session: Option<NewSession>,
    },
    NonceReplayed,
    TokenReplayed,
    /// The group failed: to be written in a transaction of its own.
    Alone,
}

/// Until when a nonce is kept: until a token carrying it would have expired anyway.
pub(super) fn nonce_kept_until(record: &SignInRecord<'_>) -> i64 {
    record.claims.exp.max(record.now) + 24 * 3600
}

/// Until when an identity token is kept: until it expires, with the verifier's leeway.
pub(super) fn token_kept_until(record: &SignInRecord<'_>) -> i64 {
    record.claims.exp.max(record.now) + 60
}

impl RecordedSignIn {
    /// Whether the writer can write `record`: not a transfer's relink, no Apple grant to keep.
    pub fn groups(record: &SignInRecord<'_>) -> bool {
        record.claims.transfer_sub.is_none() && record.apple_refresh_token.is_none()
    }

    pub fn new(record: &SignInRecord<'_>, session_ttl_secs: Option<i64>) -> Self {
        Self {
            upsert: UserUpsert::from_record(record),
            nonce: record
                .nonce_hash
                .map(|hash| (hash.to_owned(), nonce_kept_until(record))),
            token: record
                .identity_token_hash
                .map(|hash| (hash.to_owned(), token_kept_until(record))),
            take_kept_name: record.take_kept_name,
            session: session_ttl_secs.map(|ttl| {
                let refresh_token = tokens::new_token();
                PreparedSession {
                    id: tokens::new_ordered_id(),
                    refresh_token_hash: tokens::token_hash(&refresh_token),
                    refresh_token,
                    expires_at: record.now + ttl,
                }
            }),
        }
    }

    /// The session this sign-in opens, once written.
    pub fn opened(&self) -> Option<NewSession> {
        self.session.as_ref().map(|s| NewSession {
            id: s.id.clone(),
            refresh_token: s.refresh_token.clone(),
        })
    }
}

/// A recorded sign-in refused for a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Nonce,
    Token,
}

/// Records the nonces and identity tokens of `jobs` in `tx`, in two statements; each job's
/// refusal, or none. A refused job records nothing: the nonce of a job whose token is refused is
/// taken back.
pub(super) async fn claim_single_use(
    tx: &mut Transaction<'_, Any>,
    jobs: &[&RecordedSignIn],
) -> Result<Vec<Option<Refusal>>, sqlx::Error> {
    let mut refusals: Vec<Option<Refusal>> = vec![None; jobs.len()];
    // A second use within the group is refused before the database is asked.
    let (mut nonces, mut tokens) = (HashSet::new(), HashSet::new());
    for (job, refusal) in jobs.iter().zip(&mut refusals) {
        if let Some((nonce, _)) = &job.nonce
            && !nonces.insert(nonce.as_str())
        {
            *refusal = Some(Refusal::Nonce);
        } else if let Some((token, _)) = &job.token
            && !tokens.insert(token.as_str())
        {
            *refusal = Some(Refusal::Token);
        }
    }
    let nonce_rows: Vec<(usize, &(String, i64))> = live(jobs, &refusals, |j| j.nonce.as_ref());
    let recorded = insert_new(tx, "used_nonces", "nonce_hash", &nonce_rows).await?;
    for (i, (hash, _)) in &nonce_rows {
        if !recorded.contains(hash.as_str()) {
            refusals[*i] = Some(Refusal::Nonce);
        }
    }
    let token_rows: Vec<(usize, &(String, i64))> = live(jobs, &refusals, |j| j.token.as_ref());
    let recorded = insert_new(tx, "used_identity_tokens", "token_hash", &token_rows).await?;
    let mut taken_back = Vec::new();
    for (i, (hash, _)) in &token_rows {
        if !recorded.contains(hash.as_str()) {
            refusals[*i] = Some(Refusal::Token);
            if let Some((nonce, _)) = &jobs[*i].nonce {
                taken_back.push(nonce.as_str());
            }
        }
    }
    if !taken_back.is_empty() {
        let sql = format!(
            "DELETE FROM used_nonces WHERE nonce_hash IN ({})",
            placeholders(taken_back.len(), 1)
        );
        let mut query = sqlx::query(&sql);
        for nonce in taken_back {
            query = query.bind(nonce);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(refusals)
}

/// The value `field` of each job not refused, with its index.
fn live<'a, T>(
    jobs: &[&'a RecordedSignIn],
    refusals: &[Option<Refusal>],
    field: impl Fn(&'a RecordedSignIn) -> Option<&'a T>,
) -> Vec<(usize, &'a T)> {
    jobs.iter()
        .enumerate()
        .filter(|(i, _)| refusals[*i].is_none())
        .filter_map(|(i, job)| field(job).map(|value| (i, value)))
        .collect()
}

/// Inserts `(hash, expires_at)` rows into a single-use table, skipping those already there;
/// the hashes it inserted.
async fn insert_new(
    tx: &mut Transaction<'_, Any>,
    table: &str,
    key: &str,
    rows: &[(usize, &(String, i64))],
) -> Result<HashSet<String>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "INSERT INTO {table} ({key}, expires_at) VALUES {} ON CONFLICT ({key}) DO NOTHING \
         RETURNING {key}",
        placeholders(rows.len(), 2)
    );
    let mut query = sqlx::query_as::<_, (String,)>(&sql);
    for (_, (hash, expires_at)) in rows {
        query = query.bind(hash).bind(*expires_at);
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(hash,)| hash)
        .collect())
}

/// Inserts the sessions of `opened` (a job and its written user) and their first refresh
/// tokens, in two statements.
pub(super) async fn open_sessions(
    tx: &mut Transaction<'_, Any>,
    opened: &[(&RecordedSignIn, &User)],
) -> Result<(), sqlx::Error> {
    let rows: Vec<(&PreparedSession, &User, i64)> = opened
        .iter()
        .filter_map(|(job, user)| job.session.as_ref().map(|s| (s, *user, job.upsert.now())))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES {}",
        placeholders(rows.len(), 4)
    );
    let mut query = sqlx::query(&sql);
    for (session, user, now) in &rows {
        query = query
            .bind(&session.id)
            .bind(&user.id)
            .bind(*now)
            .bind(session.expires_at);
    }
    query.execute(&mut **tx).await?;
    let tokens: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|(s, _, now)| (s.refresh_token_hash.as_str(), s.id.as_str(), *now))
        .collect();
    insert_refresh_tokens(tx, &tokens).await
}
