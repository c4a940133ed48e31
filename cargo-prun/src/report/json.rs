//! `--message-format json`: the run's events, one JSON object a line. The schema is versioned:
//! `"version": 1` on every line; fields are only ever added under one version.

use std::io::Write;

use serde_json::json;

use super::{Finished, ParallelOnly, Reporter, Summary};

pub(crate) const SCHEMA_VERSION: u32 = 1;

pub(crate) struct Json {
    out: Box<dyn Write + Send>,
}

impl Json {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Json {
        Json { out }
    }

    fn line(&mut self, value: serde_json::Value) {
        let _ = writeln!(self.out, "{value}");
        let _ = self.out.flush();
    }
}

impl Reporter for Json {
    fn started(&mut self, tests: usize, binaries: usize, skipped: usize) {
        self.line(json!({ "version": SCHEMA_VERSION, "type": "run-started", "tests": tests, "binaries": binaries, "skipped": skipped }));
    }

    fn finished(&mut self, finished: &Finished) {
        let mut event = serde_json::to_value(finished).expect("events serialize");
        event["version"] = SCHEMA_VERSION.into();
        event["type"] = "test-finished".into();
        self.line(event);
    }

    fn slow(&mut self, binary: &str, name: &str, running: std::time::Duration) {
        let running_ms = u64::try_from(running.as_millis()).unwrap_or(u64::MAX);
        self.line(serde_json::json!({
            "version": SCHEMA_VERSION,
            "type": "test-slow",
            "binary": binary,
            "name": name,
            "running_ms": running_ms,
        }));
    }

    fn rerunning(&mut self, tests: usize, bisect_within: Option<std::time::Duration>) {
        let mut event =
            serde_json::json!({ "version": SCHEMA_VERSION, "type": "rerunning", "tests": tests });
        if let Some(budget) = bisect_within {
            event["bisect_within_ms"] =
                u64::try_from(budget.as_millis()).unwrap_or(u64::MAX).into();
        }
        self.line(event);
    }

    fn parallel_only(&mut self, found: &ParallelOnly) {
        let mut event = serde_json::to_value(found).expect("findings serialize");
        event["version"] = SCHEMA_VERSION.into();
        event["type"] = match (found.under_load, found.flaky) {
            (true, _) => "fails-under-load",
            (_, true) => "diagnosed-flaky",
            _ => "parallel-only",
        }
        .into();
        event["reason"] = found.reason().into();
        self.line(event);
    }

    fn done(&mut self, summary: &Summary) {
        let mut event = serde_json::to_value(summary).expect("summaries serialize");
        event["version"] = SCHEMA_VERSION.into();
        event["type"] = "run-finished".into();
        self.line(event);
    }
}
