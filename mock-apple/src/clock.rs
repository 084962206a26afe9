//! The mock's clock: the system's, plus an offset tests can advance to expire codes and tokens
//! without waiting.

use std::sync::atomic::{AtomicI64, Ordering};

use siwa_core::{Clock, SystemClock};

#[derive(Debug, Default)]
pub struct MockClock {
    offset: AtomicI64,
}

impl MockClock {
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn reset(&self) {
        self.offset.store(0, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now(&self) -> i64 {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }
}
