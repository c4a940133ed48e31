//! The tally of a run, built from its events alone.

use std::time::Duration;

use crate::event::Attempt;
use crate::outcome::Tally;

#[derive(Debug, Default)]
pub(crate) struct Summary {
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) ignored: usize,
    pub(crate) filtered_out: usize,
    /// Tests that passed after failing: name and attempts it took.
    pub(crate) flaky: Vec<(String, u32)>,
    /// The last attempt of each failed test.
    pub(crate) failures: Vec<Attempt>,
    /// Passing tests' output, for `--show-output`.
    pub(crate) successes: Vec<Attempt>,
    pub(crate) duration: Duration,
}

impl Summary {
    pub(crate) fn record(&mut self, attempt: &Attempt) {
        let outcome = crate::Outcome::from(&attempt.result);
        match outcome.tally(attempt.attempt, attempt.will_retry) {
            Tally::Retrying => {}
            // A test that skipped itself reads as an ignored one.
            Tally::Skipped | Tally::NotRun => self.ignored += 1,
            tally @ (Tally::Passed | Tally::Flaky) => {
                self.passed += 1;
                if tally == Tally::Flaky {
                    self.flaky.push((attempt.name.to_string(), attempt.attempt));
                }
                if !attempt.output.is_empty() {
                    self.successes.push(attempt.clone());
                }
            }
            Tally::Failed => {
                self.failed += 1;
                self.failures.push(attempt.clone());
            }
        }
    }

    pub(crate) fn ok(&self) -> bool {
        self.failed == 0
    }
}
