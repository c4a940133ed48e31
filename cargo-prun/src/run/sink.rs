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
    /// What the run adds to the history: each test's final attempt, by id.
    pub(super) records: Vec<(String, history::Record)>,
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
        if !finished.will_retry && finished.test.is_some() {
            let id = finished.id();
            match &finished.outcome {
                prun::Outcome::NotRun { .. } => {}
                outcome if outcome.passed() => self.last_run.passed(&id),
                _ => self.last_run.failed(id),
            }
        }
        self.summary.record(&finished);
        if !finished.will_retry
            && let Some(record) = History::record_of(&finished)
        {
            self.records.push((finished.id(), record));
        }
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

/// Adds what the run learned to the history; the hints it now has for this run's tests.
/// `catalog`: each test's id, category, and whether its binary is a prun harness.
pub(super) fn learn(
    store: &history::Store,
    loaded: History,
    sink: &Sink,
    catalog: &[(String, String, bool)],
    partitioned: bool,
) -> Vec<history::Hint> {
    let mut hints = Vec::new();
    let update = store.update_loaded(Some(loaded), |history| {
        for (id, record) in &sink.records {
            history.add(id.clone(), record.clone());
        }
        for found in &sink.summary.parallel_only {
            history.note_diagnosis(found);
        }
        hints = history::hints(history, catalog);
    });
    match update {
        // A run of the whole selection takes the snapshot timing shards balance by (the same
        // as the last one while the history is).
        Ok((history, changed)) if !partitioned => {
            let snapshot = timings::snapshot_path(store.dir());
            if (changed || !snapshot.exists())
                && let Err(err) = timings::write(&snapshot, &history)
            {
                eprintln!("warning: {err}");
            }
        }
        Ok(_) => {}
        Err(error) => eprintln!("warning: the test history was not saved: {error}"),
    }
    hints
}
