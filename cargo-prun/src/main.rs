//! `cargo prun`: builds a workspace's tests and runs every test binary under one schedule.
//!
//! build (cargo) → discover (handshake) → plan (selection, config, priority) → schedule (prun's
//! dispatcher) → execute (worker and test processes) → report (human, JSON, JUnit).

mod build;
mod cli;
mod discover;
mod doctests;
mod execute;
mod exit;
mod partition;
mod plan;
mod report;

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use clap::Parser;
use prun::config::{Config, Doctests, Threads};
use prun::scheduler::{self, Dispatcher};

use cli::{Cargo, Cli, Color, MessageFormat};
use discover::Binary;
use execute::ProcessExecutor;
use plan::Selection;
use report::{Reporter, Summary};

fn main() {
    let Cargo::Prun(cli) = Cargo::parse();
    std::process::exit(match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            exit::USAGE
        }
    });
}

fn run(cli: Cli) -> Result<i32, String> {
    let cwd = std::env::current_dir()
        .map_err(|err| format!("cannot read the current directory: {err}"))?;
    let root = match &cli.build.manifest_path {
        Some(path) => path.parent().map(|p| cwd.join(p)).unwrap_or_else(|| cwd.clone()),
        None => cwd.clone(),
    };
    let config = Config::discover_with_profile(&root, cli.prun_profile.as_deref())
        .map_err(|err| err.to_string())?;
    let threads = threads(cli.test_threads, &config)?;

    let toolchain = std::thread::spawn(build::toolchain_dirs);
    let built = match build::build(&cli.build.to_cargo_args()) {
        Ok(built) => built,
        Err(code) => return Ok(code),
    };
    let dylib_path = build::dylib_path(toolchain.join().unwrap_or_default(), &built);
    let binaries = discover_all(built, &dylib_path)?;
    let selection = Selection {
        filters: cli.filters.clone(),
        exact: cli.exact,
        skip: cli.skip.clone(),
        ignored_only: cli.ignored,
        include_ignored: cli.include_ignored,
        categories: cli.categories.clone(),
        groups: cli.groups.clone(),
        isolate: cli.isolate.iter().chain(&config.isolate).cloned().collect(),
        partition: cli.partition,
    };
    let options = plan::Options { retries: cli.retries, order: cli.order };
    if let plan::Order::Shuffle(seed) = cli.order {
        eprintln!(
            "note: tests shuffled with seed {seed}; --order shuffle:{seed} gives this order again"
        );
    }
    let plan = plan::plan(&binaries, &selection, options, &config, threads);
    if cli.list {
        return list(&binaries, &plan, cli.message_format);
    }
    if plan.tests.is_empty() && plan.filtered_out > 0 {
        eprintln!("error: no test matches the filters ({} tests filtered out)", plan.filtered_out);
        return Ok(exit::NO_TESTS);
    }

    // Sockets and test temp dirs go in a directory only this user can read (0700).
    let run_dir = tempfile::Builder::new()
        .prefix("prun-run-")
        .tempdir()
        .map_err(|err| format!("cannot create the run directory: {err}"))?;
    private_dir(&run_dir.path().join("tmp"))?;
    let run_id = run_dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("run")
        .trim_start_matches("prun-run-")
        .to_ascii_lowercase();
    let run_id: String = run_id.chars().filter(char::is_ascii_alphanumeric).collect();

    let junit = cli.junit.clone().or_else(|| {
        let path = config.reports.junit.as_ref()?;
        let base = config.source.as_ref().and_then(|s| s.parent()).unwrap_or(&root);
        Some(base.join(path))
    });
    let mut reporters = reporters(&cli, junit)?;
    let started = Instant::now();
    let binary_count =
        plan.tests.iter().map(|t| t.binary).collect::<std::collections::BTreeSet<_>>().len();
    for reporter in &mut reporters {
        reporter.started(plan.tests.len(), binary_count, plan.ignored.len());
    }

    let (events, finished) = mpsc::channel();
    let dispatcher =
        Dispatcher::new(plan.jobs.iter().map(|j| j.job.clone()).collect(), &plan.limits);
    let max_fail = if cli.no_fail_fast { None } else { Some(cli.max_fail.unwrap_or(1).max(1)) };
    let mut executor = ProcessExecutor::new(
        binaries,
        plan.tests,
        plan.jobs,
        run_dir.path().to_owned(),
        run_id,
        cli.harness_args.clone(),
        dylib_path,
        events,
        max_fail,
        started,
    );
    executor.keep_passing_output = cli.no_capture;
    let executor = Arc::new(executor);
    let scheduling = {
        let executor = executor.clone();
        std::thread::spawn(move || {
            // However the schedule ends, even by a panic, the event loop below must end too.
            let _done = ShutDownOnDrop(executor.clone());
            scheduler::run(threads, dispatcher, executor);
        })
    };
    let redactor = report::redact::Redactor::new(
        std::env::vars(),
        &config.redact.env,
        &config.redact.patterns,
    )?;
    let interrupted = on_interrupt(&executor)?;
    let mut summary = Summary { skipped: plan.ignored.len(), ..Summary::default() };
    for event in finished {
        match event {
            report::Event::Started { binary, name, worker } => {
                for reporter in &mut reporters {
                    reporter.test_started(&binary, &name, worker);
                }
            }
            report::Event::Finished(finished) => {
                let finished = redactor.finished(finished);
                summary.record(&finished);
                for reporter in &mut reporters {
                    reporter.finished(&finished);
                }
            }
        }
    }
    scheduling.join().map_err(|_| "the scheduler panicked".to_owned())?;
    if config.doctests == Some(Doctests::Run)
        && !executor.stop.load(std::sync::atomic::Ordering::SeqCst)
    {
        summary.doctests_run = true;
        match doctests::run(&cli.build.to_cargo_args(), &cli.filters, threads) {
            Ok(results) => {
                for finished in results {
                    let finished = redactor.finished(finished);
                    summary.record(&finished);
                    for reporter in &mut reporters {
                        reporter.finished(&finished);
                    }
                }
            }
            Err(error) => eprintln!("warning: doctests not run: {error}"),
        }
    }
    let signal = interrupted.finish();
    summary.interrupted = signal.is_some();
    summary.duration = started.elapsed();
    for reporter in &mut reporters {
        reporter.done(&summary);
    }
    // Failed tests keep their temp dirs: keep the run directory for them.
    if summary.failed > 0 && has_entries(&run_dir.path().join("tmp")) {
        let kept = run_dir.keep();
        eprintln!("note: temp dirs of failed tests are kept in {}", kept.join("tmp").display());
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

/// Asks every binary what it is, several at a time.
fn discover_all(
    built: Vec<build::TestBinary>,
    dylib_path: &std::ffi::OsStr,
) -> Result<Vec<Binary>, String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = built
            .into_iter()
            .map(|b| scope.spawn(move || discover::discover(b, dylib_path)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "discovery panicked".to_owned())?)
            .collect()
    })
}

/// `-j`, else `PRUN_TEST_THREADS`, else the config's `threads`, else all cores.
fn threads(flag: Option<i64>, config: &Config) -> Result<usize, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match flag {
        Some(0) => {
            return Err("--test-threads must not be 0: use N, or -N for all cores but N".into());
        }
        Some(n) => Threads::Count(n),
        None => match std::env::var("PRUN_TEST_THREADS") {
            Ok(text) => text.parse().map_err(|err| format!("PRUN_TEST_THREADS: {err}"))?,
            Err(_) => config.threads.unwrap_or(Threads::Auto),
        },
    };
    Ok(threads.resolve(cores))
}

fn reporters(
    cli: &Cli,
    junit: Option<std::path::PathBuf>,
) -> Result<Vec<Box<dyn Reporter>>, String> {
    let mut reporters: Vec<Box<dyn Reporter>> = Vec::new();
    let json = cli.message_format == MessageFormat::Json;
    let (out, is_terminal): (Box<dyn std::io::Write + Send>, bool) = if json {
        (Box::new(std::io::stderr()), std::io::stderr().is_terminal())
    } else {
        (Box::new(std::io::stdout()), std::io::stdout().is_terminal())
    };
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => is_terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    // The live progress line goes to a terminal only, drawn on stderr.
    let progress = !json && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
    reporters.push(Box::new(report::human::Human::new(out, color, cli.no_capture, progress)));
    if json {
        reporters.push(Box::new(report::json::Json::new(Box::new(std::io::stdout()))));
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
    Ok(reporters)
}

/// `--list`: one line per test with what the scheduler knows of it.
fn list(binaries: &[Binary], plan: &plan::Plan, format: MessageFormat) -> Result<i32, String> {
    for test in &plan.tests {
        let binary = &binaries[test.binary];
        if format == MessageFormat::Json {
            let line = serde_json::json!({
                "binary": binary.binary.id,
                "kind": match binary.kind { discover::Kind::Prun => "prun", discover::Kind::Libtest => "libtest" },
                "name": test.name,
                "category": test.meta.category,
                "groups": test.meta.groups,
                "timeout_ms": test.timeout.map(|t| t.as_millis()),
                "retries": test.job.retries,
                "threads": test.meta.threads,
            });
            println!("{line}");
        } else {
            let mut line = format!("{} {} [{}]", binary.binary.id, test.name, test.meta.category);
            if !test.meta.groups.is_empty() {
                line.push_str(&format!(" groups={}", test.meta.groups.join(",")));
            }
            if let Some(timeout) = test.timeout {
                line.push_str(&format!(" timeout={}", report::seconds(timeout)));
            }
            if test.job.retries > 0 {
                line.push_str(&format!(" retries={}", test.job.retries));
            }
            if test.meta.threads > 1 {
                line.push_str(&format!(" threads={}", test.meta.threads));
            }
            println!("{line}");
        }
    }
    Ok(exit::OK)
}

fn private_dir(dir: &std::path::Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))
}

fn has_entries(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}
