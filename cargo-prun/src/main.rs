//! `cargo prun`: builds a workspace's tests and runs every test binary under one schedule.
//!
//! build (cargo) → discover (handshake) → plan (selection, config, priority) → schedule (prun's
//! dispatcher) → execute (worker and test processes) → report (human, JSON, JUnit).

mod archive;
mod bisect;
mod build;
mod cli;
mod discover;
mod doctests;
mod execute;
mod exit;
mod filterset;
mod history;
mod list;
mod merge;
mod nextest_config;
mod os;
mod partition;
mod plan;
mod prepare;
mod private;
mod report;
mod rerun;
mod run_dir;
mod timings;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use prun::config::Concurrency;
use prun::config::Doctests;
use prun::scheduler::{self, Dispatcher};

use cli::{Cargo, Cli, Color, Command, MessageFormat};
use execute::ProcessExecutor;
use history::History;
use plan::Selection;
use prepare::Workspace;
use report::{Reporter, Summary};

fn main() {
    let Cargo::Prun(prun) = Cargo::parse_command_line();
    let result = match prun.command {
        None => run(prun.run),
        Some(Command::Run(cli)) => run(*cli),
        Some(Command::List { format, mut run }) => {
            run.take_libtest_args();
            list::list(&run, format)
        }
        Some(Command::Merge(args)) => merge::merge(&args).map_err(|err| err.to_string()),
        Some(Command::Timings { action }) => timings::timings(action).map_err(|e| e.to_string()),
        Some(Command::Bisect(args)) => bisect::bisect(&args),
        Some(Command::Archive(args)) => archive::archive(&args).map_err(|err| err.to_string()),
    };
    std::process::exit(match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            exit::USAGE
        }
    });
}

/// The selection and plan of a run, from its command line and the workspace.
pub(crate) fn plan_run(
    cli: &Cli,
    workspace: &Workspace,
    history: &History,
    threads: usize,
) -> Result<plan::Plan, String> {
    let config = &workspace.config;
    let selection = Selection {
        filters: cli.filters.clone(),
        exact: cli.exact,
        skip: cli.skip.clone(),
        ignored_only: cli.ignored || cli.run_ignored == Some(cli::RunIgnored::Only),
        include_ignored: cli.include_ignored || cli.run_ignored == Some(cli::RunIgnored::All),
        categories: cli.categories.clone(),
        groups: cli.groups.clone(),
        isolate: cli.isolate.iter().chain(&config.isolate).cloned().collect(),
        partition: cli.partition,
        quarantine: config.quarantine.clone(),
        filtersets: cli.filtersets.clone(),
        only: match &cli.rerun_failed {
            Some(report) => {
                let rerun = rerun::read(report.as_deref(), workspace.history.dir())
                    .map_err(|err| err.to_string())?;
                eprintln!("note: {}", rerun.said);
                Some(rerun.tests)
            }
            None => None,
        },
    };
    let nextest_retries = workspace.nextest.as_ref().and_then(|n| n.retries);
    let options = plan::Options { retries: cli.retries.or(nextest_retries), order: cli.order };
    // Timing shards balance by a snapshot (see `timings::snapshot_path`), taken now if there is
    // none yet, so that the shards run one after another here agree.
    let snapshot = timings::snapshot_path(workspace.history.dir());
    let timings = match (&cli.timings, cli.partition) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(partition::Partition::Timing { .. })) => {
            if !snapshot.exists() {
                timings::write(&snapshot, history).map_err(|err| err.to_string())?;
            }
            Some(snapshot)
        }
        (None, _) => None,
    };
    let known =
        prepare::known_durations(history, timings.as_deref()).map_err(|err| err.to_string())?;
    plan::plan(&workspace.binaries, &selection, options, config, threads, &known)
        .map_err(|err| err.to_string())
}

/// Whether prun.toml says `doctests = "run"`.
fn config_runs_doctests(config: &prun::config::Config) -> bool {
    config.doctests == Some(Doctests::Run)
}

fn run(mut cli: Cli) -> Result<i32, String> {
    cli.take_libtest_args();
    if cli.quiet {
        cli.build.cargo_quiet = true;
        cli.status_level.get_or_insert(cli::StatusLevel::Fail);
    }
    let workspace = match prepare::prepare(
        &cli.build,
        cli.prun_profile.as_deref(),
        cli.nextest_profile.as_deref(),
    ) {
        Ok(workspace) => workspace,
        Err(error) => return error.into_exit(),
    };
    if cli.no_run {
        // Built (and listed, so a binary prun cannot run is said now): nothing more.
        return Ok(exit::OK);
    }
    let concurrency = prun::config::resolve_concurrency(cli.test_threads, &workspace.config)
        .map_err(|err| err.to_string())?;
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
    let mut plan = plan_run(&cli, &workspace, &history, threads)?;
    if let Concurrency::Adaptive { cores, ceiling } = concurrency {
        plan::weigh(&mut plan, &workspace.binaries, &history, cores, ceiling);
    }
    let threads = concurrency.threads();
    if cli.list {
        return list::print(&workspace.binaries, &plan, &history, cli.message_format);
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
    let run_dir = run_dir::RunDir::new().map_err(|err| err.to_string())?;
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
        plan.all_selected.clone(),
        threads,
    );
    meta.rerun = cli.rerun_failed.is_some();
    let mut reporters = reporters(&cli, junit, meta, plan.filtered_out)?;
    let started = Instant::now();
    let binary_count =
        plan.tests.iter().map(|t| t.binary).collect::<std::collections::BTreeSet<_>>().len();
    for reporter in &mut reporters {
        reporter.started(plan.tests.len(), binary_count, plan.ignored.len());
    }
    let ignored = std::mem::take(&mut plan.ignored);
    // What this run is responsible for, pending until it ends (for --rerun-failed).
    let last_run = rerun::LastRun::new(plan.tests.iter().map(|t| t.id(&binaries)));
    last_run.save(store.dir());

    let (events, finished) = mpsc::channel();
    // Doctests are one job of the schedule, started first: rustdoc's compile runs beside the
    // tests, weighed like any other job, rather than after them.
    if doctests {
        plan.jobs.insert(0, plan::PlannedJob::doctests());
    }
    let jobs: Vec<scheduler::Job> = plan.jobs.iter().map(|j| j.job.clone()).collect();
    let limits = plan.limits.clone();
    let repeating = cli.repeat.is_some() || cli.stress.is_some();
    // Repeating runs measure failure rates: every round runs to its end, unless told otherwise.
    let nextest_no_fail_fast = nextest_fail_fast == Some(false) && cli.max_fail.is_none();
    let max_fail =
        if cli.no_fail_fast || nextest_no_fail_fast || (repeating && cli.max_fail.is_none()) {
            None
        } else {
            Some(cli.max_fail.unwrap_or(1).max(1))
        };
    let mut executor = ProcessExecutor::new(
        binaries,
        plan.tests,
        plan.jobs,
        run_dir.path().to_owned(),
        run_dir.id.clone(),
        cli.harness_args.clone(),
        dylib_path,
        events,
        max_fail,
        started,
    );
    let success_output = cli.success_output.unwrap_or(cli::TestOutput::Never);
    executor.keep_passing_output = cli.no_capture || success_output != cli::TestOutput::Never;
    executor.retry = config.retry.clone();
    executor.leak_timeout = config.leak_timeout;
    executor.leak_timeouts = leak_timeouts;
    executor.doctests = doctests.then(|| execute::Doctests {
        build_args: cli.build.to_cargo_args(),
        filters: cli.filters.clone(),
        threads,
    });
    // A batch's test is announced once it has run this long: soon enough for the live line and
    // for the first SLOW notice.
    executor.notice_after = config.slow_timeout.period.min(std::time::Duration::from_millis(200));
    let executor = Arc::new(executor);
    // Watched before the first test starts: a Ctrl-C must never find the default handler.
    let interrupted = on_interrupt(&executor)?;
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
                if executor.stop.load(std::sync::atomic::Ordering::SeqCst) || !rounds.more(round) {
                    break;
                }
            }
            if !repeating && !rerun_alone_off {
                executor.diagnose(bisect);
            }
        })
    };
    let mut sink = Sink {
        reporters,
        redactor,
        summary: Summary {
            repeating,
            doctests_run: doctests,
            doctests_unavailable: from_archive,
            ..Summary::default()
        },
        records: Vec::new(),
        last_run,
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
    scheduling.join().map_err(|_| "the scheduler panicked".to_owned())?;
    let signal = interrupted.finish();
    let catalog: Vec<(String, String, bool)> = executor
        .tests
        .iter()
        .map(|t| {
            let prun = executor.binaries[t.binary].kind == discover::Kind::Prun;
            (t.id(&executor.binaries), t.meta.category.clone(), prun)
        })
        .collect();
    sink.summary.interrupted = signal.is_some();
    sink.summary.duration = started.elapsed();
    sink.summary.hints = learn(&store, history, &sink, &catalog, cli.partition.is_some());
    report::redact::lines(&sink.redactor, &mut sink.summary.hints);
    sink.last_run.save(store.dir());
    let summary = sink.done();
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

/// Where the run's events go: redacted, tallied, kept for the history, and rendered by every
/// reporter.
struct Sink {
    reporters: Vec<Box<dyn Reporter>>,
    redactor: report::redact::Redactor,
    summary: Summary,
    /// What the run adds to the history: each test's final attempt, by id.
    records: Vec<(String, history::Record)>,
    /// Which of the run's tests passed and failed, for `--rerun-failed`.
    last_run: rerun::LastRun,
}

impl Sink {
    fn event(&mut self, event: report::Event) {
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
                    self.last_run.passed(&format!("{} {}", found.binary, found.name));
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
            let id = format!("{} {}", finished.binary, finished.name);
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
            self.records.push((format!("{} {}", finished.binary, finished.name), record));
        }
        for reporter in &mut self.reporters {
            reporter.finished(&finished);
        }
    }

    /// The end of the run, for every reporter; the summary they were given.
    fn done(mut self) -> Summary {
        for reporter in &mut self.reporters {
            reporter.done(&self.summary);
        }
        self.summary
    }
}

/// Adds what the run learned to the history; the hints it now has for this run's tests.
/// `catalog`: each test's id, category, and whether its binary is a prun harness.
fn learn(
    store: &history::Store,
    loaded: History,
    sink: &Sink,
    catalog: &[(String, String, bool)],
    partitioned: bool,
) -> Vec<String> {
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

/// `--repeat N` / `--stress DURATION`: whether to start another round after `done` rounds.
struct Rounds {
    repeat: Option<u32>,
    until: Option<Instant>,
}

impl Rounds {
    fn more(&self, done: u32) -> bool {
        match (self.repeat, self.until) {
            (Some(repeat), _) => done < repeat,
            (None, Some(until)) => Instant::now() < until,
            (None, None) => false,
        }
    }
}

/// Watches for SIGINT and SIGTERM during the run: the first one stops the run (every test
/// process is killed, the reports of what finished are written), and sets the exit code.
struct Interrupts {
    handle: signal_hook::iterator::Handle,
    watcher: std::thread::JoinHandle<Option<i32>>,
}

fn on_interrupt(executor: &Arc<ProcessExecutor>) -> Result<Interrupts, String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|err| format!("cannot watch for Ctrl-C: {err}"))?;
    let handle = signals.handle();
    let executor = executor.clone();
    let watcher = std::thread::spawn(move || {
        let signal = signals.forever().next()?;
        executor.interrupt();
        Some(signal)
    });
    Ok(Interrupts { handle, watcher })
}

impl Interrupts {
    /// Stops watching; the signal that interrupted the run, if one did.
    fn finish(self) -> Option<i32> {
        self.handle.close();
        self.watcher.join().ok().flatten()
    }
}

struct ShutDownOnDrop(Arc<ProcessExecutor>);

impl Drop for ShutDownOnDrop {
    fn drop(&mut self) {
        self.0.shut_down();
    }
}

fn reporters(
    cli: &Cli,
    junit: Option<std::path::PathBuf>,
    meta: report::document::Meta,
    filtered_out: usize,
) -> Result<Vec<Box<dyn Reporter>>, String> {
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    // A machine format takes stdout; the human output goes to stderr then.
    let json = cli.message_format != MessageFormat::Human;
    let (out, is_terminal): (Box<dyn std::io::Write + Send>, bool) = if json {
        (Box::new(std::io::stderr()), std::io::stderr().is_terminal())
    } else {
        (Box::new(std::io::stdout()), std::io::stdout().is_terminal())
    };
    let choice = match cli.color {
        Color::Always => prun::color::Choice::Always,
        Color::Never => prun::color::Choice::Never,
        Color::Auto => prun::color::Choice::Auto,
    };
    let color = prun::color::enabled(choice, is_terminal);
    // The live progress line goes to a terminal only, drawn on stderr.
    let progress = !json
        && !cli.hide_progress_bar
        && std::io::stderr().is_terminal()
        && std::env::var_os("CI").is_none();
    let shown = report::human::Shown {
        status_level: cli.status_level.unwrap_or(cli::StatusLevel::Pass),
        final_status_level: cli.final_status_level.unwrap_or(cli::StatusLevel::Flaky),
        failure_output: cli.failure_output.unwrap_or(cli::TestOutput::ImmediateFinal),
        success_output: match cli.success_output {
            Some(when) => when,
            None if cli.no_capture => cli::TestOutput::Immediate,
            None => cli::TestOutput::Never,
        },
    };
    reporters.push(Box::new(report::human::Human::new(out, color, shown, progress)));
    match cli.message_format {
        MessageFormat::Human => {}
        MessageFormat::Json => {
            reporters.push(Box::new(report::json::Json::new(Box::new(std::io::stdout()))));
        }
        MessageFormat::LibtestJson => {
            let stdout = Box::new(std::io::stdout());
            reporters.push(Box::new(report::libtest_json::LibtestJson::new(stdout, filtered_out)));
        }
    }
    if let Some(path) = junit {
        // Written once before any test runs, so a bad path stops the run before it starts.
        let mut junit = report::junit::Junit::new(path);
        junit.started(0, 0, 0);
        if let Some(error) = junit.error.take() {
            return Err(error);
        }
        reporters.push(Box::new(junit));
    }
    let outputs = &cli.outputs;
    if outputs.json.is_some() || outputs.html.is_some() || outputs.trace.is_some() {
        let mut document = report::document::Writer::new(meta, outputs.clone());
        document.started(0, 0, 0);
        if let Some(error) = document.error.take() {
            return Err(error);
        }
        reporters.push(Box::new(document));
    }
    Ok(reporters)
}
