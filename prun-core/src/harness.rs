//! The `main` of a prun test binary: discover → plan → schedule → execute → report.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Instant;

use clap::Parser;

use crate::cli::Cli;
use crate::config::Config;
use crate::event::Attempt;
use crate::event::Event;
use crate::execute::InProcess;
use crate::fixtures::scope::RunScope;
use crate::outcome::Failure;
use crate::plan::{self, Filter, Ignored, PlannedTest};
use crate::redact::Redactor;
use crate::registry;
use crate::report::Summary;
use crate::report::libtest::Printer;
use crate::scheduler::{self, Dispatcher};

/// Exit codes, as libtest uses them.
pub mod exit {
    /// Every selected test passed (or there were none).
    pub const OK: i32 = 0;
    /// A test failed or timed out.
    pub const TESTS_FAILED: i32 = 101;
    /// The command line, the config or the output file was not usable; nothing ran.
    pub const USAGE: i32 = 2;
}

/// Runs the binary's tests as its command line says; returns the exit code.
pub fn main() -> i32 {
    // `cargo prun` asking what this binary is, or handing it tests to run.
    if std::env::var_os(crate::protocol::HANDSHAKE_ENV).is_some() {
        return crate::worker::print_catalog();
    }
    let args: Vec<String> = std::env::args().skip(1).take(2).collect();
    if let [flag, socket] = args.as_slice()
        && flag == crate::protocol::WORKER_FLAG
    {
        return crate::worker::serve(socket).unwrap_or_else(|error| {
            eprintln!("error: {error}");
            exit::USAGE
        });
    }
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            exit::USAGE
        }
    }
}

/// Why a prun binary ran no test, or stopped reporting them.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("cannot read the current directory: {0}")]
    CurrentDir(std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Threads(#[from] crate::config::ThreadsError),
    #[error(transparent)]
    Shard(#[from] crate::bazel::ShardError),
    #[error("cannot open --logfile: {0}")]
    Logfile(std::io::Error),
    #[error(transparent)]
    Redact(#[from] crate::redact::PatternError),
    #[error(transparent)]
    Plan(#[from] crate::config::UnknownCategory),
    #[error("cannot write the report: {0}")]
    Write(#[from] std::io::Error),
    #[error("the scheduler panicked")]
    SchedulerPanicked,
}

fn run(cli: &Cli) -> Result<i32, Error> {
    let args = &cli.libtest;
    let cwd = std::env::current_dir().map_err(Error::CurrentDir)?;
    let config = Config::discover(&cwd)?;
    let flag = args.test_threads.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
    let threads = crate::config::resolve_threads(flag, &config)?;
    let filter = Filter {
        filters: args.filter.iter().cloned().collect(),
        exact: args.exact,
        skip: args.skip.clone(),
        ignored: match (args.ignored, args.include_ignored) {
            (_, true) => Ignored::Include,
            (true, false) => Ignored::Only,
            (false, false) => Ignored::Skip,
        },
        categories: cli.categories.clone(),
        groups: cli.groups.clone(),
    };
    let shard = crate::bazel::shard()?;
    let mut printer = Printer::new(args).map_err(Error::Logfile)?;
    let redactor = Redactor::new(std::env::vars(), &config.redact.env, &config.redact.patterns)?;
    let declared = registry::declared();
    let catalog: Vec<_> = declared.iter().map(|def| def.catalog()).collect();

    if args.list {
        let selected = plan::select(&catalog, &filter, shard);
        printer.list(selected.iter().map(|&index| catalog[index].name.as_str()))?;
        return Ok(exit::OK);
    }
    // libtest-mimic's `--bench` runs benchmarks only; a prun binary has none.
    let catalog = if args.bench { Vec::new() } else { catalog };

    let plan = plan::plan(&catalog, &filter, shard, &config, threads)?;
    let started = Instant::now();
    let mut summary = Summary { filtered_out: plan.filtered_out, ..Summary::default() };
    printer.run_started(plan.tests.len() + plan.ignored.len())?;
    for &index in &plan.ignored {
        printer.ignored(&catalog[index].name, declared[index].ignore_reason)?;
        summary.ignored += 1;
    }
    let tests = plan
        .tests
        .into_iter()
        .map(|planned| PlannedTest {
            def: declared[planned.index],
            name: catalog[planned.index].name.as_str().into(),
            timeout: planned.timeout,
            job: planned.job,
        })
        .collect::<Vec<_>>();

    // `PRUN_RUN_ID` names the run when a driver (or a script) sets it; else a fresh id. Two
    // processes can inherit one: the temp root is then this process's own.
    let run = match crate::protocol::given_run_id() {
        Some(id) => {
            let root = format!("prun-{id}-{}", std::process::id());
            RunScope::new(id).with_temp_root_name(root)
        }
        None => RunScope::new(run_id()),
    };
    let run = Arc::new(run);
    let (events, received) = mpsc::channel();
    let dispatcher = Dispatcher::new(tests.iter().map(|t| t.job.clone()).collect(), &plan.limits);
    let retry = config.retry.clone();
    let executor = Arc::new(InProcess { tests, run: run.clone(), events, retry });
    // The scheduler runs on its own thread; this one prints, so output never waits on a test.
    let scheduling = std::thread::spawn(move || scheduler::run(threads, dispatcher, executor));
    for event in received {
        match event {
            Event::Started { name, attempt, worker } => {
                printer.started(&name, attempt, worker)?;
            }
            // A test that skipped itself reads as an ignored one, with its reason.
            Event::Finished(attempt) => {
                let attempt = redact(&redactor, attempt);
                match &attempt.result {
                    Err(Failure::Skipped(reason)) => {
                        summary.ignored += 1;
                        printer.ignored(&attempt.name, Some(reason))?;
                    }
                    _ => {
                        summary.record(&attempt);
                        printer.finished(&attempt)?;
                    }
                }
            }
        }
    }
    scheduling.join().map_err(|_| Error::SchedulerPanicked)?;
    run.finish();
    summary.duration = started.elapsed();
    printer.run_finished(&summary)?;
    Ok(if summary.ok() { exit::OK } else { exit::TESTS_FAILED })
}

/// The attempt with secrets out of what was captured of it (its panic message, log lines and
/// returned error). A test's own prints reach the terminal directly, as with libtest.
fn redact(redactor: &Redactor, mut attempt: Attempt) -> Attempt {
    if let std::borrow::Cow::Owned(redacted) = redactor.text(&attempt.output) {
        attempt.output = redacted;
    }
    if let Err(Failure::Returned(error)) = &mut attempt.result {
        *error = redactor.text(error).into_owned();
    }
    attempt
}

/// A fresh id for a run of this binary. (Not `PRUN_RUN_ID`: a variable a test's own child
/// process inherits must not make two runs one.)
pub(crate) fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    format!("{:08x}", hasher.finish() as u32)
}
