//! When a run starts no more tests: fail-fast (`--max-fail`) and cancellation (Ctrl-C,
//! SIGTERM), in one place. Tests that were not started because of it are reported "not run",
//! with [`Stop::reason`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Debug)]
pub(crate) struct Stop {
    /// Start no more tests after this many final failures; `None`: run them all.
    max_fail: Option<usize>,
    failures: AtomicUsize,
    stopped: AtomicBool,
}

impl Stop {
    pub(crate) fn new(max_fail: Option<usize>) -> Stop {
        Stop { max_fail, failures: AtomicUsize::new(0), stopped: AtomicBool::new(false) }
    }

    /// Whether the run starts no more tests.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Starts no more tests (an interrupt).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// A test failed for good (not to be retried, not quarantined): counted, and past the
    /// limit the run stops.
    pub(crate) fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::SeqCst) + 1;
        if self.max_fail.is_some_and(|max| failures >= max) {
            self.stop();
        }
    }

    /// Whether `pending` more failures (seen in a batch, not yet counted) would reach the limit:
    /// a batch sends no more of its tests then.
    pub(crate) fn reached_with(&self, pending: usize) -> bool {
        let failed = self.failures.load(Ordering::SeqCst) + pending;
        self.max_fail.is_some_and(|max| failed >= max)
    }

    /// Why a test did not run once the run stopped starting tests (fail-fast).
    pub(crate) fn reason(&self) -> String {
        match self.max_fail {
            Some(1) | None => {
                "stopped after the first failure (--no-fail-fast runs them all)".into()
            }
            Some(n) => format!("stopped after {n} failures (--max-fail {n})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_stops_at_the_limit_and_says_why() {
        let stop = Stop::new(Some(2));
        stop.failed();
        assert!(!stop.stopped() && stop.reached_with(1) && !stop.reached_with(0));
        stop.failed();
        assert!(stop.stopped());
        assert_eq!(stop.reason(), "stopped after 2 failures (--max-fail 2)");
        let all = Stop::new(None);
        (0..100).for_each(|_| all.failed());
        assert!(!all.stopped() && !all.reached_with(100));
        all.stop();
        assert!(all.stopped(), "an interrupt stops any run");
    }
}
