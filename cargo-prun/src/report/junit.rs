//! `--junit PATH`: JUnit XML, rewritten atomically as tests finish (at most once a second), so a
//! run that dies still leaves a valid report of what finished.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::{Finished, Outcome, Reporter, Summary, WriteError};
use crate::files::write_atomically;

pub(crate) struct Junit {
    path: PathBuf,
    /// Final attempts, by binary, each with the failed attempts before it.
    cases: BTreeMap<String, Vec<(Finished, Vec<Finished>)>>,
    /// Failed attempts that will run again, by binary and name.
    retried: BTreeMap<(String, String), Vec<Finished>>,
    written: Option<Instant>,
    /// The first error writing the file; reported once, at the end.
    error: Option<WriteError>,
}

impl Junit {
    /// The report at `path`, written once now (empty), so that a path that cannot be written
    /// stops a run before any test starts.
    pub(crate) fn create(path: PathBuf) -> Result<Junit, WriteError> {
        let mut junit = Junit::new(path);
        junit.write(None);
        junit.error.take().map_or(Ok(junit), Err)
    }

    pub(crate) fn new(path: PathBuf) -> Junit {
        Junit { path, cases: BTreeMap::new(), retried: BTreeMap::new(), written: None, error: None }
    }

    /// The last write, with the run's duration; the first error any write had.
    pub(crate) fn finish(&mut self, duration: Duration) -> Result<(), WriteError> {
        self.write(Some(duration));
        self.error.take().map_or(Ok(()), Err)
    }

    fn write(&mut self, duration: Option<Duration>) {
        let mut report = Report::new("prun");
        for (binary, cases) in &self.cases {
            let mut suite = TestSuite::new(binary.as_str());
            for (finished, earlier) in cases {
                suite.add_test_case(case(finished, earlier));
            }
            report.add_test_suite(suite);
        }
        if let Some(duration) = duration {
            report.set_time(duration);
        }
        let result = report
            .to_string()
            .map_err(std::io::Error::other)
            .and_then(|xml| write_atomically(&self.path, xml.as_bytes()));
        if let Err(source) = result {
            let path = self.path.clone();
            self.error.get_or_insert(WriteError { flag: "--junit", path, source });
        }
        self.written = Some(Instant::now());
    }
}

/// A test's final attempt; earlier failed attempts are its reruns (`flakyFailure` when it
/// passed in the end, `rerunFailure` when it did not).
fn case(finished: &Finished, earlier: &[Finished]) -> TestCase {
    let mut status = match &finished.outcome {
        Outcome::Passed => TestCaseStatus::success(),
        // A pass with a warning: the warning goes in the test's system-err.
        Outcome::Leaked { .. } => TestCaseStatus::success(),
        Outcome::Skipped { reason } | Outcome::NotRun { reason } => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(reason.as_str());
            status
        }
        other => {
            let kind = if matches!(other, Outcome::Failed { .. }) {
                NonSuccessKind::Failure
            } else {
                NonSuccessKind::Error
            };
            let mut status = TestCaseStatus::non_success(kind);
            status.set_message(other.reason());
            status.set_description(finished.captured.as_str());
            status
        }
    };
    status.add_reruns(earlier.iter().map(|attempt| {
        let kind = match attempt.outcome {
            Outcome::Failed { .. } => NonSuccessKind::Failure,
            _ => NonSuccessKind::Error,
        };
        let mut rerun = TestRerun::new(kind);
        rerun.set_message(attempt.outcome.reason()).set_time(attempt.duration);
        // What the failed attempt said: its panic message (prun tests), stdout and stderr.
        if !attempt.captured.is_empty() {
            rerun.set_description(attempt.captured.as_str());
        }
        if !attempt.stdout.is_empty() {
            rerun.set_system_out(attempt.stdout.as_str());
        }
        if !attempt.stderr.is_empty() {
            rerun.set_system_err(attempt.stderr.as_str());
        }
        rerun
    }));
    let mut case = TestCase::new(finished.name.as_str(), status);
    case.set_classname(finished.binary.as_str());
    case.set_time(finished.duration);
    if !finished.stdout.is_empty() {
        case.set_system_out(finished.stdout.as_str());
    }
    match &finished.outcome {
        Outcome::Leaked { reason } => {
            case.set_system_err(format!("prun: LEAK: {reason}\n{}", finished.stderr));
        }
        _ if !finished.stderr.is_empty() => {
            case.set_system_err(finished.stderr.as_str());
        }
        _ => {}
    }
    case
}

impl Reporter for Junit {
    fn started(&mut self, _tests: usize, _binaries: usize, _skipped: usize) {
        self.write(None);
    }

    fn finished(&mut self, finished: &Finished) {
        let key = (finished.binary.clone(), finished.name.clone());
        if finished.will_retry {
            self.retried.entry(key).or_default().push(finished.clone());
            return;
        }
        let earlier = self.retried.remove(&key).unwrap_or_default();
        self.cases.entry(finished.binary.clone()).or_default().push((finished.clone(), earlier));
        if self.written.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
            self.write(None);
        }
    }

    fn done(&mut self, summary: &Summary) {
        if let Err(error) = self.finish(summary.duration) {
            eprintln!("error: {error}");
        }
    }
}
