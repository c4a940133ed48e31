//! `cargo prun`'s command line: the flags users know from `cargo test` and `cargo nextest`.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

use crate::partition::Partition;
use crate::plan::Order;

/// cargo runs a subcommand as `cargo-prun prun ARGS`.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo")]
pub(crate) enum Cargo {
    /// Run every test of a workspace under one parallel schedule.
    Prun(Cli),
}

#[derive(Debug, Args)]
#[command(
    version,
    about,
    after_help = "Exit codes: 0 all passed; 101 a test failed; 2 bad usage or config; 3 the build failed; 130 interrupted."
)]
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

    /// Run every test, whatever fails.
    #[arg(long, conflicts_with = "max_fail")]
    pub(crate) no_fail_fast: bool,

    /// Stop starting tests after N failures [default: 1, unless --no-fail-fast]. A batch of
    /// plain tests that has started runs to its end.
    #[arg(long, value_name = "N")]
    pub(crate) max_fail: Option<usize>,

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

    /// Run this machine's share of the tests: count:K/N (every N-th test) or hash:K/N (by a
    /// hash of the test's id). Every test lands in exactly one of the N shards.
    #[arg(long, value_name = "count:K/N|hash:K/N")]
    pub(crate) partition: Option<Partition>,

    /// Run a failed test again up to N times (over the attribute and prun.toml).
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Fail the run when a test passed only after failing.
    #[arg(long)]
    pub(crate) fail_on_flaky: bool,

    /// Which tests start first: priority (slow, integration, unit), declared, or shuffle[:SEED]
    /// (the seed is printed; the same seed gives the same order).
    #[arg(long, value_name = "ORDER", default_value = "priority")]
    pub(crate) order: Order,

    /// List the tests that would run, with their metadata, and exit.
    #[arg(long)]
    pub(crate) list: bool,

    /// The `[profile.NAME]` of prun.toml to use.
    #[arg(long = "prun-profile", value_name = "NAME")]
    pub(crate) prun_profile: Option<String>,

    /// Show test output as it is printed, not only for failures.
    #[arg(long)]
    pub(crate) no_capture: bool,

    /// Coloured output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,

    /// `json` writes the run's events to stdout, one JSON object a line (human output goes to stderr).
    #[arg(long, value_enum, default_value_t = MessageFormat::Human)]
    pub(crate) message_format: MessageFormat,

    /// Write a JUnit XML report here (rewritten as tests finish, atomically).
    #[arg(long, value_name = "PATH")]
    pub(crate) junit: Option<PathBuf>,
}

/// Flags passed on to `cargo test --no-run`.
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
        flag("--all-features", self.all_features);
        flag("--no-default-features", self.no_default_features);
        flag("--release", self.release);
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
        if let Some(profile) = &self.profile {
            args.extend(["--profile".to_owned(), profile.clone()]);
        }
        if let Some(dir) = &self.target_dir {
            args.extend(["--target-dir".to_owned(), dir.display().to_string()]);
        }
        if let Some(path) = &self.manifest_path {
            args.extend(["--manifest-path".to_owned(), path.display().to_string()]);
        }
        args
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
}
