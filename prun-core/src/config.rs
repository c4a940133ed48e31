//! `prun.toml`: threads, categories and groups, with named profiles.
//!
//! Found at `PRUN_CONFIG`, or as `prun.toml` / `.config/prun.toml` in the current directory or
//! the nearest one above it (cargo runs test binaries in their package's directory, so this is
//! the package's, then the workspace's). `PRUN_PROFILE` picks a `[profile.NAME]` table whose
//! values override the top-level ones. An unknown key or a bad value is an error that names the
//! file, the line and the key.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Default, Clone)]
pub struct Config {
    /// The file this came from; `None` when there is none.
    pub source: Option<PathBuf>,
    pub threads: Option<Threads>,
    /// With `threads = "auto"` (the default), `cargo prun` runs as many tests at once as the
    /// machine's cores and memory serve, up to this many; [`default_max_concurrency`] unless
    /// said.
    pub max_concurrency: Option<NonZeroU32>,
    pub categories: BTreeMap<String, CategoryConfig>,
    pub groups: BTreeMap<String, GroupConfig>,
    /// Reports `cargo prun` writes on every run.
    pub reports: ReportsConfig,
    /// Whether `cargo prun` runs doctests; `skip` unless said.
    pub doctests: Option<Doctests>,
    /// Tests `cargo prun` runs one per process rather than in a batch with others (plain
    /// `#[test]` binaries): patterns matched against `BINARY NAME`.
    pub isolate: Vec<String>,
    /// What `cargo prun` hides in every report and in what it prints.
    pub redact: RedactConfig,
    /// Tests whose failures `cargo prun` reports but does not fail the run for: patterns
    /// matched against `BINARY NAME`.
    pub quarantine: Vec<String>,
    /// How retries wait.
    pub retry: RetryConfig,
    /// How long a test's output may stay open after its process ended (a child it left holds
    /// it), and whether that fails the test.
    pub leak_timeout: LeakTimeout,
    /// When a test is called slow, and whether it is stopped after some periods.
    pub slow_timeout: SlowTimeout,
}

/// `slow-timeout = "60s"`, or `slow-timeout = { period = "60s", terminate-after = 3 }`, as in
/// nextest: a test still running after each `period` is reported SLOW; with `terminate-after`,
/// a test with no timeout of its own is stopped after that many periods (off by default, so a
/// hang is only ever cut short when the config says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowTimeout {
    pub period: Duration,
    pub terminate_after: Option<NonZeroU32>,
}

impl Default for SlowTimeout {
    fn default() -> SlowTimeout {
        SlowTimeout { period: Duration::from_secs(60), terminate_after: None }
    }
}

impl SlowTimeout {
    /// The timeout of a test that has none of its own: `period * terminate-after`.
    pub fn terminate(&self) -> Option<Duration> {
        self.terminate_after.map(|n| self.period * n.get())
    }
}

impl<'de> Deserialize<'de> for SlowTimeout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SlowTimeout, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct Table {
            #[serde(deserialize_with = "duration")]
            period: Option<Duration>,
            terminate_after: Option<NonZeroU32>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spelled {
            Period(String),
            Table(Table),
        }
        let default = SlowTimeout::default();
        match Spelled::deserialize(deserializer)? {
            Spelled::Period(text) => match crate::time::parse(&text) {
                Ok(period) if !period.is_zero() => {
                    Ok(SlowTimeout { period, terminate_after: None })
                }
                _ => Err(serde::de::Error::custom(format!("{text:?} is not a duration above 0"))),
            },
            Spelled::Table(table) => Ok(SlowTimeout {
                period: table.period.unwrap_or(default.period),
                terminate_after: table.terminate_after,
            }),
        }
    }
}

/// `leak-timeout = "100ms"`, or `leak-timeout = { period = "100ms", result = "fail" }`, as in
/// nextest: a test process whose output is still held open this long after it exited leaked a
/// child; the child's process group is killed and the test is reported LEAK (passing, with a
/// warning) or, with `result = "fail"`, failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeakTimeout {
    pub period: Duration,
    pub fail: bool,
}

impl Default for LeakTimeout {
    fn default() -> LeakTimeout {
        LeakTimeout { period: Duration::from_millis(100), fail: false }
    }
}

impl<'de> Deserialize<'de> for LeakTimeout {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<LeakTimeout, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case")]
        enum LeakResult {
            Pass,
            Fail,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(deserialize_with = "duration")]
            period: Option<Duration>,
            result: Option<LeakResult>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Spelled {
            Period(String),
            Table(Table),
        }
        let default = LeakTimeout::default();
        match Spelled::deserialize(deserializer)? {
            Spelled::Period(text) => crate::time::parse(&text)
                .map(|period| LeakTimeout { period, fail: false })
                .map_err(serde::de::Error::custom),
            Spelled::Table(table) => Ok(LeakTimeout {
                period: table.period.unwrap_or(default.period),
                fail: matches!(table.result, Some(LeakResult::Fail)),
            }),
        }
    }
}

/// `[retry]`: a retry waits `delay`, then `delay * backoff`, `delay * backoff^2`, ...
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RetryConfig {
    #[serde(default, deserialize_with = "duration")]
    pub delay: Option<Duration>,
    #[serde(default = "one", deserialize_with = "backoff")]
    pub backoff: f64,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig { delay: None, backoff: 1.0 }
    }
}

impl RetryConfig {
    /// How long attempt `attempt` (1 for the first run) waits before it starts.
    pub fn wait_before(&self, attempt: u32) -> Duration {
        match (self.delay, attempt) {
            (Some(delay), 2..) => {
                let retry = i32::try_from(attempt - 2).unwrap_or(i32::MAX);
                delay.mul_f64(self.backoff.powi(retry).min(1e6))
            }
            _ => Duration::ZERO,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn backoff<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let factor = f64::deserialize(deserializer)?;
    if (1.0..=100.0).contains(&factor) {
        Ok(factor)
    } else {
        Err(serde::de::Error::custom(format!(
            "expected a factor from 1.0 (no backoff) to 100.0; got {factor}"
        )))
    }
}

/// `[redact]`: secrets replaced by `[REDACTED]`. Variables named like `*TOKEN*`, `*SECRET*`,
/// `*PASSWORD*` and `*KEY*` are always redacted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// More environment variable names whose values are hidden (`*` matches any run).
    #[serde(default)]
    pub env: Vec<String>,
    /// Regular expressions whose matches are hidden.
    #[serde(default)]
    pub patterns: Vec<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// A JUnit XML path, relative to the config file's directory (the workspace root).
    pub junit: Option<PathBuf>,
}

/// `doctests = "run" | "skip"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Doctests {
    /// After the tests, `cargo test --doc`, each doctest reported with the rest.
    Run,
    /// Not run; the summary says how to run them.
    Skip,
}

/// `threads = "auto" | N | -N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Auto,
    /// A positive count, or a negative one meaning "all cores but N".
    Count(i64),
}

impl Threads {
    /// Threads to run with on a machine of `cores`; never fewer than one.
    pub fn resolve(self, cores: usize) -> usize {
        match self {
            Threads::Auto => cores,
            Threads::Count(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
            Threads::Count(n) => {
                let fewer = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
                cores.saturating_sub(fewer).max(1)
            }
        }
    }
}

/// The categories prun knows without config, most urgent first.
pub const BUILTIN_CATEGORIES: [&str; 3] = ["slow", "integration", "unit"];

/// A test names a category that is neither built in nor in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCategory {
    /// The test, and where it is declared (`file:line`, when known).
    pub test: String,
    pub at: Option<String>,
    pub category: String,
    pub config: Option<PathBuf>,
}

impl fmt::Display for UnknownCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at.as_ref().map_or(String::new(), |at| format!(" ({at})"));
        let config = match &self.config {
            Some(path) => format!("declared under [categories] in {}", path.display()),
            None => "declared under [categories] in a prun.toml (none was found)".to_owned(),
        };
        write!(
            f,
            "test `{}`{at} has category {:?}, which is neither built in (unit, integration, \
             slow) nor {config}",
            self.test, self.category
        )
    }
}

impl std::error::Error for UnknownCategory {}

impl Config {
    /// Every category a test may name, most urgent first: the built-in ones, then the config's
    /// own. The one list of the harness and `cargo prun`.
    pub fn category_names(&self) -> Vec<&str> {
        self.categories_in_order().collect()
    }

    fn categories_in_order(&self) -> impl Iterator<Item = &str> {
        let own = self.categories.keys().map(String::as_str);
        BUILTIN_CATEGORIES.iter().copied().chain(own.filter(|c| !BUILTIN_CATEGORIES.contains(c)))
    }

    /// The index of `category` in [`Config::category_names`]; a category the list lacks is an
    /// error naming the test and where it is declared. (Asked once per test of a run: nothing
    /// is allocated unless it is an error.)
    pub fn category_index(
        &self,
        category: &str,
        test: &str,
        at: Option<&str>,
    ) -> Result<usize, UnknownCategory> {
        self.categories_in_order().position(|c| c == category).ok_or_else(|| UnknownCategory {
            test: test.to_owned(),
            at: at.map(str::to_owned),
            category: category.to_owned(),
            config: self.source.clone(),
        })
    }
}

/// `slow` first, then `integration`, then `unit` and any category of the config's own.
pub fn category_rank(category: &str) -> usize {
    BUILTIN_CATEGORIES.iter().position(|c| *c == category).unwrap_or(BUILTIN_CATEGORIES.len() - 1)
}

/// Variables that set the thread count, in the order they win: prun's own, then nextest's and
/// libtest's, so a script written for either keeps its meaning.
pub const THREAD_VARIABLES: [&str; 3] =
    ["PRUN_TEST_THREADS", "NEXTEST_TEST_THREADS", "RUST_TEST_THREADS"];

/// How many tests run at once: the flag (`--test-threads`, `-j`), else the first of
/// [`THREAD_VARIABLES`] that is set, else the config's `threads`, else all cores. Negative
/// counts mean all cores but N everywhere. The one rule of the harness and `cargo prun`.
pub fn resolve_threads(flag: Option<i64>, config: &Config) -> Result<usize, ThreadsError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    resolve_threads_with(flag, &|name| std::env::var(name).ok(), config, cores)
}

/// How `cargo prun` decides how many tests run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Exactly this many (`-j N`, a thread variable, or `threads = N`).
    Fixed(usize),
    /// As many as the measured CPU and memory of the tests let the cores serve, up to
    /// `ceiling` at once (nothing set the count, or `threads = "auto"`).
    Adaptive { cores: usize, ceiling: usize },
}

impl Concurrency {
    /// The count the plan sizes batches by: the cores, when adaptive.
    pub fn threads(self) -> usize {
        match self {
            Concurrency::Fixed(n) => n,
            Concurrency::Adaptive { cores, .. } => cores,
        }
    }
}

/// A generous multiple of the cores: tests that wait take little of a core each.
pub fn default_max_concurrency(cores: usize) -> usize {
    (cores * 32).clamp(16, 1024)
}

/// Like [`resolve_threads`], but "auto" (set, or nothing set) is [`Concurrency::Adaptive`].
pub fn resolve_concurrency(
    flag: Option<i64>,
    config: &Config,
) -> Result<Concurrency, ThreadsError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let env = |name: &str| std::env::var(name).ok();
    match chosen_threads(flag, &env, config)? {
        Threads::Auto => {
            let ceiling = config.max_concurrency.map_or_else(
                || default_max_concurrency(cores),
                |n| usize::try_from(n.get()).unwrap_or(usize::MAX),
            );
            Ok(Concurrency::Adaptive { cores, ceiling: ceiling.max(1) })
        }
        threads => Ok(Concurrency::Fixed(threads.resolve(cores))),
    }
}

fn resolve_threads_with(
    flag: Option<i64>,
    env: &dyn Fn(&str) -> Option<String>,
    config: &Config,
    cores: usize,
) -> Result<usize, ThreadsError> {
    Ok(chosen_threads(flag, env, config)?.resolve(cores))
}

/// A thread count that cannot be used, and where it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadsError {
    #[error("--test-threads must not be 0: use N, or -N for all cores but N")]
    ZeroFlag,
    #[error("{name}: {error}")]
    Variable { name: &'static str, error: BadThreads },
}

/// Text that is not a thread count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadThreads {
    #[error("0 threads cannot run anything: use \"auto\", N, or -N")]
    Zero,
    #[error("expected \"auto\", a number, or a negative number; got {0:?}")]
    NotANumber(String),
}

fn chosen_threads(
    flag: Option<i64>,
    env: &dyn Fn(&str) -> Option<String>,
    config: &Config,
) -> Result<Threads, ThreadsError> {
    let threads = match flag {
        Some(0) => return Err(ThreadsError::ZeroFlag),
        Some(n) => Threads::Count(n),
        None => {
            let set = THREAD_VARIABLES
                .iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (name, v)));
            match set {
                Some((name, value)) => {
                    value.parse().map_err(|error| ThreadsError::Variable { name, error })?
                }
                None => config.threads.unwrap_or(Threads::Auto),
            }
        }
    };
    Ok(threads)
}

impl std::str::FromStr for Threads {
    type Err = BadThreads;
    fn from_str(text: &str) -> Result<Threads, BadThreads> {
        match text.trim() {
            "auto" => Ok(Threads::Auto),
            number => match number.parse::<i64>() {
                Ok(0) => Err(BadThreads::Zero),
                Ok(n) => Ok(Threads::Count(n)),
                Err(_) => Err(BadThreads::NotANumber(number.to_owned())),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Threads {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Threads, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(text) if text == "auto" => text,
            Raw::Text(text) => return Err(serde::de::Error::custom(BadThreads::NotANumber(text))),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CategoryConfig {
    /// At most this many threads run tests of the category at once.
    pub max_threads: Option<NonZeroU32>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GroupConfig {
    /// How many tests of the group may run at once; 1 (exclusive) when the group is not listed.
    pub capacity: NonZeroU32,
}

/// The file's top level, and each `[profile.NAME]` table (whose own `profile` must be empty).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Settings {
    threads: Option<Threads>,
    max_concurrency: Option<NonZeroU32>,
    #[serde(default)]
    categories: BTreeMap<String, CategoryConfig>,
    #[serde(default)]
    groups: BTreeMap<String, GroupConfig>,
    reports: Option<ReportsConfig>,
    doctests: Option<Doctests>,
    #[serde(default)]
    isolate: Vec<String>,
    redact: Option<RedactConfig>,
    #[serde(default)]
    quarantine: Vec<String>,
    retry: Option<RetryConfig>,
    leak_timeout: Option<LeakTimeout>,
    slow_timeout: Option<SlowTimeout>,
    #[serde(default)]
    profile: BTreeMap<String, Settings>,
}

fn duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    match crate::time::parse(&text) {
        Ok(duration) if !duration.is_zero() => Ok(Some(duration)),
        _ => Err(serde::de::Error::custom(format!(
            "expected a duration like \"500ms\", \"30s\" or \"2m\"; got {text:?}"
        ))),
    }
}

/// Why the config could not be used: the file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid config {}: {problem}", path.display())]
pub struct ConfigError {
    pub path: PathBuf,
    pub problem: ConfigProblem,
}

/// What is wrong with a config's text.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    #[error("cannot read it: {0}")]
    Read(std::io::Error),
    /// toml's message, which names the line, column and key.
    #[error("{}", .0.to_string().trim_end())]
    Toml(#[from] toml::de::Error),
    #[error("[profile.{0}] cannot hold profiles of its own")]
    NestedProfile(String),
    #[error("profile `{name}` is not defined; defined: [{}]", defined.join(", "))]
    UnknownProfile { name: String, defined: Vec<String> },
}

impl Config {
    /// The config that applies to a test binary started in `dir`, with `PRUN_CONFIG` and
    /// `PRUN_PROFILE` from the environment.
    pub fn discover(dir: &Path) -> Result<Config, ConfigError> {
        let profile = std::env::var("PRUN_PROFILE").ok().filter(|p| !p.is_empty());
        Config::discover_with_profile(dir, profile.as_deref())
    }

    /// Like [`Config::discover`], with the profile given rather than read from `PRUN_PROFILE`.
    pub fn discover_with_profile(dir: &Path, profile: Option<&str>) -> Result<Config, ConfigError> {
        let path = match std::env::var_os("PRUN_CONFIG") {
            Some(path) => Some(PathBuf::from(path)),
            None => find(dir),
        };
        match path {
            Some(path) => Config::load(&path, profile),
            None => Ok(Config::default()),
        }
    }

    pub fn load(path: &Path, profile: Option<&str>) -> Result<Config, ConfigError> {
        let error = |problem| ConfigError { path: path.to_owned(), problem };
        let text = std::fs::read_to_string(path).map_err(|err| error(ConfigProblem::Read(err)))?;
        Config::parse(&text, profile)
            .map(|mut config| {
                config.source = Some(path.to_owned());
                config
            })
            .map_err(error)
    }

    /// Parses a config's text; the error is toml's, which names the line, column and key.
    pub fn parse(text: &str, profile: Option<&str>) -> Result<Config, ConfigProblem> {
        let file: Settings = toml::from_str(text)?;
        if let Some((name, _)) = file.profile.iter().find(|(_, p)| !p.profile.is_empty()) {
            return Err(ConfigProblem::NestedProfile(name.clone()));
        }
        let mut config = Config {
            source: None,
            threads: file.threads,
            max_concurrency: file.max_concurrency,
            categories: file.categories,
            groups: file.groups,
            reports: file.reports.unwrap_or_default(),
            doctests: file.doctests,
            isolate: file.isolate,
            redact: file.redact.unwrap_or_default(),
            quarantine: file.quarantine,
            retry: file.retry.unwrap_or_default(),
            leak_timeout: file.leak_timeout.unwrap_or_default(),
            slow_timeout: file.slow_timeout.unwrap_or_default(),
        };
        if let Some(name) = profile.filter(|name| *name != "default") {
            let Some(overrides) = file.profile.get(name) else {
                let defined = file.profile.keys().cloned().collect();
                return Err(ConfigProblem::UnknownProfile { name: name.to_owned(), defined });
            };
            config.apply(overrides);
        }
        Ok(config)
    }

    fn apply(&mut self, profile: &Settings) {
        self.threads = profile.threads.or(self.threads);
        self.max_concurrency = profile.max_concurrency.or(self.max_concurrency);
        self.doctests = profile.doctests.or(self.doctests);
        self.isolate.extend(profile.isolate.iter().cloned());
        self.quarantine.extend(profile.quarantine.iter().cloned());
        if let Some(retry) = &profile.retry {
            self.retry = retry.clone();
        }
        self.leak_timeout = profile.leak_timeout.unwrap_or(self.leak_timeout);
        self.slow_timeout = profile.slow_timeout.unwrap_or(self.slow_timeout);
        if let Some(redact) = &profile.redact {
            self.redact.env.extend(redact.env.iter().cloned());
            self.redact.patterns.extend(redact.patterns.iter().cloned());
        }
        if let Some(junit) = profile.reports.as_ref().and_then(|r| r.junit.clone()) {
            self.reports.junit = Some(junit);
        }
        for (name, over) in &profile.categories {
            let base = self.categories.entry(name.clone()).or_default();
            base.max_threads = over.max_threads.or(base.max_threads);
            base.timeout = over.timeout.or(base.timeout);
            base.retries = over.retries.or(base.retries);
        }
        for (name, group) in &profile.groups {
            self.groups.insert(name.clone(), group.clone());
        }
    }
}

fn find(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .flat_map(|dir| [dir.join("prun.toml"), dir.join(".config/prun.toml")])
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key() {
        let config = Config::parse(
            r#"
            threads = -1
            quarantine = ["api::known_flake"]
            [categories.slow]
            max-threads = 1
            timeout = "2m"
            retries = 2
            [groups.db]
            capacity = 3
            [retry]
            delay = "100ms"
            backoff = 2.0
            "#,
            None,
        )
        .unwrap();
        assert_eq!(config.threads, Some(Threads::Count(-1)));
        assert_eq!(config.retry.delay, Some(Duration::from_millis(100)));
        assert_eq!(config.retry.backoff, 2.0);
        let waits: Vec<u128> = (1..=4).map(|a| config.retry.wait_before(a).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 400]);
        assert_eq!(config.quarantine, ["api::known_flake"]);
        let slow = &config.categories["slow"];
        assert_eq!(slow.max_threads.map(NonZeroU32::get), Some(1));
        assert_eq!(slow.timeout, Some(Duration::from_secs(120)));
        assert_eq!(slow.retries, Some(2));
        assert_eq!(config.groups["db"].capacity.get(), 3);
    }

    #[test]
    fn threads_never_resolve_below_one() {
        assert_eq!(Threads::Auto.resolve(8), 8);
        assert_eq!(Threads::Count(3).resolve(8), 3);
        assert_eq!(Threads::Count(-2).resolve(8), 6);
        assert_eq!(Threads::Count(-20).resolve(8), 1);
        assert!("0".parse::<Threads>().is_err());
        assert_eq!("auto".parse::<Threads>(), Ok(Threads::Auto));
    }

    #[test]
    fn leak_timeout_is_spelled_as_in_nextest() {
        assert_eq!(Config::parse("", None).unwrap().leak_timeout, LeakTimeout::default());
        let short = Config::parse("leak-timeout = \"250ms\"", None).unwrap().leak_timeout;
        assert_eq!(short, LeakTimeout { period: Duration::from_millis(250), fail: false });
        let table = "leak-timeout = { period = \"1s\", result = \"fail\" }";
        let failing = Config::parse(table, None).unwrap().leak_timeout;
        assert_eq!(failing, LeakTimeout { period: Duration::from_secs(1), fail: true });
        assert!(Config::parse("leak-timeout = { result = \"maybe\" }", None).is_err());
    }

    #[test]
    fn slow_timeout_is_spelled_as_in_nextest() {
        let config = Config::parse("", None).unwrap();
        assert_eq!(config.slow_timeout.period, Duration::from_secs(60));
        assert_eq!(config.slow_timeout.terminate(), None, "a hang is not cut short unless asked");
        let table = "slow-timeout = { period = \"30s\", terminate-after = 4 }";
        let config = Config::parse(table, None).unwrap();
        assert_eq!(config.slow_timeout.terminate(), Some(Duration::from_secs(120)));
        assert!(Config::parse("slow-timeout = { terminate-after = 0 }", None).is_err());
        assert!(Config::parse("slow-timeout = \"0s\"", None).is_err());
    }

    #[test]
    fn a_category_must_be_built_in_or_declared() {
        let config = Config::parse("[categories.nightly]\nretries = 1", None).unwrap();
        assert_eq!(config.category_names(), ["slow", "integration", "unit", "nightly"]);
        assert_eq!(config.category_index("nightly", "t", None), Ok(3));
        let err = config.category_index("fast", "api::t", Some("tests/api.rs:4")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "test `api::t` (tests/api.rs:4) has category \"fast\", which is neither built in \
             (unit, integration, slow) nor declared under [categories] in a prun.toml (none was \
             found)"
        );
        assert!(category_rank("slow") < category_rank("integration"));
        assert_eq!(category_rank("nightly"), category_rank("unit"));
    }

    #[test]
    fn one_rule_for_the_thread_count() {
        let config = Config::parse("threads = -1", None).unwrap();
        let none = |_: &str| None;
        assert_eq!(resolve_threads_with(None, &none, &config, 8), Ok(7));
        assert_eq!(resolve_threads_with(Some(-2), &none, &config, 8), Ok(6));
        assert_eq!(resolve_threads_with(Some(3), &none, &config, 8), Ok(3));
        assert!(resolve_threads_with(Some(0), &none, &config, 8).is_err());
        let rust = |name: &str| (name == "RUST_TEST_THREADS").then(|| "1".to_owned());
        assert_eq!(resolve_threads_with(None, &rust, &config, 8), Ok(1));
        let both = |name: &str| match name {
            "NEXTEST_TEST_THREADS" => Some("-3".to_owned()),
            "RUST_TEST_THREADS" => Some("1".to_owned()),
            _ => None,
        };
        assert_eq!(
            resolve_threads_with(None, &both, &config, 8),
            Ok(5),
            "nextest's before libtest's"
        );
        let bad = |name: &str| (name == "PRUN_TEST_THREADS").then(|| "many".to_owned());
        assert!(
            resolve_threads_with(None, &bad, &config, 8)
                .unwrap_err()
                .to_string()
                .starts_with("PRUN_TEST_THREADS")
        );
    }

    #[test]
    fn an_unknown_key_names_its_line_and_key() {
        let err =
            Config::parse("threads = 2\n[categories.slow]\nmax-thread = 1\n", None).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max-thread"), "{err}");
    }

    #[test]
    fn a_bad_value_names_its_line_and_key() {
        let err = Config::parse("[categories.unit]\ntimeout = \"soon\"\n", None).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("line 2") && err.contains("timeout") && err.contains("soon"), "{err}");
        let err = Config::parse("threads = 0\n", None).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("threads"), "{err}");
        let err = Config::parse("[groups.db]\ncapacity = 0\n", None).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("capacity"), "{err}");
    }

    #[test]
    fn the_readme_example_is_a_valid_config() {
        let readme = include_str!("../../README.md");
        let start = readme.find("```toml\nthreads = ").expect("the README shows a prun.toml") + 8;
        let example = &readme[start..start + readme[start..].find("```").unwrap()];
        let config = Config::parse(example, Some("ci")).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(config.threads, Some(Threads::Count(2)));
        assert_eq!(config.doctests, Some(Doctests::Run));
        assert_eq!(config.groups["db"].capacity.get(), 2);
    }

    #[test]
    fn reports_and_doctests_for_cargo_prun() {
        let text = "doctests = \"run\"\n[reports]\njunit = \"target/junit.xml\"\n\
                    [profile.quick]\ndoctests = \"skip\"\n";
        let config = Config::parse(text, None).unwrap();
        assert_eq!(config.doctests, Some(Doctests::Run));
        assert_eq!(config.reports.junit, Some(PathBuf::from("target/junit.xml")));
        assert_eq!(Config::parse(text, Some("quick")).unwrap().doctests, Some(Doctests::Skip));
        let err = Config::parse("doctests = \"sometimes\"\n", None).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("sometimes"), "{err}");
    }

    #[test]
    fn a_profile_overrides_the_top_level() {
        let text = "threads = 4\n[categories.slow]\nretries = 1\ntimeout = \"1m\"\n\
                    [profile.ci]\nthreads = 2\n[profile.ci.categories.slow]\nretries = 3\n";
        let config = Config::parse(text, Some("ci")).unwrap();
        assert_eq!(config.threads, Some(Threads::Count(2)));
        assert_eq!(config.categories["slow"].retries, Some(3));
        assert_eq!(config.categories["slow"].timeout, Some(Duration::from_secs(60)));
        let err = Config::parse(text, Some("nightly")).unwrap_err();
        assert!(matches!(err, ConfigProblem::UnknownProfile { ref name, .. } if name == "nightly"));
        assert!(err.to_string().contains("defined: [ci]"), "{err}");
    }
}
