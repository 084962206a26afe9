//! Names Apple sent once, kept through a failed sign-in (docs/apple-protocol.md, P6).
//!
//! Apple gives the name with a user's first authorization of the app only. When the sign-in
//! that carried it fails after the identity token was verified (Apple's token endpoint down, a
//! database error), the account is not made, and the next authorization comes without a name.
//! So the name waits here, sealed, under the user's Apple `sub`, for at most
//! [`PENDING_NAME_TTL_SECS`]; the next sign-in that makes the user's account takes it.

use serde::{Deserialize, Serialize};

use super::Store;
use crate::sealing::Purpose;

/// How long a name waits for its user's next sign-in.
pub const PENDING_NAME_TTL_SECS: i64 = 24 * 3600;

/// A name as Apple's first authorization gave it. `Debug` is not derived: it is personal data.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingName {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl Store {
    /// Keeps `name` for the next sign-in of `apple_sub`, replacing one kept before.
    pub async fn keep_pending_name(
        &self,
        apple_sub: &str,
        name: &PendingName,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let json = serde_json::to_string(name).expect("a name serializes");
        let sealed = self.sealer.seal(Purpose::PendingName, &json);
        sqlx::query(
            "INSERT INTO pending_names (apple_sub, sealed_name, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (apple_sub) DO UPDATE SET sealed_name = excluded.sealed_name, \
             expires_at = excluded.expires_at",
        )
        .bind(apple_sub)
        .bind(sealed)
        .bind(now + PENDING_NAME_TTL_SECS)
        .execute(self.pool()?)
        .await?;
        Ok(())
    }

    /// Gives the user `user_id` (Apple's `apple_sub`) the name kept for them, if any and in
    /// time, unless they have a name already; the kept name is spent either way. Returns the
    /// name given.
    pub async fn adopt_pending_name(
        &self,
        user_id: &str,
        apple_sub: &str,
        now: i64,
    ) -> Result<Option<PendingName>, sqlx::Error> {
        let mut tx = self.pool()?.begin().await?;
        let kept: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM pending_names WHERE apple_sub = $1 RETURNING sealed_name, expires_at",
        )
        .bind(apple_sub)
        .fetch_optional(&mut *tx)
        .await?;
        let name = kept
            .filter(|(_, expires_at)| *expires_at > now)
            .and_then(|(sealed, _)| self.sealer.open(Purpose::PendingName, &sealed).ok())
            .and_then(|json| serde_json::from_str::<PendingName>(&json).ok());
        let Some(name) = name else {
            tx.commit().await?;
            return Ok(None);
        };
        let given = sqlx::query(
            "UPDATE users SET given_name = $2, family_name = $3 \
             WHERE id = $1 AND given_name IS NULL AND family_name IS NULL",
        )
        .bind(user_id)
        .bind(&name.given_name)
        .bind(&name.family_name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(given.then_some(name))
    }
}
