//! `cargo prun`'s command line: the flags users know from `cargo test` and `cargo nextest`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::partition::Partition;
use crate::plan::Order;

/// cargo runs a subcommand as `cargo-prun prun ARGS`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
pub(crate) enum Cargo {
    /// Run every test of a workspace under one parallel schedule.
    Prun(Prun),
}

impl Cargo {
    /// The command line, parsed. A flag `cargo test` takes that prun does not model (cargo's
    /// `--ignore-rust-version`, `-Z`, ..., whatever cargo version this is) is not refused: it
    /// goes to cargo's build as it was given.
    pub(crate) fn parse_command_line() -> Cargo {
        let mut args: Vec<OsString> = std::env::args_os().collect();
        let mut passed = Vec::new();
        let mut cargo_flags: Option<Vec<CargoFlag>> = None;
        loop {
            let err = match Cargo::try_parse_from(&args) {
                Ok(mut cargo) => {
                    let Cargo::Prun(prun) = &mut cargo;
                    match prun.build_args() {
                        Some(build) => build.passed_to_cargo = passed,
                        None if passed.is_empty() => {}
                        None => {
                            eprintln!(
                                "error: {} is a flag of cargo's build: this command builds nothing",
                                passed[0]
                            );
                            std::process::exit(crate::exit::USAGE);
                        }
                    }
                    return cargo;
                }
                Err(err) => err,
            };
            if err.kind() != ErrorKind::UnknownArgument {
                err.exit();
            }
            let flags = cargo_flags.get_or_insert_with(cargo_test_flags);
            match take_cargo_flag(&mut args, &err, flags) {
                Some(taken) => passed.extend(taken),
                None => err.exit(),
            }
        }
    }
}

/// A flag of `cargo test --help`: its names and whether it takes a value (`--jobs <N>`; an
/// optional one, `--bin [<NAME>]`, is only ever given as `--bin=NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CargoFlag {
    names: Vec<String>,
    takes_value: bool,
}

/// The flags this machine's `cargo test` takes, from its help (asked only when a flag is not
/// prun's).
fn cargo_test_flags() -> Vec<CargoFlag> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let help = std::process::Command::new(cargo).args(["test", "--help"]).output();
    help.map(|out| flags_in_help(&String::from_utf8_lossy(&out.stdout))).unwrap_or_default()
}

/// The flags of a clap help text: lines that start with `-` after the indentation.
fn flags_in_help(help: &str) -> Vec<CargoFlag> {
    help.lines()
        .filter(|line| line.trim_start().starts_with('-'))
        .map(|line| {
            let mut names = Vec::new();
            let mut takes_value = false;
            for token in line.split_whitespace() {
                if token.starts_with('-') {
                    let name = token.trim_end_matches(',').trim_end_matches("...");
                    names.push(name.split('[').next().unwrap_or(name).to_owned());
                } else {
                    takes_value = token.starts_with('<');
                    break;
                }
            }
            CargoFlag { names, takes_value }
        })
        .collect()
}

/// Takes the flag clap did not know out of `args` (with its value) when `cargo test` takes
/// it; `None` when it is nobody's flag.
fn take_cargo_flag(
    args: &mut Vec<OsString>,
    err: &clap::Error,
    flags: &[CargoFlag],
) -> Option<Vec<String>> {
    let Some(ContextValue::String(unknown)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let name = unknown.split('=').next().unwrap_or(unknown);
    let flag = flags.iter().find(|f| f.names.iter().any(|n| n == name))?;
    // Only before `--`: what follows it is the harness's.
    let end = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let at = args[..end].iter().position(|arg| {
        let arg = arg.to_string_lossy();
        arg == name
            || arg.starts_with(&format!("{name}="))
            || (!name.starts_with("--") && arg.starts_with(name))
    })?;
    let given = args.remove(at).to_string_lossy().into_owned();
    let mut taken = vec![given.clone()];
    let attached = given.len() > name.len();
    if flag.takes_value && !attached && at < end - 1 {
        taken.push(args.remove(at).to_string_lossy().into_owned());
    }
    Some(taken)
}

#[derive(Debug, Args)]
#[command(
    version,
    about,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 all passed; 101 a test failed; 2 bad usage, config or reports; 3 the build failed; 4 no test matches; 130/143 interrupted."
)]
pub(crate) struct Prun {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    /// With no subcommand: run the tests.
    #[command(flatten)]
    pub(crate) run: Cli,
}

impl Prun {
    /// The build flags of a command that builds.
    fn build_args(&mut self) -> Option<&mut BuildArgs> {
        match &mut self.command {
            None => Some(&mut self.run.build),
            Some(Command::Run(cli)) => Some(&mut cli.build),
            Some(Command::List { run, .. }) => Some(&mut run.build),
            Some(Command::Bisect(args)) => Some(&mut args.build),
            Some(Command::Archive(args)) => Some(args),
            Some(Command::Merge(_) | Command::Timings { .. }) => None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the tests: the same as no subcommand (`cargo nextest run` users type it).
    Run(Box<Cli>),
    /// List the selected tests with what prun knows of them (category, groups, typical duration,
    /// flaky rate).
    List {
        #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
        format: MessageFormat,
        #[command(flatten)]
        run: Box<Cli>,
    },
    /// Join the `--json` reports of the shards of one run into one report; fails when a test is
    /// missing from all of them or is in two.
    Merge(MergeArgs),
    /// Export the typical durations of the history to a timings file (for CI to commit or
    /// cache), or import one into the history.
    Timings {
        #[command(subcommand)]
        action: TimingsAction,
    },
    /// Find the tests that make TEST fail when they run before it or beside it.
    Bisect(Box<BisectArgs>),
    /// Build the tests once and write them, with their catalogs, the shared libraries they
    /// load and their build scripts' outputs, to --archive-file FILE: `cargo prun
    /// --archive-file FILE` runs them on any machine of the same target, without cargo.
    Archive(Box<BuildArgs>),
}

#[derive(Debug, Args)]
pub(crate) struct MergeArgs {
    /// `--json` reports of the shards.
    #[arg(required = true, value_name = "REPORT")]
    pub(crate) reports: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) outputs: Outputs,
    /// Write the merged run's timings here: what `--partition timing:K/N --timings PATH`
    /// balances the next CI run by.
    #[arg(long, value_name = "PATH")]
    pub(crate) timings: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TimingsAction {
    /// Write the history's typical duration of each test to PATH.
    Export {
        path: PathBuf,
        #[command(flatten)]
        workspace: Workspace,
    },
    /// Add the durations of a timings file, or of a `--json` report (a merge of CI shards,
    /// say), to the history.
    Import {
        path: PathBuf,
        #[command(flatten)]
        workspace: Workspace,
    },
}

/// Where the workspace (and so its history) is.
#[derive(Debug, Args)]
pub(crate) struct Workspace {
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    #[arg(long, value_name = "DIR")]
    pub(crate) target_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct BisectArgs {
    /// The test that fails in company: its name, as `cargo prun --list` shows it.
    #[arg(value_name = "TEST")]
    pub(crate) test: String,
    /// Check only these candidates (names), run before TEST in one process: replays a result.
    #[arg(long = "with", value_name = "NAME")]
    pub(crate) with: Vec<String>,
    /// With `--with`: run them beside TEST, at the same moment (over and over while TEST runs
    /// back to back), rather than before it.
    #[arg(long, requires = "with")]
    pub(crate) beside: bool,
    #[command(flatten)]
    pub(crate) build: BuildArgs,
}

/// The report files a run (or a merge) writes.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct Outputs {
    /// Write a JUnit XML report here (rewritten as tests finish, atomically).
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
    /// Write the run as one JSON document here (every attempt; what `cargo prun merge` joins).
    #[arg(long, value_name = "PATH")]
    pub(crate) json: Option<PathBuf>,
    /// Write a self-contained HTML report here: summary, failures, flaky and parallel-only
    /// tests, slowest tests, and a per-worker timeline.
    #[arg(long, value_name = "PATH")]
    pub(crate) html: Option<PathBuf>,
    /// Write the run in Chrome's trace format here (opens in Perfetto or chrome://tracing).
    #[arg(long, value_name = "PATH")]
    pub(crate) trace: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct Cli {
    /// Run only tests whose name contains FILTER (any of them).
    #[arg(value_name = "FILTER")]
    pub(crate) filters: Vec<String>,

    /// Arguments after `--`, passed to plain libtest binaries.
    #[arg(last = true, value_name = "HARNESS_ARGS")]
    pub(crate) harness_args: Vec<String>,

    #[command(flatten)]
    pub(crate) build: BuildArgs,

    /// Threads to run tests on: a number, or a negative one for "all cores but N".
    #[arg(short = 'j', long = "test-threads", allow_negative_numbers = true, value_name = "N")]
    pub(crate) test_threads: Option<i64>,

    /// Run every test, whatever fails (`--nff` as nextest spells it short).
    #[arg(long, alias = "nff", conflicts_with = "max_fail")]
    pub(crate) no_fail_fast: bool,

    /// Stop starting tests after N failures [default: 1, unless --no-fail-fast]. A batch of
    /// plain tests that has started runs to its end.
    #[arg(long, value_name = "N")]
    pub(crate) max_fail: Option<usize>,

    /// Run the tests this filterset chooses (nextest's language: `test(foo) & package(bar) -
    /// kind(bench)`); repeatable, a test any of them chooses runs.
    #[arg(short = 'E', long = "filterset", value_name = "EXPR")]
    pub(crate) filtersets: Vec<crate::filterset::Filterset>,

    /// Match filters exactly rather than by substring.
    #[arg(long)]
    pub(crate) exact: bool,

    /// Skip tests whose name contains FILTER (repeatable).
    #[arg(long, value_name = "FILTER")]
    pub(crate) skip: Vec<String>,

    /// Run only ignored tests.
    #[arg(long, conflicts_with = "include_ignored")]
    pub(crate) ignored: bool,

    /// Run ignored tests too.
    #[arg(long)]
    pub(crate) include_ignored: bool,

    /// nextest's spelling of the two above: `default`, `only` (--ignored) or `all`
    /// (--include-ignored).
    #[arg(long, value_enum, value_name = "WHICH", conflicts_with_all = ["ignored", "include_ignored"])]
    pub(crate) run_ignored: Option<RunIgnored>,

    /// What a run that selects no test does: `fail` (exit 4), `warn` or `pass` (exit 0).
    #[arg(long, value_enum, default_value_t = NoTests::Fail, value_name = "WHAT")]
    pub(crate) no_tests: NoTests,

    /// Which finished tests get a line as they finish: none, fail, retry, slow, pass (the
    /// default), skip or all (each level shows those before it too).
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub(crate) status_level: Option<StatusLevel>,

    /// Which tests the summary lists again at the end: none, fail (the default), flaky, or all.
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub(crate) final_status_level: Option<StatusLevel>,

    /// Where a failing test's output is shown: immediate, final, immediate-final (the
    /// default) or never.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub(crate) failure_output: Option<TestOutput>,

    /// Where a passing test's output is shown: never (the default), immediate, final or
    /// immediate-final.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub(crate) success_output: Option<TestOutput>,

    /// Run only the tests the last run did not pass (failed, or did not finish); with REPORT
    /// (a `--json` report, or a merge of CI shards), those of that run.
    #[arg(long, value_name = "REPORT", num_args = 0..=1)]
    pub(crate) rerun_failed: Option<Option<PathBuf>>,

    /// Build the tests and stop (as cargo test --no-run).
    #[arg(long)]
    pub(crate) no_run: bool,

    /// Quiet: cargo builds quietly and only failures get a line of their own.
    #[arg(short = 'q', long = "quiet")]
    pub(crate) quiet: bool,

    /// No live progress line, even on a terminal.
    #[arg(long)]
    pub(crate) hide_progress_bar: bool,

    /// Run only tests of this category (repeatable).
    #[arg(long = "category", value_name = "NAME")]
    pub(crate) categories: Vec<String>,

    /// Run only tests in this group (repeatable).
    #[arg(long = "group", value_name = "NAME")]
    pub(crate) groups: Vec<String>,

    /// Run plain `#[test]`s whose `BINARY NAME` contains PATTERN one per process, not in a
    /// batch with others (repeatable; prun.toml's `isolate` adds more).
    #[arg(long, value_name = "PATTERN")]
    pub(crate) isolate: Vec<String>,

    /// Run this machine's share of the tests: count:K/N (every N-th test), hash:K/N (by a hash
    /// of the test's id) or timing:K/N (shards of equal expected time, by --timings or the
    /// history). Every test lands in exactly one of the N shards.
    #[arg(long, value_name = "count|hash|timing:K/N")]
    pub(crate) partition: Option<Partition>,

    /// Expected durations from this timings file (`cargo prun timings export`), over the
    /// history: what `--partition timing:K/N` balances by, the same on every CI machine.
    #[arg(long, value_name = "PATH")]
    pub(crate) timings: Option<PathBuf>,

    /// Run the selected tests N times (each run to its end) and report each test's failure rate.
    #[arg(long, value_name = "N", conflicts_with = "stress")]
    pub(crate) repeat: Option<u32>,

    /// Run the selected tests again and again for this long (e.g. 30s, 5m), then report each
    /// test's failure rate.
    #[arg(long, value_name = "DURATION", value_parser = prun::time::parse)]
    pub(crate) stress: Option<std::time::Duration>,

    /// After the run, bisect each test that failed only in parallel to the tests that make it
    /// fail.
    #[arg(long, conflicts_with = "no_rerun_alone")]
    pub(crate) bisect: bool,
    /// Do not rerun failed tests alone after the run (which tells failures that happen only
    /// beside other tests from the rest).
    #[arg(long)]
    pub(crate) no_rerun_alone: bool,

    /// Run a failed test again up to N times (over the attribute and prun.toml).
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Fail the run when a test passed only after failing.
    #[arg(long)]
    pub(crate) fail_on_flaky: bool,

    /// Which tests start first: priority (slow, integration, unit), declared, or `shuffle[:SEED]`
    /// (the seed is printed; the same seed gives the same order).
    #[arg(long, value_name = "ORDER", default_value = "priority")]
    pub(crate) order: Order,

    /// List the tests that would run, with their metadata, and exit.
    #[arg(long)]
    pub(crate) list: bool,

    /// The `[profile.NAME]` of prun.toml to use.
    #[arg(long = "prun-profile", value_name = "NAME")]
    pub(crate) prun_profile: Option<String>,

    /// The profile of `.config/nextest.toml` to use (read when there is no prun.toml; else
    /// `NEXTEST_PROFILE`, else `default`). `--profile` stays cargo's, as for cargo test.
    #[arg(short = 'P', value_name = "NAME")]
    pub(crate) nextest_profile: Option<String>,

    /// Show test output as it is printed, not only for failures (`--nocapture` as libtest
    /// spells it).
    #[arg(long, alias = "nocapture")]
    pub(crate) no_capture: bool,

    /// Coloured output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,

    /// `json` writes the run's events to stdout, one JSON object a line (human output goes to stderr).
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub(crate) message_format: MessageFormat,

    #[command(flatten)]
    pub(crate) outputs: Outputs,
}

impl Cli {
    /// libtest's own flags after `--`, as cargo test users type them (`cargo test --
    /// --test-threads=1 --nocapture --ignored name --exact`), become prun's: they choose what
    /// runs and how, for every kind of binary, rather than reaching only plain binaries (where
    /// a second `--nocapture` or `--ignored` would break prun's own). The rest stays the
    /// harness's.
    pub(crate) fn take_libtest_args(&mut self) {
        let mut rest = Vec::new();
        let mut args = std::mem::take(&mut self.harness_args).into_iter();
        while let Some(arg) = args.next() {
            let (flag, attached) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => {
                    (flag.to_owned(), Some(value.to_owned()))
                }
                _ => (arg.clone(), None),
            };
            let mut value = || attached.clone().or_else(|| args.next());
            match flag.as_str() {
                "--nocapture" | "--no-capture" => self.no_capture = true,
                "--exact" => self.exact = true,
                "--ignored" => self.ignored = true,
                "--include-ignored" => self.include_ignored = true,
                "-q" | "--quiet" => self.quiet = true,
                "--show-output" => self.success_output = Some(TestOutput::Final),
                "--test-threads" => match value().map(|v| v.parse::<i64>()) {
                    Some(Ok(n)) => {
                        self.test_threads.get_or_insert(n);
                    }
                    Some(Err(_)) | None => rest.push(arg),
                },
                "--skip" => self.skip.extend(value()),
                // libtest's flags with a value stay the harness's, value and all.
                "--color" | "--format" | "--logfile" | "-Z" | "--shuffle-seed" => {
                    rest.push(arg);
                    if attached.is_none() {
                        rest.extend(args.next());
                    }
                }
                _ if flag.starts_with('-') => rest.push(arg),
                _ => self.filters.push(arg),
            }
        }
        self.harness_args = rest;
    }
}

/// Flags passed on to `cargo test --no-run` (all but `--always-build`).
#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Package to test (repeatable).
    #[arg(short = 'p', long = "package", value_name = "SPEC")]
    pub(crate) packages: Vec<String>,
    /// Test all packages of the workspace.
    #[arg(long)]
    pub(crate) workspace: bool,
    /// Exclude a package (with --workspace).
    #[arg(long, value_name = "SPEC")]
    pub(crate) exclude: Vec<String>,
    /// Test only the library's unit tests.
    #[arg(long)]
    pub(crate) lib: bool,
    /// Test all binaries.
    #[arg(long)]
    pub(crate) bins: bool,
    /// Test this integration test target (repeatable).
    #[arg(long = "test", value_name = "NAME")]
    pub(crate) tests: Vec<String>,
    /// Test all integration test targets.
    #[arg(long = "tests")]
    pub(crate) all_tests: bool,
    /// Run only the doctests (`cargo test --doc`): nothing else is built or run.
    #[arg(long, conflicts_with_all = [
        "lib", "bins", "bin", "tests", "all_tests", "all_targets", "examples", "example",
        "benches", "bench",
    ])]
    pub(crate) doc: bool,
    /// Test every target cargo test would (passed to cargo).
    #[arg(long)]
    pub(crate) all_targets: bool,
    /// Test this binary target's unit tests (repeatable; passed to cargo).
    #[arg(long = "bin", value_name = "NAME")]
    pub(crate) bin: Vec<String>,
    /// Test the examples (passed to cargo).
    #[arg(long)]
    pub(crate) examples: bool,
    /// Test this example (repeatable; passed to cargo).
    #[arg(long = "example", value_name = "NAME")]
    pub(crate) example: Vec<String>,
    /// Test the benchmarks, as tests (passed to cargo).
    #[arg(long)]
    pub(crate) benches: bool,
    /// Test this benchmark, as a test (repeatable; passed to cargo).
    #[arg(long = "bench", value_name = "NAME")]
    pub(crate) bench: Vec<String>,
    /// Build for this target triple (passed to cargo).
    #[arg(long, value_name = "TRIPLE")]
    pub(crate) target: Option<String>,
    /// Jobs for the build (cargo's `-j`; prun's `-j` is the test threads).
    #[arg(long, value_name = "N")]
    pub(crate) build_jobs: Option<String>,
    /// Cargo's own output: more (repeatable).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Cargo builds quietly.
    #[arg(long)]
    pub(crate) cargo_quiet: bool,
    /// Features to activate (comma- or space-separated, repeatable).
    #[arg(short = 'F', long, value_name = "FEATURES")]
    pub(crate) features: Vec<String>,
    #[arg(long)]
    pub(crate) all_features: bool,
    #[arg(long)]
    pub(crate) no_default_features: bool,
    /// Build in release mode.
    #[arg(short = 'r', long)]
    pub(crate) release: bool,
    /// The cargo profile to build with.
    #[arg(long, value_name = "NAME")]
    pub(crate) profile: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub(crate) target_dir: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Require Cargo.lock to be up to date (passed to cargo).
    #[arg(long)]
    pub(crate) locked: bool,
    /// Require Cargo.lock and the cache to be up to date (passed to cargo).
    #[arg(long)]
    pub(crate) frozen: bool,
    /// Build without the network (passed to cargo).
    #[arg(long)]
    pub(crate) offline: bool,
    /// Override a cargo config value, `KEY=VALUE` or a file (passed to cargo; repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub(crate) cargo_config: Vec<String>,
    /// Run cargo's build even when nothing the last build read has changed (prun otherwise
    /// runs the binaries of that build without starting cargo).
    #[arg(long)]
    pub(crate) always_build: bool,
    /// Run the tests of an archive `cargo prun archive` made, not a build: no cargo or
    /// toolchain needed. (With `cargo prun archive`: the file to write.)
    #[arg(long, value_name = "FILE")]
    pub(crate) archive_file: Option<PathBuf>,
    /// With --archive-file: the checkout of the sources the archive was built from, where its
    /// tests run [default: where it was built].
    #[arg(long, value_name = "DIR", requires = "archive_file")]
    pub(crate) workspace_remap: Option<PathBuf>,
    /// Flags cargo test takes that prun does not model, given to cargo as they were.
    #[arg(skip)]
    pub(crate) passed_to_cargo: Vec<String>,
}

impl BuildArgs {
    /// These flags as cargo takes them.
    pub(crate) fn to_cargo_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut flag = |name: &str, on: bool| {
            if on {
                args.push(name.to_owned());
            }
        };
        flag("--workspace", self.workspace);
        flag("--lib", self.lib);
        flag("--bins", self.bins);
        flag("--tests", self.all_tests);
        flag("--all-targets", self.all_targets);
        flag("--examples", self.examples);
        flag("--benches", self.benches);
        flag("--quiet", self.cargo_quiet);
        for verbose in 1..=2 {
            flag("--verbose", self.verbose >= verbose);
        }
        flag("--all-features", self.all_features);
        flag("--no-default-features", self.no_default_features);
        flag("--release", self.release);
        flag("--locked", self.locked);
        flag("--frozen", self.frozen);
        flag("--offline", self.offline);
        let mut pairs = |name: &str, values: &[String]| {
            for value in values {
                args.push(name.to_owned());
                args.push(value.clone());
            }
        };
        pairs("--package", &self.packages);
        pairs("--exclude", &self.exclude);
        pairs("--test", &self.tests);
        pairs("--features", &self.features);
        pairs("--config", &self.cargo_config);
        pairs("--bin", &self.bin);
        pairs("--example", &self.example);
        pairs("--bench", &self.bench);
        pairs("--target", self.target.as_slice());
        pairs("--jobs", self.build_jobs.as_slice());
        if let Some(profile) = &self.profile {
            args.extend(["--profile".to_owned(), profile.clone()]);
        }
        if let Some(dir) = &self.target_dir {
            args.extend(["--target-dir".to_owned(), dir.display().to_string()]);
        }
        if let Some(path) = &self.manifest_path {
            args.extend(["--manifest-path".to_owned(), path.display().to_string()]);
        }
        args.extend(self.passed_to_cargo.iter().cloned());
        args
    }
}

/// `--run-ignored`, as nextest takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunIgnored {
    Default,
    Only,
    All,
}

/// `--no-tests`, as nextest takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum NoTests {
    Fail,
    Warn,
    Pass,
}

/// `--status-level` and `--final-status-level`, as nextest takes them: each shows what the
/// levels before it show, and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub(crate) enum StatusLevel {
    None,
    Fail,
    Retry,
    Flaky,
    Slow,
    Leak,
    Pass,
    Skip,
    All,
}

/// `--failure-output` and `--success-output`, as nextest takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TestOutput {
    Immediate,
    Final,
    ImmediateFinal,
    Never,
}

impl TestOutput {
    pub(crate) fn immediate(self) -> bool {
        matches!(self, TestOutput::Immediate | TestOutput::ImmediateFinal)
    }

    pub(crate) fn at_the_end(self) -> bool {
        matches!(self, TestOutput::Final | TestOutput::ImmediateFinal)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormat {
    Human,
    Json,
    /// libtest's JSON lines (`cargo test -- --format json` on nightly), tests named
    /// `BINARY$NAME` as nextest names them.
    LibtestJson,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cargo prun` commands of a CI recipe, with its shell variables filled in.
    fn commands(recipe: &str) -> Vec<Vec<String>> {
        let mut joined = recipe.replace("\\\n", " ");
        // However a recipe starts cargo-prun (cargo on the build job; the binary itself where
        // there is no cargo), it is the same command line.
        for launcher in ["prun-bin/bin/cargo-prun", "./cargo-prun", "$PRUN", "$prun"] {
            joined = joined.replace(&format!("{launcher} prun "), "cargo prun ");
        }
        let outputs = "--json merged.json --junit merged.xml --html report.html --timings t.json";
        joined
            .lines()
            .filter_map(|line| Some(&line[line.find("cargo prun ")?..]))
            .map(|command| {
                let command = command.split(" || ").next().unwrap_or(command);
                command
                    .replace("${{ matrix.shard }}", "1")
                    .replace("$CI_NODE_INDEX", "1")
                    .replace("$JOB_COMPLETION_INDEX", "0")
                    .replace("$K", "1")
                    .replace("$timings", "--timings prun-timings.json")
                    .replace("$outputs", outputs)
                    // Which shard `auto` is comes from the CI's variables (tested in partition).
                    .replace(":auto", ":1/4")
                    .replace("shard-*.json", "shard-1.json shard-2.json")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    const HELP: &str = "Options:\n      --no-run                   Compile, but don't run tests\n  \
        -v, --verbose...               Use verbose output\n  \
        -Z <FLAG>                      Unstable (nightly-only) flags\n  \
        -p, --package [<SPEC>]  Package to run tests for\n      \
        --ignore-rust-version   Ignore `rust-version`\n      \
        --lockfile-path <PATH>  Path of Cargo.lock\n      \
        --timings[=<FMTS>]  Timing report\n";

    fn parse(args: &[&str]) -> Result<(Cargo, Vec<String>), clap::Error> {
        let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let mut passed = Vec::new();
        loop {
            match Cargo::try_parse_from(&args) {
                Ok(cargo) => return Ok((cargo, passed)),
                Err(err) => match take_cargo_flag(&mut args, &err, &flags_in_help(HELP)) {
                    Some(taken) => passed.extend(taken),
                    None => return Err(err),
                },
            }
        }
    }

    #[test]
    fn cargo_flags_prun_does_not_model_go_to_cargo_with_their_values() {
        let flags = flags_in_help(HELP);
        assert_eq!(flags[1].names, ["-v", "--verbose"]);
        assert!(flags[2].takes_value && !flags[3].takes_value);
        assert_eq!(flags[6].names, ["--timings"]);
        let (_, passed) = parse(&[
            "cargo",
            "prun",
            "--ignore-rust-version",
            "-Zbuild-std",
            "--lockfile-path",
            "a/Cargo.lock",
            "-Z",
            "unstable-options",
            "foo",
            "--",
            "--lockfile-path",
        ])
        .unwrap();
        assert_eq!(
            passed,
            [
                "--ignore-rust-version",
                "-Zbuild-std",
                "--lockfile-path",
                "a/Cargo.lock",
                "-Z",
                "unstable-options"
            ]
        );
        // A flag neither prun nor cargo takes is still an error.
        let err = parse(&["cargo", "prun", "--no-such-flag"]).unwrap_err().to_string();
        assert!(err.contains("--no-such-flag"), "{err}");
        let (_, passed) = parse(&["cargo", "prun", "--lockfile-path=x"]).unwrap();
        assert_eq!(passed, ["--lockfile-path=x"]);
    }

    #[test]
    fn libtests_flags_after_the_dashes_become_prun_s() {
        let Ok(Cargo::Prun(prun)) = Cargo::try_parse_from([
            "cargo",
            "prun",
            "-q",
            "--",
            "--test-threads=1",
            "--nocapture",
            "name",
            "--skip",
            "slow",
            "--exact",
            "--ignored",
            "--format",
            "json",
            "--report-time",
        ]) else {
            panic!("parses")
        };
        let mut cli = prun.run;
        cli.take_libtest_args();
        assert_eq!(cli.test_threads, Some(1));
        assert!(cli.no_capture && cli.exact && cli.ignored && cli.quiet);
        assert_eq!(cli.filters, ["name"]);
        assert_eq!(cli.skip, ["slow"]);
        assert_eq!(cli.harness_args, ["--format", "json", "--report-time"]);
    }

    #[test]
    fn the_ci_recipes_use_real_flags() {
        let recipes = [
            ("github-actions.yml", include_str!("../../ci-recipes/github-actions.yml")),
            ("gitlab-ci.yml", include_str!("../../ci-recipes/gitlab-ci.yml")),
            ("codebuild-buildspec.yml", include_str!("../../ci-recipes/codebuild-buildspec.yml")),
            (
                "kubernetes-indexed-job.yml",
                include_str!("../../ci-recipes/kubernetes-indexed-job.yml"),
            ),
        ];
        for (name, recipe) in recipes {
            let commands = commands(recipe);
            // The shards run from an archive (made here, unless another job makes it), the
            // shards are merged, a lost one is rerun, and the timings are kept.
            let mut needed = vec![
                "--archive-file",
                "--workspace-remap",
                "--partition",
                "merge",
                "--rerun-failed",
            ];
            if !name.starts_with("kubernetes") {
                needed.push("archive");
            }
            for needed in needed {
                assert!(commands.iter().any(|c| c.iter().any(|a| a == needed)), "{name}: {needed}");
            }
            for command in commands {
                if let Err(err) = Cargo::try_parse_from(&command) {
                    panic!("{name}: `{}` does not parse:\n{err}", command.join(" "));
                }
            }
        }
    }
}
