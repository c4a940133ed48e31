//! Report: everything the user sees is rendered from [`Finished`] events, so every report agrees.

pub(crate) mod document;
pub(crate) mod html;
pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod libtest_json;
pub(crate) mod redact;
pub(crate) mod slow;
pub(crate) mod trace;

use std::path::PathBuf;
use std::time::Duration;

pub(crate) use crate::event::{
    CollisionKind, Event, Finished, Fix, Outcome, ParallelOnly, Summary, Trials,
};

/// The most of one stream a report keeps: its start and its end, 1 MiB each. A test that prints
/// 100 MiB must not make a 100 MiB report (or a terminal full of it).
const KEPT: usize = 1 << 20;

/// What a report keeps of a (redacted) stream longer than 2 MiB: its first and last MiB with a
/// line saying how much was left out between them; `None` when it keeps all of it.
pub(crate) fn kept(text: &str) -> Option<String> {
    if text.len() <= 2 * KEPT {
        return None;
    }
    let head_end = (0..=KEPT).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
    let tail_start =
        (text.len() - KEPT..text.len()).find(|&at| text.is_char_boundary(at)).unwrap_or(text.len());
    let elided = tail_start - head_end;
    Some(format!(
        "{}\n[prun: {:.1} MiB of output left out here]\n{}",
        &text[..head_end],
        elided as f64 / f64::from(1 << 20),
        &text[tail_start..]
    ))
}

/// Renders a run as it happens.
pub(crate) trait Reporter {
    fn started(&mut self, tests: usize, binaries: usize, skipped: usize);
    /// A test started (only the live progress line cares).
    fn test_started(&mut self, _binary: &str, _name: &str, _worker: usize, _running_for: Duration) {
    }
    /// A test has been running `running` (each `slow-timeout` period, as nextest's SLOW).
    fn slow(&mut self, _binary: &str, _name: &str, _running: Duration) {}
    fn finished(&mut self, finished: &Finished);
    fn parallel_only(&mut self, _found: &ParallelOnly) {}
    /// Failed tests run again alone now (see [`Event::Rerunning`]).
    fn rerunning(&mut self, _tests: usize, _bisect_within: Option<Duration>) {}
    fn done(&mut self, summary: &Summary);
}

/// A report file that could not be written: the flag that named it, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {flag} {}: {source}", path.display())]
pub(crate) struct WriteError {
    pub(crate) flag: &'static str,
    pub(crate) path: PathBuf,
    pub(crate) source: std::io::Error,
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A writer the test reads back.
    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<parking_lot::Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().clone()).unwrap()
        }
    }

    /// Every reporter renders every kind of outcome, each in its own words, with its reason.
    #[test]
    fn every_reporter_renders_every_outcome() {
        use crate::cli::{StatusLevel, TestOutput};
        let dir = tempfile::tempdir().unwrap();
        let (human_out, json_out) = (Shared::default(), Shared::default());
        let shown = human::Shown {
            status_level: StatusLevel::All,
            final_status_level: StatusLevel::All,
            failure_output: TestOutput::Final,
            success_output: TestOutput::Never,
        };
        let junit_path = dir.path().join("junit.xml");
        let outputs = crate::cli::Outputs {
            junit: None,
            json: Some(dir.path().join("run.json")),
            html: Some(dir.path().join("run.html")),
            trace: Some(dir.path().join("trace.json")),
        };
        let meta = document::Meta::new(None, Vec::new(), 2);
        let mut reporters: Vec<Box<dyn Reporter>> = vec![
            Box::new(human::Human::new(Box::new(human_out.clone()), false, shown, false)),
            Box::new(json::Json::new(Box::new(json_out.clone()))),
            Box::new(junit::Junit::create(junit_path.clone()).unwrap()),
            Box::new(document::Writer::create(meta, outputs).unwrap()),
        ];
        let outcomes = prun::Outcome::one_of_each();
        let mut summary = Summary::default();
        for reporter in &mut reporters {
            reporter.started(outcomes.len(), 1, 0);
        }
        for (n, outcome) in outcomes.iter().enumerate() {
            let finished = Finished::of("bin".into(), format!("t{n}"), outcome.clone());
            summary.record(&finished);
            for reporter in &mut reporters {
                reporter.finished(&finished);
            }
        }
        for reporter in &mut reporters {
            reporter.done(&summary);
        }
        let human = human_out.text();
        let json = json_out.text();
        let junit = std::fs::read_to_string(&junit_path).unwrap();
        let document = std::fs::read_to_string(dir.path().join("run.json")).unwrap();
        let html = std::fs::read_to_string(dir.path().join("run.html")).unwrap();
        let trace: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("trace.json")).unwrap())
                .unwrap();
        for (n, outcome) in outcomes.iter().enumerate() {
            let name = format!("t{n}");
            let word = match outcome {
                Outcome::Passed => "PASS",
                Outcome::Failed { .. } => "FAIL",
                Outcome::TimedOut { .. } => "TIMEOUT",
                Outcome::Crashed { .. } => "CRASH",
                Outcome::Leaked { .. } => "LEAK",
                Outcome::Skipped { .. } => "SKIP",
                Outcome::NotRun { .. } => "NOT RUN",
            };
            if let Outcome::NotRun { reason } = outcome {
                // Tests the run never started are counted once, with why, not listed.
                assert!(human.contains(&format!("1 test not run: {reason}")), "{human}");
            } else {
                let line = human.lines().find(|line| line.contains(&format!("bin {name}")));
                let line = line.unwrap_or_else(|| panic!("no line for {name} in:\n{human}"));
                assert!(line.contains(word), "{word} for {outcome:?}: {line}");
            }
            let event = json
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .find(|event| event["name"] == name.as_str())
                .unwrap();
            assert_eq!(event["outcome"]["kind"], outcome.kind(), "{event}");
            let case = junit.split("<testcase").find(|case| case.contains(&format!("\"{name}\"")));
            let case = case.unwrap_or_else(|| panic!("no JUnit case for {name}: {junit}"));
            let junit_word = match outcome {
                Outcome::Passed | Outcome::Leaked { .. } => None,
                Outcome::Skipped { .. } | Outcome::NotRun { .. } => Some("<skipped"),
                Outcome::Failed { .. } => Some("<failure"),
                Outcome::TimedOut { .. } | Outcome::Crashed { .. } => Some("<error"),
            };
            match junit_word {
                Some(word) => assert!(case.contains(word), "{word} for {outcome:?}: {case}"),
                None => assert!(!case.contains("<failure") && !case.contains("<error"), "{case}"),
            }
            if !outcome.passed() {
                let reason = outcome.reason();
                assert!(human.contains(&reason), "{reason} in the human output:\n{human}");
                assert!(html.contains(&name), "{name} in the HTML report");
            }
            let span = trace["traceEvents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|event| event["name"] == format!("bin {name}").as_str())
                .unwrap_or_else(|| panic!("no span for {name}: {trace}"));
            assert_eq!(span["cat"], outcome.kind(), "{span}");
        }
        let read: document::Document = serde_json::from_str(&document).unwrap();
        let kinds: Vec<&str> = read.attempts.iter().map(|a| a.outcome.kind()).collect();
        let expected: Vec<&str> = outcomes.iter().map(prun::Outcome::kind).collect();
        assert_eq!(kinds, expected, "the document keeps every outcome as it was");
        assert!(read.attempts.iter().map(|a| &a.outcome).eq(outcomes.iter()));
    }

    #[test]
    fn a_report_keeps_the_first_and_last_mebibyte() {
        assert_eq!(kept("short \u{fffd}"), None);
        let loud = format!("{}end", "é".repeat(3 << 19));
        let text = kept(&loud).unwrap();
        assert!(text.starts_with("éé") && text.ends_with("éend"));
        assert!(text.contains("\n[prun: 1.0 MiB of output left out here]\n"), "{}", &text[..40]);
        assert!(text.len() < (2 << 20) + 100);
    }
}
