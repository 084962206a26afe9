//! Deleting an account, from the app (`DELETE /v1/me`) or the page: every row of the user's
//! goes, and every Apple grant is revoked, which App Store review requires (guideline
//! 5.1.1(v)). When Apple cannot be reached the data is deleted all the same and the revocation
//! is retried from a durable queue.

use siwa_core::api::AppleRevocation;

use super::Accounts;
use crate::error::ApiError;
use crate::tokens::UserId;

impl Accounts {
    /// Deletes the user and everything of theirs; says what became of Apple's grants.
    pub async fn delete(&self, user_id: &UserId) -> Result<AppleRevocation, ApiError> {
        let now = self.now();
        let pending = self.store.delete_user(user_id.as_str(), now).await?;
        metrics::counter!("siwa_account_deletions_total").increment(1);
        Ok(self.revocations.attempt_all(&pending, now).await)
    }
}
