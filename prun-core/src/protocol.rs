//! How `cargo prun` talks to a prun test binary. Versioned; both sides live in this crate.
//!
//! - **Handshake.** The driver runs every test binary as `BIN --list --format terse` with
//!   [`HANDSHAKE_ENV`] set. A plain libtest binary ignores the variable and lists `name: test`
//!   lines; a prun binary prints one [`Catalog`] JSON line instead. Nothing is guessed from names.
//! - **Worker.** Started as `BIN --prun-worker SOCKET` ([`WORKER_FLAG`]), a prun binary connects to it and runs
//!   the tests it is sent, one at a time: one [`Request`] line in, one [`Response`] line out. Test
//!   output stays on stdout and stderr, so it can never corrupt the channel; after each test the
//!   worker prints [`output_end`] on both, so the driver can cut its output per test exactly.

use serde::{Deserialize, Serialize};

/// Set (to any value) when the driver asks a binary what it is.
pub const HANDSHAKE_ENV: &str = "PRUN_HANDSHAKE";
/// The first argument of a worker process; the second is the Unix socket to connect to. An
/// argument, not a variable, so that processes the tests start do not inherit it.
pub const WORKER_FLAG: &str = "--prun-worker";
/// Names the worker in database and queue names (`Ctx::namespace` of worker-scoped fixtures):
/// unique per worker process of the run, even for two binaries on one slot.
pub const WORKER_NAMESPACE_ENV: &str = "PRUN_WORKER_NAMESPACE";
/// The worker's slot in the run, `0..threads`: `Ctx::worker_id`.
pub const WORKER_ID_ENV: &str = "PRUN_WORKER_ID";
/// `START-END`: the ports this worker's tests may be given; no other worker has them.
pub const PORT_RANGE_ENV: &str = "PRUN_PORT_RANGE";
/// Bumped on any change that an older driver or binary would misread.
pub const VERSION: u32 = 1;

/// What a prun binary holds, as the attribute declared it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The protocol version; its presence is the handshake.
    pub prun_catalog: u32,
    pub tests: Vec<CatalogTest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogTest {
    pub name: String,
    pub category: String,
    pub groups: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub threads: u32,
    pub ignore: bool,
    pub ignore_reason: Option<String>,
    pub isolate: bool,
}

/// Run one attempt of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub name: String,
    pub attempt: u32,
    /// Thread slots the driver gave it.
    pub slots: u32,
    /// Numbers the test within the run, for its namespace.
    pub index: usize,
    /// Counts requests; [`output_end`] carries it.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub name: String,
    pub passed: bool,
    /// Why it failed, when it did: one line, like libtest's notes.
    pub failure: Option<String>,
    /// Why it skipped itself ([`crate::skip`]), when it did; it then counts as passed.
    #[serde(default)]
    pub skipped: Option<String>,
    /// The panic message and `Ctx` log lines (test output comes on stdout and stderr).
    pub captured: String,
    pub duration_ms: f64,
}

/// The line a worker prints on stdout and stderr after the test of request `seq`.
pub fn output_end(seq: u64) -> String {
    format!("\u{1e}prun-end {seq}\u{1e}")
}
