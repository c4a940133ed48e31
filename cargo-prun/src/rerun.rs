//! `--rerun-failed`: which tests the last run did not pass. Each run records the tests it was
//! responsible for (after filters and the partition) as it starts, and which of them passed,
//! failed or were not run as it ends (`TARGET/prun/last-run-v2.json`, beside the history): a run
//! that is killed midway leaves every test pending. What a run that ended keeps is small: the
//! tests it did not pass, not the thousands it did. A `--json` report, or a merge of CI
//! shards, serves as well: the tests it selected that have no passing final attempt, so the
//! tests of a shard that never reported are rerun too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::record::Document;

const VERSION: u32 = 2;

/// What one run was responsible for and how it went, by `BINARY NAME`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LastRun {
    version: u32,
    /// How many tests it was responsible for.
    selected: usize,
    /// Those it has not passed (yet): every one as it starts.
    pending: BTreeSet<String>,
    /// Those of `pending` that failed.
    failed: BTreeSet<String>,
}

/// The tests to run again, and one line saying which and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rerun {
    pub(crate) tests: BTreeSet<String>,
    pub(crate) said: String,
}

impl LastRun {
    pub(crate) fn new(selected: impl IntoIterator<Item = String>) -> LastRun {
        let pending: BTreeSet<String> = selected.into_iter().collect();
        LastRun { version: VERSION, selected: pending.len(), pending, failed: BTreeSet::new() }
    }

    /// The test passed (in the end: a failure found to be under load counts as a pass).
    pub(crate) fn passed(&mut self, id: &str) {
        self.pending.remove(id);
        self.failed.remove(id);
    }

    pub(crate) fn failed(&mut self, id: String) {
        self.failed.insert(id);
    }

    /// Where each run records itself.
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join("last-run-v2.json")
    }

    /// Written atomically; a record that cannot be written only means no `--rerun-failed`.
    pub(crate) fn save(&self, dir: &Path) {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
            crate::files::write_atomically(&LastRun::path(dir), &json)
        });
        if let Err(err) = written {
            eprintln!("warning: --rerun-failed will not know this run: {err}");
        }
    }

    /// What to run again: every selected test that did not pass.
    pub(crate) fn rerun(&self, from: &Path) -> Rerun {
        let tests = self.pending.clone();
        let failed = tests.intersection(&self.failed).count();
        let not_run = tests.len() - failed;
        let said = format!(
            "--rerun-failed: {} of the {} tests of {} ({failed} failed, {not_run} did not finish)",
            tests.len(),
            self.selected,
            from.display()
        );
        Rerun { tests, said }
    }
}

/// Why there is nothing to rerun from.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("--rerun-failed: no earlier run is recorded here; run the tests once first")]
    NoEarlierRun,
    #[error("--rerun-failed: {0} does not exist")]
    Missing(PathBuf),
    #[error(transparent)]
    Unreadable(#[from] crate::files::StateError),
    #[error("--rerun-failed: {0} (nor a record of cargo prun's own)")]
    NotARecord(#[from] crate::record::ReadError),
}

/// The record at `path` (ours, or a `--json` report or merge), or the last run's in `dir`.
pub(crate) fn read(path: Option<&Path>, dir: &Path) -> Result<Rerun, Error> {
    let path = path.map_or_else(|| LastRun::path(dir), Path::to_owned);
    let bytes = crate::files::read_state(&path).map_err(Error::Unreadable)?.ok_or_else(|| {
        match path.starts_with(dir) {
            true => Error::NoEarlierRun,
            false => Error::Missing(path.clone()),
        }
    })?;
    if let Ok(last) = serde_json::from_slice::<LastRun>(&bytes) {
        return Ok(last.rerun(&path));
    }
    let document = Document::read(&path)?;
    let mut last = LastRun::new(document.meta.selected.iter().cloned());
    for attempt in document.attempts.iter().filter(|attempt| !attempt.will_retry) {
        let id = attempt.id();
        if attempt.outcome.passed() && !matches!(attempt.outcome, prun::Outcome::NotRun { .. }) {
            last.passed(&id);
        } else if !matches!(attempt.outcome, prun::Outcome::NotRun { .. }) {
            last.failed(id);
        }
    }
    Ok(last.rerun(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_selected_test_that_did_not_pass_is_rerun() {
        let mut last = LastRun::new(["a x", "a y", "b z", "b w"].map(String::from));
        last.failed("a x".to_owned());
        last.passed("a x");
        last.passed("b w");
        last.failed("a y".to_owned());
        let rerun = last.rerun(Path::new("last-run.json"));
        assert_eq!(rerun.tests, BTreeSet::from(["a y".to_owned(), "b z".to_owned()]));
        assert_eq!(
            rerun.said,
            "--rerun-failed: 2 of the 4 tests of last-run.json (1 failed, 1 did not finish)"
        );
    }

    #[test]
    fn a_record_round_trips_and_a_missing_one_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = read(None, dir.path()).unwrap_err().to_string();
        assert!(err.contains("run the tests once first"), "{err}");
        let last = LastRun::new(["a x".to_owned()]);
        last.save(dir.path());
        assert_eq!(read(None, dir.path()).unwrap().tests.len(), 1, "pending until it ends");
    }
}
