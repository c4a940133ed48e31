//! Plan: every selected test of every binary, in one priority order, with the config applied.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use prun::config::Config;
use prun::protocol::{CatalogTest, TestId};
use prun::scheduler::{Job, Limits};

use crate::discover::{Binary, Kind};
use crate::partition::Partition;

#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Names, categories, groups and `ignore`: the harness's own rules.
    pub(crate) filter: prun::plan::Filter,
    /// Patterns (`BINARY NAME` contains one) of plain tests to run one per process.
    pub(crate) isolate: Vec<String>,
    /// This machine's share of the tests.
    pub(crate) partition: Option<Partition>,
    /// Patterns (`BINARY NAME` contains one) of tests whose failures do not fail the run.
    pub(crate) quarantine: Vec<String>,
    /// `-E`: tests that match any of these (and the name filters).
    pub(crate) filtersets: Vec<crate::filterset::Filterset>,
    /// `--rerun-failed`: only these tests (`BINARY NAME`).
    pub(crate) only: Option<std::collections::BTreeSet<String>>,
}

/// How the selected tests run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Options {
    /// Retries for every test, over the attribute and the config (`--retries`).
    pub(crate) retries: Option<u32>,
    pub(crate) order: Order,
    /// Passing tests' output is shown (`--no-capture`, `--success-output`): a plain test of its
    /// own runs in a process whose output is read as it comes.
    pub(crate) keep_output: bool,
    /// An adaptive run on this many cores: a plain binary's batches are sized for as many of
    /// them at once as the cores serve, by the CPU its tests used (see [`lanes`]).
    pub(crate) cores: Option<usize>,
    /// A panic prints a backtrace (`RUST_BACKTRACE` is set, and not to `0`): the first panic
    /// of a test process reads the binary's symbols for it, about 0.15 s, so a plain binary's
    /// `#[should_panic]` tests (and a small binary's quick ones with them) share as few
    /// processes as can run at once (see [`batches`]).
    pub(crate) backtraces: bool,
}

/// What earlier runs say of a test: from the history, or a timings file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// What it typically took.
    pub(crate) duration: Duration,
    /// The longest it took of late (at least `duration`).
    pub(crate) longest: Duration,
    /// CPU per second of wall time, in thousandths of a core, and peak memory in KiB, where
    /// they were measured.
    pub(crate) millicores: Option<u32>,
    pub(crate) peak_kb: Option<u64>,
    /// It failed under load and passed alone: it runs calm (see [`weigh`]).
    pub(crate) under_load: bool,
    /// libtest said it should panic, when it last ran.
    pub(crate) should_panic: bool,
}

/// What earlier runs say of each test, by id (`BINARY NAME`).
pub(crate) trait KnownTests {
    fn known(&self, id: &str) -> Option<Known>;
}

impl KnownTests for HashMap<String, Known> {
    fn known(&self, id: &str) -> Option<Known> {
        self.get(id).copied()
    }
}

impl From<Duration> for Known {
    fn from(duration: Duration) -> Known {
        Known {
            duration,
            longest: duration,
            millicores: None,
            peak_kb: None,
            under_load: false,
            should_panic: false,
        }
    }
}

/// `--order`: which test starts first.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Longest expected first, by the history of earlier runs, with the tests of contended
    /// groups early; with no history, `slow` first, then `integration`, then the rest, in
    /// declaration order within each.
    #[default]
    Priority,
    /// Binary by binary, in declaration order.
    Declared,
    /// A random order that the seed reproduces.
    Shuffle(u64),
}

/// An `--order` that is none of prun's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OrderError {
    #[error("the seed in {0:?} is not a whole number")]
    Seed(String),
    #[error("expected priority, declared, shuffle or shuffle:SEED, got {0:?}")]
    Unknown(String),
}

impl std::str::FromStr for Order {
    type Err = OrderError;

    fn from_str(text: &str) -> Result<Order, OrderError> {
        match text.split_once(':') {
            None if text == "priority" => Ok(Order::Priority),
            None if text == "declared" => Ok(Order::Declared),
            None if text == "shuffle" => Ok(Order::Shuffle(fastrand::u64(..))),
            Some(("shuffle", seed)) => {
                seed.parse().map(Order::Shuffle).map_err(|_| OrderError::Seed(text.to_owned()))
            }
            _ => Err(OrderError::Unknown(text.to_owned())),
        }
    }
}

#[derive(Debug)]
pub(crate) struct PlannedTest {
    pub(crate) binary: usize,
    /// `BINARY NAME`, written once (the history, reports and filters name it so).
    id: String,
    pub(crate) meta: CatalogTest,
    pub(crate) timeout: Option<Duration>,
    pub(crate) job: Job,
    /// What earlier runs say of it (what it took, used, and whether it failed under load), if
    /// it ran before.
    pub(crate) known: Option<Known>,
    /// What it is expected to take: `known`, else its category's guess (see [`Guesses`]).
    pub(crate) expected: Duration,
    /// Its failure is reported but does not fail the run.
    pub(crate) quarantined: bool,
}

impl PlannedTest {
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Its name in its binary, as its catalog says it.
    pub(crate) fn name(&self) -> &str {
        &self.meta.name
    }
}

/// What a test with no history is expected to take: the median of the known tests of its
/// category in this run, else 1 s for `slow`, 100 ms for `integration` and 10 ms for the rest.
struct Guesses<'a>(HashMap<&'a str, Duration>);

impl<'a> Guesses<'a> {
    fn new(known: impl Iterator<Item = (&'a str, Duration)>) -> Guesses<'a> {
        let mut by_category: HashMap<&'a str, Vec<Duration>> = HashMap::new();
        for (category, duration) in known {
            by_category.entry(category).or_default().push(duration);
        }
        Guesses(
            by_category
                .into_iter()
                .map(|(category, mut durations)| {
                    durations.sort_unstable();
                    (category, durations[durations.len() / 2])
                })
                .collect(),
        )
    }

    fn of(&self, category: &str) -> Duration {
        self.0.get(category).copied().unwrap_or(match category {
            "slow" => Duration::from_secs(1),
            "integration" => Duration::from_millis(100),
            _ => Duration::from_millis(10),
        })
    }
}

/// What the dispatcher schedules: one test, or a batch of a binary's tests run one after
/// another in one process.
#[derive(Debug)]
pub(crate) struct PlannedJob {
    /// Indexes into [`Plan::tests`], all of one binary; none for the doctests' job.
    pub(crate) tests: Vec<usize>,
    pub(crate) job: Job,
    pub(crate) runner: Runner,
}

/// How a job's tests run: chosen here, once, for the executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runner {
    /// In the prun binary's pooled worker process: one test, or a batch streamed to it.
    Worker,
    /// One test in a process of its own, its output read as it comes: an `isolate`d prun test,
    /// or a plain test whose passing output is shown.
    Process,
    /// Plain tests one after another in one libtest process, which captures their output.
    LibtestBatch,
    /// `cargo test --doc`.
    Doctests,
}

impl PlannedJob {
    /// `cargo test --doc` as one job (prun.toml: `doctests = "run"`): a slot, weighed as a
    /// core (rustdoc compiles each doctest).
    pub(crate) fn doctests() -> PlannedJob {
        let job = Job { slots: 1, ..Job::default() };
        PlannedJob { tests: Vec::new(), job, runner: Runner::Doctests }
    }
}

#[derive(Debug)]
pub(crate) struct Plan {
    /// Most urgent first.
    pub(crate) tests: Vec<PlannedTest>,
    /// The tests as the dispatcher takes them, most urgent first.
    pub(crate) jobs: Vec<PlannedJob>,
    pub(crate) limits: Limits,
    /// Ignored tests not run: binary id, name and the reason the test gives.
    pub(crate) ignored: Vec<(String, String, Option<String>)>,
    pub(crate) filtered_out: usize,
    /// Every test the filters select, before `--partition` takes this machine's share: what
    /// `cargo prun merge` checks the shards against.
    pub(crate) all_selected: Vec<String>,
    /// The jobs are in [`longest_first`] order (by priority, with history), which [`weigh`]
    /// keeps with what it learns of their CPU.
    pub(crate) longest_first: bool,
}

/// `known`: what earlier runs say of each test, from the history or a timings file.
pub(crate) fn plan(
    binaries: &[Binary],
    selection: &Selection,
    options: Options,
    config: &Config,
    threads: usize,
    known: &dyn KnownTests,
) -> Result<Plan, prun::config::UnknownCategory> {
    let mut jobs = prun::plan::Jobs::new(config);
    let (mut selected, mut ignored, mut filtered_out) = (Vec::new(), Vec::new(), 0);
    for (index, binary) in binaries.iter().enumerate() {
        for test in &binary.tests {
            let rerun = |only: &std::collections::BTreeSet<String>| {
                only.contains(&TestId { binary: &binary.binary.id, name: &test.name }.joined())
            };
            let candidate = crate::filterset::Candidate {
                binary_id: &binary.binary.id,
                package: &binary.binary.package_name,
                kind: &binary.binary.kind,
                test: &test.name,
            };
            let in_set = selection.filtersets.is_empty()
                || selection.filtersets.iter().any(|set| set.matches(&candidate));
            if !selection.filter.matches(test)
                || !in_set
                || !selection.only.as_ref().is_none_or(rerun)
            {
                filtered_out += 1;
            } else if !selection.filter.runs(test) {
                ignored.push((
                    binary.binary.id.clone(),
                    test.name.clone(),
                    test.ignore_reason.clone(),
                ));
            } else {
                let id = TestId { binary: &binary.binary.id, name: &test.name }.joined();
                let known = known.known(&id);
                selected.push((index, test, id, known));
            }
        }
    }
    let guesses = Guesses::new(selected.iter().filter_map(|(_, test, _, known)| {
        Some((test.category.as_str(), known.as_ref()?.duration))
    }));
    let expected = |test: &CatalogTest, known: Option<Known>| {
        known.map_or_else(|| guesses.of(&test.category), |known| known.duration)
    };
    let ours = match selection.partition {
        Some(partition) => partition.select(
            &selected
                .iter()
                .map(|(_, test, id, known)| (id.clone(), expected(test, *known)))
                .collect::<Vec<_>>(),
        ),
        None => vec![true; selected.len()],
    };
    let all_selected = selected.iter().map(|(_, _, id, _)| id.clone()).collect();
    let mut tests = Vec::new();
    for ((index, test, id, known), ours) in selected.into_iter().zip(ours) {
        if !ours {
            filtered_out += 1;
            continue;
        }
        // The harness's own rules: the category, groups, slots, retries and timeout.
        let (job, timeout) = jobs.job(test, options.retries)?;
        tests.push(PlannedTest {
            binary: index,
            meta: test.clone(),
            timeout,
            job,
            known,
            expected: expected(test, known),
            quarantined: selection.quarantine.iter().any(|pattern| id.contains(pattern.as_str())),
            id,
        });
    }
    // Slow first, then integration, then the rest; binary and declaration order within one.
    if options.order == Order::Priority {
        tests.sort_by_key(|test| prun::config::category_rank(&test.meta.category));
    }
    let learned = tests.iter().any(|test| test.known.is_some());
    let terminate = config.slow_timeout.terminate();
    let limits = jobs.limits(threads);
    let mut jobs = batches(binaries, &tests, selection, options, threads, learned, terminate);
    if let Order::Shuffle(seed) = options.order {
        fastrand::Rng::with_seed(seed).shuffle(&mut jobs);
    }
    let by_expected = options.order == Order::Priority && learned;
    if by_expected {
        longest_first(&mut jobs, &tests, &limits);
    }
    Ok(Plan {
        tests,
        jobs,
        limits,
        ignored,
        filtered_out,
        all_selected,
        longest_first: by_expected,
    })
}

/// Adaptive limits: each job weighs what its tests used in earlier runs (a batch, its tests
/// together: their CPU over their wall time; unknown while any of them was never measured),
/// tests that failed under load are calm, and the thread slots become the ceiling of tests at
/// once.
pub(crate) fn weigh(plan: &mut Plan, cores: usize, ceiling: usize) {
    for job in &mut plan.jobs {
        let (mut wall, mut cpu, mut peak, mut known, mut calm) = (0u64, 0u64, 0u64, true, false);
        for &member in &job.tests {
            let test = &plan.tests[member];
            calm |= test.known.is_some_and(|known| known.under_load);
            match test.known {
                Some(Known {
                    duration,
                    millicores: Some(millicores),
                    peak_kb: Some(peak_kb),
                    ..
                }) => {
                    let typical = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX).max(1);
                    wall += typical;
                    cpu += typical * u64::from(millicores) / 1000;
                    peak = peak.max(peak_kb);
                }
                _ => known = false,
            }
        }
        job.job.demand = prun::scheduler::Demand {
            millicores: if known && wall > 0 {
                u32::try_from((cpu * 1000 / wall).max(1)).unwrap_or(u32::MAX)
            } else {
                0
            },
            memory_kb: peak,
            calm,
        };
    }
    // Memory the tests may take: most of what the machine has available now.
    let memory_kb = prun::usage::available_memory_kb().map_or(u64::MAX, |kb| kb / 4 * 3);
    let millicores = u32::try_from(cores * 1000).unwrap_or(u32::MAX);
    plan.limits.threads = u32::try_from(ceiling).unwrap_or(u32::MAX);
    plan.limits.adaptive = Some(prun::scheduler::Adaptive { millicores, memory_kb });
    if plan.longest_first {
        longest_first(&mut plan.jobs, &plan.tests, &plan.limits);
    }
}

/// A prun test with something of its own (a category that goes first, a group, a timeout,
/// retries, extra threads) and an isolated plain test are jobs of their own. The other tests of
/// a binary are dealt into batches of 8 or more (16 of a plain binary nothing is known of; at
/// most `threads * 3` batches of a plain binary, `threads * 8` of a prun one), so that
/// thousands of tiny tests cost a few process starts or worker round trips, not thousands, and
/// the batches still balance the threads.
///
/// With history (`learned`), a test that took longer than a batch should is kept apart: a prun
/// one is a job of its own; a plain binary's long tests are dealt, longest first, into as many
/// batches as can run at once. A plain binary's other batches come in rounds that halve (see
/// [`shares`]): runs of its tests in name order, or with no history, the tests dealt in turn
/// (see [`interleave`]); a prun binary's are dealt longest test first to the lightest batch, so
/// that they come out of about equal length.
///
/// `terminate` is the timeout every test without one of its own has (`slow-timeout`'s
/// `terminate-after`): it does not set a test apart, the worker batch enforces it.
fn batches(
    binaries: &[Binary],
    tests: &[PlannedTest],
    selection: &Selection,
    options: Options,
    threads: usize,
    learned: bool,
    terminate: Option<Duration>,
) -> Vec<PlannedJob> {
    let isolated = |test: &PlannedTest| {
        test.meta.isolate
            || selection.isolate.iter().any(|pattern| test.id.contains(pattern.as_str()))
    };
    // With history, a batch's share of the run: about a quarter of a thread's, so that the
    // threads balance, and never less than BATCH_WORK.
    let total: Duration = tests.iter().map(|test| test.expected + PER_TEST).sum();
    let batch_work =
        (total / u32::try_from(threads.max(1) * 4).unwrap_or(u32::MAX)).max(BATCH_WORK);
    // In an adaptive run, a test that mostly waits is free to run beside as many others as the
    // dispatcher admits.
    let waits = |test: &PlannedTest| {
        options.cores.is_some()
            && test.known.and_then(|known| known.millicores).unwrap_or(1000) < 500
    };
    // A test that takes LONG or more is kept apart from the quick ones: in their batch it would
    // make that batch the last to finish. So is a plain test that keeps a thread busy (it
    // burns CPU, or the run's threads are a fixed count) for a batch's share or more of late;
    // by its longest run, not its median, so that a test that is long only when first in its
    // process stays with the long ones, where it is not first, rather than coming and going.
    // Where panics print backtraces, so is a `#[should_panic]` test: the first panic of each
    // process pays for the symbols, and with the long ones the binary's panicking tests pay
    // it in as few processes as run at once, not in every batch that holds one (unless shown
    // output makes each long test a process of its own: there it would pay once more).
    let long = |test: &PlannedTest| {
        let longest = test.known.map_or(test.expected, |known| known.longest);
        let pays = options.backtraces
            && !options.keep_output
            && test.known.is_some_and(|known| known.should_panic);
        learned
            && match binaries[test.binary].kind {
                Kind::Libtest if !waits(test) => longest >= batch_work.min(LONG) || pays,
                _ => test.expected >= LONG,
            }
    };
    // A plain test shares a process unless it is isolated, or a group or extra threads (from a
    // nextest.toml override) need a job of its own.
    let plain_batchable = |test: &PlannedTest| {
        binaries[test.binary].kind == Kind::Libtest
            && !isolated(test)
            && test.job.groups.is_empty()
            && test.job.slots == 1
    };
    // A prun test joins a batch only when nothing sets it apart from its neighbours: a plain
    // unit test with no group, timeout, retries or extra threads.
    let batchable = |test: &PlannedTest| match binaries[test.binary].kind {
        Kind::Libtest => plain_batchable(test) && !long(test),
        // It takes one filter: a process per test.
        Kind::OneFilter => false,
        Kind::Prun => {
            !long(test)
                && test.meta.category == "unit"
                && test.job.groups.is_empty()
                && test.job.slots == 1
                && test.job.retries == 0
                && test.timeout == terminate
                && !isolated(test)
        }
    };
    let mut jobs: Vec<PlannedJob> = Vec::new();
    let mut batched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    let mut long_plain: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (index, test) in tests.iter().enumerate() {
        if batchable(test) {
            batched.entry(test.binary).or_default().push(index);
        } else if plain_batchable(test) && !options.keep_output && !waits(test) {
            // Long: it shares a process with the binary's other long tests (below).
            long_plain.entry(test.binary).or_default().push(index);
        } else {
            let runner = match binaries[test.binary].kind {
                Kind::Prun if test.meta.isolate => Runner::Process,
                Kind::Prun => Runner::Worker,
                Kind::Libtest | Kind::OneFilter if options.keep_output => Runner::Process,
                // A plain test of its own is a batch of one: libtest captures its output in
                // memory, as `cargo test` does, rather than through a pipe line by line (a
                // test that prints a million lines takes seconds longer with `--nocapture`).
                Kind::Libtest | Kind::OneFilter => Runner::LibtestBatch,
            };
            jobs.push(PlannedJob { tests: vec![index], job: test.job.clone(), runner });
        }
    }
    // A plain binary's long tests share processes: dealt longest first to the lightest of as
    // many batches as they can run at once, not a process each. What a process pays once (the
    // symbols a panic's backtrace reads under RUST_BACKTRACE=1, a lazy static) is then paid
    // once a batch, as `cargo test`'s one process pays it once: a process a test, eight
    // `should_panic` tests took smallvec 0.44-0.50 s where `cargo test` took 0.13-0.15 s.
    // Shown passing output needs a process a test, and a test that waits runs beside any
    // number of others: they stay jobs of their own.
    //
    // Where panics print backtraces, each process that runs a panicking test pays for the
    // symbols (about 0.15 s), and a test that panics inside (`catch_unwind`) shows it only when
    // it paid. So a binary with long tests whose quick ones are a batch's work or less runs
    // them among its long ones: as many processes as run at once, each paying at most once
    // (its quick batch, a third process on two threads, paid again in every run that met one
    // more such test first: smallvec took six runs to settle). At most NAMED_MOST of them:
    // dealt among the long ones, they are named one by one.
    if options.backtraces && learned {
        for (binary, long) in &mut long_plain {
            let Some(quick) = batched.get(binary) else { continue };
            let work: Duration = quick.iter().map(|&m| tests[m].expected + PER_TEST).sum();
            if work <= batch_work && quick.len() <= NAMED_MOST {
                long.extend(batched.remove(binary).unwrap_or_default());
            }
        }
    }
    for members in long_plain.into_values() {
        let count = lanes(&members, tests, threads, options.cores).min(members.len());
        for mut batch in deal(members, tests, count) {
            // In name order, as libtest runs them.
            batch.sort_by(|&a, &b| tests[a].name().cmp(tests[b].name()));
            let job = match batch[..] {
                [test] => tests[test].job.clone(),
                _ => Job { slots: 1, category: tests[batch[0]].job.category, ..Job::default() },
            };
            jobs.push(PlannedJob { tests: batch, job, runner: Runner::LibtestBatch });
        }
    }
    // Batches are the most flexible work, so they come after every job of its own: the tests
    // that go first by category, hold a group or have a timeout start early, and the batches
    // fill the threads around them.
    for (binary, members) in batched {
        // A plain binary's batch is a process start; a prun binary's, only a round trip. (Two
        // rounds of plain batches, not three, measured 5% slower on the mixed benchmark suite
        // with history: the last round is what balances the threads.)
        let most = match binaries[binary].kind {
            Kind::Libtest | Kind::OneFilter => threads.max(1) * 3,
            Kind::Prun => threads.max(1) * 8,
        };
        let plain = binaries[binary].kind == Kind::Libtest;
        // None of them has run here before (a first run, or a binary new to the history).
        let unseen = members.iter().all(|&m| tests[m].known.is_none());
        // How many of a plain binary's batches run at once.
        let at_once = if plain { lanes(&members, tests, threads, options.cores) } else { threads };
        // Tests a batch: 8 or more; for a plain binary nothing is known of, 16 (a process
        // start is a sure cost, the balance more batches might buy a guess, and its batches
        // are interleaved; smallvec's first run of 63 tests: 0.058 s in 6, 0.048 s in 3).
        let per = if unseen && plain { 16 } else { 8 };
        let mut count = (members.len() / per).clamp(1, most);
        if unseen && plain && options.backtraces {
            // Where panics print backtraces and nothing says which tests panic, every batch
            // that meets one pays for the symbols (about 0.1 s): one round, as many as run at
            // once, pays at most as often as the threads, not in all of the rounds that halve
            // (smallvec's first run: 0.30 s against 0.15 s, cargo test 0.13 s). What the
            // rounds would balance with unknown durations is the lesser cost there.
            count = count.min(at_once);
        }
        if learned {
            // Known work: enough batches to balance the threads, no more (each one is a
            // process start), so that a binary whose tests take a few milliseconds in all is
            // one or two processes, not one per thread.
            let work: Duration = members.iter().map(|&m| tests[m].expected + PER_TEST).sum();
            let enough = work.as_nanos().div_ceil(batch_work.as_nanos());
            count = count.min(usize::try_from(enough).unwrap_or(usize::MAX)).max(1);
        }
        let batches = if plain {
            let mut members = members;
            members.sort_by(|&a, &b| tests[a].name().cmp(tests[b].name()));
            let ends = shares(count, at_once);
            // Named one by one, interleaved batches cost libtest N² comparisons over them and
            // take every name on their command lines.
            let named = || members.iter().map(|&m| tests[m].name().len() + 1).sum::<usize>();
            if unseen && members.len() <= INTERLEAVED_MOST && named() <= INTERLEAVED_BYTES {
                interleave(&members, &ends)
            } else {
                runs(&members, tests, learned, &ends)
            }
        } else if learned {
            deal(members, tests, count)
        } else {
            let mut batches: Vec<Vec<usize>> = vec![Vec::new(); count];
            for (i, member) in members.into_iter().enumerate() {
                batches[i % count].push(member);
            }
            batches
        };
        for batch in batches {
            let category = tests[batch[0]].job.category;
            let job = Job { slots: 1, category, ..Job::default() };
            let runner = match binaries[binary].kind {
                Kind::Prun => Runner::Worker,
                Kind::Libtest | Kind::OneFilter => Runner::LibtestBatch,
            };
            jobs.push(PlannedJob { tests: batch, job, runner });
        }
    }
    jobs
}

/// `members` dealt longest expected first to the lightest of `count` batches, so that the
/// batches come out of about equal length; each in declaration order, as libtest would run
/// them. No batch is empty.
fn deal(mut members: Vec<usize>, tests: &[PlannedTest], count: usize) -> Vec<Vec<usize>> {
    let count = count.max(1);
    let mut batches: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut load = vec![Duration::ZERO; count];
    members.sort_by_key(|&m| std::cmp::Reverse(tests[m].expected));
    for member in members {
        let lightest = (0..count).min_by_key(|&b| (load[b], b)).unwrap_or(0);
        load[lightest] += tests[member].expected + PER_TEST;
        batches[lightest].push(member);
    }
    for batch in &mut batches {
        batch.sort_unstable();
    }
    batches.retain(|batch| !batch.is_empty());
    batches
}

/// Where each of `count` batches of a plain binary ends, as a fraction of the binary's work:
/// the batches come in rounds of one a thread, each round half as long as the one before
/// (guided self-scheduling). A batch is a process that cannot hand its tests to another, so a
/// guess that was wrong (no history, or tests that wait beside tests that burn) leaves a
/// thread busy at the end for at most a short batch, not a third of the work; and with known,
/// even work the threads still finish together.
fn shares(count: usize, threads: usize) -> Vec<f64> {
    let threads = threads.max(1);
    let rounds = count.div_ceil(threads);
    let size = |batch: usize| 1u64 << (rounds - 1 - batch / threads).min(20);
    let sum: u64 = (0..count).map(size).sum();
    let mut done = 0;
    (0..count)
        .map(|batch| {
            done += size(batch);
            done as f64 / sum as f64
        })
        .collect()
}

/// A plain binary's batches (ending at `ends`, as [`shares`] gives them) as runs of its
/// `members` in libtest's order, which a few substrings can name (see
/// `execute::libtest_select`): thousands of names would cost libtest seconds to match. Each run
/// takes its share of the work (with no history, of the tests).
fn runs(members: &[usize], tests: &[PlannedTest], learned: bool, ends: &[f64]) -> Vec<Vec<usize>> {
    let weight = |m: usize| if learned { tests[m].expected + PER_TEST } else { PER_TEST };
    let total: Duration = members.iter().map(|&m| weight(m)).sum();
    let mut batches: Vec<Vec<usize>> = vec![Vec::new(); ends.len()];
    let mut done = Duration::ZERO;
    for &member in members {
        // The batch this test's middle falls in, by the work before it.
        let middle = (done + weight(member) / 2).as_secs_f64();
        let middle = middle / total.as_secs_f64().max(f64::MIN_POSITIVE);
        let at = ends.iter().position(|&end| middle < end).unwrap_or(ends.len() - 1);
        batches[at].push(member);
        done += weight(member);
    }
    batches.retain(|batch| !batch.is_empty());
    batches
}

/// `members` (in name order) dealt to batches that end at `ends` (fractions of the whole, as
/// [`shares`] gives them) one at a time, each to the batch furthest behind its share: every
/// batch gets its share of every stretch of the name order. With no history nothing says
/// where the work is, and tests named alike are often alike (a module of slow ones, `slow0`
/// to `slow2`): in runs by name they would all be one batch's, which finishes last, alone.
fn interleave(members: &[usize], ends: &[f64]) -> Vec<Vec<usize>> {
    let share = |batch: usize| ends[batch] - batch.checked_sub(1).map_or(0.0, |b| ends[b]);
    let mut batches: Vec<Vec<usize>> = vec![Vec::new(); ends.len()];
    for (dealt, &member) in members.iter().enumerate() {
        let behind = |batch: usize| share(batch) * (dealt + 1) as f64 - batches[batch].len() as f64;
        let mut at = 0;
        for batch in 1..batches.len() {
            if behind(batch) > behind(at) {
                at = batch;
            }
        }
        batches[at].push(member);
    }
    batches.retain(|batch| !batch.is_empty());
    batches
}

/// How many of a plain binary's batches (of `members`) run at once: the threads; in an
/// adaptive run on `cores`, as many as the cores serve by the CPU the tests used (the
/// dispatcher's weights: a test never measured weighs a core), from the cores to the threads.
/// A suite that mostly waits runs many tests at once, but its CPU-bound batches still only get
/// a core each: sized as if all ran at once, they would come out equal, and the last one would
/// keep a core busy alone at the end.
fn lanes(members: &[usize], tests: &[PlannedTest], threads: usize, cores: Option<usize>) -> usize {
    let threads = threads.max(1);
    let Some(cores) = cores else { return threads };
    let (mut wall, mut cpu) = (0u128, 0u128);
    for &member in members {
        let test = &tests[member];
        let time = (test.expected + PER_TEST).as_nanos();
        let millicores = test.known.and_then(|known| known.millicores).unwrap_or(1000);
        let millicores = millicores.max(prun::scheduler::LIGHTEST);
        wall += time;
        cpu += time * u128::from(millicores) / 1000;
    }
    let served = usize::try_from(wall * cores as u128 / cpu.max(1)).unwrap_or(usize::MAX);
    served.clamp(cores.clamp(1, threads), threads)
}

/// With history, a batch gets at least this much expected work: below it, another process (or
/// worker round trip) costs more than the parallelism it buys. About two process starts.
const BATCH_WORK: Duration = Duration::from_millis(4);

/// What a test costs a batch beyond its own duration (which the history keeps in whole
/// milliseconds, so a quick test's is 0): libtest's thread and lines for it. Measured on
/// smallvec: 63 tests take 7.5 ms at one thread, and two processes of half of them each
/// finish 2.4 ms sooner than one process of all.
const PER_TEST: Duration = Duration::from_micros(100);

/// The most tests of a plain binary whose batches are [`interleave`]d when nothing is known of
/// them. Such batches are named test by test, and libtest matches every name it is given
/// against every test of the binary: N² comparisons over the batches, a few milliseconds here.
/// A larger binary's batches are runs by name, which a few substrings say.
const INTERLEAVED_MOST: usize = 1024;

/// The most bytes of names a plain binary's interleaved batches are given between them, well
/// within what a command line holds (names may be long; past this, runs by name).
const INTERLEAVED_BYTES: usize = 128 * 1024;

/// A test that takes this long is kept out of the quick tests' batches and started early,
/// rather than holding up the batch it would be in (a plain test that keeps a thread busy, from
/// a batch's share of the run when that is less; see [`batches`]).
const LONG: Duration = Duration::from_millis(100);

/// The most quick tests of a plain binary that join its long ones' processes (where panics
/// print backtraces): a process of tests dealt by expected time names them one by one, and
/// libtest matches every name it is given against every test of the binary.
const NAMED_MOST: usize = 256;

/// LPT with groups: the longest expected job first, so that no long test starts last and
/// finishes alone. A job of a group is placed by its group's serial chain (the group's total
/// expected time over its capacity) when that is longer than the job, so that a contended
/// group starts early enough not to finish last; within a group, longest first. Equal jobs keep
/// the category order.
///
/// With adaptive limits the cores are a chain too: the jobs that burn CPU take at least their
/// CPU time over the cores between them, however many tests wait beside them. A job is placed
/// by its share of that chain (a job that keeps half a core busy or more, by all of it), so
/// that CPU-bound work starts at once and the tests that mostly wait fill in around it, rather
/// than a long wait going first and the cores idling at the start.
fn longest_first(jobs: &mut [PlannedJob], tests: &[PlannedTest], limits: &Limits) {
    let expected =
        |job: &PlannedJob| -> Duration { job.tests.iter().map(|&t| tests[t].expected).sum() };
    let mut chains = vec![Duration::ZERO; limits.group_capacity.len()];
    for job in jobs.iter() {
        for &group in &job.job.groups {
            chains[group] += expected(job);
        }
    }
    for (chain, capacity) in chains.iter_mut().zip(&limits.group_capacity) {
        *chain /= (*capacity).max(1);
    }
    // A job of several slots is its own chain, long as it is.
    let share = |job: &PlannedJob| u128::from(job.job.share());
    let cpu_chain = limits.adaptive.map_or(0, |adaptive| {
        let cpu: u128 = jobs.iter().map(|job| expected(job).as_nanos() * share(job) / 1000).sum();
        cpu / u128::from(adaptive.millicores.max(1)) * 1000
    });
    // Stable: ties keep the category order the jobs came in.
    jobs.sort_by_cached_key(|job| {
        let own = expected(job);
        let group = job.job.groups.iter().map(|&g| chains[g]).max().unwrap_or_default();
        // Half a core or more: the whole chain, so that the jobs that burn CPU tie and go
        // longest first among themselves, not in the order of their weights' noise.
        let cores = if share(job) >= 500 { cpu_chain } else { cpu_chain * share(job) / 1000 };
        let cores = Duration::from_nanos(u64::try_from(cores).unwrap_or(u64::MAX));
        std::cmp::Reverse((own.max(group).max(cores), own))
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::build::TestBinary;

    /// A unit test with nothing of its own but its groups.
    pub(crate) fn test(name: &str, groups: &[&str]) -> CatalogTest {
        CatalogTest {
            name: name.to_owned(),
            category: "unit".to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            timeout_ms: None,
            retries: None,
            threads: 1,
            ignore: false,
            ignore_reason: None,
            isolate: false,
            at: None,
        }
    }

    pub(crate) fn binary(id: &str, kind: Kind, tests: Vec<CatalogTest>) -> Binary {
        let binary = TestBinary {
            kind: "test".into(),
            id: id.to_owned(),
            path: id.into(),
            package_dir: ".".into(),
            package_name: id.to_owned(),
            runner: None,
            env: Vec::new(),
        };
        Binary { binary, kind, tests, benchmarks: Vec::new() }
    }

    fn known(pairs: &[(&str, u64)]) -> HashMap<String, Known> {
        pairs.iter().map(|(id, ms)| ((*id).to_owned(), Duration::from_millis(*ms).into())).collect()
    }

    /// The tests of each job, by name, in the order the dispatcher takes them.
    fn job_names(plan: &Plan) -> Vec<Vec<&str>> {
        plan.jobs.iter().map(|job| plan_names(plan, job)).collect()
    }

    fn plan_names<'a>(plan: &'a Plan, job: &PlannedJob) -> Vec<&'a str> {
        job.tests.iter().map(|&t| plan.tests[t].name()).collect()
    }

    fn plan_of(binaries: &[Binary], known: &dyn KnownTests, threads: usize) -> Plan {
        let config = Config::default();
        plan(binaries, &Selection::default(), Options::default(), &config, threads, known)
            .expect("built-in categories")
    }

    #[test]
    fn a_prun_test_of_a_category_nobody_declared_is_an_error_naming_it() {
        let mut odd = test("odd", &[]);
        odd.category = "fast".to_owned();
        odd.at = Some("tests/api.rs:7".to_owned());
        let binaries = [binary("api", Kind::Prun, vec![odd])];
        let config = Config::default();
        let options = Options::default();
        let planned = plan(&binaries, &Selection::default(), options, &config, 2, &known(&[]));
        let Err(err) = planned else { panic!("an unknown category is an error") };
        assert!(err.to_string().starts_with("test `odd` (tests/api.rs:7) has category \"fast\""));
    }

    #[test]
    fn with_history_the_longest_goes_first_and_a_contended_group_early() {
        let tests = vec![
            test("quick", &[]),
            test("db_1", &["db"]),
            test("db_2", &["db"]),
            test("db_3", &["db"]),
            test("long", &[]),
        ];
        let binaries = [binary("b", Kind::Prun, tests)];
        // With no history: declaration order (all are unit tests); the batch last.
        let cold = plan_of(&binaries, &HashMap::new(), 2);
        assert_eq!(
            job_names(&cold),
            [vec!["db_1"], vec!["db_2"], vec!["db_3"], vec!["quick", "long"]]
        );
        // The db group's chain (3 x 400 ms) is longer than `long` (1 s): it starts first, and
        // `long` runs beside it, before the quick test.
        let times = known(&[
            ("b quick", 1),
            ("b db_1", 400),
            ("b db_2", 400),
            ("b db_3", 400),
            ("b long", 1000),
        ]);
        let warm = plan_of(&binaries, &times, 2);
        let names = job_names(&warm);
        assert_eq!(names[..3], [vec!["db_1"], vec!["db_2"], vec!["db_3"]]);
        assert_eq!(names[3..], [vec!["long"], vec!["quick"]]);
    }

    #[test]
    fn adaptive_runs_start_the_cpu_bound_work_before_longer_tests_that_wait() {
        // Four tests that burn most of a core for 200-400 ms (1.15 s of CPU, 576 ms on 2 cores)
        // and three that wait 500 ms using next to nothing.
        let names = ["burn_1", "burn_2", "burn_3", "burn_4", "wait_1", "wait_2", "wait_3"];
        let mut one_each = test("x", &[]);
        one_each.retries = Some(1); // a job of its own each, not a batch
        let tests = names.iter().map(|n| CatalogTest { name: (*n).into(), ..one_each.clone() });
        let binaries = [binary("b", Kind::Prun, tests.collect())];
        let mut history = crate::history::History::default();
        for name in names {
            let (ms, cpu_ms) = match name {
                "burn_1" => (200, 200),
                "burn_2" => (300, 270),
                "burn_3" => (400, 380),
                "burn_4" => (300, 300),
                _ => (500, 1),
            };
            let record = crate::history::Record {
                duration_ms: ms,
                outcome: crate::history::Ended::Passed,
                attempts: 1,
                cpu_ms: Some(cpu_ms),
                peak_kb: Some(1024),
            };
            history.add(&format!("b {name}"), record);
        }
        // A fixed count: longest first, the waits ahead of the shorter burners.
        let known = crate::prepare::known_tests(&history, None).unwrap();
        let mut plan = plan_of(&binaries, &known, 2);
        let first: Vec<&str> = job_names(&plan).into_iter().map(|job| job[0]).collect();
        assert_eq!(first, ["wait_1", "wait_2", "wait_3", "burn_3", "burn_2", "burn_4", "burn_1"]);
        // Adaptive: the cores are the chain (576 ms of CPU each core must get through), so the
        // burners start at once, longest first whatever their weights (0.9-1 core), and the
        // waits, weighing next to nothing, run beside them.
        weigh(&mut plan, 2, 64);
        let first: Vec<&str> = job_names(&plan).into_iter().map(|job| job[0]).collect();
        assert_eq!(first, ["burn_3", "burn_2", "burn_4", "burn_1", "wait_1", "wait_2", "wait_3"]);
        let dispatcher = prun::scheduler::Dispatcher::new(
            plan.jobs.iter().map(|job| job.job.clone()).collect(),
            &plan.limits,
        );
        let mut dispatcher = dispatcher;
        let started: Vec<usize> = std::iter::from_fn(|| dispatcher.next_runnable())
            .map(|dispatch| dispatch.job)
            .collect();
        // Two burners (a core each) and every wait start together.
        assert_eq!(started, [0, 1, 4, 5, 6]);
    }

    #[test]
    fn with_history_batches_are_sized_by_their_work() {
        let tests: Vec<CatalogTest> = (0..64).map(|i| test(&format!("t{i:02}"), &[])).collect();
        let binaries = [binary("plain", Kind::Libtest, tests)];
        // No history: 64 tests make 4 batches (16 tests or more each, at most 3 a thread).
        assert_eq!(plan_of(&binaries, &HashMap::new(), 2).jobs.len(), 4);
        // 64 tests of 0 ms: still a few milliseconds of libtest's own work, two processes.
        let instant: Vec<(String, u64)> = (0..64).map(|i| (format!("plain t{i:02}"), 0)).collect();
        let instant: Vec<(&str, u64)> = instant.iter().map(|(id, ms)| (id.as_str(), *ms)).collect();
        assert_eq!(plan_of(&binaries, &known(&instant), 2).jobs.len(), 2);
        // 16 of them: one process.
        let few = [binary(
            "plain",
            Kind::Libtest,
            (0..16).map(|i| test(&format!("t{i:02}"), &[])).collect(),
        )];
        assert_eq!(plan_of(&few, &known(&instant[..16]), 2).jobs.len(), 1);
        // One of 500 ms alone, first; the rest (63 x 5 ms) over batches of about a quarter of a
        // thread's share of the run (820 ms / 2 threads / 4 = 102 ms): four, in two rounds of
        // a batch a thread, the second half as long as the first, the longest first.
        let mut times: Vec<(String, u64)> =
            (1..64).map(|i| (format!("plain t{i:02}"), 5)).collect();
        times.push(("plain t00".to_owned(), 500));
        let times: Vec<(&str, u64)> = times.iter().map(|(id, ms)| (id.as_str(), *ms)).collect();
        let warm = plan_of(&binaries, &known(&times), 2);
        assert_eq!(job_names(&warm)[0], ["t00"]);
        let batches = &warm.jobs[1..];
        assert_eq!(batches.len(), 4);
        let sizes: Vec<usize> = batches.iter().map(|b| b.tests.len()).collect();
        assert_eq!(sizes, [21, 21, 11, 10]);
    }

    /// One plain binary of these tests (ids `plain NAME`).
    fn plain_of(times: &[(String, u64)]) -> [Binary; 1] {
        let tests = times.iter().map(|(id, _)| test(&id["plain ".len()..], &[])).collect();
        [binary("plain", Kind::Libtest, tests)]
    }

    /// regex-syntax's kind: 146 tests under a millisecond, three of 65, 40 and 30 ms.
    fn regex_syntax_like() -> Vec<(String, u64)> {
        let mut times: Vec<(String, u64)> =
            (0..146).map(|i| (format!("plain t{i:03}"), 0)).collect();
        times.extend(
            [("plain t020x", 40), ("plain t021x", 30), ("plain t140x", 65)]
                .map(|(id, ms)| (id.to_owned(), ms)),
        );
        times
    }

    #[test]
    fn a_plain_binarys_long_tests_share_a_process_a_thread() {
        // regex-syntax's three long tests are below LONG, but each longer than a batch's
        // share: in a batch of quick tests, each would make its batch the last to finish.
        let times = regex_syntax_like();
        let binaries = plain_of(&times);
        let times: Vec<(&str, u64)> = times.iter().map(|(id, ms)| (id.as_str(), *ms)).collect();
        let plan = plan_of(&binaries, &known(&times), 2);
        let names = job_names(&plan);
        // Dealt to two processes (two threads), the longer first; then the quick ones'
        // batches.
        assert_eq!(names[0], ["t020x", "t021x"]);
        assert_eq!(names[1], ["t140x"]);
        assert!(names[2..].iter().all(|batch| batch.len() > 1 && batch[0].len() == 4));
        // Two threads taking the jobs in order finish within a few milliseconds.
        let mut threads = [Duration::ZERO; 2];
        for job in &plan.jobs {
            let work: Duration = job.tests.iter().map(|&t| plan.tests[t].expected + PER_TEST).sum();
            *threads.iter_mut().min().expect("two threads") += work;
        }
        let (short, long) = (threads[0].min(threads[1]), threads[0].max(threads[1]));
        assert!(long - short <= Duration::from_millis(10), "{threads:?}");

        // smallvec's kind under RUST_BACKTRACE=1: eight `should_panic` tests of 150 ms alone
        // (the first panic of a process reads the binary's symbols), 55 quick ones. Two
        // processes of four, not eight processes.
        let mut times: Vec<(String, u64)> =
            (0..55).map(|i| (format!("plain t{i:02}"), 0)).collect();
        times.extend((0..8).map(|i| (format!("plain panics{i}"), 150)));
        let binaries = plain_of(&times);
        let times: Vec<(&str, u64)> = times.iter().map(|(id, ms)| (id.as_str(), *ms)).collect();
        let shared = plan_of(&binaries, &known(&times), 2);
        let names = job_names(&shared);
        let panics: Vec<usize> =
            names.iter().filter(|job| job[0].starts_with("panics")).map(|job| job.len()).collect();
        assert_eq!(panics, [4, 4]);
        // Shown passing output: a process a test.
        let options = Options { keep_output: true, ..Options::default() };
        let config = Config::default();
        let history = known(&times);
        let shown = super::plan(&binaries, &Selection::default(), options, &config, 2, &history);
        let shown = shown.expect("built-in categories");
        let alone: Vec<&PlannedJob> = shown
            .jobs
            .iter()
            .filter(|job| plan_names(&shown, job)[0].starts_with("panics"))
            .collect();
        assert_eq!(alone.len(), 8);
        assert!(alone.iter().all(|job| job.tests.len() == 1 && job.runner == Runner::Process));

        // Its median 0 ms, its longest 150 ms (it was first in its process once): still with
        // the long ones.
        let mut history = known(&times);
        let once = history.get_mut("plain panics3").expect("a test of the history");
        *once = Known { longest: Duration::from_millis(150), ..Known::from(Duration::ZERO) };
        let once = plan_of(&binaries, &history, 2);
        let names = job_names(&once);
        let panics = names.iter().filter(|job| job[0].starts_with("panics"));
        assert_eq!(panics.map(|job| job.len()).collect::<Vec<_>>(), [4, 4]);

        // In an adaptive run, the same three as tests that wait (a hundredth of a core) stay
        // among the quick ones: below LONG, a process of their own is not worth its start.
        let times = regex_syntax_like();
        let binaries = plain_of(&times);
        let waiting: HashMap<String, Known> = times
            .iter()
            .map(|(id, ms)| {
                let known = Known::from(Duration::from_millis(*ms));
                (id.clone(), Known { millicores: Some(10), ..known })
            })
            .collect();
        let options = Options { cores: Some(2), ..Options::default() };
        let config = Config::default();
        let adaptive = super::plan(&binaries, &Selection::default(), options, &config, 2, &waiting);
        let adaptive = adaptive.expect("built-in categories");
        let names = job_names(&adaptive);
        for waits in ["t020x", "t021x"] {
            let job = names.iter().find(|job| job.contains(&waits)).expect("planned");
            assert!(job.iter().any(|name| !name.ends_with('x')), "{names:?}");
        }

        // Among 2,000 tests of 1 ms (a batch's share is 250 ms), a test of 65 ms is one of
        // a batch's.
        let mut times: Vec<(String, u64)> =
            (0..2000).map(|i| (format!("plain t{i:04}"), 1)).collect();
        times[1000].1 = 65;
        let binaries = plain_of(&times);
        let times: Vec<(&str, u64)> = times.iter().map(|(id, ms)| (id.as_str(), *ms)).collect();
        let plan = plan_of(&binaries, &known(&times), 2);
        assert!(plan.jobs.iter().all(|job| job.tests.len() > 1));
    }

    #[test]
    fn where_panics_print_backtraces_should_panic_tests_share_as_few_processes_as_run_at_once() {
        // smallvec's kind after a run of six batches: quick tests and eight `should_panic` ones
        // spread among them by name, of which the first of each batch (six) paid for the
        // symbols. The quick ones take `quick_ms` each.
        let history_of = |quick_ms: u64| -> Vec<(String, u64, bool)> {
            let mut times: Vec<(String, u64, bool)> =
                (0..63).map(|i| (format!("plain t{i:02}"), quick_ms, false)).collect();
            for i in [3, 10, 20, 30, 40, 45, 50, 60] {
                times[i].0.push_str("_panics");
                times[i].1 = 0;
                times[i].2 = true;
            }
            for i in [3, 10, 20, 30, 40, 50] {
                times[i].1 = 150;
            }
            times
        };
        let plan_with = |times: &[(String, u64, bool)], options: Options, threads: usize| {
            let binaries =
                plain_of(&times.iter().map(|(id, ms, _)| (id.clone(), *ms)).collect::<Vec<_>>());
            let history: HashMap<String, Known> = times
                .iter()
                .map(|(id, ms, should_panic)| {
                    let known = Known::from(Duration::from_millis(*ms));
                    (id.clone(), Known { should_panic: *should_panic, ..known })
                })
                .collect();
            let config = Config::default();
            let selection = Selection::default();
            let plan = super::plan(&binaries, &selection, options, &config, threads, &history);
            job_names(&plan.expect("built-in categories"))
                .into_iter()
                .map(|job| job.into_iter().map(str::to_owned).collect::<Vec<String>>())
                .collect::<Vec<_>>()
        };
        // How many `should_panic` tests each process that holds any holds.
        let panicking = |jobs: &[Vec<String>]| -> Vec<usize> {
            let holding = jobs.iter().map(|job| job.iter().filter(|n| n.ends_with("_panics")));
            holding.map(Iterator::count).filter(|&count| count > 0).collect()
        };
        let backtraces = Options { backtraces: true, ..Options::default() };

        // Quick tests of no time: the whole binary runs in two processes, as many as run at
        // once, each paying once at most.
        let jobs = plan_with(&history_of(0), backtraces, 2);
        assert_eq!(jobs.len(), 2, "{jobs:?}");
        assert_eq!(jobs.iter().map(Vec::len).sum::<usize>(), 63);
        // Without backtraces a panic costs nothing: the two that did not pay stay where their
        // names put them, with the quick ones, in a batch of their own.
        let jobs = plan_with(&history_of(0), Options::default(), 2);
        assert_eq!(panicking(&jobs), [3, 3, 2]);
        // On one thread, one process.
        assert_eq!(plan_with(&history_of(0), backtraces, 1).len(), 1);
        // Shown output: the six that paid are processes of their own (as every long test
        // is), the two that did not stay in the quick ones' batches rather than pay alone.
        let shown = Options { keep_output: true, ..backtraces };
        let jobs = plan_with(&history_of(0), shown, 2);
        let alone = jobs.iter().filter(|job| job.len() == 1 && job[0].ends_with("_panics"));
        assert_eq!(alone.count(), 6, "{jobs:?}");
        assert_eq!(jobs.len(), 7, "{jobs:?}");
        // Quick tests of 5 ms, more than a batch's work: the panicking ones in two processes,
        // the quick ones in batches of their own.
        let jobs = plan_with(&history_of(5), backtraces, 2);
        assert_eq!(panicking(&jobs), [4, 4]);
        assert!(jobs.len() > 2, "{jobs:?}");
        // Tests the history has not seen panic are quick ones.
        let unlearned5: Vec<(String, u64, bool)> =
            history_of(5).into_iter().map(|(id, ms, _)| (id, ms, false)).collect();
        assert_eq!(panicking(&plan_with(&unlearned5, backtraces, 2)), [3, 3, 2]);
        // More quick tests than are named one by one: batches of their own, the panicking
        // ones in two processes.
        let mut many = history_of(0);
        many.extend((0..300).map(|i| (format!("plain u{i:03}"), 0, false)));
        let jobs = plan_with(&many, backtraces, 2);
        assert_eq!(panicking(&jobs), [4, 4]);
        assert!(jobs.len() > 2, "{jobs:?}");
        // Nothing known to panic or to be long: as without backtraces.
        let none: Vec<(String, u64, bool)> =
            history_of(0).into_iter().map(|(id, _, _)| (id, 0, false)).collect();
        assert_eq!(plan_with(&none, backtraces, 2), plan_with(&none, Options::default(), 2));
    }

    #[test]
    fn where_panics_print_backtraces_an_unseen_binary_has_one_round_of_plain_batches() {
        let tests: Vec<CatalogTest> = (0..100).map(|i| test(&format!("t{i:02}"), &[])).collect();
        let binaries = [binary("plain", Kind::Libtest, tests)];
        let sizes = |options: Options, threads: usize| -> Vec<usize> {
            let (config, selection) = (Config::default(), Selection::default());
            let plan =
                super::plan(&binaries, &selection, options, &config, threads, &HashMap::new());
            plan.expect("built-in categories").jobs.iter().map(|job| job.tests.len()).collect()
        };
        let backtraces = Options { backtraces: true, ..Options::default() };
        // No history: as many batches as run at once, each paying for the symbols once at
        // most, not six in rounds that halve.
        assert_eq!(sizes(backtraces, 2), [50, 50]);
        assert_eq!(sizes(backtraces, 1), [100]);
        // An adaptive run: as many as the cores serve (a test never measured weighs a core).
        assert_eq!(sizes(Options { cores: Some(2), ..backtraces }, 16), [50, 50]);
        // Without backtraces, the rounds.
        assert_eq!(sizes(Options::default(), 2), [29, 29, 14, 14, 7, 7]);
        // A binary new to a history that knows another: one round too.
        let other = binary("other", Kind::Libtest, vec![test("known", &[])]);
        let both = [other, binaries[0].clone()];
        let (config, selection) = (Config::default(), Selection::default());
        let history = known(&[("other known", 5)]);
        let plan = super::plan(&both, &selection, backtraces, &config, 2, &history);
        let new =
            plan.expect("built-in categories").jobs.into_iter().filter(|job| job.tests.len() > 1);
        assert_eq!(new.map(|job| job.tests.len()).collect::<Vec<_>>(), [50, 50]);
    }

    #[test]
    fn a_plain_binarys_batches_come_in_rounds_that_halve() {
        assert_eq!(shares(1, 2), [1.0]);
        assert_eq!(shares(2, 2), [0.5, 1.0]);
        assert_eq!(shares(4, 2), [2.0 / 6.0, 4.0 / 6.0, 5.0 / 6.0, 1.0]);
        let six = shares(6, 2);
        assert_eq!(six.len(), 6);
        assert!((six[0] - 4.0 / 14.0).abs() < 1e-9 && (six[5] - 1.0).abs() < 1e-9);
        // A last round of fewer batches than threads.
        assert_eq!(shares(3, 2), [0.4, 0.8, 1.0]);
        // No history: 100 plain tests on 2 threads make 6 batches, two rounds of a batch a
        // thread after the first, each half as long as the one before.
        let tests: Vec<CatalogTest> = (0..100).map(|i| test(&format!("t{i:02}"), &[])).collect();
        let plan = plan_of(&[binary("plain", Kind::Libtest, tests)], &HashMap::new(), 2);
        let sizes: Vec<usize> = plan.jobs.iter().map(|b| b.tests.len()).collect();
        assert_eq!(sizes, [29, 29, 14, 14, 7, 7]);
    }

    #[test]
    fn with_no_history_a_plain_binarys_batches_share_every_stretch_of_the_name_order() {
        // 100 quick tests and three slow ones named alike: with nothing known, runs by name
        // would put the three in one batch, which would finish last, alone.
        let mut names: Vec<String> = (0..100).map(|i| format!("quick{i:03}")).collect();
        names.extend((0..3).map(|i| format!("slow{i}")));
        let tests: Vec<CatalogTest> = names.iter().rev().map(|name| test(name, &[])).collect();
        let plan = plan_of(&[binary("plain", Kind::Libtest, tests.clone())], &HashMap::new(), 2);
        let batches = job_names(&plan);
        assert_eq!(batches.len(), 6);
        for slow in ["slow0", "slow1", "slow2"] {
            let holding = batches.iter().filter(|batch| batch.contains(&slow)).count();
            assert_eq!(holding, 1, "{batches:?}");
        }
        let with_slow = |batch: &&Vec<&str>| batch.iter().any(|name| name.starts_with("slow"));
        assert_eq!(batches.iter().filter(with_slow).count(), 3, "{batches:?}");
        // Each in name order (as libtest runs them), the first round's twice the next's.
        for batch in &batches {
            assert!(batch.is_sorted(), "{batch:?}");
        }
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [30, 29, 15, 15, 7, 7]);
        // So is a binary new to a history that knows others.
        let other = binary("other", Kind::Libtest, vec![test("known", &[])]);
        let binaries = [other, binary("plain", Kind::Libtest, tests.clone())];
        let plan = plan_of(&binaries, &known(&[("other known", 5)]), 2);
        let new =
            job_names(&plan).into_iter().filter(|batch| batch[0] != "known").collect::<Vec<_>>();
        assert_eq!(new, batches);
        // Every test once.
        let mut all: Vec<&str> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, names.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn an_adaptive_runs_plain_batches_are_sized_for_the_cores_their_cpu_needs() {
        // 48 tests of 20 ms and 16 of 500 ms (jobs of their own) in one plain binary, in a run
        // whose history says 12 tests at once (most of them wait).
        let names: Vec<String> = (0..48)
            .map(|i| format!("t{i:02}"))
            .chain((0..16).map(|i| format!("w{i:02}")))
            .collect();
        let tests = names.iter().map(|name| test(name, &[])).collect();
        let binaries = [binary("plain", Kind::Libtest, tests)];
        let sizes = |cores: Option<usize>, short_millicores: u32| {
            let known: HashMap<String, Known> = names
                .iter()
                .map(|name| {
                    let (ms, millicores) =
                        if name.starts_with('t') { (20, short_millicores) } else { (500, 5) };
                    let duration = Duration::from_millis(ms);
                    (
                        format!("plain {name}"),
                        Known { millicores: Some(millicores), ..Known::from(duration) },
                    )
                })
                .collect();
            let options = Options { cores, order: Order::Declared, ..Options::default() };
            let config = Config::default();
            let plan = plan(&binaries, &Selection::default(), options, &config, 12, &known);
            let plan = plan.expect("built-in categories");
            let short = |job: &&PlannedJob| plan.tests[job.tests[0]].name().starts_with('t');
            let (short, long): (Vec<&PlannedJob>, Vec<&PlannedJob>) =
                plan.jobs.iter().partition(short);
            let mut long: Vec<usize> = long.iter().map(|job| job.tests.len()).collect();
            long.sort_unstable();
            (short.iter().map(|job| job.tests.len()).collect::<Vec<_>>(), long)
        };
        // The long tests wait: in an adaptive run each is a job of its own, free to run
        // beside as many others as the dispatcher admits.
        let alone = vec![1; 16];
        // The short tests burn CPU: two at a time on 2 cores, in rounds that halve, so that
        // the cores finish together.
        assert_eq!(sizes(Some(2), 1000), (vec![14, 13, 7, 7, 4, 3], alone.clone()));
        // A fixed count (`-j 12`): 12 at once, one round of equal batches; the long tests
        // share 12 processes, as they could not run more at once.
        let twelve = [vec![1; 8], vec![2; 4]].concat();
        assert_eq!(sizes(None, 1000), (vec![8, 8, 8, 8, 8, 8], twelve));
        // Short tests that wait run 12 at once on 2 cores too.
        assert_eq!(sizes(Some(2), 5), (vec![8, 8, 8, 8, 8, 8], alone.clone()));
        // Half a core each: 4 at once.
        assert_eq!(sizes(Some(2), 500), (vec![10, 9, 10, 9, 5, 5], alone));
    }

    #[test]
    fn each_job_says_how_it_runs() {
        let mut isolated = test("alone", &[]);
        isolated.isolate = true;
        let binaries = [
            binary("p", Kind::Prun, vec![test("a", &[]), test("b", &[]), isolated]),
            binary("l", Kind::Libtest, vec![test("own", &["db"])]),
        ];
        let runners = |keep_output| {
            let options = Options { keep_output, ..Options::default() };
            let config = Config::default();
            let plan =
                plan(&binaries, &Selection::default(), options, &config, 2, &known(&[])).unwrap();
            let mut runners: Vec<(Vec<String>, Runner)> = plan
                .jobs
                .iter()
                .map(|job| {
                    (
                        job.tests.iter().map(|&t| plan.tests[t].name().to_owned()).collect(),
                        job.runner,
                    )
                })
                .collect();
            runners.sort_by(|a, b| a.0.cmp(&b.0));
            runners
        };
        let names = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            runners(false),
            [
                (names(&["a", "b"]), Runner::Worker),
                (names(&["alone"]), Runner::Process),
                (names(&["own"]), Runner::LibtestBatch),
            ]
        );
        // Shown passing output: a plain test of its own has a process whose output is read.
        assert_eq!(runners(true)[2], (names(&["own"]), Runner::Process));
    }

    #[test]
    fn a_plain_binarys_batches_are_runs_of_its_tests_in_name_order() {
        // Declared out of name order; libtest runs them by name. With history; and with none
        // when there are more tests, or longer names, than are interleaved (named one by one).
        let plain = |count: usize, long: usize| {
            let name = |i: usize| format!("t{i:04}{}", "x".repeat(long));
            let tests = (0..count).rev().map(|i| test(&name(i), &[])).collect();
            [binary("plain", Kind::Libtest, tests)]
        };
        let known = known(&[("plain t0010", 40), ("plain t0050", 60)]);
        let (many, long) = (INTERLEAVED_MOST + 1, INTERLEAVED_BYTES / 64);
        let unknown = HashMap::new;
        for (binaries, times) in
            [(plain(64, 0), known), (plain(many, 0), unknown()), (plain(64, long), unknown())]
        {
            let plan = plan_of(&binaries, &times, 2);
            let mut names: Vec<Vec<&str>> = job_names(&plan);
            names.sort();
            let flat: Vec<&str> = names.concat();
            let mut sorted = flat.clone();
            sorted.sort_unstable();
            assert_eq!(flat, sorted, "each batch a run, the runs in order: {names:?}");
            assert_eq!(flat.len(), binaries[0].tests.len());
            assert!(names.len() > 1);
        }
    }

    mod the_harness_and_the_driver_agree {
        use super::*;
        use proptest::prelude::*;
        use prun::plan::{Filter, Ignored};

        const CATEGORIES: [&str; 5] = ["unit", "integration", "slow", "e2e", "fast"];
        const GROUPS: [&str; 3] = ["db", "net", "fs"];

        fn catalog_test() -> impl Strategy<Value = CatalogTest> {
            (
                (0..CATEGORIES.len(), prop::collection::vec(0..GROUPS.len(), 0..3)),
                (prop::option::of(1u64..5000), prop::option::of(0u32..3), 1u32..4),
                (any::<bool>(), any::<bool>()),
            )
                .prop_map(
                    |((category, groups), (timeout_ms, retries, threads), (ignore, isolate))| {
                        let mut groups: Vec<String> =
                            groups.into_iter().map(|g| GROUPS[g].to_owned()).collect();
                        groups.dedup();
                        CatalogTest {
                            name: String::new(),
                            category: CATEGORIES[category].to_owned(),
                            groups,
                            timeout_ms,
                            retries,
                            threads,
                            ignore,
                            ignore_reason: ignore.then(|| "why".to_owned()),
                            isolate,
                            at: Some("tests/t.rs:1".to_owned()),
                        }
                    },
                )
        }

        fn filter() -> impl Strategy<Value = Filter> {
            let pattern = prop::sample::select(vec!["a", "b::", "t1", "c::t2", "x"]);
            let category = prop::sample::select(CATEGORIES.to_vec());
            let group = prop::sample::select(GROUPS.to_vec());
            let ignored =
                prop::sample::select(vec![Ignored::Skip, Ignored::Only, Ignored::Include]);
            (
                prop::collection::vec(pattern.clone(), 0..2),
                any::<bool>(),
                prop::collection::vec(pattern, 0..2),
                ignored,
                prop::collection::vec(category, 0..2),
                prop::collection::vec(group, 0..2),
            )
                .prop_map(|(filters, exact, skip, ignored, categories, groups)| {
                    Filter {
                        filters: filters.into_iter().map(str::to_owned).collect(),
                        exact,
                        skip: skip.into_iter().map(str::to_owned).collect(),
                        ignored,
                        categories: categories.into_iter().map(str::to_owned).collect(),
                        groups: groups.into_iter().map(str::to_owned).collect(),
                    }
                })
        }

        /// A prun.toml that may declare `fast` (else its tests are an error in both), cap a
        /// category, give groups a capacity, set timeouts and retries.
        fn config() -> impl Strategy<Value = Config> {
            (any::<bool>(), 1u32..4, 1u32..3, prop::option::of(0u32..3), any::<bool>()).prop_map(
                |(declare_fast, cap, capacity, retries, terminate)| {
                    let mut text = format!(
                        "[categories.slow]\nmax-threads = {cap}\ntimeout = \"2s\"\n\
                         [groups.db]\ncapacity = {capacity}\n"
                    );
                    if let Some(retries) = retries {
                        text.push_str(&format!("[categories.integration]\nretries = {retries}\n"));
                    }
                    if declare_fast {
                        text.push_str("[categories.fast]\ntimeout = \"100ms\"\n");
                    }
                    if terminate {
                        text.push_str("slow-timeout = { period = \"1s\", terminate-after = 3 }\n");
                    }
                    // Top-level keys first: a key after a table would be the table's.
                    let (tables, top): (Vec<&str>, Vec<&str>) =
                        text.lines().partition(|line| !line.starts_with("slow-timeout"));
                    let text = top.into_iter().chain(tables).collect::<Vec<_>>().join("\n");
                    Config::parse(&text, None).unwrap_or_else(|err| panic!("{err}\n{text}"))
                },
            )
        }

        proptest! {
            /// One suite of a prun binary, planned by the harness (as under `cargo test`) and
            /// by `cargo prun`: the same tests in the same order with the same jobs and
            /// timeouts, the same ignored and filtered out, the same limits, or the same error.
            #[test]
            fn on_every_suite(
                tests in prop::collection::vec(catalog_test(), 0..12),
                filter in filter(),
                config in config(),
                threads in 1usize..5,
            ) {
                let modules = ["a", "b", "c"];
                let catalog: Vec<CatalogTest> = tests
                    .into_iter()
                    .enumerate()
                    .map(|(i, test)| CatalogTest {
                        name: format!("{}::t{i}", modules[i % modules.len()]),
                        ..test
                    })
                    .collect();
                let harness = prun::plan::plan(&catalog, &filter, None, &config, threads);
                let binaries = [binary("b", Kind::Prun, catalog.clone())];
                let selection = Selection { filter: filter.clone(), ..Selection::default() };
                let options = Options { order: Order::Priority, ..Options::default() };
                let driver = plan(&binaries, &selection, options, &config, threads, &HashMap::new());
                match (harness, driver) {
                    (Ok(harness), Ok(driver)) => {
                        let names = |indexes: &mut dyn Iterator<Item = usize>| {
                            indexes.map(|i| catalog[i].name.clone()).collect::<Vec<_>>()
                        };
                        prop_assert_eq!(
                            names(&mut harness.tests.iter().map(|t| t.index)),
                            driver.tests.iter().map(|t| t.name().to_owned()).collect::<Vec<_>>()
                        );
                        for (h, d) in harness.tests.iter().zip(&driver.tests) {
                            prop_assert_eq!(&h.job, &d.job);
                            prop_assert_eq!(h.timeout, d.timeout);
                        }
                        prop_assert_eq!(
                            names(&mut harness.ignored.iter().copied()),
                            driver.ignored.iter().map(|(_, n, _)| n.clone()).collect::<Vec<_>>()
                        );
                        prop_assert_eq!(harness.filtered_out, driver.filtered_out);
                        prop_assert_eq!(harness.limits, driver.limits);
                    }
                    (Err(harness), Err(driver)) => {
                        prop_assert_eq!(harness.to_string(), driver.to_string());
                    }
                    (harness, driver) => {
                        prop_assert!(false, "harness {:?}, driver {:?}", harness.err(), driver.err());
                    }
                }
            }
        }
    }
}
