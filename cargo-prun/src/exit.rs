//! `cargo prun`'s exit codes. Stable: scripts may rely on them.

/// Every test that ran passed (flaky passes included); a test failed, timed out or crashed; a
/// bad command line, config or report path (no test ran): the harness's codes, libtest's.
pub(crate) use prun::exit::{OK, TESTS_FAILED, USAGE};
/// cargo could not build the tests (its errors are above).
pub(crate) const BUILD_FAILED: i32 = 3;
/// The filters matched no test.
pub(crate) const NO_TESTS: i32 = 4;
/// Interrupted: 128 + the signal, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
pub(crate) const INTERRUPTED_BASE: i32 = 128;
