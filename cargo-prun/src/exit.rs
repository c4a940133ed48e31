//! `cargo prun`'s exit codes. Stable: scripts may rely on them.

/// Every test that ran passed (flaky passes included).
pub(crate) const OK: i32 = 0;
/// A test failed, timed out or crashed.
pub(crate) const TESTS_FAILED: i32 = 101;
/// Bad command line, config or report path; no test ran.
pub(crate) const USAGE: i32 = 2;
/// cargo could not build the tests (its errors are above).
pub(crate) const BUILD_FAILED: i32 = 3;
/// The filters matched no test.
pub(crate) const NO_TESTS: i32 = 4;
/// Interrupted: 128 + the signal, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
pub(crate) const INTERRUPTED_BASE: i32 = 128;
