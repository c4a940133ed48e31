//! One run of the tests: its plan from the command line, the rounds of the schedule, the run
//! directory, interrupts, and the events of the run into every report and the history.

mod interrupts;
mod reporters;
mod sink;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use prun::config::{Concurrency, Doctests};
use prun::plan::Ignored;
use prun::scheduler::{self, Dispatcher};

use crate::cli::{self, Cli};
use crate::execute::{self, ProcessExecutor};
use crate::history::History;
use crate::plan::{self, Selection};
use crate::prepare::{self, Workspace};
use crate::report::{self, Summary};
use crate::{diagnose, discover, exit, list, partition, rerun, run_dir, timings};

/// Why a run ran no test (or stopped before its reports were done).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Boxed: the largest error, and a rare one.
    #[error(transparent)]
    Prepare(Box<prepare::Error>),
    #[error(transparent)]
    Threads(#[from] prun::config::ThreadsError),
    #[error(transparent)]
    Rerun(#[from] rerun::Error),
    #[error(transparent)]
    Timings(#[from] timings::Error),
    #[error(transparent)]
    Plan(#[from] prun::config::UnknownCategory),
    #[error(transparent)]
    Redact(#[from] prun::redact::PatternError),
    #[error(transparent)]
    RunDir(#[from] run_dir::Error),
    #[error(transparent)]
    Report(#[from] report::WriteError),
    #[error("cannot watch for Ctrl-C: {0}")]
    Signals(std::io::Error),
    #[error("the scheduler panicked")]
    SchedulerPanicked,
}

impl From<prepare::Error> for Error {
    fn from(error: prepare::Error) -> Error {
        Error::Prepare(Box::new(error))
    }
}

/// The selection and plan of a run, from its command line and the workspace.
pub(crate) fn plan(
    cli: &Cli,
    workspace: &Workspace,
    history: &History,
    threads: usize,
    cores: Option<usize>,
) -> Result<plan::Plan, Error> {
    let config = &workspace.config;
    let include_ignored = cli.include_ignored || cli.run_ignored == Some(cli::RunIgnored::All);
    let ignored_only = cli.ignored || cli.run_ignored == Some(cli::RunIgnored::Only);
    let filter = prun::plan::Filter {
        filters: cli.filters.clone(),
        exact: cli.exact,
        skip: cli.skip.clone(),
        // As in the harness: including them wins over only them.
        ignored: match (include_ignored, ignored_only) {
            (true, _) => Ignored::Include,
            (false, true) => Ignored::Only,
            (false, false) => Ignored::Skip,
        },
        categories: cli.categories.clone(),
        groups: cli.groups.clone(),
    };
    let selection = Selection {
        filter,
        isolate: cli.isolate.iter().chain(&config.isolate).cloned().collect(),
        partition: cli.partition,
        quarantine: config.quarantine.clone(),
        filtersets: cli.filtersets.clone(),
        only: match &cli.rerun_failed {
            Some(report) => {
                let rerun = rerun::read(report.as_deref(), workspace.history.dir())?;
                eprintln!("note: {}", rerun.said);
                Some(rerun.tests)
            }
            None => None,
        },
    };
    let nextest_retries = workspace.nextest.as_ref().and_then(|n| n.retries);
    let options = plan::Options {
        retries: cli.retries.or(nextest_retries),
        order: cli.order,
        keep_output: keeps_passing_output(cli),
        cores,
        backtraces: std::env::var_os("RUST_BACKTRACE").is_some_and(|value| value != "0"),
    };
    // Timing shards balance by a snapshot (see `timings::snapshot_path`), taken now if there is
    // none yet, so that the shards run one after another here agree.
    let snapshot = timings::snapshot_path(workspace.history.dir());
    let timings = match (&cli.timings, cli.partition) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(partition::Partition::Timing { .. })) => {
            if !snapshot.exists() {
                timings::write(&snapshot, history)?;
            }
            Some(snapshot)
        }
        (None, _) => None,
    };
    let known = prepare::known_tests(history, timings.as_deref())?;
    Ok(plan::plan(&workspace.binaries, &selection, options, config, threads, &known)?)
}

/// Whether passing tests' output is shown (`--no-capture`, `--success-output`).
fn keeps_passing_output(cli: &Cli) -> bool {
    cli.no_capture || cli.success_output.is_some_and(|shown| shown != cli::TestOutput::Never)
}

/// Whether prun.toml says `doctests = "run"`.
fn config_runs_doctests(config: &prun::config::Config) -> bool {
    config.doctests == Some(Doctests::Run)
}

/// Runs the tests the command line selects, and reports them; the exit code.
pub(crate) fn run(mut cli: Cli) -> Result<i32, Error> {
    cli.take_libtest_args();
    if cli.quiet {
        cli.build.cargo_quiet = true;
        cli.status_level.get_or_insert(cli::StatusLevel::Fail);
    }
    let workspace =
        prepare::prepare(&cli.build, cli.prun_profile.as_deref(), cli.nextest_profile.as_deref())?;
    if cli.no_run {
        // Built (and listed, so a binary prun cannot run is said now): nothing more.
        return Ok(exit::OK);
    }
    let concurrency = prun::config::resolve_concurrency(cli.test_threads, &workspace.config)?;
    let history = workspace.history.load();
    // An adaptive run's batches are sized for as many tests at once as the history says the
    // cores serve.
    let threads = match concurrency {
        Concurrency::Fixed(threads) => threads,
        Concurrency::Adaptive { cores, ceiling } => history.expected_concurrency(cores, ceiling),
    };
    if let plan::Order::Shuffle(seed) = cli.order {
        eprintln!(
            "note: tests shuffled with seed {seed}; --order shuffle:{seed} gives this order again"
        );
    }
    let cores = match concurrency {
        Concurrency::Fixed(_) => None,
        Concurrency::Adaptive { cores, .. } => Some(cores),
    };
    let mut plan = plan(&cli, &workspace, &history, threads, cores)?;
    if let Concurrency::Adaptive { cores, ceiling } = concurrency {
        plan::weigh(&mut plan, cores, ceiling);
    }
    let threads = concurrency.threads();
    if cli.list {
        list::print(&workspace.binaries, &plan, &history, cli.message_format);
        return Ok(exit::OK);
    }
    // `--doc`: the doctests' job is the run.
    let mut doctests = config_runs_doctests(&workspace.config) || cli.build.doc;
    let from_archive = workspace.unpacked.is_some();
    if doctests && from_archive {
        // cargo compiles doctests when it runs them: a run from an archive has no cargo.
        eprintln!("note: the doctests are not run from an archive (they need cargo)");
        doctests = false;
    }
    if plan.tests.is_empty() && !doctests {
        let why = match plan.filtered_out {
            0 => "no test to run".to_owned(),
            n => format!("no test matches the filters ({n} tests filtered out)"),
        };
        match cli.no_tests {
            cli::NoTests::Fail => {
                eprintln!("error: {why} (--no-tests=warn or pass lets such a run pass)");
                return Ok(exit::NO_TESTS);
            }
            cli::NoTests::Warn => eprintln!("warning: {why}"),
            cli::NoTests::Pass => {}
        }
    }
    let nextest_fail_fast = workspace.nextest.as_ref().and_then(|n| n.fail_fast);
    // `_unpacked` (an archive's directory) lives until the run ends.
    let Workspace {
        root,
        config,
        binaries,
        dylib_path,
        history: store,
        leak_timeouts,
        unpacked: _unpacked,
        ..
    } = workspace;

    // A bad `[redact]` pattern stops the run before any test starts.
    let redactor = report::redact::Redactor::new(
        std::env::vars(),
        &config.redact.env,
        &config.redact.patterns,
    )?;
    // Sockets and test temp dirs go in a directory only this user can read (0700).
    let run_dir = run_dir::RunDir::new()?;
    // Under `bazel test`, JUnit goes where Bazel looks for it, and a sharded run says it shards.
    if cli.partition.is_some()
        && let Some(status) = std::env::var_os("TEST_SHARD_STATUS_FILE")
    {
        let _ = std::fs::write(status, "");
    }
    let bazel_xml = std::env::var_os("XML_OUTPUT_FILE").map(std::path::PathBuf::from);
    let junit = cli.outputs.junit.clone().or(bazel_xml).or_else(|| {
        let path = config.reports.junit.as_ref()?;
        let base = config.source.as_ref().and_then(|s| s.parent()).unwrap_or(&root);
        Some(base.join(path))
    });
    let mut meta = report::document::Meta::new(
        cli.partition.map(|p| p.to_string()),
        std::mem::take(&mut plan.all_selected),
        threads,
    );
    meta.rerun = cli.rerun_failed.is_some();
    let mut reporters = reporters::reporters(&cli, junit, meta, plan.filtered_out)?;
    let started = Instant::now();
    let binary_count =
        plan.tests.iter().map(|t| t.binary).collect::<std::collections::BTreeSet<_>>().len();
    for reporter in &mut reporters {
        reporter.started(plan.tests.len(), binary_count, plan.ignored.len());
    }
    let ignored = std::mem::take(&mut plan.ignored);
    // What this run is responsible for, pending until it ends (for --rerun-failed): recorded
    // on a thread while the schedule starts (20,001 tests' ids took 5 ms), and taken back
    // before the first event is read.
    let selected: Vec<String> = plan.tests.iter().map(|t| t.id().to_owned()).collect();
    let dir = store.dir().to_owned();
    let recording = std::thread::spawn(move || {
        let last_run = rerun::LastRun::new(selected);
        last_run.save(&dir);
        last_run
    });

    let (events, finished) = mpsc::channel();
    // Doctests are one job of the schedule, started first: rustdoc's compile runs beside the
    // tests, weighed like any other job, rather than after them.
    if doctests {
        plan.jobs.insert(0, plan::PlannedJob::doctests());
    }
    let jobs: Vec<scheduler::Job> = plan.jobs.iter().map(|j| j.job.clone()).collect();
    let limits = plan.limits.clone();
    let repeating = cli.repeat.is_some() || cli.stress.is_some();
    let settings = execute::Settings {
        harness_args: cli.harness_args.clone(),
        max_fail: max_fail(&cli, nextest_fail_fast, repeating),
        keep_passing_output: keeps_passing_output(&cli),
        retry: config.retry.clone(),
        leak_timeout: config.leak_timeout,
        leak_timeouts,
        // A batch's test is announced once it has run this long: soon enough for the live
        // line and for the first SLOW notice.
        notice_after: config.slow_timeout.period.min(std::time::Duration::from_millis(200)),
        doctests: doctests.then(|| execute::Doctests {
            build_args: cli.build.to_cargo_args(),
            filters: cli.filters.clone(),
            threads,
        }),
        ..execute::Settings::new(&run_dir, dylib_path)
    };
    let executor =
        ProcessExecutor::new(binaries, (plan.tests, plan.jobs), settings, events, started);
    let executor = Arc::new(executor);
    // Watched before the first test starts: a Ctrl-C must never find the default handler.
    let interrupted = interrupts::on_interrupt(&executor).map_err(Error::Signals)?;
    let rounds = Rounds { repeat: cli.repeat, until: cli.stress.map(|d| started + d) };
    let bisect = cli.bisect;
    let rerun_alone_off = cli.no_rerun_alone;
    let scheduling = {
        let executor = executor.clone();
        std::thread::spawn(move || {
            // However the schedule ends, even by a panic, the event loop below must end too.
            let _done = ShutDownOnDrop(executor.clone());
            let mut round = 0;
            loop {
                // No more threads than jobs: an adaptive run's ceiling (dozens) is not worth
                // starting for a binary of two batches.
                let pool = (limits.threads as usize).min(jobs.len()).max(1);
                scheduler::run(pool, Dispatcher::new(jobs.clone(), &limits), executor.clone());
                round += 1;
                if executor.stop.stopped() || !rounds.more(round, Instant::now()) {
                    break;
                }
            }
            if !repeating && !rerun_alone_off {
                let record = executor.take_record();
                diagnose::diagnose(&*executor, record, bisect, &|event| executor.send(event));
            }
        })
    };
    let mut sink = sink::Sink {
        reporters,
        redactor,
        summary: Summary {
            repeating,
            doctests_run: doctests,
            doctests_unavailable: from_archive,
            ..Summary::default()
        },
        records: Vec::new(),
        last_run: recording.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
    };
    // Ignored tests are reported like any other (JUnit lists them): skipped, with their reason.
    // Of a partitioned run's, each shard reports those its partition gives it, so that a merge
    // has each once.
    for (binary, name, reason) in &ignored {
        if cli.partition.is_some_and(|p| !p.reports(&format!("{binary} {name}"))) {
            continue;
        }
        let reason = reason.clone().unwrap_or_else(|| "ignored".to_owned());
        sink.event(report::Event::Finished(report::Finished::of(
            binary.clone(),
            name.clone(),
            prun::Outcome::Skipped { reason },
        )));
    }
    // Every event, and a SLOW notice for each test past another slow-timeout period.
    let mut slow = report::slow::SlowWatch::new(config.slow_timeout.period);
    loop {
        let wait = slow.next().map(|at| at.saturating_duration_since(Instant::now()));
        let event = match wait {
            Some(wait) => finished.recv_timeout(wait),
            None => finished.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(event) => {
                slow.see(&event, Instant::now());
                sink.event(event);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                slow.due(Instant::now()).into_iter().for_each(|event| sink.event(event));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    scheduling.join().map_err(|_| Error::SchedulerPanicked)?;
    let signal = interrupted.finish();
    let catalog: Vec<(&str, &str, bool)> = executor
        .tests
        .iter()
        .map(|t| {
            let prun = executor.binaries[t.binary].kind == discover::Kind::Prun;
            (t.id(), t.meta.category.as_str(), prun)
        })
        .collect();
    sink.summary.interrupted = signal.is_some();
    sink.summary.duration = started.elapsed();
    let (hints, history) = sink::learn(&store, history, &sink, &catalog, cli.partition.is_some());
    sink.summary.hints = hints;
    report::redact::hints(&sink.redactor, &mut sink.summary.hints);
    sink.last_run.save(store.dir());
    let records = std::mem::take(&mut sink.records);
    let summary = sink.done();
    // The process ends next. What the run held of every test (its plan, record and history)
    // is left for the exit to free at once, as clang's `-disable-free` leaves its own, rather
    // than freed one string at a time: 15 ms of a run of 20,001 tests. Only plain data: the
    // rest of the executor (its port band's lock) is dropped as usual.
    drop(catalog);
    let plan = Arc::try_unwrap(executor).ok().map(|executor| {
        let binaries = executor.binaries;
        (binaries, executor.tests, executor.jobs)
    });
    std::mem::forget((plan, history, records));
    // Failed tests keep their temp dirs: keep the run directory for them.
    if summary.failed > 0 {
        run_dir.keep_if_used();
    }
    let flaky_fails = cli.fail_on_flaky && !summary.flaky.is_empty();
    if flaky_fails {
        eprintln!("error: {} flaky test(s) and --fail-on-flaky", summary.flaky.len());
    }
    Ok(match signal {
        Some(signal) => exit::INTERRUPTED_BASE + signal,
        None if summary.failed > 0 || flaky_fails => exit::TESTS_FAILED,
        None => exit::OK,
    })
}

/// After how many failures the run starts no more tests (`None`: it runs them all): one by
/// default, `--max-fail N`; none with `--no-fail-fast`, nextest.toml's `fail-fast = false`, or
/// when rounds repeat (they measure failure rates), unless `--max-fail` says otherwise.
fn max_fail(cli: &Cli, nextest_fail_fast: Option<bool>, repeating: bool) -> Option<usize> {
    let nextest_no_fail_fast = nextest_fail_fast == Some(false) && cli.max_fail.is_none();
    if cli.no_fail_fast || nextest_no_fail_fast || (repeating && cli.max_fail.is_none()) {
        None
    } else {
        Some(cli.max_fail.unwrap_or(1).max(1))
    }
}

/// `--repeat N` / `--stress DURATION`: whether to start another round after `done` rounds.
struct Rounds {
    repeat: Option<u32>,
    until: Option<Instant>,
}

impl Rounds {
    fn more(&self, done: u32, now: Instant) -> bool {
        match (self.repeat, self.until) {
            (Some(repeat), _) => done < repeat,
            (None, Some(until)) => now < until,
            (None, None) => false,
        }
    }
}

struct ShutDownOnDrop(Arc<ProcessExecutor>);

impl Drop for ShutDownOnDrop {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::cli::Cargo;
    use clap::Parser;

    fn cli(args: &[&str]) -> Cli {
        let Cargo::Prun(prun) = Cargo::try_parse_from(["cargo", "prun"].iter().chain(args))
            .unwrap_or_else(|err| panic!("{err}"));
        prun.run
    }

    #[test]
    fn fail_fast_stops_after_one_failure_unless_told_otherwise() {
        assert_eq!(max_fail(&cli(&[]), None, false), Some(1));
        assert_eq!(max_fail(&cli(&["--max-fail", "3"]), None, false), Some(3));
        assert_eq!(max_fail(&cli(&["--no-fail-fast"]), None, false), None);
        // nextest.toml's `fail-fast = false`, unless the command line says how many.
        assert_eq!(max_fail(&cli(&[]), Some(false), false), None);
        assert_eq!(max_fail(&cli(&["--max-fail", "2"]), Some(false), false), Some(2));
        // Repeated rounds run to their end, unless told otherwise.
        assert_eq!(max_fail(&cli(&[]), None, true), None);
        assert_eq!(max_fail(&cli(&["--max-fail", "1"]), None, true), Some(1));
    }

    #[test]
    fn rounds_repeat_a_number_of_times_or_until_the_stress_time_is_up() {
        let now = Instant::now();
        let once = Rounds { repeat: None, until: None };
        assert!(!once.more(1, now));
        let three = Rounds { repeat: Some(3), until: None };
        assert!(three.more(2, now) && !three.more(3, now));
        let stress = Rounds { repeat: None, until: Some(now + Duration::from_secs(5)) };
        assert!(stress.more(100, now + Duration::from_secs(4)));
        assert!(!stress.more(1, now + Duration::from_secs(5)));
    }
}
