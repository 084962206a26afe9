//! The rows of an app transfer to another team (`transfer`; docs/apple-protocol.md, F16): each
//! user's transfer identifier, kept by the sending team's `prepare`, and whether the recipient's
//! `complete` (or a sign-in carrying it) relinked the account. Every step is one user's own
//! transaction, so an interrupted run loses nothing committed and repeats nothing finished.

use super::{Store, WebhookEvent};

/// A user whose transfer identifier is still to be asked for.
pub struct ToPrepare {
    pub user_id: String,
    pub apple_sub: String,
}

/// A prepared user whose account is still to be relinked.
pub struct ToComplete {
    pub user_id: String,
    pub transfer_sub: String,
}

/// The user under the recipient team, as Apple's migration endpoint gives them.
pub struct NewIdentity<'a> {
    pub apple_sub: &'a str,
    pub email: Option<&'a str>,
    pub is_private_email: bool,
}

/// What `complete` did for one user.
#[derive(Debug, PartialEq, Eq)]
pub enum Relinked {
    /// The account now has the new `sub`.
    Moved,
    /// A sign-in carrying the transfer identifier had already moved it.
    Already,
    /// Another account already has the new `sub` (the user signed up afresh under the new team
    /// without the identifier): left for the operator, recorded as a failure.
    SubTaken,
    /// The user was deleted meanwhile.
    Gone,
}

/// How far a transfer is.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TransferStatus {
    pub users: i64,
    /// Every recipient team asked for so far (one, unless the operator changed their mind).
    pub target_teams: Vec<String>,
    pub prepared: i64,
    pub completed: i64,
    /// Users whose last attempt was refused (and that are not completed).
    pub failed: i64,
    /// The first relinked account: Apple's 60 days had started by then.
    pub first_completed_at: Option<i64>,
}

impl Store {
    /// Up to `limit` users, by id after `after`, with no transfer identifier for `target` yet.
    pub async fn users_to_prepare(
        &self,
        target: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ToPrepare>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT u.id, u.apple_sub FROM users u LEFT JOIN user_transfers t \
             ON t.user_id = u.id AND t.target_team = $1 AND t.transfer_sub IS NOT NULL \
             WHERE t.user_id IS NULL AND u.id > $2 ORDER BY u.id LIMIT $3",
        )
        .bind(target)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, apple_sub)| ToPrepare { user_id, apple_sub })
            .collect())
    }

    /// Keeps a user's transfer identifier for `target`, in its own transaction.
    pub async fn record_prepared(
        &self,
        user_id: &str,
        target: &str,
        transfer_sub: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO user_transfers (user_id, target_team, transfer_sub, prepared_at, attempts) \
             VALUES ($1, $2, $3, $4, 1) ON CONFLICT (user_id) DO UPDATE SET \
             target_team = excluded.target_team, transfer_sub = excluded.transfer_sub, \
             prepared_at = excluded.prepared_at, completed_at = NULL, failure = NULL, \
             attempts = user_transfers.attempts + 1",
        )
        .bind(user_id)
        .bind(target)
        .bind(transfer_sub)
        .bind(now)
        .execute(self.pool()?)
        .await
        .map(drop)
    }

    /// Records that Apple refused a user's step (`code`: its error, never an identifier).
    pub async fn record_transfer_failure(
        &self,
        user_id: &str,
        target: &str,
        code: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO user_transfers (user_id, target_team, failure, attempts) \
             VALUES ($1, $2, $3, 1) ON CONFLICT (user_id) DO UPDATE SET failure = excluded.failure, \
             attempts = user_transfers.attempts + 1",
        )
        .bind(user_id)
        .bind(target)
        .bind(code)
        .execute(self.pool()?)
        .await
        .map(drop)
    }

    /// Up to `limit` prepared users, by id after `after`, whose account is not relinked yet.
    pub async fn transfers_to_complete(
        &self,
        after: &str,
        limit: i64,
    ) -> Result<Vec<ToComplete>, sqlx::Error> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT user_id, transfer_sub FROM user_transfers WHERE transfer_sub IS NOT NULL \
             AND completed_at IS NULL AND user_id > $1 ORDER BY user_id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool()?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(user_id, transfer_sub)| ToComplete {
                user_id,
                transfer_sub,
            })
            .collect())
    }

    /// Relinks `user_id` to its identity under the recipient team, in one transaction with
    /// its `user.transferred` event: the same user id, sessions and name; the new `sub`, and
    /// the new address when Apple gave one.
    pub async fn complete_transfer(
        &self,
        user_id: &str,
        new: &NewIdentity<'_>,
        now: i64,
    ) -> Result<Relinked, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        // The first statement writes (store's rule): SQLite takes its write lock at once.
        sqlx::query("UPDATE user_transfers SET attempts = attempts + 1 WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let current: Option<(String,)> =
            sqlx::query_as("SELECT apple_sub FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((previous,)) = current else {
            tx.commit().await?;
            return Ok(Relinked::Gone);
        };
        let outcome = if previous == new.apple_sub {
            Relinked::Already
        } else {
            let taken: Option<(String,)> =
                sqlx::query_as("SELECT id FROM users WHERE apple_sub = $1")
                    .bind(new.apple_sub)
                    .fetch_optional(&mut *tx)
                    .await?;
            if taken.is_some() {
                Relinked::SubTaken
            } else {
                sqlx::query(
                    "UPDATE users SET apple_sub = $1, email = COALESCE($2, email), \
                     is_private_email = CASE WHEN $2 IS NULL THEN is_private_email ELSE $3 END \
                     WHERE id = $4",
                )
                .bind(new.apple_sub)
                .bind(new.email)
                .bind(i64::from(new.is_private_email))
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
                Relinked::Moved
            }
        };
        let failure = (outcome == Relinked::SubTaken).then_some("sub_taken");
        sqlx::query(
            "UPDATE user_transfers SET completed_at = CASE WHEN $1 IS NULL THEN $2 ELSE NULL END, \
             failure = $1 WHERE user_id = $3",
        )
        .bind(failure)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let mut recorded = false;
        if outcome == Relinked::Moved {
            let event = WebhookEvent::transferred(user_id, &previous, new.apple_sub);
            recorded = self.record_event(&mut tx, event, now).await?;
        }
        tx.commit().await?;
        self.events_committed(recorded);
        Ok(outcome)
    }

    /// How far the transfer is.
    pub async fn transfer_status(&self) -> Result<TransferStatus, sqlx::Error> {
        let pool = self.pool()?;
        let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(pool)
            .await?;
        let (prepared, completed, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(transfer_sub), COUNT(completed_at), \
             COUNT(CASE WHEN failure IS NOT NULL AND completed_at IS NULL THEN 1 END) \
             FROM user_transfers",
        )
        .fetch_one(pool)
        .await?;
        let first: (Option<i64>,) = sqlx::query_as("SELECT MIN(completed_at) FROM user_transfers")
            .fetch_one(pool)
            .await?;
        let teams: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT target_team FROM user_transfers ORDER BY target_team")
                .fetch_all(pool)
                .await?;
        Ok(TransferStatus {
            users,
            target_teams: teams.into_iter().map(|(t,)| t).collect(),
            prepared,
            completed,
            failed,
            first_completed_at: first.0,
        })
    }
}
