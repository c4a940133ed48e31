//! A project on nextest keeps its settings in `.config/nextest.toml`. With no `prun.toml`,
//! `cargo prun` reads that file: the profile (`-P NAME`, else `NEXTEST_PROFILE`, else
//! `default`, over `default`), its `test-threads`, `retries`, `slow-timeout`, `leak-timeout` and
//! `fail-fast`; `[test-groups]` with their `max-threads`; and `[[profile.NAME.overrides]]`
//! whose `filter` (a filterset) gives tests a `test-group`, `threads-required`, `retries` or a
//! `slow-timeout`. What prun cannot honour is named in one warning line.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use prun::config::{Config, GroupConfig, LeakTimeout, SlowTimeout, Threads};
use prun::protocol::TestId;

use crate::discover::Binary;
use crate::filterset::{Candidate, Filterset};

/// The settings a nextest profile gives the run, and its overrides.
#[derive(Debug)]
pub(crate) struct NextestConfig {
    pub(crate) path: PathBuf,
    pub(crate) profile: String,
    threads: Option<Threads>,
    pub(crate) retries: Option<u32>,
    slow_timeout: Option<SlowTimeout>,
    leak_timeout: Option<LeakTimeout>,
    pub(crate) fail_fast: Option<bool>,
    groups: BTreeMap<String, NonZeroU32>,
    overrides: Vec<Override>,
    /// Keys prun reads past without honouring them.
    ignored: Vec<String>,
}

#[derive(Debug)]
struct Override {
    filter: Filterset,
    test_group: Option<String>,
    threads_required: Option<u32>,
    retries: Option<u32>,
    slow_timeout: Option<SlowTimeout>,
    leak_timeout: Option<LeakTimeout>,
}

/// What is wrong with `.config/nextest.toml`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("invalid config {path}: {problem}")]
    Invalid { path: PathBuf, problem: Problem },
    #[error(transparent)]
    Unreadable(#[from] crate::files::StateError),
}

/// What is wrong inside the file: the key, and why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Problem {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("test-groups.{0}.max-threads: expected a number of 1 or more")]
    GroupThreads(String),
    #[error("profile `{0}` is not defined")]
    NoProfile(String),
    #[error("{key}: {message}")]
    Value { key: String, message: String },
    #[error("{0}: expected a number or {{ count = N }}")]
    Retries(String),
    #[error("{0}: expected true or false")]
    NotABool(String),
    #[error("{0}: expected a filterset")]
    NotAFilterset(String),
    #[error("{at}: {text:?}: {error}")]
    Filterset { at: String, text: String, error: crate::filterset::ParseError },
    #[error("{at}.test-group: `{group}` is not under [test-groups]")]
    UnknownGroup { at: String, group: String },
}

/// The nearest `.config/nextest.toml` at or above `root`, read for `profile`; `None` when
/// there is none.
pub(crate) fn discover(root: &Path, profile: Option<&str>) -> Result<Option<NextestConfig>, Error> {
    let found = root.ancestors().map(|dir| dir.join(".config/nextest.toml")).find(|p| p.is_file());
    let Some(path) = found else { return Ok(None) };
    let Some(bytes) = crate::files::read_state(&path).map_err(Error::Unreadable)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    let env_profile = std::env::var("NEXTEST_PROFILE").ok().filter(|p| !p.is_empty());
    let profile = profile.map(str::to_owned).or(env_profile).unwrap_or_else(|| "default".into());
    parse(&text, &profile)
        .map(|mut config| {
            config.path = path.clone();
            Some(config)
        })
        .map_err(|problem| Error::Invalid { path: path.clone(), problem })
}

fn parse(text: &str, profile: &str) -> Result<NextestConfig, Problem> {
    let table: toml::Table = text.parse()?;
    let mut config = NextestConfig {
        path: PathBuf::new(),
        profile: profile.to_owned(),
        threads: None,
        retries: None,
        slow_timeout: None,
        leak_timeout: None,
        fail_fast: None,
        groups: BTreeMap::new(),
        overrides: Vec::new(),
        ignored: Vec::new(),
    };
    for (key, value) in &table {
        match key.as_str() {
            "test-groups" => {
                for (name, group) in value.as_table().into_iter().flatten() {
                    let threads = group.get("max-threads").and_then(toml::Value::as_integer);
                    let capacity = threads
                        .and_then(|n| u32::try_from(n).ok())
                        .and_then(NonZeroU32::new)
                        .ok_or_else(|| Problem::GroupThreads(name.clone()))?;
                    config.groups.insert(name.clone(), capacity);
                }
            }
            "profile" => {}
            other => config.ignored.push(other.to_owned()),
        }
    }
    let profiles = table.get("profile").and_then(toml::Value::as_table);
    let chosen = ["default", profile];
    if profile != "default" && profiles.is_none_or(|p| !p.contains_key(profile)) {
        return Err(Problem::NoProfile(profile.to_owned()));
    }
    for name in chosen.iter().take(if profile == "default" { 1 } else { 2 }) {
        let Some(settings) = profiles.and_then(|p| p.get(*name)).and_then(toml::Value::as_table)
        else {
            continue;
        };
        config.read_profile(name, settings)?;
    }
    Ok(config)
}

/// A `toml::Value` through serde, naming the key when it does not fit.
fn typed<T: serde::de::DeserializeOwned>(key: &str, value: &toml::Value) -> Result<T, Problem> {
    value.clone().try_into().map_err(|err: toml::de::Error| Problem::Value {
        key: key.to_owned(),
        message: err.message().to_owned(),
    })
}

/// nextest's `retries`: a number, or a table with `count`.
fn retries(key: &str, value: &toml::Value) -> Result<u32, Problem> {
    let count = value.as_integer().or_else(|| value.get("count").and_then(toml::Value::as_integer));
    count.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| Problem::Retries(key.to_owned()))
}

impl NextestConfig {
    fn read_profile(&mut self, name: &str, settings: &toml::Table) -> Result<(), Problem> {
        for (key, value) in settings {
            let at = format!("profile.{name}.{key}");
            match key.as_str() {
                "test-threads" => {
                    self.threads = Some(match value.as_str() {
                        Some("num-cpus") => Threads::Auto,
                        _ => typed::<Threads>(&at, value)?,
                    });
                }
                "retries" => self.retries = Some(retries(&at, value)?),
                "slow-timeout" => self.slow_timeout = Some(typed(&at, value)?),
                "leak-timeout" => self.leak_timeout = Some(typed(&at, value)?),
                "fail-fast" => {
                    self.fail_fast =
                        Some(value.as_bool().ok_or_else(|| Problem::NotABool(at.clone()))?);
                }
                "overrides" => {
                    for (index, entry) in value.as_array().into_iter().flatten().enumerate() {
                        let at = format!("{at}[{index}]");
                        let found = self.read_override(&at, entry)?;
                        self.overrides.push(found);
                    }
                }
                _ => self.ignored.push(at),
            }
        }
        Ok(())
    }

    fn read_override(&mut self, at: &str, entry: &toml::Value) -> Result<Override, Problem> {
        let mut found = Override {
            filter: Filterset::All,
            test_group: None,
            threads_required: None,
            retries: None,
            slow_timeout: None,
            leak_timeout: None,
        };
        for (key, value) in entry.as_table().into_iter().flatten() {
            let at = format!("{at}.{key}");
            match key.as_str() {
                "filter" => {
                    let text = value.as_str().ok_or_else(|| Problem::NotAFilterset(at.clone()))?;
                    found.filter = crate::filterset::parse(text).map_err(|error| {
                        Problem::Filterset { at: at.clone(), text: text.to_owned(), error }
                    })?;
                }
                "test-group" => found.test_group = value.as_str().map(str::to_owned),
                "threads-required" => {
                    found.threads_required =
                        value.as_integer().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0);
                }
                "retries" => found.retries = Some(retries(&at, value)?),
                "slow-timeout" => found.slow_timeout = Some(typed(&at, value)?),
                "leak-timeout" => found.leak_timeout = Some(typed(&at, value)?),
                _ => self.ignored.push(at),
            }
        }
        if let Some(group) = &found.test_group
            && group != "@global"
            && !self.groups.contains_key(group)
        {
            return Err(Problem::UnknownGroup { at: at.to_owned(), group: group.clone() });
        }
        Ok(found)
    }

    /// The profile's settings into prun's config (where prun.toml would have put them), and the
    /// overrides into the tests they choose. What it returns: the tests whose leak timeout an
    /// override sets, by `BINARY NAME`.
    pub(crate) fn apply(
        &self,
        config: &mut Config,
        binaries: &mut [Binary],
    ) -> HashMap<String, LeakTimeout> {
        let mut leak_timeouts = HashMap::new();
        config.threads = self.threads.or(config.threads);
        config.slow_timeout = self.slow_timeout.unwrap_or(config.slow_timeout);
        config.leak_timeout = self.leak_timeout.unwrap_or(config.leak_timeout);
        for (name, capacity) in &self.groups {
            config.groups.insert(name.clone(), GroupConfig { capacity: *capacity });
        }
        for binary in binaries {
            for test in &mut binary.tests {
                let candidate = Candidate {
                    binary_id: &binary.binary.id,
                    package: &binary.binary.package_name,
                    kind: &binary.binary.kind,
                    test: &test.name,
                };
                // The first override that sets a key wins, as in nextest.
                let mut group = None;
                let (mut threads, mut retries, mut slow, mut leak) = (None, None, None, None);
                for o in self.overrides.iter().filter(|o| o.filter.matches(&candidate)) {
                    group = group.or(o.test_group.clone());
                    threads = threads.or(o.threads_required);
                    retries = retries.or(o.retries);
                    slow = slow.or(o.slow_timeout);
                    leak = leak.or(o.leak_timeout);
                }
                if let Some(leak) = leak {
                    leak_timeouts.insert(
                        TestId { binary: &binary.binary.id, name: &test.name }.joined(),
                        leak,
                    );
                }
                if let Some(group) = group.filter(|g| g != "@global")
                    && !test.groups.contains(&group)
                {
                    test.groups.push(group);
                }
                test.threads = threads.unwrap_or(test.threads);
                test.retries = retries.or(test.retries);
                let terminate = slow.and_then(|slow| slow.terminate());
                if let Some(ms) =
                    terminate.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX))
                {
                    test.timeout_ms = Some(ms);
                }
            }
        }
        leak_timeouts
    }

    /// One line naming what prun read past, if anything.
    pub(crate) fn warning(&self) -> Option<String> {
        (!self.ignored.is_empty()).then(|| {
            format!(
                "warning: {}: prun does not honour {}",
                self.path.display(),
                self.ignored.join(", ")
            )
        })
    }
}

/// How long a slow-timeout period is, for tests (the type has no accessor of its own here).
#[cfg(test)]
fn terminate(slow: Option<SlowTimeout>) -> Option<std::time::Duration> {
    slow.and_then(|s| s.terminate())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const CONFIG: &str = r#"
[test-groups]
serial = { max-threads = 1 }

[profile.default]
retries = 1
slow-timeout = { period = "30s", terminate-after = 2 }
junit = { path = "junit.xml" }

[[profile.default.overrides]]
filter = 'package(db) & test(/^write/)'
test-group = "serial"
threads-required = 2

[profile.ci]
retries = { backoff = "fixed", count = 3, delay = "1s" }
fail-fast = false
test-threads = "num-cpus"
"#;

    #[test]
    fn a_profile_over_default_with_groups_and_overrides() {
        let config = parse(CONFIG, "ci").unwrap();
        assert_eq!(config.retries, Some(3), "ci over default");
        assert_eq!(config.fail_fast, Some(false));
        assert_eq!(config.threads, Some(Threads::Auto));
        assert_eq!(terminate(config.slow_timeout), Some(Duration::from_secs(60)));
        assert_eq!(config.groups["serial"].get(), 1);
        assert_eq!(config.overrides.len(), 1);
        assert_eq!(config.ignored, ["profile.default.junit"]);
        let warning = config.warning().unwrap();
        assert!(warning.contains("prun does not honour profile.default.junit"), "{warning}");
    }

    #[test]
    fn overrides_reach_the_tests_their_filter_chooses() {
        let text = "[test-groups]\nserial = { max-threads = 1 }\n\
            [[profile.default.overrides]]\nfilter = 'test(/^write/)'\ntest-group = 'serial'\n\
            threads-required = 2\nretries = 4\n\
            leak-timeout = { period = '2s', result = 'fail' }\n";
        let config = parse(text, "default").unwrap();
        let test = |name: &str| crate::discover::plain_test(name.to_owned(), false);
        let binary = crate::build::TestBinary {
            id: "db".into(),
            path: "db".into(),
            package_dir: ".".into(),
            package_name: "db".into(),
            kind: "lib".into(),
            runner: None,
            env: Vec::new(),
        };
        let mut binaries = [Binary {
            binary,
            kind: crate::discover::Kind::Libtest,
            tests: vec![test("write_rows"), test("read_rows")],
            benchmarks: Vec::new(),
        }];
        let mut prun_config = Config::default();
        let leaks = config.apply(&mut prun_config, &mut binaries);
        let [write, read] = &binaries[0].tests[..] else { panic!() };
        assert_eq!(
            (write.groups.as_slice(), write.threads, write.retries),
            (&["serial".to_owned()][..], 2, Some(4))
        );
        assert_eq!((read.groups.len(), read.threads, read.retries), (0, 1, None));
        assert_eq!(prun_config.groups["serial"].capacity.get(), 1);
        let leak = leaks["db write_rows"];
        assert_eq!((leak.period, leak.fail), (Duration::from_secs(2), true));
        assert!(!leaks.contains_key("db read_rows"));
        assert!(config.warning().is_none(), "every key was honoured");
    }

    #[test]
    fn bad_input_names_its_key() {
        assert!(
            parse(CONFIG, "nightly")
                .unwrap_err()
                .to_string()
                .contains("profile `nightly` is not defined")
        );
        let bad = "[[profile.default.overrides]]\nfilter = 'test('\n";
        assert!(
            parse(bad, "default")
                .unwrap_err()
                .to_string()
                .contains("profile.default.overrides[0].filter")
        );
        let group = "[[profile.default.overrides]]\nfilter = 'all()'\ntest-group = 'nope'\n";
        assert!(
            parse(group, "default")
                .unwrap_err()
                .to_string()
                .contains("`nope` is not under [test-groups]")
        );
    }
}
