//! What the durable retry queues share (`revocation`, `webhooks::delivery`): a leased attempt,
//! and exponential backoff between failed ones.

use crate::store::{Queue, Store};

/// Doubling delays from a base (seconds), up to [`Backoff::MAX_SECS`].
#[derive(Debug, Clone, Copy)]
pub struct Backoff(i64);

impl Backoff {
    /// Six hours at most between attempts: a receiver or Apple down for days is still tried
    /// four times a day.
    pub const MAX_SECS: i64 = 6 * 3600;

    pub fn from_base(base_secs: i64) -> Self {
        Self(base_secs)
    }

    /// The delay after a row's `attempts`-th failure (0 for the first).
    pub fn delay(self, attempts: i64) -> i64 {
        self.0
            .saturating_mul(1 << attempts.clamp(0, 30))
            .min(Self::MAX_SECS)
    }
}

/// Takes the lease on a due row for `lease_secs`: whether this instance may attempt it now.
/// A failure to claim is logged and answers no: the row stays due for the next poll.
pub async fn lease(store: &Store, queue: Queue, id: &str, now: i64, lease_secs: i64) -> bool {
    match store.claim(queue, id, now, now + lease_secs).await {
        Ok(claimed) => claimed,
        Err(error) => {
            tracing::warn!(%error, ?queue, "could not lease a queued row");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling() {
        let backoff = Backoff::from_base(30);
        assert_eq!(backoff.delay(0), 30);
        assert_eq!(backoff.delay(3), 240);
        assert_eq!(backoff.delay(20), Backoff::MAX_SECS);
        assert_eq!(backoff.delay(-1), 30);
        assert_eq!(Backoff::from_base(i64::MAX).delay(40), Backoff::MAX_SECS);
    }
}
