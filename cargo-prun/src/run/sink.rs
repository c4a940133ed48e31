//! Where a run's events go: redacted, tallied, kept for the history and `--rerun-failed`, and
//! rendered by every reporter; and what the run teaches the history when it ends.

use crate::history::{self, History};
use crate::report::{self, Reporter, Summary};
use crate::{rerun, timings};

/// Where the run's events go: redacted, tallied, kept for the history, and rendered by every
/// reporter.
pub(super) struct Sink {
    pub(super) reporters: Vec<Box<dyn Reporter>>,
    pub(super) redactor: report::redact::Redactor,
    pub(super) summary: Summary,
    /// What the run adds to the history: each test's final attempt, by id, and whether
    /// libtest said it should panic.
    pub(super) records: Vec<(String, history::Record, bool)>,
    /// Which of the run's tests passed and failed, for `--rerun-failed`.
    pub(super) last_run: rerun::LastRun,
}

impl Sink {
    pub(super) fn event(&mut self, event: report::Event) {
        match report::redact::event(&self.redactor, event) {
            report::Event::Started { binary, name, worker, running_for } => {
                for reporter in &mut self.reporters {
                    reporter.test_started(&binary, &name, worker, running_for);
                }
            }
            report::Event::Rerunning { tests, bisect_within } => {
                for reporter in &mut self.reporters {
                    reporter.rerunning(tests, bisect_within);
                }
            }
            report::Event::Slow { binary, name, running } => {
                for reporter in &mut self.reporters {
                    reporter.slow(&binary, &name, running);
                }
            }
            report::Event::Finished(finished) => self.finished(finished),
            report::Event::ParallelOnly(found) => {
                if found.under_load {
                    self.summary.forgive(&found);
                    self.last_run.passed(&found.id());
                }
                for reporter in &mut self.reporters {
                    reporter.parallel_only(&found);
                }
                self.summary.parallel_only.push(found);
            }
        }
    }

    /// A finished attempt, redacted by `event`.
    fn finished(&mut self, finished: report::Finished) {
        if !finished.will_retry {
            let id = finished.id();
            if finished.test.is_some() {
                match &finished.outcome {
                    prun::Outcome::NotRun { .. } => {}
                    outcome if outcome.passed() => self.last_run.passed(&id),
                    _ => self.last_run.failed(id.clone()),
                }
            }
            if let Some(record) = History::record_of(&finished) {
                self.records.push((id, record, finished.should_panic));
            }
        }
        self.summary.record(&finished);
        for reporter in &mut self.reporters {
            reporter.finished(&finished);
        }
    }

    /// The end of the run, for every reporter; the summary they were given.
    pub(super) fn done(mut self) -> Summary {
        for reporter in &mut self.reporters {
            reporter.done(&self.summary);
        }
        self.summary
    }
}

/// Adds what the run learned to the history; the hints it now has for this run's tests, and
/// the history as it now is. `catalog`: each test's id, category, and whether its binary is a
/// prun harness.
pub(super) fn learn(
    store: &history::Store,
    loaded: History,
    sink: &Sink,
    catalog: &[(&str, &str, bool)],
    partitioned: bool,
) -> (Vec<history::Hint>, Option<History>) {
    let mut hints = Vec::new();
    let update = store.update_loaded(Some(loaded), |history| {
        for (id, record, should_panic) in &sink.records {
            let test = history.test_mut(id);
            test.push(record.clone());
            test.should_panic = *should_panic;
        }
        for found in &sink.summary.parallel_only {
            history.note_diagnosis(found);
        }
        hints = history::hints(history, catalog);
    });
    match update {
        Ok((history, changed)) => {
            // Timing shards balance by a snapshot of the history that the first of them takes
            // (see `run::plan`): a run of the whole selection that changed the history drops
            // the one there is, so that the next shards take the history as this run left it.
            // Dropped, not written: a suite of 20,001 tiny tests spent 40 ms of every run's
            // end on it.
            let snapshot = timings::snapshot_path(store.dir());
            if changed
                && !partitioned
                && let Err(err) = std::fs::remove_file(&snapshot)
                && err.kind() != std::io::ErrorKind::NotFound
            {
                eprintln!("warning: cannot remove {}: {err}", snapshot.display());
            }
            (hints, Some(history))
        }
        Err(error) => {
            eprintln!("warning: the test history was not saved: {error}");
            (hints, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::event::{Event, Finished, Outcome, ParallelOnly};

    /// What a reporter was given, in order.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl Reporter for Seen {
        fn started(&mut self, _tests: usize, _binaries: usize, _skipped: usize) {}

        fn finished(&mut self, finished: &Finished) {
            let line = format!("{} {} {}", finished.id(), finished.outcome.kind(), finished.stdout);
            self.0.lock().unwrap().push(line.trim_end().to_owned());
        }

        fn parallel_only(&mut self, found: &ParallelOnly) {
            self.0.lock().unwrap().push(format!("parallel-only {}", found.id()));
        }

        fn done(&mut self, summary: &Summary) {
            let counts = (summary.passed, summary.failed, summary.flaky.len(), summary.not_run);
            self.0.lock().unwrap().push(format!("done {counts:?}"));
        }
    }

    fn attempt(name: &str, attempt: u32, outcome: Outcome, will_retry: bool) -> Event {
        let finished = Finished::of("b".into(), name.into(), outcome);
        Event::Finished(Finished { attempt, will_retry, test: Some(0), ..finished })
    }

    /// The run's events in, through the sink: redacted for every reporter, tallied, recorded
    /// for the history and for `--rerun-failed`; a failure diagnosed as the load's is forgiven.
    #[test]
    fn every_event_is_redacted_tallied_recorded_and_rendered() {
        let seen = Seen::default();
        let secret = ("API_TOKEN".to_owned(), "s3cr3t-value".to_owned());
        let redactor = report::redact::Redactor::new([secret].into_iter(), &[], &[]).unwrap();
        let tests = ["b flaky", "b loaded", "b stopped"].map(str::to_owned);
        let mut sink = Sink {
            reporters: vec![Box::new(seen.clone())],
            redactor,
            summary: Summary::default(),
            records: Vec::new(),
            last_run: rerun::LastRun::new(tests),
        };
        let failed = || Outcome::Failed { reason: "boom".into() };
        sink.event(attempt("flaky", 1, failed(), true));
        sink.event(attempt("flaky", 2, Outcome::Passed, false));
        let Event::Finished(loaded) = attempt("loaded", 1, failed(), false) else { unreachable!() };
        sink.event(Event::Finished(Finished { stdout: "token s3cr3t-value".into(), ..loaded }));
        let found = ParallelOnly {
            binary: "b".into(),
            name: "loaded".into(),
            shared_process: false,
            neighbours: Vec::new(),
            culprits: None,
            flaky: false,
            under_load: true,
            collision: None,
            trials: None,
            reproduce: None,
            fix: None,
        };
        sink.event(Event::ParallelOnly(found));
        let stopped = Outcome::NotRun { reason: "stopped after the first failure".into() };
        sink.event(attempt("stopped", 1, stopped, false));
        let records: Vec<String> = sink.records.iter().map(|(id, ..)| id.clone()).collect();
        let rerun = sink.last_run.rerun(std::path::Path::new("here"));
        let summary = sink.done();
        assert_eq!(
            *seen.0.lock().unwrap(),
            [
                "b flaky failed",
                "b flaky passed",
                "b loaded failed token [REDACTED]",
                "parallel-only b loaded",
                "b stopped not-run",
                "done (1, 0, 2, 1)",
            ]
        );
        assert_eq!((summary.passed, summary.failed, summary.not_run), (1, 0, 1));
        // The history learns each test's final attempt that ran.
        assert_eq!(records, ["b flaky", "b loaded"]);
        // What did not pass (the load's failure is forgiven) runs again.
        assert_eq!(rerun.tests.into_iter().collect::<Vec<_>>(), ["b stopped"]);
    }
}
