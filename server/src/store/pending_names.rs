//! Names Apple sent once, kept through a failed sign-in (docs/apple-protocol.md, P6).
//!
//! Apple gives the name with a user's first authorization of the app only. When the sign-in
//! that carried it fails after the identity token was verified (Apple's token endpoint down, a
//! database error), the account is not made, and the next authorization comes without a name.
//! So the name waits here, sealed, under the user's Apple `sub`, for at most
//! [`PENDING_NAME_TTL_SECS`]; the next sign-in that makes the user's account takes it.

use serde::{Deserialize, Serialize};

use sqlx::{Any, Transaction};

use super::{Store, User, placeholders};
use crate::sealing::{Purpose, Sealer};

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
}

/// Gives each of `users`, just made without a name, the name kept for their Apple `sub`, if any
/// and in time, in `tx`; the kept names are spent either way. One statement when none is kept.
pub(super) async fn take_kept_names(
    tx: &mut Transaction<'_, Any>,
    sealer: &Sealer,
    users: &mut [&mut User],
    now: i64,
) -> Result<(), sqlx::Error> {
    if users.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "DELETE FROM pending_names WHERE apple_sub IN ({}) \
         RETURNING apple_sub, sealed_name, expires_at",
        placeholders(users.len(), 1)
    );
    let mut query = sqlx::query_as::<_, (String, String, i64)>(&sql);
    for user in users.iter() {
        query = query.bind(&user.apple_sub);
    }
    let kept = query.fetch_all(&mut **tx).await?;
    for (apple_sub, sealed, expires_at) in kept {
        let name = Some(sealed)
            .filter(|_| expires_at > now)
            .and_then(|sealed| sealer.open(Purpose::PendingName, &sealed).ok())
            .and_then(|json| serde_json::from_str::<PendingName>(&json).ok());
        let Some(name) = name else {
            continue;
        };
        for user in users.iter_mut().filter(|u| u.apple_sub == apple_sub) {
            sqlx::query("UPDATE users SET given_name = $2, family_name = $3 WHERE id = $1")
                .bind(&user.id)
                .bind(&name.given_name)
                .bind(&name.family_name)
                .execute(&mut **tx)
                .await?;
            user.given_name = name.given_name.clone();
            user.family_name = name.family_name.clone();
        }
    }
    Ok(())
}
