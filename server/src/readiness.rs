//! `/readyz`'s database check, made at most once a second: the check commits a write, and a
//! probe endpoint anyone can call must not let them drive the database's write rate. Callers
//! within the second get the last answer; concurrent callers wait for the one check under way.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Whether the database took the write, or what is wrong (a fixed text).
pub type Check = Result<(), &'static str>;

/// How long an answer stands.
pub const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct DatabaseReadiness {
    last: Mutex<Option<(Instant, Check)>>,
}

impl DatabaseReadiness {
    /// The last check's answer if it is under a second old; otherwise runs `check` and keeps
    /// its answer.
    pub async fn check<F: Future<Output = Check>>(&self, check: impl FnOnce() -> F) -> Check {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < EVERY
        {
            return answer;
        }
        let answer = check().await;
        *last = Some((Instant::now(), answer));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_probes_makes_one_check_a_second() {
        let readiness = Arc::new(DatabaseReadiness::default());
        let checks = Arc::new(AtomicUsize::new(0));
        let probe = |answer: Check| {
            let (readiness, checks) = (readiness.clone(), checks.clone());
            async move {
                readiness
                    .check(|| async move {
                        checks.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        answer
                    })
                    .await
            }
        };
        let burst: Vec<_> = (0..100).map(|_| tokio::spawn(probe(Ok(())))).collect();
        for answer in burst {
            assert_eq!(answer.await.unwrap(), Ok(()));
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        // Within the second, even a failing database is not asked again.
        assert_eq!(probe(Err("down")).await, Ok(()));
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        tokio::time::advance(EVERY).await;
        assert_eq!(probe(Err("down")).await, Err("down"));
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }
}
