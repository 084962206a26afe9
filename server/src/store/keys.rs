//! Secrets at rest: the server's signing key and Apple's refresh tokens are stored sealed
//! (`crate::sealing`), and rows sealed with an older key, or none, are resealed on start.

use super::Store;
use crate::sealing::{Purpose, SealError, Sealer};

impl Store {
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
        if let Some(key) = sqlx::query_as(NEWEST).fetch_optional(self.pool()?).await? {
            return open(key);
        }
        let (kid, pem) = generate();
        sqlx::query("INSERT INTO server_keys (kid, private_key_pem, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
            .bind(&kid)
            .bind(self.sealer.seal(Purpose::ServerKey, &pem))
            .bind(now)
            .execute(self.pool()?)
            .await?;
        open(sqlx::query_as(NEWEST).fetch_one(self.pool()?).await?)
    }

    pub(super) fn open_apple_token(&self, sealed: &str) -> Result<String, sqlx::Error> {
        self.sealer
            .open(Purpose::AppleToken, sealed)
            .map_err(|e| unopenable("an Apple refresh token", &e))
    }

    /// Seals what is stored in clear (rows from before sealing) and reseals what an older key
    /// sealed (after a rotation), so that an old key can be dropped from the list once every
    /// instance has started with the new one. Each row is replaced only if unchanged meanwhile,
    /// so instances starting together do not undo each other.
    pub async fn seal_secrets_at_rest(&self) -> Result<(), sqlx::Error> {
        const COLUMNS: [(&str, &str, &str, Purpose); 4] = [
            ("server_keys", "kid", "private_key_pem", Purpose::ServerKey),
            (
                "apple_tokens",
                "user_id",
                "refresh_token",
                Purpose::AppleToken,
            ),
            ("apple_revocations", "id", "token", Purpose::AppleToken),
            (
                "refresh_tokens",
                "token_hash",
                "successor",
                Purpose::RefreshSuccessor,
            ),
        ];
        let newest_prefix = self.sealer.newest_prefix();
        let mut resealed = 0;
        for (table, key, column, purpose) in COLUMNS {
            let rows: Vec<(String, String)> = sqlx::query_as(&format!(
                "SELECT {key}, {column} FROM {table} WHERE {column} NOT LIKE $1"
            ))
            .bind(format!("{newest_prefix}%"))
            .fetch_all(self.pool()?)
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
                .execute(self.pool()?)
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

/// A stored secret that the configured keys cannot open: the operator dropped the key that
/// sealed it.
pub(super) fn unopenable(what: &str, error: &SealError) -> sqlx::Error {
    sqlx::Error::Decode(
        format!(
            "{what} cannot be opened ({error}): SIWA_ENCRYPTION_KEY (or the key file) must list \
             the key it was sealed with"
        )
        .into(),
    )
}
