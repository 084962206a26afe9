//! The server's background tasks, owned in one place: each runs under a name, is told to stop
//! through one token, and is awaited when the server shuts down, so none outlives the server
//! or is cut off in the middle of a write.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Clone, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Spawns `task`, handing it the token that says when to stop. Its logs carry its name.
    pub fn spawn<F>(&self, name: &'static str, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let running = task(self.stop.clone());
        self.tracker.spawn(
            async move {
                running.await;
                tracing::debug!("stopped");
            }
            .instrument(tracing::info_span!("task", name)),
        );
    }

    /// Tells every task to stop and waits until all have returned.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// `stop` returns only once every task has finished its way out, however long that takes.
    #[tokio::test]
    async fn stop_waits_for_every_task_to_finish() {
        let tasks = Tasks::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for name in ["a", "b", "c"] {
            let finished = finished.clone();
            tasks.spawn(name, |stop| async move {
                stop.cancelled().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "nothing stops before it is told"
        );
        tasks.stop().await;
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }
}
