//! `--message-format libtest-json`: the run as `cargo test -- --format json` prints it on
//! nightly (what IDEs and CI plugins read), one JSON object a line, each test named as nextest
//! names it there: `BINARY$NAME`.

use std::io::Write;

use serde_json::json;

use super::{Finished, Outcome, Reporter, Summary};

pub(crate) struct LibtestJson {
    out: Box<dyn Write + Send>,
    filtered_out: usize,
}

impl LibtestJson {
    pub(crate) fn new(out: Box<dyn Write + Send>, filtered_out: usize) -> LibtestJson {
        LibtestJson { out, filtered_out }
    }

    fn line(&mut self, value: serde_json::Value) {
        let _ = writeln!(self.out, "{value}");
        let _ = self.out.flush();
    }
}

impl Reporter for LibtestJson {
    fn started(&mut self, tests: usize, _binaries: usize, skipped: usize) {
        self.line(json!({ "type": "suite", "event": "started", "test_count": tests + skipped }));
    }

    fn finished(&mut self, finished: &Finished) {
        if finished.will_retry {
            return;
        }
        let name = format!("{}${}", finished.binary, finished.name);
        let exec_time = finished.duration.as_secs_f64();
        let event = match &finished.outcome {
            Outcome::Passed | Outcome::Leaked { .. } => {
                json!({ "type": "test", "event": "ok", "name": name, "exec_time": exec_time })
            }
            Outcome::Skipped { .. } | Outcome::NotRun { .. } => {
                json!({ "type": "test", "event": "ignored", "name": name })
            }
            failed => {
                let mut stdout = finished.captured.clone();
                stdout.push_str(&finished.stdout);
                stdout.push_str(&finished.stderr);
                if stdout.is_empty() {
                    stdout = failed.reason();
                }
                json!({
                    "type": "test", "event": "failed", "name": name,
                    "exec_time": exec_time, "stdout": stdout,
                })
            }
        };
        self.line(event);
    }

    fn done(&mut self, summary: &Summary) {
        let event = if summary.failed > 0 { "failed" } else { "ok" };
        self.line(json!({
            "type": "suite",
            "event": event,
            "passed": summary.passed,
            "failed": summary.failed,
            "ignored": summary.skipped + summary.not_run,
            "measured": 0,
            "filtered_out": self.filtered_out,
            "exec_time": summary.duration.as_secs_f64(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_outcome_is_a_libtest_event() {
        let out = Shared::default();
        let mut reporter = LibtestJson::new(Box::new(out.clone()), 3);
        reporter.started(3, 1, 0);
        let finished = |name: &str, outcome: Outcome| Finished {
            duration: Duration::from_millis(5),
            ..Finished::of("pkg::api".into(), name.into(), outcome)
        };
        reporter.finished(&finished("passes", Outcome::Passed));
        reporter.finished(&finished("fails", Outcome::Failed { reason: "boom".into() }));
        reporter.finished(&finished("skips", Outcome::Skipped { reason: "no db".into() }));
        reporter.done(&Summary { passed: 1, failed: 1, skipped: 1, ..Summary::default() });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0], json!({"type": "suite", "event": "started", "test_count": 3}));
        assert_eq!(lines[1]["name"], "pkg::api$passes");
        assert_eq!(lines[1]["event"], "ok");
        assert_eq!(lines[2]["event"], "failed");
        assert_eq!(lines[2]["stdout"], "boom");
        assert_eq!(lines[3]["event"], "ignored");
        assert_eq!(lines[4]["event"], "failed");
        assert_eq!(lines[4]["filtered_out"], 3);
    }
}
