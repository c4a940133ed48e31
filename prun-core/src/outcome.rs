//! How one attempt of a test ends: [`Outcome`], the one type carried from the process that ran
//! the test (over the worker protocol) to every report and the history; and how a test's return
//! value becomes it ([`Failure`], inside the process).

use std::fmt::Debug;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one attempt of one test ended, as every report and the history see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    Passed,
    /// The test failed: a panic, an `Err`, a wrong panic, a failing fixture; why, in one line.
    Failed {
        reason: String,
    },
    TimedOut {
        #[serde(rename = "after_ms", with = "crate::time::millis")]
        after: Duration,
    },
    /// The process died while the test ran: what killed it.
    Crashed {
        reason: String,
    },
    /// It passed, but left a child holding its output open past the leak timeout (the child
    /// was killed): a pass with a warning, as nextest's LEAK.
    Leaked {
        reason: String,
    },
    /// Skipped by [`skip`] (or ignored): why.
    Skipped {
        reason: String,
    },
    /// Not run: the run stopped before it (fail-fast, an interrupt); why.
    NotRun {
        reason: String,
    },
}

impl Outcome {
    /// Passing and skipping do not fail the run.
    pub fn passed(&self) -> bool {
        matches!(
            self,
            Outcome::Passed
                | Outcome::Skipped { .. }
                | Outcome::Leaked { .. }
                | Outcome::NotRun { .. }
        )
    }

    /// The kind, as the JSON reports spell it (`kind`): `passed`, `failed`, `timed-out`,
    /// `crashed`, `leaked`, `skipped`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::TimedOut { .. } => "timed-out",
            Outcome::Crashed { .. } => "crashed",
            Outcome::Leaked { .. } => "leaked",
            Outcome::Skipped { .. } => "skipped",
            Outcome::NotRun { .. } => "not-run",
        }
    }

    /// How an attempt counts in a run's tally, the one rule of the harness and `cargo prun`:
    /// an attempt that will be retried does not count yet; a pass after failed attempts is
    /// flaky; a leak passes.
    pub fn tally(&self, attempt: u32, will_retry: bool) -> Tally {
        match self {
            _ if will_retry => Tally::Retrying,
            Outcome::Skipped { .. } => Tally::Skipped,
            Outcome::NotRun { .. } => Tally::NotRun,
            Outcome::Passed | Outcome::Leaked { .. } if attempt > 1 => Tally::Flaky,
            Outcome::Passed | Outcome::Leaked { .. } => Tally::Passed,
            Outcome::Failed { .. } | Outcome::TimedOut { .. } | Outcome::Crashed { .. } => {
                Tally::Failed
            }
        }
    }

    /// One outcome of each kind, for the tests that must cover them all (the protocol's round
    /// trip, every reporter). The match below stops compiling when a kind is added: add it to
    /// the list too.
    #[doc(hidden)]
    pub fn one_of_each() -> Vec<Outcome> {
        let all = vec![
            Outcome::Passed,
            Outcome::Failed { reason: "the test panicked".into() },
            Outcome::TimedOut { after: Duration::from_millis(2500) },
            Outcome::Crashed { reason: "killed by signal 11 (SIGSEGV)".into() },
            Outcome::Leaked { reason: "a child held its output 100ms after it exited".into() },
            Outcome::Skipped { reason: "no server\nat \"127.0.0.1\"".into() },
            Outcome::NotRun { reason: "stopped after the first failure".into() },
        ];
        for outcome in &all {
            match outcome {
                Outcome::Passed
                | Outcome::Failed { .. }
                | Outcome::TimedOut { .. }
                | Outcome::Crashed { .. }
                | Outcome::Leaked { .. }
                | Outcome::Skipped { .. }
                | Outcome::NotRun { .. } => {}
            }
        }
        all
    }

    /// Why, in one line (`passed` for a pass).
    pub fn reason(&self) -> String {
        match self {
            Outcome::Passed => "passed".to_owned(),
            Outcome::Failed { reason }
            | Outcome::Crashed { reason }
            | Outcome::Leaked { reason }
            | Outcome::Skipped { reason }
            | Outcome::NotRun { reason } => reason.clone(),
            Outcome::TimedOut { after } => {
                format!("timed out after {}", crate::time::pretty(*after))
            }
        }
    }
}

/// How an attempt counts in a run's tally (see [`Outcome::tally`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// It runs again: its last attempt counts.
    Retrying,
    Passed,
    /// Passed after failing.
    Flaky,
    Failed,
    Skipped,
    NotRun,
}

impl From<&Result<(), Failure>> for Outcome {
    /// What an attempt's result in the harness is to every report.
    fn from(result: &Result<(), Failure>) -> Outcome {
        match result {
            Ok(()) => Outcome::Passed,
            Err(Failure::Skipped(reason)) => Outcome::Skipped { reason: reason.clone() },
            Err(Failure::TimedOut(after)) => Outcome::TimedOut { after: *after },
            Err(other) => Outcome::Failed { reason: other.describe() },
        }
    }
}

/// Why an attempt did not pass.
#[doc(hidden)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The test panicked (its message and location are in the captured output).
    Panicked,
    /// The test returned `Err`; the `Debug` of the error.
    Returned(String),
    /// A fixture the test takes failed to set up.
    Setup { fixture: String, error: String },
    /// `should_panic` and the test returned normally.
    DidNotPanic,
    /// `should_panic(expected = ..)` and the panic message did not contain it.
    WrongPanic { expected: String },
    /// The test ran past its timeout.
    TimedOut(Duration),
    /// Not a failure: the test (or a fixture it takes) called [`skip`](crate::skip).
    Skipped(String),
}

impl Failure {
    /// One line for the failures section.
    pub fn describe(&self) -> String {
        match self {
            Failure::Panicked => "the test panicked".to_owned(),
            Failure::Returned(err) => format!("Error: {err}"),
            Failure::Setup { fixture, error } => {
                format!("fixture `{fixture}` failed to set up: {error}")
            }
            Failure::DidNotPanic => "note: test did not panic as expected".to_owned(),
            Failure::WrongPanic { expected } => {
                format!(
                    "note: panic did not contain expected string\n      expected substring: {expected:?}"
                )
            }
            Failure::TimedOut(after) => format!("timed out after {}", crate::time::pretty(*after)),
            Failure::Skipped(reason) => format!("skipped: {reason}"),
        }
    }
}

/// Whether an attempt's result counts as passing: it passed, or it was skipped.
pub(crate) fn counts_as_pass(result: &Result<(), Failure>) -> bool {
    matches!(result, Ok(()) | Err(Failure::Skipped(_)))
}

/// What [`skip`](crate::skip) unwinds with.
pub(crate) struct Skip(pub(crate) String);

/// Stops the test here and reports it skipped (like an ignored test), with `reason`: for a test
/// that cannot run on this machine (no database server, no GPU), which should say so rather than
/// pass or fail. Works in a test and in a fixture's `setup`.
///
/// ```no_run
/// # fn server_is_up() -> bool { false }
/// #[prun::test]
/// fn talks_to_the_server() {
///     if !server_is_up() {
///         prun::skip("no server on 127.0.0.1:5432: start one with `pg_ctl start`");
///     }
/// }
/// ```
pub fn skip(reason: impl std::fmt::Display) -> ! {
    // resume_unwind, not panic: the panic hook never sees it, so nothing is printed.
    std::panic::resume_unwind(Box::new(Skip(reason.to_string())))
}

/// What a test function may return: `()` or `Result<(), E: Debug>`.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a prun test returns `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "this return type"
)]
pub trait IntoOutcome {
    fn into_outcome(self) -> Result<(), Failure>;
}

impl IntoOutcome for () {
    fn into_outcome(self) -> Result<(), Failure> {
        Ok(())
    }
}

impl<E: Debug> IntoOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), Failure> {
        self.map_err(|err| Failure::Returned(format!("{err:?}")))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_outcome_counts_by_one_rule() {
        let counted: Vec<(&str, Tally)> =
            Outcome::one_of_each().iter().map(|o| (o.kind(), o.tally(1, false))).collect();
        assert_eq!(
            counted,
            [
                ("passed", Tally::Passed),
                ("failed", Tally::Failed),
                ("timed-out", Tally::Failed),
                ("crashed", Tally::Failed),
                ("leaked", Tally::Passed),
                ("skipped", Tally::Skipped),
                ("not-run", Tally::NotRun),
            ]
        );
        assert_eq!(Outcome::Passed.tally(2, false), Tally::Flaky);
        assert_eq!(Outcome::Failed { reason: String::new() }.tally(1, true), Tally::Retrying);
    }
    use super::*;

    #[test]
    fn every_failure_becomes_an_outcome() {
        let cases = [
            (Ok(()), Outcome::Passed),
            (Err(Failure::Panicked), Outcome::Failed { reason: "the test panicked".into() }),
            (Err(Failure::Returned("E".into())), Outcome::Failed { reason: "Error: E".into() }),
            (Err(Failure::Skipped("no db".into())), Outcome::Skipped { reason: "no db".into() }),
            (
                Err(Failure::TimedOut(Duration::from_secs(2))),
                Outcome::TimedOut { after: Duration::from_secs(2) },
            ),
        ];
        for (result, outcome) in cases {
            assert_eq!(Outcome::from(&result), outcome);
            let json = serde_json::to_value(&outcome).unwrap();
            assert_eq!(json["kind"], outcome.kind(), "one spelling of each kind");
        }
        assert_eq!(
            Outcome::TimedOut { after: Duration::from_millis(1500) }.reason(),
            "timed out after 1.5s"
        );
    }
}
