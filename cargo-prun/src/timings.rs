//! Timings files: each test's typical duration, for CI to commit or cache, so that every shard
//! of `--partition timing:K/N` balances by the same numbers.
//!
//! `{"version": 1, "tests": {"BINARY NAME": MILLISECONDS, ...}, "cpu": {"BINARY NAME":
//! THOUSANDTHS_OF_A_CORE, ...}, "peak_kb": {"BINARY NAME": KIB, ...}}`: `cpu` (what each test
//! used per second) and `peak_kb` (its peak memory), where measured, are optional, so that an
//! adaptive run on another machine weighs the tests by them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cli::TimingsAction;
use crate::event::Outcome;
use crate::files::write_atomically;
use crate::history::{Ended, Record};
use crate::record::Document;

const VERSION: u32 = 1;

/// What can go wrong reading or writing a timings file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read the timings file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is neither a prun timings file nor a --json report: {source}")]
    NotTimings { path: PathBuf, source: serde_json::Error },
    #[error("{path} is a timings file of version {found}; this prun reads version {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    History(#[from] crate::history::Error),
    #[error(transparent)]
    Workspace(#[from] crate::build::WorkspaceError),
}

#[derive(Debug, Serialize, Deserialize)]
struct Timings {
    version: u32,
    tests: BTreeMap<String, u64>,
    #[serde(flatten)]
    used: Used,
}

/// What the tests used, where measured: CPU per second (thousandths of a core) and peak
/// memory (KiB), by test id.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Used {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) cpu: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) peak_kb: BTreeMap<String, u64>,
}

impl Used {
    /// What a report's attempts used (those that ran and were not retried).
    pub(crate) fn of_attempts<'a>(
        attempts: impl Iterator<Item = &'a crate::event::Finished>,
    ) -> Used {
        let mut used = Used::default();
        for attempt in attempts.filter(|a| !a.will_retry && a.test_ran()) {
            let Some(usage) = attempt.usage else { continue };
            if usage.peak_kb > 0 {
                used.peak_kb.insert(attempt.id(), usage.peak_kb);
            }
            if let Some(wall) = u64::try_from(attempt.duration.as_millis()).ok().filter(|w| *w > 0)
            {
                let millicores = u32::try_from(usage.cpu_ms * 1000 / wall).unwrap_or(u32::MAX);
                used.cpu.insert(attempt.id(), millicores);
            }
        }
        used
    }
}

pub(crate) fn timings(action: TimingsAction) -> Result<i32, Error> {
    let (path, workspace) = match &action {
        TimingsAction::Export { path, workspace } | TimingsAction::Import { path, workspace } => {
            (path, workspace)
        }
    };
    let store = crate::prepare::history_store(
        workspace.manifest_path.as_deref(),
        workspace.target_dir.as_deref(),
        None,
    )?;
    match action {
        TimingsAction::Export { .. } => {
            let count = write(path, &store.load())?;
            eprintln!("wrote the timings of {count} tests to {}", path.display());
        }
        TimingsAction::Import { .. } => {
            let imported = read(path)?;
            let used = read_used(path);
            let count = imported.len();
            store.update(|history| {
                for (id, duration) in imported {
                    let duration_ms = millis(duration);
                    let cpu = used.cpu.get(&id);
                    let cpu_ms = cpu.map(|millicores| duration_ms * u64::from(*millicores) / 1000);
                    let record = Record {
                        duration_ms,
                        outcome: Ended::Imported,
                        attempts: 1,
                        cpu_ms,
                        peak_kb: used.peak_kb.get(&id).copied(),
                    };
                    history.add(&id, record);
                }
            })?;
            eprintln!("imported the timings of {count} tests into {}", store.path().display());
        }
    }
    Ok(crate::exit::OK)
}

/// Writes the history's typical duration of each test, the CPU it used per second and its
/// peak memory, to `path` (atomically); how many.
pub(crate) fn write(path: &Path, history: &crate::history::History) -> Result<usize, Error> {
    let typical = history.tests.iter().filter_map(|(id, test)| Some((id.clone(), test.typical()?)));
    let mut used = Used::default();
    for (id, test) in &history.tests {
        let Some((millicores, peak_kb)) = test.demand() else { continue };
        used.cpu.insert(id.clone(), millicores);
        if peak_kb > 0 {
            used.peak_kb.insert(id.clone(), peak_kb);
        }
    }
    write_durations(path, typical, used)
}

/// Writes each test's duration (and what it used, where known) to a timings file at `path`
/// (atomically); how many.
pub(crate) fn write_durations(
    path: &Path,
    durations: impl Iterator<Item = (String, Duration)>,
    used: Used,
) -> Result<usize, Error> {
    let tests: BTreeMap<String, u64> = durations.map(|(id, d)| (id, millis(d))).collect();
    let count = tests.len();
    let failed = |source| Error::Write { path: path.to_owned(), source };
    let json = serde_json::to_vec_pretty(&Timings { version: VERSION, tests, used })
        .map_err(|err| failed(err.into()))?;
    // The same timings as the file holds: it stays as it is (a stable suite's snapshot, taken
    // each run, is rarely new).
    if std::fs::read(path).is_ok_and(|old| old == json) {
        return Ok(count);
    }
    write_atomically(path, &json).map_err(failed)?;
    Ok(count)
}

/// What the tests of a timings file, or of a `--json` report, used where it says (nothing for
/// a file without it).
fn read_used(path: &Path) -> Used {
    let Ok(text) = std::fs::read(path) else { return Used::default() };
    if let Ok(report) = serde_json::from_slice::<Document>(&text) {
        return Used::of_attempts(report.attempts.iter());
    }
    serde_json::from_slice::<Timings>(&text).map(|timings| timings.used).unwrap_or_default()
}

/// What `--partition timing:K/N` balances by when no `--timings` file is given: the history as
/// of the last run that was not partitioned (a snapshot beside the history, taken by the first
/// shard after that run; a run that is not partitioned and changes the history drops it). The
/// shards of one CI run read the same numbers however many of them ran on this machine before,
/// as each shard updates the history itself.
pub(crate) fn snapshot_path(store_dir: &Path) -> std::path::PathBuf {
    store_dir.join("partition-timings.json")
}

/// A timings file's durations by test id; or a `--json` report's (each test's final attempt),
/// so that the merged report of CI shards can feed the next run's timings.
pub(crate) fn read(path: &Path) -> Result<HashMap<String, Duration>, Error> {
    let text =
        std::fs::read(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    if let Ok(report) = serde_json::from_slice::<Document>(&text) {
        let finals = report.attempts.iter().filter(|a| !a.will_retry);
        return Ok(finals
            .filter(|a| !matches!(a.outcome, Outcome::Skipped { .. }))
            .map(|a| (a.id(), a.duration))
            .collect());
    }
    let timings: Timings = serde_json::from_slice(&text)
        .map_err(|source| Error::NotTimings { path: path.to_owned(), source })?;
    if timings.version != VERSION {
        return Err(Error::Version { path: path.to_owned(), found: timings.version });
    }
    Ok(timings.tests.into_iter().map(|(id, ms)| (id, Duration::from_millis(ms))).collect())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
