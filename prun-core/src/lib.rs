//! prun: a parallel test harness for Rust.
//!
//! ```toml
//! [dev-dependencies]
//! prun-core = "0.1"   # the library is `prun`
//!
//! [[test]]
//! name = "api"
//! harness = false
//! ```
//!
//! ```no_run
//! #[prun::test]                                          // category "unit" by default
//! fn parses() { assert_eq!(1 + 1, 2); }
//!
//! #[prun::test(category = "integration", group = "db")]  // never beside another "db" test
//! fn writes_user(dir: prun::TempDir, port: prun::Port) { /* ... */ }
//!
//! #[prun::test(category = "slow", timeout = "2m", retries = 2)]
//! fn full_sync(ctx: &prun::Ctx) -> Result<(), Box<dyn std::error::Error>> { Ok(()) }
//!
//! prun::main!();
//! ```
//!
//! Keys of `#[prun::test]`: `category` (`"unit"`, `"integration"`, `"slow"`, or one declared in
//! `prun.toml`), `group` (repeatable, or a list), `timeout` (`"30s"`), `retries`, `threads`
//! (slots a heavy test takes), `ignore` (optional reason), `should_panic` (optional `expected`),
//! `isolate` (own process, under `cargo prun`).
//!
//! Data flows one way: [`registry`] (what the macro registered) → `plan` (selection, config,
//! priority) → [`scheduler`] (who runs when) → `execute` (fixtures, panics, timeouts) →
//! `report` (libtest's output).

pub mod bazel;
mod capture;
mod cli;
pub mod color;
pub mod config;
mod ctx;
mod event;
mod execute;
mod fixtures;
mod harness;
mod outcome;
pub mod plan;
pub mod protocol;
pub mod redact;
#[doc(hidden)]
pub mod registry;
mod report;
pub mod scheduler;
pub mod time;
pub mod usage;
#[cfg(unix)]
mod worker;

pub use ctx::Ctx;
pub use fixtures::{BoxError, Fixture, Listener, Port, Scope, TempDir};
pub use harness::exit;
pub use outcome::{Outcome, Tally, skip};
pub use prun_macros::test;

/// Runs the binary's tests and returns the exit code; `prun::main!()` is the usual way in.
pub fn run() -> i32 {
    harness::main()
}

/// The whole `main` of a `harness = false` test target.
#[macro_export]
macro_rules! main {
    () => {
        fn main() {
            ::std::process::exit($crate::run())
        }
    };
}

/// What the macros' generated code uses. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::fixtures::{Borrow, Held, owned, require_test_scope};
    pub use crate::outcome::{Failure, IntoOutcome};
    pub use crate::registry::{ShouldPanic, TestDef};
    pub use inventory;

    /// Runs an `async fn` test to completion on a tokio current-thread runtime.
    #[cfg(feature = "tokio")]
    pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("failed to start a tokio runtime for the test")
            .block_on(future)
    }

    #[cfg(not(feature = "tokio"))]
    #[diagnostic::on_unimplemented(
        message = "an `async fn` test needs prun's `tokio` feature",
        label = "async test",
        note = "enable it: prun-core = {{ version = \"0.1\", features = [\"tokio\"] }}"
    )]
    pub trait AsyncTestsNeedTheTokioFeature {}

    #[cfg(not(feature = "tokio"))]
    pub fn block_on<F: std::future::Future + AsyncTestsNeedTheTokioFeature>(_: F) -> F::Output {
        unreachable!("the bound cannot be met")
    }
}
