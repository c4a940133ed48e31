//! How one attempt of a test ends, and how a test's return value becomes that.

use std::fmt::Debug;
use std::time::Duration;

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
