//! A batch of a plain libtest binary's tests, run one after another in one process:
//! `BIN NAME... --exact --test-threads=1`.
//!
//! libtest prints `test NAME ... ` before it runs a test and the status after, so reading its
//! stdout as it comes tells which test runs, for how long, and which one a crash or a timeout
//! hit. Tests the process did not get to run in a process of their own making, until the batch
//! is done. Failed tests' output comes from libtest's `---- NAME stdout ----` sections.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::children::Children;
use super::libtest_process::command;
use super::status;

/// How one test of a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchResult {
    Passed,
    /// libtest reported it failed; its captured output.
    Failed(String),
    /// The process died while it ran: what killed it, and what the process printed.
    Crashed(String, String),
    TimedOut(Duration),
    /// The process ended before it got to the test, twice.
    NotRun(String),
}

pub(crate) struct Batch<'a> {
    pub(crate) binary: &'a std::path::Path,
    pub(crate) cwd: &'a std::path::Path,
    pub(crate) env: &'a [(String, String)],
    /// Names, and each one's timeout.
    pub(crate) tests: Vec<(&'a str, Option<Duration>)>,
    pub(crate) include_ignored: bool,
    /// The batch is every test the binary runs by default: no names are needed (libtest
    /// matches each name against every test, which costs seconds for thousands of names).
    pub(crate) whole_binary: bool,
    pub(crate) extra_args: &'a [String],
    pub(crate) children: &'a Children,
    /// Told each test's name as it starts (for the live progress line).
    pub(crate) on_start: &'a (dyn Fn(&str) + Sync),
}

/// Runs every test of the batch; results by name, with how long each took.
pub(crate) fn run(batch: &Batch<'_>) -> BTreeMap<String, (BatchResult, Duration)> {
    let timeouts: BTreeMap<&str, Option<Duration>> = batch.tests.iter().copied().collect();
    let mut waiting: VecDeque<&str> = batch.tests.iter().map(|(name, _)| *name).collect();
    let mut results = BTreeMap::new();
    // A process that ends without running a test gets one more chance in the next one.
    let mut missed: BTreeMap<String, u32> = BTreeMap::new();
    while !waiting.is_empty() {
        let ran = run_process(batch, &waiting, &timeouts);
        for (name, result) in ran {
            results.insert(name, result);
        }
        let before = waiting.len();
        waiting.retain(|name| !results.contains_key(*name));
        if waiting.len() == before {
            // Nothing ran at all: count a miss for each, and give up on those missed twice.
            for name in &waiting {
                *missed.entry((*name).to_owned()).or_default() += 1;
            }
            waiting.retain(|name| {
                let gone = missed[*name] >= 2;
                if gone {
                    let why = "the binary did not run it (is the name still there?)".to_owned();
                    results.insert((*name).to_owned(), (BatchResult::NotRun(why), Duration::ZERO));
                }
                !gone
            });
        }
    }
    results
}

/// One process over `names`; the results it got to.
fn run_process(
    batch: &Batch<'_>,
    names: &VecDeque<&str>,
    timeouts: &BTreeMap<&str, Option<Duration>>,
) -> Vec<(String, (BatchResult, Duration))> {
    let mut args: Vec<&str> = if batch.whole_binary && names.len() == batch.tests.len() {
        Vec::new()
    } else {
        names.iter().copied().collect()
    };
    if batch.include_ignored {
        args.push("--include-ignored");
    }
    let mut command = command(batch.binary, batch.cwd, batch.env, &args, batch.extra_args);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let why = format!("cannot start the test binary: {err}");
            return names
                .iter()
                .map(|n| ((*n).to_owned(), (BatchResult::NotRun(why.clone()), Duration::ZERO)))
                .collect();
        }
    };
    batch.children.register(child.id());
    let chunks = stream(child.stdout.take().expect("piped"));
    let stderr = collect(child.stderr.take().expect("piped"));

    let mut reader = Statuses::new(names.iter().copied());
    let mut timed_out = None;
    loop {
        let deadline = reader
            .running
            .as_ref()
            .and_then(|(name, since)| Some(*since + (*timeouts.get(name.as_str())?)?));
        let chunk = match deadline {
            Some(deadline) => {
                chunks.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => chunks.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match chunk {
            Ok(chunk) => {
                let before = reader.running.as_ref().map(|(name, _)| name.clone());
                reader.feed(&chunk);
                if let Some((name, _)) = &reader.running
                    && before.as_ref() != Some(name)
                {
                    (batch.on_start)(name);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                let (name, _) = reader.running.take().expect("a deadline means a test runs");
                let _ = child.kill();
                timed_out = Some(name);
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait();
    batch.children.unregister(child.id());
    reader.finish_with_foreign_status();
    let stderr = stderr.join().unwrap_or_default();
    let mut results = reader.finished;
    if let Some(name) = timed_out {
        let limit = timeouts.get(name.as_str()).copied().flatten().unwrap_or_default();
        results.push((name, (BatchResult::TimedOut(limit), limit)));
        return results;
    }
    for (name, (result, _)) in &mut results {
        if let BatchResult::Failed(output) = result {
            *output = section(&reader.all, name);
        }
    }
    if let (Some((name, since)), Ok(status)) = (reader.running, status) {
        // The process ended in the middle of a test: that test is what ended it.
        let output = String::from_utf8_lossy(&stderr).into_owned();
        let why = status::describe(status, &stderr);
        results.push((name, (BatchResult::Crashed(why, output), since.elapsed())));
    }
    results
}

/// Reads libtest's pretty output as it arrives.
#[derive(Debug, Default)]
struct Statuses {
    /// The batch's tests: a `test NAME ... ` line with another name is not ours (a test that
    /// runs its own binary again shares our stdout with that child).
    names: std::collections::HashSet<String>,
    /// All of stdout so far (failure sections are read from it at the end).
    all: String,
    /// How much of `all` has been read as complete lines.
    read: usize,
    /// The test that started and has no status yet, and since when.
    running: Option<(String, Instant)>,
    /// The status at the end of another binary's `test OTHER ... ` line while ours ran: ours,
    /// if ours gets no line of its own (the child died before its status, and ours followed).
    foreign_status: Option<BatchResult>,
    finished: Vec<(String, (BatchResult, Duration))>,
}

impl Statuses {
    fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Statuses {
        Statuses {
            names: names.into_iter().map(str::to_owned).collect(),
            all: String::new(),
            read: 0,
            running: None,
            foreign_status: None,
            finished: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.all.push_str(&String::from_utf8_lossy(chunk));
        while let Some(end) = self.all[self.read..].find('\n') {
            let line = self.all[self.read..self.read + end].to_owned();
            self.read += end + 1;
            match test_line(&line) {
                Some((name, status)) if self.names.contains(name) => {
                    self.start(name);
                    if let Some(result) = status {
                        self.finish(result);
                    }
                }
                // Another binary's line: its status may be ours (see `foreign_status`).
                Some((_, status)) if self.running.is_some() => {
                    self.foreign_status = status.or(self.foreign_status.take());
                }
                // Our status on a line of its own, after what a child printed.
                None if self.running.is_some() => {
                    if let Some(result) = status_word(line.trim()) {
                        self.finish(result);
                    }
                }
                _ => {}
            }
        }
        // libtest writes `test NAME ... ` and flushes before it runs the test.
        let tail = self.all[self.read..].to_owned();
        if let Some((name, _)) = test_line(&tail).filter(|(name, _)| self.names.contains(*name)) {
            self.start(name);
        }
    }

    fn start(&mut self, name: &str) {
        if self.running.as_ref().is_none_or(|(running, _)| running != name) {
            // A test with no status line of its own when the next starts took the status that
            // ended a child's line.
            if let Some(result) = self.foreign_status.take() {
                self.finish(result);
            }
            self.running = Some((name.to_owned(), Instant::now()));
        }
    }

    fn finish(&mut self, result: BatchResult) {
        self.foreign_status = None;
        if let Some((name, since)) = self.running.take() {
            self.finished.push((name, (result, since.elapsed())));
        }
    }

    /// At the process's end: the running test's status, if a child's line took it.
    fn finish_with_foreign_status(&mut self) {
        if let Some(result) = self.foreign_status.take() {
            self.finish(result);
        }
    }
}

/// `ok`, `FAILED`: a status on a line of its own (`ignored` says no result).
fn status_word(word: &str) -> Option<BatchResult> {
    match word {
        "ok" => Some(BatchResult::Passed),
        "FAILED" => Some(BatchResult::Failed(String::new())),
        _ => None,
    }
}

/// `test NAME ... STATUS`: the name, and the result when the status says one (`ignored` says
/// none). What a test wrote straight to stdout may stand before the status word.
fn test_line(line: &str) -> Option<(&str, Option<BatchResult>)> {
    let (name, status) = line.strip_prefix("test ")?.split_once(" ... ")?;
    // libtest marks `#[should_panic]` tests so in its output, not in `--list`.
    let name = name.strip_suffix(" - should panic").unwrap_or(name);
    let status = status.trim_end();
    let result = if status.ends_with("ok") {
        Some(BatchResult::Passed)
    } else if status.ends_with("FAILED") {
        Some(BatchResult::Failed(String::new()))
    } else {
        None
    };
    Some((name, result))
}

/// The `---- NAME stdout ----` section libtest prints for a failed test.
fn section(stdout: &str, name: &str) -> String {
    let header = format!("---- {name} stdout ----\n");
    let Some(start) = stdout.find(&header).map(|at| at + header.len()) else {
        return String::new();
    };
    let rest = &stdout[start..];
    let end = ["\n---- ", "\nfailures:\n"].iter().filter_map(|m| rest.find(m)).min();
    rest[..end.unwrap_or(rest.len())].to_owned()
}

/// The bytes of `stream` as they arrive.
fn stream(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || send.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    receive
}

/// All of `stream`, once it ends.
fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_starts_results_and_failure_sections() {
        let mut reader = Statuses::new(["a", "b", "c", "d"]);
        reader.feed(b"\nrunning 3 tests\ntest a ... ok\ntest b ... ");
        assert_eq!(reader.running.as_ref().map(|(n, _)| n.as_str()), Some("b"));
        reader.feed(b"FAILED\ntest c ... ignored\ntest d ... ");
        assert_eq!(reader.running.as_ref().map(|(n, _)| n.as_str()), Some("d"));
        let names: Vec<&str> = reader.finished.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(reader.finished[0].1.0, BatchResult::Passed);
        reader.feed(b"raw bytes ok\n\nfailures:\n\n---- b stdout ----\nboom\n\nfailures:\n    b\n");
        assert!(reader.running.is_none());
        assert_eq!(reader.finished.len(), 3, "a test's own raw output before `ok` still reads");
        assert_eq!(section(&reader.all, "b"), "boom\n");
    }

    #[test]
    fn a_should_panic_test_is_named_as_listed() {
        let mut reader = Statuses::new(["tests::max_remove"]);
        reader.feed(b"test tests::max_remove - should panic ... ");
        assert_eq!(reader.running.as_ref().map(|(n, _)| n.as_str()), Some("tests::max_remove"));
        reader.feed(b"ok\n");
        assert_eq!(reader.finished[0].0, "tests::max_remove");
        assert_eq!(reader.finished[0].1.0, BatchResult::Passed);
    }

    #[test]
    fn a_child_of_the_test_printing_libtest_lines_is_not_us() {
        // The test runs its own binary again; the child dies before its status, and ours
        // follows on the child's line.
        let mut reader = Statuses::new(["parent", "next"]);
        reader.feed(b"test parent ... \nrunning 1 test\ntest child ... ok\ntest next ... ");
        assert_eq!(reader.finished[0].0, "parent");
        assert_eq!(reader.finished[0].1.0, BatchResult::Passed);
        assert_eq!(reader.running.as_ref().map(|(n, _)| n.as_str()), Some("next"));
        // A child that finished prints its own status; ours comes on a line of its own.
        reader.feed(b"\nrunning 1 test\ntest child ... ok\n\ntest result: ok.\n\nFAILED\n");
        assert_eq!(reader.finished[1].0, "next");
        assert!(matches!(reader.finished[1].1.0, BatchResult::Failed(_)));
        // The last test, with a child's line last: its status at the process's end.
        let mut reader = Statuses::new(["last"]);
        reader.feed(b"test last ... \ntest child ... ok\n");
        reader.finish_with_foreign_status();
        assert_eq!(reader.finished[0].1.0, BatchResult::Passed);
    }
}
