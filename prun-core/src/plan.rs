//! From the registered tests, the CLI's selection and the config, the plan: which tests run,
//! in which priority order, with which timeouts, retries, groups and limits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::registry::TestDef;
use crate::scheduler::{Job, Limits};

/// Which tests the command line asked for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Selection {
    pub(crate) filters: Vec<String>,
    pub(crate) exact: bool,
    pub(crate) skip: Vec<String>,
    pub(crate) ignored: Ignored,
    pub(crate) categories: Vec<String>,
    pub(crate) groups: Vec<String>,
    /// Under `bazel test` with `shard_count`: this shard's share of the selected tests.
    pub(crate) shard: Option<crate::bazel::Shard>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ignored {
    /// Ignored tests are reported as ignored (the default).
    #[default]
    Skip,
    /// `--ignored`: only ignored tests.
    Only,
    /// `--include-ignored`: all of them.
    Include,
}

impl Selection {
    fn matches_name(&self, name: &str) -> bool {
        let hit = |pattern: &String| {
            if self.exact { name == pattern } else { name.contains(pattern.as_str()) }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit)) && !self.skip.iter().any(hit)
    }

    fn matches(&self, test: &TestDef, name: &str) -> bool {
        self.matches_name(name)
            && (self.categories.is_empty() || self.categories.iter().any(|c| c == test.category))
            && (self.groups.is_empty()
                || test.groups.iter().any(|g| self.groups.iter().any(|s| s == g)))
            && (self.ignored != Ignored::Only || test.ignore)
    }

    /// The selected tests, in declaration order, with their full names; and how many were
    /// filtered out.
    pub(crate) fn apply(
        &self,
        tests: &[&'static TestDef],
    ) -> (Vec<(&'static TestDef, String)>, usize) {
        let named = tests.iter().map(|test| (*test, test.full_name()));
        let mut selected: Vec<_> = named.filter(|(test, name)| self.matches(test, name)).collect();
        if let Some(shard) = self.shard {
            // By position in name order: the same in every shard's process.
            let mut names: Vec<&str> = selected.iter().map(|(_, name)| name.as_str()).collect();
            names.sort_unstable();
            let mine: std::collections::HashSet<String> = names
                .iter()
                .enumerate()
                .filter(|(position, _)| shard.has(*position))
                .map(|(_, name)| (*name).to_owned())
                .collect();
            selected.retain(|(_, name)| mine.contains(name));
        }
        let filtered_out = tests.len() - selected.len();
        (selected, filtered_out)
    }
}

#[derive(Debug)]
pub(crate) struct PlannedTest {
    pub(crate) def: &'static TestDef,
    pub(crate) name: Arc<str>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) job: Job,
}

#[derive(Debug)]
pub(crate) struct Plan {
    /// Tests to run, most urgent first.
    pub(crate) tests: Vec<PlannedTest>,
    /// Tests not run because they are `ignore`d: name and reason.
    pub(crate) ignored: Vec<(String, Option<&'static str>)>,
    pub(crate) filtered_out: usize,
    pub(crate) limits: Limits,
}

pub(crate) fn plan(
    tests: &[&'static TestDef],
    selection: &Selection,
    config: &Config,
    threads: usize,
) -> Result<Plan, crate::config::UnknownCategory> {
    let (selected, filtered_out) = selection.apply(tests);
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();

    let mut planned = Vec::new();
    let mut ignored = Vec::new();
    for (def, name) in selected {
        if def.ignore && selection.ignored == Ignored::Skip {
            ignored.push((name, def.ignore_reason));
            continue;
        }
        let at = Some(format!("{}:{}", def.file, def.line));
        let category = config.category_index(def.category, &name, at)?;
        let settings = config.categories.get(def.category);
        let mut group_ids = Vec::with_capacity(def.groups.len());
        for group in def.groups {
            let id = groups.len();
            group_ids.push(*groups.entry(group).or_insert(id));
        }
        planned.push(PlannedTest {
            def,
            name: name.into(),
            timeout: def
                .timeout
                .or(settings.and_then(|s| s.timeout))
                .or(config.slow_timeout.terminate()),
            job: Job {
                slots: def.threads,
                groups: group_ids,
                category,
                retries: def.retries.or(settings.and_then(|s| s.retries)).unwrap_or(0),
                ..Job::default()
            },
        });
    }
    // Most urgent category first; declaration order within one (the sort is stable).
    planned.sort_by_key(|test| crate::config::category_rank(test.def.category));

    let mut group_capacity = vec![1; groups.len()];
    for (name, id) in &groups {
        if let Some(group) = config.groups.get(*name) {
            group_capacity[*id] = group.capacity.get();
        }
    }
    let category_max_slots = config
        .category_names()
        .iter()
        .map(|c| config.categories.get(*c).and_then(|s| s.max_threads).map(|n| n.get()))
        .collect();
    let threads = u32::try_from(threads).unwrap_or(u32::MAX);
    Ok(Plan {
        tests: planned,
        ignored,
        filtered_out,
        limits: Limits { threads, group_capacity, category_max_slots, adaptive: None },
    })
}
