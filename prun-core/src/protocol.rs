//! How `cargo prun` talks to a prun test binary. Versioned; both sides live in this crate.
//!
//! - **Handshake.** The driver runs every test binary as `BIN --list --format terse` with
//!   [`HANDSHAKE_ENV`] set. A plain libtest binary ignores the variable and lists `name: test`
//!   lines; a prun binary prints one [`Catalog`] JSON line instead. Nothing is guessed from names.
//! - **Worker.** Started as `BIN --prun-worker SOCKET` ([`WORKER_FLAG`]), a prun binary connects to it and runs
//!   the tests it is sent, one at a time: one [`Request`] line in, one [`Response`] line out. Test
//!   output stays on stdout and stderr, so it can never corrupt the channel; after each test the
//!   worker prints [`output_end`] on both, so the driver can cut its output per test exactly.
//!   The end mark holds a random token the driver sent with the request, over the socket: a test
//!   that prints end marks of its own cannot move output between tests. A response must answer
//!   the request in flight (its `seq` and name); anything else is a protocol error.

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

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

/// A test's identity in a workspace: its binary and its name, written `BINARY NAME` (how
/// filters, reports, the history and `--rerun-failed` name a test). The one spelling of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TestId<'a> {
    pub binary: &'a str,
    pub name: &'a str,
}

impl TestId<'_> {
    /// The id written out, as `Display` writes it, in one allocation (`to_string` goes through
    /// the formatting machinery and grows its string twice: a run of 20,001 tiny tests spent a
    /// sixth of its own CPU there, writing each id several times).
    pub fn joined(&self) -> String {
        let mut id = String::with_capacity(self.binary.len() + 1 + self.name.len());
        id.push_str(self.binary);
        id.push(' ');
        id.push_str(self.name);
        id
    }

    /// Whether `text` is this id written out, without writing it.
    pub fn is(&self, text: &str) -> bool {
        text.strip_prefix(self.binary)
            .and_then(|rest| rest.strip_prefix(' '))
            .is_some_and(|name| name == self.name)
    }
}

impl std::fmt::Display for TestId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.binary)?;
        f.write_str(" ")?;
        f.write_str(self.name)
    }
}

/// Names the run: set by `cargo prun` for its test processes (or by a script); one id is
/// shared by every process of the run, and is part of every namespace.
pub const RUN_ID_ENV: &str = "PRUN_RUN_ID";

/// The run's id from [`RUN_ID_ENV`], when it is set to a usable one: letters and digits only
/// (it goes into file names and namespaces). The one rule for both halves.
pub fn given_run_id() -> Option<String> {
    std::env::var(RUN_ID_ENV)
        .ok()
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
}
/// Bumped on any change that an older driver or binary would misread.
pub const VERSION: u32 = 2;

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
    /// Where the test is declared, `file:line` (prun tests), for errors that name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
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
    /// Counts requests; the response and [`output_end`] carry it.
    pub seq: u64,
    /// A random token, new for each request: [`output_end`] carries it, so a test cannot print
    /// the end mark of its own output, or of another test's.
    pub token: u64,
}

/// The answer to one [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's `seq` and name, echoed: a response that does not answer the request in
    /// flight is a protocol error.
    pub seq: u64,
    pub name: String,
    pub outcome: Outcome,
    /// The panic message and `Ctx` log lines (test output comes on stdout and stderr).
    pub captured: String,
    pub duration_ms: f64,
    /// What the test used (CPU, peak memory), where the worker could measure it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::usage::Usage>,
}

impl Response {
    /// Whether this answers `request`.
    pub fn answers(&self, request: &Request) -> bool {
        self.seq == request.seq && self.name == request.name
    }
}

/// The line a worker prints on stdout and stderr after the test of `request`.
pub fn output_end(request: &Request) -> String {
    format!("\u{1e}prun-end {} {:016x}\u{1e}", request.seq, request.token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_id_is_written_one_way() {
        let id = TestId { binary: "shop::api", name: "cart::adds a b" };
        assert_eq!(id.joined(), "shop::api cart::adds a b");
        assert_eq!(id.joined(), id.to_string());
        assert!(id.is("shop::api cart::adds a b"));
        for other in
            ["shop::api cart::adds a", "shop::apicart::adds a b", "shop::api  cart::adds a b", ""]
        {
            assert!(!id.is(other), "{other:?}");
        }
    }

    #[test]
    fn every_outcome_makes_the_round_trip() {
        let outcomes = Outcome::one_of_each();
        let kinds: std::collections::BTreeSet<&str> = outcomes.iter().map(Outcome::kind).collect();
        assert_eq!(kinds.len(), outcomes.len(), "one of each kind");
        for (seq, outcome) in outcomes.into_iter().enumerate() {
            let response = Response {
                seq: seq as u64,
                name: "a::b with\nnewline".into(),
                outcome,
                captured: "\u{1e}prun-end 1 0\u{1e}".into(),
                duration_ms: 1.5,
                usage: (seq % 2 == 0).then_some(crate::usage::Usage { cpu_ms: 20, peak_kb: 4096 }),
            };
            let line = serde_json::to_string(&response).unwrap();
            assert!(!line.contains('\n'), "one line on the wire: {line}");
            assert_eq!(serde_json::from_str::<Response>(&line).unwrap(), response);
        }
    }

    #[test]
    fn a_response_answers_only_its_own_request() {
        let request =
            Request { name: "t".into(), attempt: 1, slots: 1, index: 0, seq: 7, token: 9 };
        let response = |seq, name: &str| Response {
            seq,
            name: name.into(),
            outcome: Outcome::Passed,
            captured: String::new(),
            duration_ms: 0.0,
            usage: None,
        };
        assert!(response(7, "t").answers(&request));
        assert!(!response(6, "t").answers(&request));
        assert!(!response(7, "other").answers(&request));
        let other = Request { token: 10, ..request.clone() };
        assert_ne!(output_end(&request), output_end(&other), "the token is in the mark");
    }
}
