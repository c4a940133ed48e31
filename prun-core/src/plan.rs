//! The plan, one for both halves: which tests of a catalog a command line selects, and each
//! selected test's job (category, groups, thread slots, retries) and timeout under the config,
//! most urgent category first, with the limits they run within. The harness plans its own
//! tests with [`plan`]; `cargo prun` plans every binary's with [`Filter`] and [`Jobs`], the
//! same rules, and adds what only it knows (history, batches, partitions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, UnknownCategory};
use crate::protocol::CatalogTest;
use crate::registry::TestDef;
use crate::scheduler::{Job, Limits};

/// What `--ignored` and `--include-ignored` ask for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// Ignored tests are reported as ignored (the default).
    #[default]
    Skip,
    /// `--ignored`: only ignored tests.
    Only,
    /// `--include-ignored`: all of them.
    Include,
}

/// Which tests the command line asks for, by name, category, group and `ignore`.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// A test matches when its name contains one of these (is one, with `exact`); all match
    /// when there are none.
    pub filters: Vec<String>,
    pub exact: bool,
    /// `--skip`: names that leave a test out, matched like the filters.
    pub skip: Vec<String>,
    pub ignored: Ignored,
    /// `--category`: only tests of these categories, when any are given.
    pub categories: Vec<String>,
    /// `--group`: only tests in one of these groups, when any are given.
    pub groups: Vec<String>,
}

impl Filter {
    /// Whether the filters and `--skip` let a test of this name through.
    pub fn matches_name(&self, name: &str) -> bool {
        let hit = |pattern: &String| {
            if self.exact { name == pattern } else { name.contains(pattern.as_str()) }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit)) && !self.skip.iter().any(hit)
    }

    /// Whether the test is selected (an ignored one may still not run: see [`Filter::runs`]).
    pub fn matches(&self, test: &CatalogTest) -> bool {
        self.matches_name(&test.name)
            && (self.categories.is_empty() || self.categories.contains(&test.category))
            && (self.groups.is_empty() || test.groups.iter().any(|g| self.groups.contains(g)))
            && (self.ignored != Ignored::Only || test.ignore)
    }

    /// Whether a selected test runs, rather than being reported as ignored.
    pub fn runs(&self, test: &CatalogTest) -> bool {
        !test.ignore || self.ignored != Ignored::Skip
    }
}

/// Jobs under a config: each test's category (built in or declared, else an error naming the
/// test), its groups (numbered in the order they are first met), slots, retries and timeout;
/// and the limits of the groups and categories met.
#[derive(Debug)]
pub struct Jobs<'c> {
    config: &'c Config,
    groups: BTreeMap<String, usize>,
}

impl<'c> Jobs<'c> {
    pub fn new(config: &'c Config) -> Jobs<'c> {
        Jobs { config, groups: BTreeMap::new() }
    }

    /// The test's job and timeout. `retries` is the command line's, over the test's own and
    /// its category's.
    pub fn job(
        &mut self,
        test: &CatalogTest,
        retries: Option<u32>,
    ) -> Result<(Job, Option<Duration>), UnknownCategory> {
        let config = self.config;
        let category = config.category_index(&test.category, &test.name, test.at.as_deref())?;
        let settings = config.categories.get(&test.category);
        let groups = test
            .groups
            .iter()
            .map(|group| {
                let next = self.groups.len();
                *self.groups.entry(group.clone()).or_insert(next)
            })
            .collect();
        let timeout = test
            .timeout_ms
            .map(Duration::from_millis)
            .or(settings.and_then(|s| s.timeout))
            .or(config.slow_timeout.terminate());
        let retries = retries.or(test.retries).or(settings.and_then(|s| s.retries)).unwrap_or(0);
        Ok((Job { slots: test.threads, groups, category, retries, ..Job::default() }, timeout))
    }

    /// The limits: `threads` slots, each group's capacity (1 unless the config says), each
    /// category's cap.
    pub fn limits(&self, threads: usize) -> Limits {
        let mut group_capacity = vec![1; self.groups.len()];
        for (name, id) in &self.groups {
            if let Some(group) = self.config.groups.get(name) {
                group_capacity[*id] = group.capacity.get();
            }
        }
        let category_max_slots = self
            .config
            .category_names()
            .iter()
            .map(|c| self.config.categories.get(*c).and_then(|s| s.max_threads).map(|n| n.get()))
            .collect();
        let threads = u32::try_from(threads).unwrap_or(u32::MAX);
        Limits { threads, group_capacity, category_max_slots, adaptive: None }
    }
}

/// One binary's plan.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The tests to run, most urgent category first, declaration order within one.
    pub tests: Vec<Planned>,
    /// Selected tests that are ignored (indexes into the catalog).
    pub ignored: Vec<usize>,
    /// Tests the filters left out.
    pub filtered_out: usize,
    pub limits: Limits,
}

/// A test to run: its index in the catalog, timeout and job.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub index: usize,
    pub timeout: Option<Duration>,
    pub job: Job,
}

/// The plan of one binary's catalog (in declaration order); `shard`, Bazel's share of the
/// selected tests.
pub fn plan(
    catalog: &[CatalogTest],
    filter: &Filter,
    shard: Option<crate::bazel::Shard>,
    config: &Config,
    threads: usize,
) -> Result<Plan, UnknownCategory> {
    let selected = select(catalog, filter, shard);
    let filtered_out = catalog.len() - selected.len();
    let mut jobs = Jobs::new(config);
    let (mut tests, mut ignored) = (Vec::new(), Vec::new());
    for index in selected {
        let test = &catalog[index];
        if !filter.runs(test) {
            ignored.push(index);
            continue;
        }
        let (job, timeout) = jobs.job(test, None)?;
        tests.push(Planned { index, timeout, job });
    }
    // Most urgent category first; declaration order within one (the sort is stable).
    tests.sort_by_key(|test| crate::config::category_rank(&catalog[test.index].category));
    Ok(Plan { tests, ignored, filtered_out, limits: jobs.limits(threads) })
}

/// The selected tests (indexes, in catalog order); of those, the shard's by position in name
/// order, the same in every shard's process.
pub fn select(
    catalog: &[CatalogTest],
    filter: &Filter,
    shard: Option<crate::bazel::Shard>,
) -> Vec<usize> {
    let mut selected: Vec<usize> =
        (0..catalog.len()).filter(|&i| filter.matches(&catalog[i])).collect();
    if let Some(shard) = shard {
        let mut by_name = selected.clone();
        by_name.sort_by(|&a, &b| catalog[a].name.cmp(&catalog[b].name));
        let mine: std::collections::HashSet<usize> = by_name
            .into_iter()
            .enumerate()
            .filter(|(position, _)| shard.has(*position))
            .map(|(_, index)| index)
            .collect();
        selected.retain(|index| mine.contains(index));
    }
    selected
}

/// A test of the harness's plan: its registration, full name, timeout and job.
#[derive(Debug)]
pub(crate) struct PlannedTest {
    pub(crate) def: &'static TestDef,
    pub(crate) name: Arc<str>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) job: Job,
}
