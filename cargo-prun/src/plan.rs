//! Plan: every selected test of every binary, in one priority order, with the config applied.

use std::collections::BTreeMap;
use std::time::Duration;

use prun::config::Config;
use prun::protocol::CatalogTest;
use prun::scheduler::{Job, Limits};

use crate::discover::Binary;

/// The categories prun knows, most urgent first; others rank with `unit`.
const CATEGORIES: [&str; 3] = ["slow", "integration", "unit"];

#[derive(Debug, Default)]
pub(crate) struct Selection {
    pub(crate) filters: Vec<String>,
    pub(crate) exact: bool,
    pub(crate) skip: Vec<String>,
    pub(crate) ignored_only: bool,
    pub(crate) include_ignored: bool,
    pub(crate) categories: Vec<String>,
    pub(crate) groups: Vec<String>,
}

impl Selection {
    fn matches(&self, test: &CatalogTest) -> bool {
        let hit = |pattern: &String| {
            if self.exact { test.name == *pattern } else { test.name.contains(pattern.as_str()) }
        };
        (self.filters.is_empty() || self.filters.iter().any(hit))
            && !self.skip.iter().any(hit)
            && (self.categories.is_empty() || self.categories.contains(&test.category))
            && (self.groups.is_empty() || test.groups.iter().any(|g| self.groups.contains(g)))
            && (!self.ignored_only || test.ignore)
    }
}

#[derive(Debug)]
pub(crate) struct PlannedTest {
    pub(crate) binary: usize,
    pub(crate) name: String,
    pub(crate) meta: CatalogTest,
    pub(crate) timeout: Option<Duration>,
    pub(crate) job: Job,
}

#[derive(Debug)]
pub(crate) struct Plan {
    /// Most urgent first.
    pub(crate) tests: Vec<PlannedTest>,
    pub(crate) limits: Limits,
    /// Ignored tests not run: binary id and name.
    pub(crate) ignored: Vec<(String, String)>,
    pub(crate) filtered_out: usize,
}

pub(crate) fn plan(
    binaries: &[Binary],
    selection: &Selection,
    config: &Config,
    threads: usize,
) -> Plan {
    let mut categories: Vec<String> = CATEGORIES.iter().map(|c| (*c).to_owned()).collect();
    categories
        .extend(config.categories.keys().filter(|c| !CATEGORIES.contains(&c.as_str())).cloned());
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let (mut tests, mut ignored, mut filtered_out) = (Vec::new(), Vec::new(), 0);
    for (index, binary) in binaries.iter().enumerate() {
        for test in &binary.tests {
            if !selection.matches(test) {
                filtered_out += 1;
                continue;
            }
            if test.ignore && !selection.ignored_only && !selection.include_ignored {
                ignored.push((binary.binary.id.clone(), test.name.clone()));
                continue;
            }
            let category =
                categories.iter().position(|c| *c == test.category).unwrap_or(CATEGORIES.len() - 1);
            let settings = config.categories.get(&test.category);
            let mut group_ids = Vec::new();
            for group in &test.groups {
                let next = groups.len();
                group_ids.push(*groups.entry(group.clone()).or_insert(next));
            }
            tests.push(PlannedTest {
                binary: index,
                name: test.name.clone(),
                meta: test.clone(),
                timeout: test
                    .timeout_ms
                    .map(Duration::from_millis)
                    .or(settings.and_then(|s| s.timeout)),
                job: Job {
                    slots: test.threads,
                    groups: group_ids,
                    category,
                    retries: test.retries.or(settings.and_then(|s| s.retries)).unwrap_or(0),
                },
            });
        }
    }
    // Slow first, then integration, then the rest; binary and declaration order within one.
    tests.sort_by_key(|test| {
        CATEGORIES.iter().position(|c| *c == test.meta.category).unwrap_or(CATEGORIES.len() - 1)
    });
    let mut group_capacity = vec![1; groups.len()];
    for (name, id) in &groups {
        if let Some(group) = config.groups.get(name) {
            group_capacity[*id] = group.capacity.get();
        }
    }
    let category_max_slots = categories
        .iter()
        .map(|c| config.categories.get(c).and_then(|s| s.max_threads).map(|n| n.get()))
        .collect();
    let threads = u32::try_from(threads).unwrap_or(u32::MAX);
    Plan {
        tests,
        limits: Limits { threads, group_capacity, category_max_slots },
        ignored,
        filtered_out,
    }
}
