//! A batch of a plain libtest binary's tests, run one after another in one process:
//! `BIN NAME... --exact --test-threads=1`.
//!
//! libtest prints `test NAME ... ` before it runs a test and the status after, so reading its
//! stdout as it comes tells which test runs, for how long, and which one a crash or a timeout
//! hit. Tests the process did not get to run in a process of their own making, until the batch
//! is done. Failed tests' output comes from libtest's `---- NAME stdout ----` sections.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::process::ExitStatus;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Attempt;
use super::children::Children;
use super::libtest_process::{Select, command};
use super::libtest_select::Universe;
use super::output::Printed;
use super::status;
use crate::event::Outcome;
use prun::usage::Usage;

/// How one test of a batch ended, as read from libtest's lines and the process's end.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Status {
    Passed,
    /// libtest reported it failed; its captured output.
    Failed(String),
    /// The process died while it ran: what killed it, and what the process printed.
    Crashed(String, String),
    TimedOut(Duration),
    /// The process ended before it got to the test, twice.
    NotRun(String),
    /// It passed, and its process (it alone) left a child holding its output: why.
    Leaked(String),
}

pub(crate) struct Batch<'a> {
    pub(crate) binary: &'a crate::build::TestBinary,
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
    /// Told of a test still running `notice_after` after it started, and for how long it ran
    /// (for the live progress line and SLOW notices; most tests end sooner, unannounced).
    pub(crate) on_long: &'a (dyn Fn(&str, Duration) + Sync),
    pub(crate) notice_after: Duration,
    /// How long the output may stay open after the process ended.
    pub(crate) leak_timeout: Duration,
    /// Every name the binary has, to say a batch in substrings (`None`: by its names).
    pub(crate) universe: Option<&'a Universe>,
}

/// A test of a batch process that ended: its name, result and how long it took.
type Ended<'a> = (&'a str, (Status, Duration));

/// How one test of a batch went.
#[derive(Debug)]
pub(crate) struct Batched {
    pub(crate) attempt: Attempt,
    /// libtest said it failed, but its output was lost: the process died before printing it.
    pub(crate) output_lost: bool,
    /// The binary never ran it (its outcome says why): no verdict to replay.
    pub(crate) missing: bool,
    /// libtest's start line marked it `#[should_panic]`.
    pub(crate) should_panic: bool,
}

impl Status {
    fn batched(self, duration: Duration, usage: Option<Usage>, should_panic: bool) -> Batched {
        let (mut output_lost, mut missing) = (false, false);
        let mut printed = Printed::default();
        let outcome = match self {
            Status::Passed => Outcome::Passed,
            Status::Failed(output) => {
                output_lost = output.trim().is_empty();
                printed.stdout = output.into_bytes();
                Outcome::Failed { reason: "the test failed".to_owned() }
            }
            Status::Crashed(reason, stderr) => {
                printed.stderr = stderr.into_bytes();
                Outcome::Crashed { reason }
            }
            Status::TimedOut(after) => Outcome::TimedOut { after },
            Status::NotRun(reason) => {
                missing = true;
                Outcome::Failed { reason }
            }
            Status::Leaked(reason) => Outcome::Leaked { reason },
        };
        let captured = String::new();
        let attempt = Attempt { outcome, printed, captured, duration, usage };
        Batched { attempt, output_lost, missing, should_panic }
    }
}

/// Runs every test of the batch; how each of `batch.tests` went, in their order (a name given
/// twice has its result at its first place only).
pub(crate) fn run<'a>(batch: &Batch<'a>) -> Vec<Option<Batched>> {
    let timeouts: HashMap<&str, Option<Duration>> = batch.tests.iter().copied().collect();
    let mut waiting: VecDeque<&'a str> = batch.tests.iter().map(|(name, _)| *name).collect();
    let mut results: HashMap<&'a str, (Status, Duration, Option<Usage>)> = HashMap::new();
    let mut should_panic: HashSet<&'a str> = HashSet::new();
    // A process that ends without running a test gets one more chance in the next one.
    let mut missed: HashMap<&'a str, u32> = HashMap::new();
    while !waiting.is_empty() {
        let (ran, mut used, panics) = run_process(batch, &waiting, &timeouts);
        should_panic.extend(panics);
        for (name, (result, duration)) in ran {
            let usage = used.remove(name);
            results.insert(name, (result, duration, usage));
        }
        let before = waiting.len();
        waiting.retain(|name| !results.contains_key(name));
        if waiting.len() == before {
            // Nothing ran at all: count a miss for each, and give up on those missed twice.
            for name in &waiting {
                *missed.entry(name).or_default() += 1;
            }
            waiting.retain(|name| {
                let gone = missed[name] >= 2;
                if gone {
                    let why = "the binary did not run it (is the name still there?)".to_owned();
                    results.insert(name, (Status::NotRun(why), Duration::ZERO, None));
                }
                !gone
            });
        }
    }
    let mut ended = |name| {
        let (status, duration, usage) = results.remove(name)?;
        Some(status.batched(duration, usage, should_panic.contains(name)))
    };
    batch.tests.iter().map(|(name, _)| ended(name)).collect()
}

/// One process over `names`; the results it got to, what the tests used, and which of them
/// libtest marked `#[should_panic]`.
fn run_process<'a>(
    batch: &Batch<'a>,
    names: &VecDeque<&'a str>,
    timeouts: &HashMap<&str, Option<Duration>>,
) -> (Vec<Ended<'a>>, BTreeMap<&'a str, Usage>, HashSet<&'a str>) {
    let named: Vec<&str> = if batch.whole_binary && names.len() == batch.tests.len() {
        Vec::new()
    } else {
        names.iter().copied().collect()
    };
    // Thousands of names cost libtest seconds to match: a few substrings say the same.
    let substrings = match (&named[..], batch.universe) {
        ([], _) | (_, None) => None,
        (named, Some(universe)) => universe.cover(named),
    };
    let select = match &substrings {
        Some(substrings) => Select::Substrings(substrings),
        None => Select::Names(&named),
    };
    let flags: &[&str] = if batch.include_ignored { &["--include-ignored"] } else { &[] };
    let command = command(batch.binary, batch.cwd, batch.env, select, flags, batch.extra_args);
    let mut child = match crate::os::spawn(command) {
        Ok(child) => child,
        Err(err) => {
            let why = format!("cannot start {}: {err}", batch.binary.describe());
            let not_run =
                names.iter().map(|n| (*n, (Status::NotRun(why.clone()), Duration::ZERO))).collect();
            return (not_run, BTreeMap::new(), HashSet::new());
        }
    };
    let pid = child.id();
    batch.children.register(pid);
    let (send, events) = mpsc::channel();
    // Paced only when there are many tests to read: a small batch is read as it speaks.
    let pace = (names.len() >= PACED_FROM).then_some(PACE);
    stream(child.stdout.take().expect("piped"), send.clone(), pace);
    let stderr = collect(child.stderr.take().expect("piped"));
    // The process's end is an event beside its output: a child it left holding stdout must
    // not keep the batch waiting for the pipe to close.
    std::thread::spawn(move || {
        let _ = send.send(Piped::Exited(crate::os::reap(child)));
    });
    let least = if pace.is_some() { PACED_LEAST } else { Duration::from_millis(1) };
    let mut usage = Usages::new(pid, least);

    let mut reader = Statuses::new(names.iter().copied());
    let mut timed_out = None;
    let mut exited: Option<(std::io::Result<(ExitStatus, Usage)>, Instant)> = None;
    let mut leaked = false;
    // The running test once it was announced as running long.
    let mut announced: Option<&str> = None;
    loop {
        let running = reader.running;
        let kill = running.and_then(|(name, since)| Some(since + (*timeouts.get(name)?)?));
        let notice = running
            .filter(|(name, _)| announced != Some(*name))
            .map(|(_, since)| since + batch.notice_after);
        let deadline = match &exited {
            // After the process ended, its output may stay open the leak timeout, no more.
            Some((_, at)) if !leaked => Some(*at + batch.leak_timeout),
            Some(_) => None,
            None => kill.into_iter().chain(notice).min(),
        };
        let event = match deadline {
            Some(deadline) => {
                events.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Piped::Out(chunk)) => {
                reader.feed(&chunk);
                usage.measure(&reader.finished, reader.running.is_some());
            }
            Ok(Piped::Exited(status)) => exited = Some((status, Instant::now())),
            Err(RecvTimeoutError::Timeout) if exited.is_some() => {
                // A child of a test holds the output: it goes with its process group.
                leaked = true;
                super::children::kill_group(pid);
            }
            Err(RecvTimeoutError::Timeout) => {
                let (name, since) = reader.running.expect("a deadline means a test runs");
                if kill.is_some_and(|kill| Instant::now() >= kill) {
                    reader.running = None;
                    super::children::kill_group(pid);
                    timed_out = Some(name);
                } else {
                    (batch.on_long)(name, since.elapsed());
                    announced = Some(name);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    batch.children.unregister(pid);
    let (status, lifetime) = match exited {
        Some((Ok((status, used)), _)) => (Some(Ok(status)), Some(used)),
        Some((Err(err), _)) => (Some(Err(err)), None),
        None => (None, None),
    };
    reader.finish();
    if let Some(lifetime) = lifetime {
        usage.settle(&reader.finished, reader.running.map(|(name, _)| name), lifetime);
    }
    let usage = usage.of;
    let stderr = stderr.join().unwrap_or_default();
    let failed: Vec<&str> = reader
        .finished
        .iter()
        .filter(|(_, (result, _))| matches!(result, Status::Failed(_)))
        .map(|(name, _)| *name)
        .collect();
    let mut sections = sections(&reader.all, &failed);
    let mut results = std::mem::take(&mut reader.finished);
    if let Some(name) = timed_out {
        let limit = timeouts.get(name).copied().flatten().unwrap_or_default();
        results.push((name, (Status::TimedOut(limit), limit)));
        return (results, usage, reader.should_panic);
    }
    for (name, (result, _)) in &mut results {
        if let Status::Failed(output) = result {
            *output = sections.remove(*name).unwrap_or_default();
        }
    }
    if let (Some((name, since)), Some(Ok(status))) = (reader.running.take(), status) {
        // The process ended in the middle of a test: that test is what ended it.
        let output = String::from_utf8_lossy(&stderr).into_owned();
        let why = status::describe(status, &stderr);
        results.push((name, (Status::Crashed(why, output), since.elapsed())));
    }
    if leaked {
        let why = format!(
            "a process it started held its output open {} after it ended; it was killed",
            prun::time::pretty(batch.leak_timeout)
        );
        match results.as_mut_slice() {
            // One test in the process: that test left it.
            [(_, (result @ Status::Passed, _))] => *result = Status::Leaked(why),
            many => {
                let names: Vec<&str> = many.iter().map(|(name, _)| *name).collect();
                eprintln!(
                    "warning: {}: one of {} left a process holding its output open {}; it was \
                     killed (run them with --isolate to tell which)",
                    batch.binary.path.display(),
                    names.join(", "),
                    prun::time::pretty(batch.leak_timeout)
                );
            }
        }
    }
    (results, usage, reader.should_panic)
}

/// What a batch process's reader threads report, in the order it happened.
enum Piped {
    Out(Vec<u8>),
    Exited(std::io::Result<(ExitStatus, Usage)>),
}

/// What each test of a batch process used: the process is measured each time a test ends
/// (one that took under `least` is not measured: it only counts, as a core for as long as it
/// ran, against the next measurement), and the tests that end with the process share what
/// `wait4` says the process used over its life.
///
/// A test left unmeasured weighs a core in later runs, as an unknown one does. That matters
/// for a binary of thousands of tiny tests: read at a pace, each one's duration is mostly the
/// reader's latency, and measuring it as such made 20,001 empty tests look like they used a
/// third of a core, so that 11 batches ran at once on 2 cores (and the more that ran, the
/// longer and lighter each test looked).
struct Usages<'a> {
    meter: prun::usage::Meter,
    /// Tests shorter than this are not measured.
    least: Duration,
    /// Tests of `finished` already given their share.
    seen: usize,
    /// Time of tests that ended unmeasured since the last measurement.
    unmeasured: Duration,
    /// Whether a test was seen to start (or end).
    began: bool,
    of: BTreeMap<&'a str, Usage>,
}

impl<'a> Usages<'a> {
    fn new(pid: u32, least: Duration) -> Usages<'a> {
        let meter = prun::usage::Meter::of(pid);
        let unmeasured = Duration::ZERO;
        Usages { meter, least, seen: 0, unmeasured, began: false, of: BTreeMap::new() }
    }

    /// After more output: the tests that ended since the last measurement, and whether one
    /// runs now.
    fn measure(&mut self, finished: &[Ended<'a>], running: bool) {
        if !self.began {
            self.began = running || !finished.is_empty();
            // The process's start (its libraries loaded, libtest's own start) is no test's:
            // the first test is measured from its start. Read at a pace, tests may have
            // ended before the first read: they are measured with it, as before.
            if running && finished.is_empty() {
                let _ = self.meter.lap();
            }
        }
        let new = &finished[self.seen.min(finished.len())..];
        self.seen = finished.len();
        let Some(longest) = new.iter().max_by_key(|(_, (_, took))| *took) else { return };
        let others: Duration = new.iter().map(|(_, (_, took))| *took).sum::<Duration>()
            - longest.1.1
            + self.unmeasured;
        if longest.1.1 < self.least {
            self.unmeasured = others + longest.1.1;
            return;
        }
        self.unmeasured = Duration::ZERO;
        if let Some(lap) = self.meter.lap() {
            self.give(longest.0, lap, others);
        }
    }

    /// The tests that ended with the process (and one it was running, which ended it). The
    /// last is given what the process used since the last measurement, unless it was shorter
    /// than `least`: then that is mostly the process's start or end, and no test's.
    fn settle(&mut self, finished: &[Ended<'a>], running: Option<&'a str>, lifetime: Usage) {
        let new = &finished[self.seen.min(finished.len())..];
        let last = match (running, new.last()) {
            (Some(name), _) => name,
            (None, Some((name, (_, took)))) if *took >= self.least => name,
            _ => return,
        };
        let others: Duration = new
            .iter()
            .filter(|(name, _)| *name != last)
            .map(|(_, (_, took))| *took)
            .sum::<Duration>()
            + self.unmeasured;
        let rest = Usage {
            cpu_ms: lifetime.cpu_ms.saturating_sub(self.meter.measured_ms()),
            peak_kb: lifetime.peak_kb,
        };
        self.give(last, rest, others);
    }

    /// `used` less what tests that ran `others` long took (a core each).
    fn give(&mut self, name: &'a str, used: Usage, others: Duration) {
        let others_ms = u64::try_from(others.as_millis()).unwrap_or(u64::MAX);
        let cpu_ms = used.cpu_ms.saturating_sub(others_ms);
        self.of.insert(name, Usage { cpu_ms, peak_kb: used.peak_kb });
    }
}

/// Reads libtest's pretty output as it arrives, as the sequence libtest runs.
///
/// With `--test-threads=1` libtest runs the tests it was given one after another in name
/// order, printing `test NAME ... ` before each and its status after. Everything a test prints
/// past libtest's capture lands in the same stream, so a line is believed only where libtest's
/// sequence puts it: a start line counts only for the next test due, a test's status is the last
/// status word before the next test starts (a test that prints `ok` before failing still fails),
/// and any other `test OTHER ... ok` is the running test's output. When the process ends
/// cleanly, libtest's closing `failures:` list, the last thing it prints, has the last word.
#[derive(Debug, Default)]
struct Statuses<'a> {
    /// The batch's tests in the order libtest runs them.
    order: Vec<&'a str>,
    /// The next of `order` due to start.
    next: usize,
    /// All of stdout so far (failure sections are read from it at the end).
    all: String,
    /// How much of `all` has been read as complete lines.
    read: usize,
    /// How much of `all` past `read` is known to hold no newline (a long line is scanned once).
    scanned: usize,
    /// The test that started and is not finished, and since when.
    running: Option<(&'a str, Instant)>,
    /// The tests whose start line said ` - should panic`.
    should_panic: HashSet<&'a str>,
    /// The running test's status so far: the last one it was given.
    status: Option<Status>,
    /// The status at the end of another binary's `test OTHER ... ` line while ours ran: ours,
    /// if ours gets no line of its own (a child that runs our binary again died before its
    /// status, and ours followed on its line).
    foreign_status: Option<Status>,
    finished: Vec<Ended<'a>>,
}

impl<'a> Statuses<'a> {
    fn new(names: impl IntoIterator<Item = &'a str>) -> Statuses<'a> {
        let mut order: Vec<&'a str> = names.into_iter().collect();
        order.sort_unstable();
        order.dedup();
        Statuses { order, ..Statuses::default() }
    }

    /// Whether `name` is the test libtest runs next.
    fn due(&self, name: &str) -> bool {
        self.order.get(self.next).is_some_and(|next| *next == name)
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.all.push_str(&String::from_utf8_lossy(chunk));
        // Taken out while its lines move the rest of the state: no line is copied out of it.
        let all = std::mem::take(&mut self.all);
        self.read_lines(&all);
        self.all = all;
    }

    /// Reads `all` (all of stdout so far) past what was read.
    fn read_lines(&mut self, all: &str) {
        loop {
            // A due test whose name spans lines: its start line is matched whole.
            if let Some(due) = self.order.get(self.next).filter(|name| name.contains('\n')) {
                match start_line(&all[self.read..], due) {
                    Some(Ok((len, should_panic))) => {
                        self.start(should_panic);
                        self.read += len;
                        self.scanned = self.read;
                        continue;
                    }
                    // Maybe its start line, not all here yet.
                    Some(Err(())) => {
                        self.scanned = self.read;
                        return;
                    }
                    None => {}
                }
            }
            let from = self.scanned.max(self.read);
            let Some(end) = all[from..].find('\n') else { break };
            let end = from + end;
            let line = &all[self.read..end];
            self.read = end + 1;
            self.scanned = self.read;
            self.line(line);
        }
        self.scanned = all.len();
        // libtest writes `test NAME ... ` and flushes before it runs the test. Only a tail as
        // short as such a line can be one.
        let tail = &all[self.read..];
        let longest = self.order.get(self.next).map_or(0, |name| name.len()) + 40;
        if tail.len() <= longest
            && let Some(Line { name, should_panic, .. }) = test_line(tail)
            && self.due(name)
        {
            self.start(should_panic);
        }
    }

    fn line(&mut self, line: &str) {
        match test_line(line) {
            Some(Line { name, should_panic, status }) if self.due(name) => {
                self.start(should_panic);
                if status.is_some() {
                    self.status = status;
                }
            }
            Some(Line { name, status, .. }) => {
                let running = self.running.map(|(running, _)| running);
                if running == Some(name) {
                    // Ours, started on a partial line: its status.
                    if status.is_some() {
                        self.status = status;
                    }
                } else if running.is_some() {
                    // Out of sequence: the running test's output (or its child's line, whose
                    // status may be ours: see `foreign_status`).
                    self.foreign_status = status.or(self.foreign_status.take());
                }
            }
            // Our status on a line of its own, after what the test or a child printed.
            None if self.running.is_some() => {
                if let Some(result) = status_word(line.trim()) {
                    self.status = Some(result);
                }
            }
            None => {}
        }
    }

    /// The due test starts (its start line said whether it should panic).
    fn start(&mut self, should_panic: bool) {
        self.settle();
        self.running = self.order.get(self.next).map(|name| (*name, Instant::now()));
        if let Some((name, _)) = self.running.filter(|_| should_panic) {
            self.should_panic.insert(name);
        }
        self.next += 1;
    }

    /// The running test ends with the last status it was given (or a child's line's).
    fn settle(&mut self) {
        let status = self.status.take().or(self.foreign_status.take());
        self.foreign_status = None;
        // No status (`ignored`): not run here.
        if let (Some((name, since)), Some(result)) = (self.running.take(), status) {
            self.finished.push((name, (result, since.elapsed())));
        }
    }

    /// At the process's end: the running test keeps its status, if it got one; a test still
    /// running without one is what ended the process. When libtest's closing summary agrees in
    /// its counts with what was read, a test it lists as failed is failed, whatever status the
    /// stream gave it (a test may print a passing status of its own before libtest's). It never
    /// turns a failure into a pass: a test that prints a closing summary and ends the process
    /// cannot hide another's failure.
    fn finish(&mut self) {
        if self.status.is_some() || self.foreign_status.is_some() {
            self.settle();
        }
        if self.running.is_some() {
            return;
        }
        let Some((counted, failed)) = closing_summary(&self.all) else { return };
        if counted != self.finished.len() {
            return;
        }
        for (name, (result, _)) in &mut self.finished {
            if *result == Status::Passed && failed.contains(name) {
                *result = Status::Failed(String::new());
            }
        }
    }
}

/// libtest's closing summary: how many tests it says passed and failed, and the names in its
/// `failures:` list (the lines just before the last `test result:` line, up to the
/// `failures:` heading). `None` without a closing line that counts.
fn closing_summary(stdout: &str) -> Option<(usize, Vec<&str>)> {
    let at = stdout.rfind("\ntest result: ")?;
    let result = stdout[at + 1..].lines().next()?;
    let count = |word: &str| -> Option<usize> {
        let before = result.split(&format!(" {word}")).next()?;
        before.rsplit([' ', ';']).next()?.parse().ok()
    };
    let counted = count("passed;")? + count("failed;")?;
    let mut failed = Vec::new();
    for line in stdout[..at].lines().rev() {
        if let Some(name) = line.strip_prefix("    ") {
            failed.push(name);
        } else if line.is_empty() && failed.is_empty() {
            continue;
        } else {
            // `failures:` heads the list; anything else means there is none.
            if line != "failures:" {
                failed.clear();
            }
            break;
        }
    }
    Some((counted, failed))
}

/// Whether `text` starts with libtest's start line for `name` (`test NAME ... `, or with
/// ` - should panic`): `Ok(its length, whether it said should panic)`; `Err(())` when `text`
/// is a start of it, cut short.
fn start_line(text: &str, name: &str) -> Option<Result<(usize, bool), ()>> {
    let lines =
        [(format!("test {name} ... "), false), (format!("test {name} - should panic ... "), true)];
    for (line, should_panic) in lines {
        if text.starts_with(&line) {
            return Some(Ok((line.len(), should_panic)));
        }
        if line.starts_with(text) {
            return Some(Err(()));
        }
    }
    None
}

/// `ok`, `FAILED`: a status on a line of its own (`ignored` says no result).
fn status_word(word: &str) -> Option<Status> {
    match word {
        "ok" => Some(Status::Passed),
        "FAILED" => Some(Status::Failed(String::new())),
        _ => None,
    }
}

/// A `test NAME ... STATUS` line of libtest's.
struct Line<'l> {
    name: &'l str,
    /// libtest marks `#[should_panic]` tests so in its output (` - should panic` after the
    /// name), not in `--list`.
    should_panic: bool,
    /// The result when the status says one (`ignored` says none).
    status: Option<Status>,
}

/// `test NAME ... STATUS`, read. What a test wrote straight to stdout may stand before the
/// status word.
fn test_line(line: &str) -> Option<Line<'_>> {
    let (name, status) = line.strip_prefix("test ")?.split_once(" ... ")?;
    let (name, should_panic) = match name.strip_suffix(" - should panic") {
        Some(name) => (name, true),
        None => (name, false),
    };
    let status = status.trim_end();
    let result = if status.ends_with("ok") {
        Some(Status::Passed)
    } else if status.ends_with("FAILED") {
        Some(Status::Failed(String::new()))
    } else {
        None
    };
    Some(Line { name, should_panic, status: result })
}

/// The `---- NAME stdout ----` section libtest prints for a failed test. Sections follow each
/// other in name order after the last test ran, each ended by the next: so the section of the
/// last failure is found from the end, and each earlier one before the one after it. No text a
/// test printed can take another test's section.
fn sections(stdout: &str, failed: &[&str]) -> BTreeMap<String, String> {
    let mut failed: Vec<&str> = failed.to_vec();
    failed.sort_unstable();
    let mut end = stdout.rfind("\nfailures:\n").unwrap_or(stdout.len());
    let mut found = BTreeMap::new();
    for name in failed.iter().rev() {
        let header = format!("---- {name} stdout ----\n");
        let Some(at) = stdout[..end].rfind(&header) else { continue };
        let body = &stdout[at + header.len()..end];
        found.insert((*name).to_owned(), body.to_owned());
        // The `\n` before this header ends the section before it.
        end = at.saturating_sub(1);
    }
    found
}

/// Sends the bytes of `stream` as they arrive.
fn stream(
    mut stream: impl Read + Send + 'static,
    send: mpsc::Sender<Piped>,
    pace: Option<Duration>,
) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last: Option<Instant> = None;
        loop {
            // A batch of tiny tests prints two lines a test, thousands a second: a wake-up of
            // this thread and the batch's for each would cost more than the tests. So after a
            // short read the next waits out `PACE` (the lines gather in the pipe meanwhile); a
            // quiet stream is read the moment it speaks, a loud one (a full buffer) at once.
            if let Some(wait) = last.zip(pace).and_then(|(at, pace)| pace.checked_sub(at.elapsed()))
            {
                std::thread::sleep(wait);
            }
            let Ok(n) = stream.read(&mut buf) else { break };
            if n == 0 || send.send(Piped::Out(buf[..n].to_vec())).is_err() {
                break;
            }
            last = (n < buf.len() / 2).then(Instant::now);
        }
    });
}

/// How often, at most, a batch's output is read while it comes in short writes: the times
/// tests are seen to start and end are this close (durations are kept to the millisecond).
const PACE: Duration = Duration::from_millis(1);

/// Read at a pace, a test's duration is known to the pace and the reader's latency behind
/// thousands of lines: a test shorter than this is not measured on its own (its time counts
/// against the next measured one), as its CPU per second of such a duration says little.
const PACED_LEAST: Duration = Duration::from_millis(10);

/// A process of this many tests or more is read at that pace; a smaller one as it speaks
/// (its end is seen a millisecond sooner, which is what a small suite's run is made of).
const PACED_FROM: usize = 256;

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

    fn finished<'a>(reader: &'a Statuses<'a>) -> Vec<(&'a str, &'a Status)> {
        reader.finished.iter().map(|(name, (result, _))| (*name, result)).collect()
    }

    #[test]
    fn a_paced_batch_does_not_measure_tests_of_a_few_milliseconds() {
        let ended = |took: &[(&'static str, u64)]| -> Vec<Ended<'static>> {
            let took = took.iter().map(|(name, ms)| (*name, Duration::from_millis(*ms)));
            took.map(|(name, took)| (name, (Status::Passed, took))).collect()
        };
        let run = ended(&[("a", 4), ("b", 12)]);
        // Read as it speaks: a test of 4 ms is measured (this process stands in for a batch).
        let mut usage = Usages::new(std::process::id(), Duration::from_millis(1));
        usage.measure(&run[..1], false);
        usage.measure(&run, false);
        assert_eq!(usage.of.keys().copied().collect::<Vec<_>>(), ["a", "b"]);
        // Read at a pace: only the test of 10 ms or more is; the other counts against it.
        let mut usage = Usages::new(std::process::id(), PACED_LEAST);
        usage.measure(&run[..1], false);
        assert!(usage.of.is_empty());
        assert_eq!(usage.unmeasured, Duration::from_millis(4));
        usage.measure(&run, false);
        assert_eq!(usage.of.keys().copied().collect::<Vec<_>>(), ["b"]);
        assert_eq!(usage.unmeasured, Duration::ZERO);
    }

    /// Busy on this thread until it used `ms` milliseconds of CPU.
    #[expect(unsafe_code, reason = "clock_gettime has no safe wrapper in this build")]
    fn burn(ms: u64) {
        let thread_us = || {
            let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: `now` is a live local the call writes the time to.
            unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut now) };
            now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000
        };
        let (start, mut x) = (thread_us(), 0u64);
        while thread_us() < start + ms * 1000 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }

    #[test]
    fn a_batchs_start_up_is_not_its_first_tests() {
        // This process stands in for a batch: 20 ms of CPU before its first test starts.
        let mut usage = Usages::new(std::process::id(), Duration::from_millis(1));
        let before = usage.meter.measured_ms();
        burn(20);
        // Output that starts no test (`running 2 tests`) leaves the meter where it was.
        usage.measure(&[], false);
        assert_eq!(usage.meter.measured_ms(), before);
        // The first test's start: what the process used until then is left out.
        usage.measure(&[], true);
        assert!(usage.meter.measured_ms() >= before + 20);
        let at_start = usage.meter.measured_ms();
        // Only once: the second test's start does not move it.
        let first: Vec<Ended<'static>> = vec![("a", (Status::Passed, Duration::from_millis(2)))];
        usage.measure(&first, true);
        assert!(usage.of.contains_key("a"));
        let measured = usage.meter.measured_ms();
        usage.measure(&first, true);
        assert_eq!(usage.meter.measured_ms(), measured);
        assert!(usage.of["a"].cpu_ms <= measured - at_start);
    }

    #[test]
    fn a_last_test_shorter_than_a_millisecond_is_not_given_the_process_end() {
        let lifetime = Usage { cpu_ms: 1_000_000, peak_kb: 1000 };
        let quick: Vec<Ended<'static>> = vec![("a", (Status::Passed, Duration::from_micros(300)))];
        let mut usage = Usages::new(std::process::id(), Duration::from_millis(1));
        usage.settle(&quick, None, lifetime);
        assert!(usage.of.is_empty());
        // A test of a few milliseconds is, and so is one the process ended in.
        let longer: Vec<Ended<'static>> = vec![("b", (Status::Passed, Duration::from_millis(4)))];
        usage.settle(&longer, None, lifetime);
        usage.settle(&quick, Some("c"), lifetime);
        assert_eq!(usage.of.keys().copied().collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn reads_starts_results_and_failure_sections() {
        let mut reader = Statuses::new(["a", "b", "c", "d"]);
        reader.feed(b"\nrunning 3 tests\ntest a ... ok\ntest b ... ");
        assert_eq!(reader.running.map(|(n, _)| n), Some("b"));
        reader.feed(b"FAILED\ntest c ... ignored\ntest d ... ");
        assert_eq!(reader.running.map(|(n, _)| n), Some("d"));
        let names: Vec<&str> = reader.finished.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(reader.finished[0].1.0, Status::Passed);
        reader.feed(b"raw bytes ok\n\nfailures:\n\n---- b stdout ----\nboom\n\nfailures:\n    b\n");
        reader.feed(b"\ntest result: FAILED. 1 passed; 1 failed; 1 ignored\n");
        reader.finish();
        assert!(reader.running.is_none());
        assert_eq!(reader.finished.len(), 3, "a test's own raw output before `ok` still reads");
        assert_eq!(sections(&reader.all, &["b"])["b"], "boom\n");
    }

    #[test]
    fn a_should_panic_test_is_named_as_listed_and_known_to_panic() {
        let names = ["tests::max_remove", "tests::plain", "tests::two\nlines", "tests::z"];
        let mut reader = Statuses::new(names);
        reader.feed(b"test tests::max_remove - should panic ... ");
        assert_eq!(reader.running.map(|(n, _)| n), Some("tests::max_remove"));
        reader.feed(b"ok\n");
        // A test that prints another's start line marked so does not mark it.
        reader.feed(b"test tests::plain ... test tests::z - should panic ... ok\nok\n");
        reader.feed(b"test tests::two\nlines - should panic ... ok\ntest tests::z ... ok\n");
        reader.finish();
        assert_eq!(reader.finished[0].0, "tests::max_remove");
        assert_eq!(reader.finished[0].1.0, Status::Passed);
        assert_eq!(reader.finished.len(), 4);
        let mut marked: Vec<&str> = reader.should_panic.iter().copied().collect();
        marked.sort_unstable();
        assert_eq!(marked, ["tests::max_remove", "tests::two\nlines"]);
    }

    #[test]
    fn a_child_of_the_test_printing_libtest_lines_is_not_us() {
        // The test runs its own binary again; the child dies before its status, and ours
        // follows on the child's line.
        let mut reader_in_order = Statuses::new(["next", "parent"]);
        reader_in_order
            .feed(b"test next ... \nrunning 1 test\ntest child ... ok\ntest parent ... ");
        assert_eq!(finished(&reader_in_order), [("next", &Status::Passed)]);
        assert_eq!(reader_in_order.running.map(|(n, _)| n), Some("parent"));
        // A child that finished prints its own status; ours comes on a line of its own.
        reader_in_order
            .feed(b"\nrunning 1 test\ntest child ... ok\n\ntest result: ok.\n\nFAILED\n");
        reader_in_order.finish();
        assert_eq!(reader_in_order.finished[1].0, "parent");
        assert!(matches!(reader_in_order.finished[1].1.0, Status::Failed(_)));
        // The last test, with a child's line last: its status at the process's end.
        let mut reader = Statuses::new(["last"]);
        reader.feed(b"test last ... \ntest child ... ok\n");
        reader.finish();
        assert_eq!(reader.finished[0].1.0, Status::Passed);
    }

    #[test]
    fn a_test_cannot_forge_its_own_or_another_tests_status() {
        let mut reader = Statuses::new(["a_liar", "b_fails", "c_passes"]);
        // a_liar prints `ok` and another test's passing line, then fails.
        reader.feed(b"\nrunning 3 tests\ntest a_liar ... ok\ntest b_fails ... ok\n");
        reader.feed(b"test result: ok. 3 passed; 0 failed\nFAILED\ntest b_fails ... FAILED\n");
        reader.feed(b"test c_passes ... ok\n\nfailures:\n\n---- a_liar stdout ----\n");
        // a_liar's captured output pretends to be b_fails' section and a closing list.
        reader.feed(b"lie\n---- b_fails stdout ----\nnot b\nfailures:\n    c_passes\n\n");
        reader.feed(b"---- b_fails stdout ----\nreal b\n\nfailures:\n    a_liar\n    b_fails\n");
        reader.feed(b"\ntest result: FAILED. 1 passed; 2 failed; 0 ignored\n");
        reader.finish();
        assert_eq!(
            finished(&reader),
            [
                ("a_liar", &Status::Failed(String::new())),
                ("b_fails", &Status::Failed(String::new())),
                ("c_passes", &Status::Passed),
            ]
        );
        let found = sections(&reader.all, &["a_liar", "b_fails"]);
        assert_eq!(found["b_fails"], "real b\n");
        assert!(found["a_liar"].contains("lie\n") && !found["a_liar"].contains("real b"));
    }

    #[test]
    fn a_closing_list_printed_by_a_test_that_then_exits_decides_nothing() {
        let mut reader = Statuses::new(["a_fails", "b_exits"]);
        reader.feed(b"test a_fails ... FAILED\ntest b_exits ... ");
        reader.feed(b"ok\n\nfailures:\n\ntest result: ok. 2 passed; 0 failed\n");
        // The process exits here, inside b_exits: no status of libtest's own for it.
        reader.finish();
        assert_eq!(finished(&reader)[0], ("a_fails", &Status::Failed(String::new())));
    }

    #[test]
    fn the_closing_list_fails_a_test_that_printed_its_own_pass() {
        let mut reader = Statuses::new(["a", "b"]);
        // `a` printed `ok` where libtest's status goes and its process's status was lost.
        reader.feed(b"test a ... ok\ntest b ... ok\n\nfailures:\n\n---- a stdout ----\nx\n");
        reader.feed(b"\nfailures:\n    a\n\ntest result: FAILED. 1 passed; 1 failed; 0 ignored;\n");
        reader.finish();
        assert_eq!(
            finished(&reader),
            [("a", &Status::Failed(String::new())), ("b", &Status::Passed)]
        );
        assert_eq!(closing_summary("\ntest result: ok."), None, "a child's line counts nothing");
    }

    #[test]
    fn a_name_with_a_newline_is_read_whole() {
        let mut reader = Statuses::new(["a", "b\nc", "d"]);
        reader.feed(b"test a ... ok\ntest b\n");
        let running = reader.running.map(|(name, _)| name);
        assert_eq!(running, Some("a"), "not all of b's start line is here yet");
        reader.feed(b"c ... FAILED\ntest d ... ok\n");
        reader.finish();
        assert_eq!(
            finished(&reader),
            [
                ("a", &Status::Passed),
                ("b\nc", &Status::Failed(String::new())),
                ("d", &Status::Passed)
            ]
        );
    }

    #[test]
    fn a_long_line_is_scanned_once() {
        let mut reader = Statuses::new(["a"]);
        reader.feed(b"test a ... ");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            reader.feed(&chunk);
            assert_eq!(reader.scanned, reader.all.len());
        }
        reader.feed(b"\nok\n");
        reader.finish();
        assert_eq!(finished(&reader), [("a", &Status::Passed)]);
    }
}
