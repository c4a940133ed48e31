//! History: what earlier runs learned about each test (recent durations, outcomes, attempts,
//! CPU and memory), kept in `target/prun/history.bin` so that the next run can order tests
//! longest first, size batches, weigh tests, balance `timing` shards and tell flaky tests from
//! broken ones.
//!
//! The file is compact, so that a suite of 100,000 tests pays little for it each run: postcard
//! (a maintained serde format of varints), each binary's id once, and a test's runs run-length
//! encoded (a test whose runs look alike, as most do, is one record and a count; a peak memory
//! is kept to the MiB for that). It is replaced whole under a lock, after merging with what is
//! on disk, so two runs at once both land and a reader never sees half a file; a run that
//! changes nothing in it (a stable suite whose last runs all look alike) does not write it. A
//! file prun cannot read is a warning and a fresh start: history is advice, and never fails a
//! run. A `history.json` of an earlier prun is read once and replaced.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use prun::protocol::TestId;
use serde::{Deserialize, Serialize};

use crate::event::{Finished, Outcome, ParallelOnly};

pub(crate) const VERSION: u32 = 3;
/// The earliest version of the file this prun reads (version 2 had one flag, `under_load`, as
/// a bool: the same byte as version 3's flags with only that bit).
const READS_FROM: u32 = 2;
/// What a history file starts with (then its version and the postcard body).
const MAGIC: &[u8] = b"prun history\n";
/// Runs kept per test: enough for a median and a flaky rate, small enough to stay fast.
const KEEP: usize = 20;

#[derive(Debug, Default)]
pub(crate) struct History {
    pub(crate) version: u32,
    /// By test id, `BINARY NAME`, in the file's order (sorted; tests new to it after). Hashed:
    /// a run looks up each of its tests twice (to plan and to learn), and a search of a tree
    /// of 20,001 ids was a third of planning them.
    pub(crate) tests: IndexMap<String, TestHistory>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct TestHistory {
    /// The last `KEEP` runs, oldest first, run-length encoded: runs in a row that ended alike
    /// are one record and how many (most tests' runs look alike: a suite of 100,000 tests is
    /// 100,000 records in memory, not 2 million).
    runs: Vec<(Record, u32)>,
    /// When it last failed only in parallel: the tests beside it then (what `cargo prun
    /// bisect` starts from).
    pub(crate) neighbours: Vec<String>,
    /// It failed while the machine was oversubscribed and passed with no load: later runs give
    /// it a whole core and admit nothing beyond the cores while it runs.
    pub(crate) under_load: bool,
    /// Its last run was a plain test that libtest said should panic: under `RUST_BACKTRACE`
    /// its panic reads the binary's symbols when it is the first of its process (see
    /// `plan::Options::backtraces`).
    pub(crate) should_panic: bool,
}

/// One run of one test: its last attempt's duration, and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) duration_ms: u64,
    pub(crate) outcome: Ended,
    pub(crate) attempts: u32,
    /// CPU time its last attempt used, and its peak memory in KiB, where measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) peak_kb: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Ended {
    Passed,
    /// Passed after failing.
    Flaky,
    Failed,
    /// A duration from a timings file, not a run of this machine.
    Imported,
}

impl TestHistory {
    /// Its recent runs, oldest first.
    #[cfg(test)]
    fn runs(&self) -> impl Iterator<Item = &Record> {
        self.runs.iter().flat_map(|(record, times)| std::iter::repeat_n(record, *times as usize))
    }

    /// How many runs it keeps.
    pub(crate) fn run_count(&self) -> usize {
        self.runs.iter().map(|(_, times)| *times as usize).sum()
    }

    /// The median duration of the recent runs.
    pub(crate) fn typical(&self) -> Option<Duration> {
        // Most tests' recent runs look alike: one record.
        if let [(run, times)] = self.runs.as_slice() {
            return (*times > 0).then(|| Duration::from_millis(run.duration_ms));
        }
        let mut durations: Vec<(u64, u32)> =
            self.runs.iter().map(|(r, times)| (r.duration_ms, *times)).collect();
        durations.sort_unstable();
        let mut left = self.run_count() / 2;
        for (duration_ms, times) in durations {
            if left < times as usize {
                return Some(Duration::from_millis(duration_ms));
            }
            left -= times as usize;
        }
        None
    }

    /// The longest of the recent runs. A test whose first run in a process pays for the
    /// process (the symbols a panic's backtrace reads, a lazy static) is quick after another
    /// that paid, so its median moves with where it ran; its longest does not.
    pub(crate) fn longest(&self) -> Option<Duration> {
        let longest = self.runs.iter().filter(|(_, times)| *times > 0).map(|(r, _)| r.duration_ms);
        longest.max().map(Duration::from_millis)
    }

    /// What its recent measured runs used: CPU per second of wall time (thousandths of a
    /// core), and the highest peak memory (KiB). `None` before a run measured it.
    pub(crate) fn demand(&self) -> Option<(u32, u64)> {
        let measured = self.runs.iter().filter_map(|(r, times)| {
            Some((r.duration_ms, r.cpu_ms?, r.peak_kb, u64::from(*times)))
        });
        let (mut wall, mut cpu, mut peak, mut any) = (0u64, 0u64, 0u64, false);
        for (duration_ms, cpu_ms, peak_kb, times) in measured {
            wall += duration_ms * times;
            cpu += cpu_ms * times;
            peak = peak.max(peak_kb.unwrap_or(0));
            any = true;
        }
        if !any {
            return None;
        }
        // A run shorter than a millisecond has no ratio worth the name: a core.
        let millicores = cpu.saturating_mul(1000).checked_div(wall).unwrap_or(1000);
        Some((u32::try_from(millicores).unwrap_or(u32::MAX), peak))
    }

    /// The share of recent runs (not imported) that failed at least once.
    pub(crate) fn flaky_rate(&self) -> Option<f64> {
        let count = |keep: &dyn Fn(&Record) -> bool| -> u32 {
            self.runs.iter().filter(|(r, _)| keep(r)).map(|(_, times)| times).sum()
        };
        let runs = count(&|r| r.outcome != Ended::Imported);
        if runs == 0 {
            return None;
        }
        let flaky = count(&|r| r.outcome == Ended::Flaky);
        Some(f64::from(flaky) / f64::from(runs))
    }

    /// Adds a run (the oldest is forgotten past `KEEP`).
    pub(crate) fn push(&mut self, record: Record) {
        match self.runs.last_mut() {
            Some((last, times)) if *last == record => *times += 1,
            _ => self.runs.push((record, 1)),
        }
        let mut extra = self.run_count().saturating_sub(KEEP);
        while extra > 0 {
            let (_, times) = &mut self.runs[0];
            let dropped = (*times as usize).min(extra);
            *times -= dropped as u32;
            extra -= dropped;
            if *times == 0 {
                self.runs.remove(0);
            }
        }
    }

    /// The last run ended otherwise than it was recorded (a failure found flaky).
    fn last_ended(&mut self, outcome: Ended) {
        let Some((last, times)) = self.runs.last_mut() else { return };
        let mut record = last.clone();
        record.outcome = outcome;
        if *times > 1 {
            *times -= 1;
            self.runs.push((record, 1));
        } else {
            *last = record;
        }
    }
}

impl History {
    pub(crate) fn get(&self, id: &str) -> Option<&TestHistory> {
        self.tests.get(id)
    }

    /// How many tests at once `cores` serve, by what the measured tests used: the cores times
    /// their wall time over their CPU time, from `cores` (nothing measured, or all busy) to
    /// `ceiling`. What the plan sizes batches for in an adaptive run.
    pub(crate) fn expected_concurrency(&self, cores: usize, ceiling: usize) -> usize {
        let (mut wall, mut cpu) = (0u64, 0u64);
        for test in self.tests.values() {
            for (run, times) in &test.runs {
                if let Some(cpu_ms) = run.cpu_ms {
                    wall += run.duration_ms * u64::from(*times);
                    // A test that waits still costs its process something (the dispatcher's
                    // lightest weight).
                    let least = run.duration_ms * u64::from(prun::scheduler::LIGHTEST) / 1000;
                    cpu += cpu_ms.max(least) * u64::from(*times);
                }
            }
        }
        if cpu == 0 {
            return cores.min(ceiling).max(1);
        }
        let ratio = wall as f64 / cpu as f64;
        let expected = (cores as f64 * ratio).round() as usize;
        expected.clamp(cores.min(ceiling), ceiling).max(1)
    }

    pub(crate) fn add(&mut self, id: &str, record: Record) {
        self.test_mut(id).push(record);
    }

    /// The history of the test `id`, new and empty if it has none.
    pub(crate) fn test_mut(&mut self, id: &str) -> &mut TestHistory {
        // The id is copied only for a test new to the history.
        match self.tests.get_index_of(id) {
            Some(at) => &mut self.tests[at],
            None => self.tests.entry(id.to_owned()).or_default(),
        }
    }

    /// What the diagnosis found: the company of a parallel-only failure (where `bisect` starts),
    /// or that a failure was flaky (this run's record of it counts as flaky).
    pub(crate) fn note_diagnosis(&mut self, found: &ParallelOnly) {
        let test = self.test_mut(&found.id());
        if found.flaky || found.under_load {
            test.last_ended(Ended::Flaky);
            test.under_load |= found.under_load;
        } else {
            test.neighbours.clone_from(&found.neighbours);
        }
    }

    /// What this run's final attempt of a test adds to its history; none for a test that was
    /// skipped or not run.
    pub(crate) fn record_of(finished: &Finished) -> Option<Record> {
        let outcome = match &finished.outcome {
            Outcome::Skipped { .. } | Outcome::NotRun { .. } => return None,
            outcome if outcome.passed() && finished.attempt > 1 => Ended::Flaky,
            outcome if outcome.passed() => Ended::Passed,
            _ => Ended::Failed,
        };
        let duration = match finished.outcome {
            // A timed-out test took at least its timeout.
            Outcome::TimedOut { after } => after.max(finished.duration),
            _ => finished.duration,
        };
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        // A peak to the MiB (rounded up): runs of a test that differ by a few KiB look alike,
        // and are kept as one record and a count.
        let (cpu_ms, peak_kb) = match finished.usage {
            Some(usage) => (Some(usage.cpu_ms), Some(usage.peak_kb.div_ceil(1024) * 1024)),
            None => (None, None),
        };
        Some(Record { duration_ms, outcome, attempts: finished.attempt, cpu_ms, peak_kb })
    }
}

/// What the history suggests about this run's tests; a reporter words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hint {
    /// A prun unit test that typically takes long: the category that starts it early.
    Category { test: String, typical: Duration, suggest: &'static str },
    /// More such hints than are shown.
    More(usize),
    /// A hint as a report file holds it: its words.
    Read(String),
}

impl std::fmt::Display for Hint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hint::Category { test, typical, suggest } => write!(
                f,
                "{test} is a unit test that typically takes {}: #[prun::test(category = \"{suggest}\")] lets it start early",
                prun::time::pretty(*typical)
            ),
            Hint::More(count) => {
                write!(f, "{count} more: `cargo prun list` shows each test's typical duration")
            }
            Hint::Read(words) => f.write_str(words),
        }
    }
}

/// Reports hold a hint's words (the JSON schema's `hints` are strings).
impl serde::Serialize for Hint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Hint, D::Error> {
        String::deserialize(deserializer).map(Hint::Read)
    }
}

/// The hints for this run's tests: each `unit` test of a prun binary that keeps taking 100 ms
/// or more ("keeps": the median of at least two runs) gets a category, so that the scheduler
/// knows it before it has history. The longest tests' first, at most five and how many more.
/// `catalog`: each test's id, category, and whether its binary is a prun harness.
pub(crate) fn hints(history: &History, catalog: &[(&str, &str, bool)]) -> Vec<Hint> {
    const MOST: usize = 5;
    let mut hints: Vec<(Duration, Hint)> = Vec::new();
    // A plain `#[test]` gets no hint: it has no attribute to change, and the history already
    // starts a long one first.
    for &(id, _, _) in catalog.iter().filter(|(_, category, prun)| *prun && *category == "unit") {
        let Some(test) = history.get(id).filter(|t| t.run_count() >= 2) else { continue };
        let Some(typical) = test.typical() else { continue };
        let suggest = if typical >= Duration::from_secs(1) { "slow" } else { "integration" };
        if typical >= Duration::from_millis(100) {
            hints.push((typical, Hint::Category { test: id.to_owned(), typical, suggest }));
        }
    }
    hints.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.to_string().cmp(&b.1.to_string())));
    let more = hints.len().saturating_sub(MOST);
    let mut shown: Vec<Hint> = hints.into_iter().take(MOST).map(|(_, hint)| hint).collect();
    if more > 0 {
        shown.push(Hint::More(more));
    }
    shown
}

/// Where a workspace keeps its history: `TARGET_DIR/prun/`.
pub(crate) struct Store {
    dir: PathBuf,
    /// The file as `load` read it: an update that finds it unchanged takes the history loaded
    /// then rather than decoding it again.
    loaded: std::sync::Mutex<Option<Vec<u8>>>,
    /// The history being read on a thread of its own (see [`Store::read_ahead`]).
    ahead: std::sync::Mutex<Option<std::thread::JoinHandle<Read>>>,
}

/// A history as [`Store::read`] gives it.
type Read = Result<(History, Option<Vec<u8>>), Error>;

impl Store {
    pub(crate) fn new(dir: PathBuf) -> Store {
        Store { dir, loaded: std::sync::Mutex::default(), ahead: std::sync::Mutex::default() }
    }

    /// Starts reading the history on a thread of its own, for [`Store::load`] to take: a run
    /// reads it while it finds its test binaries (a history of 20,001 tests takes 15 ms).
    pub(crate) fn read_ahead(&self) {
        let store = Store::new(self.dir.clone());
        let reading =
            std::thread::Builder::new().name("prun-history".into()).spawn(move || store.read());
        // No thread: `load` reads it.
        *self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = reading.ok();
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("history.bin")
    }

    /// An earlier prun's history, read when there is no `history.bin` yet.
    fn json_path(&self) -> PathBuf {
        self.dir.join("history.json")
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The history on disk; a missing file is an empty history, an unreadable one a warning.
    pub(crate) fn load(&self) -> History {
        let ahead = self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let read = match ahead.map(std::thread::JoinHandle::join) {
            Some(Ok(read)) => read,
            // Not read ahead, or the thread panicked: read here.
            _ => self.read(),
        };
        let read = read.map(|(history, bytes)| {
            *self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = bytes;
            history
        });
        match read {
            Ok(history) => history,
            Err(problem) => {
                eprintln!(
                    "warning: ignoring the test history {}: {problem}; starting afresh",
                    self.path().display()
                );
                History { version: VERSION, ..History::default() }
            }
        }
    }

    /// Adds records to the history on disk: read, merge and write under an exclusive lock, so
    /// concurrent runs never lose each other's records.
    pub(crate) fn update(&self, change: impl FnOnce(&mut History)) -> Result<(), Error> {
        self.update_loaded(None, change).map(drop)
    }

    /// [`Store::update`], given the history [`Store::load`] returned: when the file is as it
    /// was then, that history is changed rather than the file decoded again. The history as it
    /// now is, and whether the file changed.
    pub(crate) fn update_loaded(
        &self,
        loaded: Option<History>,
        change: impl FnOnce(&mut History),
    ) -> Result<(History, bool), Error> {
        let describe = |source: std::io::Error| Error::Io { dir: self.dir.clone(), source };
        std::fs::create_dir_all(&self.dir).map_err(describe)?;
        let lock = crate::private::open_lock(&self.dir.join("history.lock")).map_err(describe)?;
        lock.lock().map_err(describe)?;
        let then = self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let (mut history, before) = match (loaded, then) {
            (Some(history), Some(then))
                if read_bytes(&self.path()).ok().flatten().as_ref() == Some(&then) =>
            {
                (history, Some(then))
            }
            _ => self.read().unwrap_or_default(),
        };
        history.version = VERSION;
        change(&mut history);
        let bytes = encode(&history)?;
        // Nothing learned that is not there already: the file stays as it is.
        let changed = before.as_deref() != Some(&bytes[..]);
        if changed {
            replace(&self.path(), &bytes).map_err(describe)?;
        }
        if before.is_none() {
            // Migrated (or nothing to migrate): an earlier prun's file is not read again.
            let _ = std::fs::remove_file(self.json_path());
        }
        // The lock is released when `lock` is closed.
        Ok((history, changed))
    }

    /// The history, and the bytes of its file (`None` when it was not read from `history.bin`).
    fn read(&self) -> Result<(History, Option<Vec<u8>>), Error> {
        match read_bytes(&self.path())? {
            Some(bytes) => Ok((decode(&bytes)?, Some(bytes))),
            None => {
                match crate::files::read_state(&self.json_path()).map_err(Error::Unreadable)? {
                    Some(json) => Ok((parse_json(&json)?, None)),
                    None => Ok((History { version: VERSION, ..History::default() }, None)),
                }
            }
        }
    }
}

/// What can go wrong reading or writing the history.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Unreadable(#[from] crate::files::StateError),
    #[error("not a prun history")]
    NotAHistory,
    #[error("not a prun history ({0})")]
    Undecodable(postcard::Error),
    #[error("not a prun history ({0})")]
    OldUnreadable(serde_json::Error),
    #[error(
        "written by another version of prun (history version {found}, this prun reads {reads})"
    )]
    OtherVersion { found: u32, reads: String },
    #[error("cannot encode the history: {0}")]
    Encode(postcard::Error),
    #[error("the history is being replaced without end")]
    EndlessReplace,
}

/// The history file's layout: each binary once, with its tests (written as [`BinaryOut`]).
/// Names are read in place, from the file's bytes: each test's id is its one copy.
#[derive(Deserialize)]
struct BinaryOnDisk<'a> {
    id: &'a str,
    #[serde(borrow)]
    tests: Vec<TestOnDisk<'a>>,
}

#[derive(Deserialize)]
struct TestOnDisk<'a> {
    name: &'a str,
    /// Oldest first, run-length encoded.
    runs: Vec<RunsOnDisk>,
    neighbours: Vec<String>,
    flags: u8,
}

/// A [`TestOnDisk`]'s `flags`: the bits of its [`TestHistory`]'s flags.
const UNDER_LOAD: u8 = 1;
const SHOULD_PANIC: u8 = 2;

/// `times` runs in a row that ended alike.
#[derive(Serialize, Deserialize, PartialEq)]
struct RunsOnDisk {
    times: u32,
    duration_ms: u64,
    outcome: Ended,
    attempts: u32,
    cpu_ms: Option<u64>,
    peak_kb: Option<u64>,
}

/// [`BinaryOnDisk`] as it is written: borrowed from the history, not copied into it.
#[derive(Serialize)]
struct BinaryOut<'a> {
    id: &'a str,
    tests: Vec<TestOut<'a>>,
}

/// [`TestOnDisk`] as it is written.
#[derive(Serialize)]
struct TestOut<'a> {
    name: &'a str,
    runs: RunsOut<'a>,
    neighbours: &'a [String],
    flags: u8,
}

/// A test's runs, written as the [`RunsOnDisk`] they are read back as.
struct RunsOut<'a>(&'a [(Record, u32)]);

impl Serialize for RunsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|(run, times)| RunsOnDisk {
            times: *times,
            duration_ms: run.duration_ms,
            outcome: run.outcome,
            attempts: run.attempts,
            cpu_ms: run.cpu_ms,
            peak_kb: run.peak_kb,
        }))
    }
}

/// The history as its file holds it.
fn encode(history: &History) -> Result<Vec<u8>, Error> {
    let mut sorted: Vec<(&String, &TestHistory)> = history.tests.iter().collect();
    // As read, they are: only a run that added tests sorts them.
    if !sorted.is_sorted_by_key(|(id, _)| *id) {
        sorted.sort_unstable_by_key(|(id, _)| *id);
    }
    let mut binaries: Vec<BinaryOut<'_>> = Vec::new();
    for (id, test) in sorted {
        let (binary, name) = id.split_once(' ').unwrap_or((id.as_str(), ""));
        let test = TestOut {
            name,
            runs: RunsOut(&test.runs),
            neighbours: &test.neighbours,
            flags: if test.under_load { UNDER_LOAD } else { 0 }
                | if test.should_panic { SHOULD_PANIC } else { 0 },
        };
        match binaries.last_mut() {
            Some(last) if last.id == binary => last.tests.push(test),
            _ => binaries.push(BinaryOut { id: binary, tests: vec![test] }),
        }
    }
    let mut bytes = MAGIC.to_vec();
    let bytes = postcard::to_io(&VERSION, &mut bytes)
        .and_then(|bytes| postcard::to_io(&binaries, bytes))
        .map_err(Error::Encode)?;
    Ok(std::mem::take(bytes))
}

fn decode(bytes: &[u8]) -> Result<History, Error> {
    let body = bytes.strip_prefix(MAGIC).ok_or(Error::NotAHistory)?;
    let (version, body) = postcard::take_from_bytes::<u32>(body).map_err(Error::Undecodable)?;
    if !(READS_FROM..=VERSION).contains(&version) {
        let reads = format!("{READS_FROM} to {VERSION}");
        return Err(Error::OtherVersion { found: version, reads });
    }
    let binaries: Vec<BinaryOnDisk> = postcard::from_bytes(body).map_err(Error::Undecodable)?;
    let mut tests = Vec::with_capacity(binaries.iter().map(|b| b.tests.len()).sum());
    for binary in binaries {
        for test in binary.tests {
            let runs = test.runs.into_iter().map(|r| {
                let record = Record {
                    duration_ms: r.duration_ms,
                    outcome: r.outcome,
                    attempts: r.attempts,
                    cpu_ms: r.cpu_ms,
                    peak_kb: r.peak_kb,
                };
                (record, r.times.clamp(1, KEEP as u32))
            });
            let entry = TestHistory {
                runs: runs.collect(),
                neighbours: test.neighbours,
                under_load: test.flags & UNDER_LOAD != 0,
                should_panic: test.flags & SHOULD_PANIC != 0,
            };
            tests.push((TestId { binary: binary.id, name: test.name }.joined(), entry));
        }
    }
    Ok(History { version, tests: tests.into_iter().collect() })
}

/// Where the next history is written before it takes the history's place.
fn next_path(path: &Path) -> PathBuf {
    path.with_extension("bin.new")
}

/// Puts `contents` in `path`'s place (under the history's lock) without renaming over a file:
/// ext4 flushes a file renamed over another (its `auto_da_alloc`), which cost 2 ms of a 50 ms
/// run. The new file is written in full beside the old one, the old one removed and the new
/// one renamed into place. In between (and after a crash there) `path` is missing and the new
/// file complete: `read` falls back to it, and the next update first puts it in place.
fn replace(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::{ErrorKind, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let next = next_path(path);
    if !path.exists() && next.exists() {
        std::fs::rename(&next, path)?;
    }
    let remove = |file: &Path| match std::fs::remove_file(file) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    };
    // Left over from a crash while it was written: the current history is still in `path`.
    remove(&next)?;
    let mut file = File::options().write(true).create_new(true).mode(0o600).open(&next)?;
    file.write_all(contents)?;
    drop(file);
    remove(path)?;
    std::fs::rename(&next, path)
}

/// The history file's bytes; `None` when there is none.
fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    let read = |path: &Path| crate::files::read_state(path).map_err(Error::Unreadable);
    // No history: an update is between removing the old one and renaming the new in, and the
    // new one is complete. Unless, by the time it is read, that one is in place and the next
    // update is writing another: one that does not decode sends us back to the history.
    for _ in 0..8 {
        match read(path)? {
            Some(bytes) => return Ok(Some(bytes)),
            None => match read(&next_path(path))? {
                None => return Ok(None),
                Some(bytes) if decode(&bytes).is_ok() => return Ok(Some(bytes)),
                Some(_) => continue,
            },
        }
    }
    Err(Error::EndlessReplace)
}

/// A `history.json` of an earlier prun (version 1).
fn parse_json(bytes: &[u8]) -> Result<History, Error> {
    #[derive(Deserialize)]
    struct Versioned {
        version: u32,
    }
    let versioned: Versioned = serde_json::from_slice(bytes).map_err(Error::OldUnreadable)?;
    if versioned.version != 1 {
        return Err(Error::OtherVersion {
            found: versioned.version,
            reads: format!("1 and {VERSION}"),
        });
    }
    #[derive(Deserialize)]
    struct V1 {
        tests: BTreeMap<String, TestV1>,
    }
    #[derive(Deserialize)]
    struct TestV1 {
        runs: Vec<Record>,
        #[serde(default)]
        neighbours: Vec<String>,
        #[serde(default)]
        under_load: bool,
    }
    let v1: V1 = serde_json::from_slice(bytes).map_err(Error::OldUnreadable)?;
    let mut history = History { version: VERSION, tests: IndexMap::new() };
    for (id, old) in v1.tests {
        let mut test = TestHistory {
            runs: Vec::new(),
            neighbours: old.neighbours,
            under_load: old.under_load,
            should_panic: false,
        };
        old.runs.into_iter().for_each(|record| test.push(record));
        history.tests.insert(id, test);
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn record(ms: u64, outcome: Ended) -> Record {
        Record { duration_ms: ms, outcome, attempts: 1, cpu_ms: None, peak_kb: None }
    }

    #[test]
    fn the_file_holds_the_tests_sorted_whatever_order_they_came_in() {
        let ids = ["b z", "a y", "b a", "a-b x", "a x"];
        let mut forwards = History::default();
        let mut backwards = History::default();
        for id in ids {
            forwards.add(id, record(1, Ended::Passed));
        }
        for id in ids.iter().rev() {
            backwards.add(id, record(1, Ended::Passed));
        }
        let bytes = encode(&forwards).unwrap();
        assert_eq!(bytes, encode(&backwards).unwrap());
        let mut read = decode(&bytes).unwrap();
        let order: Vec<&str> = read.tests.keys().map(String::as_str).collect();
        assert_eq!(order, ["a x", "a y", "a-b x", "b a", "b z"]);
        // A test new to the history comes last in memory, and in its place in the file.
        read.add("a new", record(1, Ended::Passed));
        let reread = decode(&encode(&read).unwrap()).unwrap();
        let order: Vec<&str> = reread.tests.keys().map(String::as_str).collect();
        assert_eq!(order, ["a new", "a x", "a y", "a-b x", "b a", "b z"]);
    }

    #[test]
    fn typical_is_the_median_and_flaky_rate_ignores_imports() {
        let mut test = TestHistory::default();
        for (ms, outcome) in [(10, Ended::Passed), (500, Ended::Flaky), (20, Ended::Imported)] {
            test.push(record(ms, outcome));
        }
        assert_eq!(test.typical(), Some(Duration::from_millis(20)));
        assert_eq!(test.longest(), Some(Duration::from_millis(500)));
        assert_eq!(test.flaky_rate(), Some(0.5));
        assert_eq!(TestHistory::default().longest(), None);
    }

    #[test]
    fn hints_name_tests_slower_than_their_category() {
        let mut history = History::default();
        for id in ["p slow_unit", "p quick_unit", "l slow_plain", "p once"] {
            let ms = if id.contains("slow") { 1500 } else { 20 };
            history.add(id, record(ms, Ended::Passed));
            if id != "p once" {
                history.add(id, record(ms, Ended::Passed));
            }
        }
        history.add("p once", record(900, Ended::Passed));
        let catalog = [
            ("p slow_unit", "unit", true),
            ("p quick_unit", "unit", true),
            ("l slow_plain", "unit", false),
            ("p once", "unit", true),
        ];
        let hints: Vec<String> = hints(&history, &catalog).iter().map(Hint::to_string).collect();
        assert_eq!(hints.len(), 2, "{hints:#?}");
        assert!(
            hints
                .iter()
                .any(|h| h.starts_with("p slow_unit is a unit test") && h.contains("\"slow\""))
        );
        // A plain test has no attribute to change: no hint for it.
        assert!(!hints.iter().any(|h| h.starts_with("l slow_plain")), "{hints:#?}");
        assert!(hints.iter().any(|h| h.starts_with("p once") && h.contains("\"integration\"")));
    }

    #[test]
    fn a_report_holds_a_hints_words_and_reads_them_back() {
        let hint = Hint::Category {
            test: "p slow_unit".into(),
            typical: Duration::from_millis(1500),
            suggest: "slow",
        };
        let json = serde_json::to_string(&[&hint, &Hint::More(3)]).unwrap();
        assert!(json.starts_with("[\"p slow_unit is a unit test that typically takes 1.5s"));
        let read: Vec<Hint> = serde_json::from_str(&json).unwrap();
        assert_eq!(read[0].to_string(), hint.to_string());
        assert_eq!(read[1], Hint::Read(Hint::More(3).to_string()));
    }

    #[test]
    fn keeps_the_most_recent_runs() {
        let mut test = TestHistory::default();
        for ms in 0..(KEEP as u64 + 5) {
            test.push(record(ms, Ended::Passed));
        }
        assert_eq!(test.run_count(), KEEP);
        assert_eq!(test.runs().next().unwrap().duration_ms, 5);
        // Alike runs are one record: the oldest go one by one all the same.
        let mut alike = TestHistory::default();
        alike.push(record(1, Ended::Failed));
        for _ in 0..KEEP {
            alike.push(record(0, Ended::Passed));
        }
        assert_eq!((alike.run_count(), alike.runs.len(), alike.flaky_rate()), (KEEP, 1, Some(0.0)));
        alike.last_ended(Ended::Flaky);
        assert_eq!(alike.runs.len(), 2);
        assert_eq!(alike.flaky_rate(), Some(1.0 / KEEP as f64));
    }

    #[test]
    fn corrupt_or_foreign_files_are_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        let mut foreign = MAGIC.to_vec();
        foreign.push(99);
        let bad: [&[u8]; 4] = [b"{ not json", b"prun history\n\x02\xff\xff", &foreign, b""];
        for bad in bad {
            std::fs::write(store.path(), bad).unwrap();
            assert!(store.read().is_err(), "{bad:?}");
            assert!(store.load().tests.is_empty());
            // The next run replaces it with a good file.
            store.update(|h| h.add("a t", record(1, Ended::Passed))).unwrap();
            assert_eq!(store.load().tests.len(), 1);
        }
    }

    #[test]
    fn a_history_read_ahead_is_the_one_load_gives() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        store.update(|h| h.add("a t", record(7, Ended::Passed))).unwrap();
        store.read_ahead();
        let history = store.load();
        assert_eq!(history.tests["a t"].typical(), Some(Duration::from_millis(7)));
        // Taken: the next load reads the file again.
        store.update(|h| h.add("a u", record(1, Ended::Passed))).unwrap();
        assert_eq!(store.load().tests.len(), 2);
        // Read ahead of a file that is not there: an empty history, as `load` alone gives.
        let empty = Store::new(dir.path().join("none"));
        empty.read_ahead();
        assert!(empty.load().tests.is_empty());
    }

    /// A suite of `tests` tiny tests after `runs` runs, as one run's update records it.
    fn suite_history(store: &Store, tests: usize, runs: usize) {
        for _ in 0..runs {
            store
                .update(|h| {
                    for i in 0..tests {
                        let record = Record {
                            duration_ms: 0,
                            outcome: Ended::Passed,
                            attempts: 1,
                            cpu_ms: None,
                            peak_kb: None,
                        };
                        h.add(&format!("my-crate::integration tests::module::case_{i:05}"), record);
                    }
                })
                .unwrap();
        }
    }

    #[test]
    fn a_suite_of_tiny_tests_costs_well_under_a_hundred_bytes_a_test() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        suite_history(&store, 2000, KEEP + 2);
        let bytes = std::fs::metadata(store.path()).unwrap().len();
        // The names alone are 19 bytes a test here (`tests::module::case_00042`, the binary's id
        // once); the runs add a record and a count.
        assert!(bytes < 2000 * 40, "{bytes} bytes for 2,000 tests");
        let history = store.load();
        assert_eq!(history.tests.len(), 2000);
        assert!(history.tests.values().all(|t| t.run_count() == KEEP));
    }

    #[test]
    fn a_run_that_changes_nothing_does_not_rewrite_the_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        suite_history(&store, 10, KEEP);
        let inode = std::fs::metadata(store.path()).unwrap().ino();
        // Another run like the last KEEP: the file is not replaced (a new one is a new inode).
        suite_history(&store, 10, 1);
        assert_eq!(std::fs::metadata(store.path()).unwrap().ino(), inode);
        // A run that differs is recorded.
        store.update(|h| h.add("b new", record(3, Ended::Failed))).unwrap();
        assert_ne!(std::fs::metadata(store.path()).unwrap().ino(), inode);
    }

    #[test]
    fn runs_round_trip_through_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        let measured = Record {
            duration_ms: 5,
            outcome: Ended::Passed,
            attempts: 1,
            cpu_ms: Some(4),
            peak_kb: Some(2048),
        };
        let flaky = Record {
            duration_ms: 9,
            outcome: Ended::Flaky,
            attempts: 2,
            ..record(0, Ended::Passed)
        };
        let runs = [measured.clone(), measured.clone(), flaky, measured];
        store
            .update(|h| {
                for run in &runs {
                    h.add("crate::t odd name with spaces", run.clone());
                }
                h.add("other-bin x", record(1, Ended::Imported));
                let test = h.test_mut("other-bin x");
                test.neighbours = vec!["crate::t y".into()];
                test.under_load = true;
                h.add("other-bin panics", record(1, Ended::Passed));
                h.test_mut("other-bin panics").should_panic = true;
            })
            .unwrap();
        let history = store.load();
        let kept: Vec<Record> =
            history.tests["crate::t odd name with spaces"].runs().cloned().collect();
        assert_eq!(kept, runs);
        let flags = |id: &str| (history.tests[id].under_load, history.tests[id].should_panic);
        assert_eq!(flags("crate::t odd name with spaces"), (false, false));
        assert_eq!(flags("other-bin x"), (true, false));
        assert_eq!(flags("other-bin panics"), (false, true));
        assert_eq!(history.tests["other-bin x"].neighbours, ["crate::t y"]);
    }

    #[test]
    fn a_version_2_history_is_read_with_its_one_flag() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        store
            .update(|h| {
                h.add("b loaded", record(1, Ended::Passed));
                h.test_mut("b loaded").under_load = true;
                h.add("b calm", record(2, Ended::Passed));
            })
            .unwrap();
        // Version 2 wrote `under_load` as a bool where version 3 writes its flags: a byte,
        // 1 for that flag, that only the version before it tells apart.
        let mut bytes = std::fs::read(store.path()).unwrap();
        assert_eq!(bytes[MAGIC.len()], 3, "the version, a one-byte varint");
        bytes[MAGIC.len()] = 2;
        std::fs::write(store.path(), &bytes).unwrap();
        let history = store.load();
        assert!(history.tests["b loaded"].under_load);
        assert!(!history.tests["b calm"].under_load);
        assert_eq!(history.tests["b calm"].typical(), Some(Duration::from_millis(2)));
        // Rewritten as version 3 once a run adds to it.
        store.update(|h| h.add("b calm", record(2, Ended::Passed))).unwrap();
        assert_eq!(std::fs::read(store.path()).unwrap()[MAGIC.len()], 3);
        bytes[MAGIC.len()] = 4;
        std::fs::write(store.path(), &bytes).unwrap();
        assert!(matches!(
            store.read(),
            Err(Error::OtherVersion { found: 4, reads }) if reads == "2 to 3"
        ));
    }

    #[test]
    fn an_earlier_prun_s_json_history_is_read_once_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        let json = r#"{"version":1,"tests":{"a t":{"runs":[{"duration_ms":7,"outcome":"passed","attempts":1}]}}}"#;
        std::fs::write(store.json_path(), json).unwrap();
        assert_eq!(store.load().tests["a t"].typical(), Some(Duration::from_millis(7)));
        store.update(|h| h.add("a t", record(9, Ended::Passed))).unwrap();
        assert!(!store.json_path().exists());
        assert_eq!(store.load().tests["a t"].run_count(), 2);
    }

    #[test]
    fn an_update_takes_the_loaded_history_only_while_the_file_is_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        store.update(|h| h.add("a one", record(1, Ended::Passed))).unwrap();
        // Unchanged since it was loaded: the loaded history is the one changed (not decoded
        // again), as this marker, which the file does not have, shows.
        let mut loaded = store.load();
        loaded.add("a marker", record(1, Ended::Passed));
        store.update_loaded(Some(loaded), |h| h.add("a two", record(1, Ended::Passed))).unwrap();
        assert_eq!(store.load().tests.len(), 3);
        // Another run wrote it meanwhile: the file is read, and both runs land.
        let loaded = store.load();
        Store::new(dir.path().to_owned())
            .update(|h| h.add("a other", record(1, Ended::Passed)))
            .unwrap();
        store.update_loaded(Some(loaded), |h| h.add("a mine", record(1, Ended::Passed))).unwrap();
        let mut ids: Vec<String> = store.load().tests.into_keys().collect();
        ids.sort_unstable();
        assert_eq!(ids, ["a marker", "a mine", "a one", "a other", "a two"]);
    }

    #[test]
    fn an_update_cut_short_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        store.update(|h| h.add("a one", record(1, Ended::Passed))).unwrap();
        // Cut short while the next history was written: the old one stands.
        std::fs::write(next_path(&store.path()), "{ half a fi").unwrap();
        assert_eq!(store.load().tests.len(), 1);
        store.update(|h| h.add("a two", record(1, Ended::Passed))).unwrap();
        assert_eq!(store.load().tests.len(), 2);
        assert!(!next_path(&store.path()).exists());
        // Cut short after the old history was removed: the new one is read, and put in place.
        std::fs::rename(store.path(), next_path(&store.path())).unwrap();
        assert_eq!(store.load().tests.len(), 2);
        store.update(|h| h.add("a three", record(1, Ended::Passed))).unwrap();
        assert_eq!(store.load().tests.len(), 3);
        let mode = std::fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn readers_never_see_a_history_being_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_owned());
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || reads == 0 {
                    assert!(store.read().is_ok());
                    reads += 1;
                }
            });
            for i in 0..200 {
                store.update(|h| h.add(&format!("a t{i}"), record(1, Ended::Passed))).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            reader.join().unwrap();
        });
    }

    #[test]
    fn concurrent_updates_all_land() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let store = Store::new(dir.path().to_owned());
                scope.spawn(move || {
                    for i in 0..10 {
                        store
                            .update(|h| {
                                h.add(&format!("b t{thread}-{i}"), record(1, Ended::Passed))
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(Store::new(dir.path().to_owned()).load().tests.len(), 80);
    }
}
